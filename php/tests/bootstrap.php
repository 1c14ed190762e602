<?php

/**
 * Test bootstrap without Composer: a PSR-4 autoloader for `Pacer\` (src/) and
 * `Pacer\Tests\` (tests/), plus the PSR-7/PSR-17 interfaces and Nyholm's factories.
 * With `composer install` the vendor autoloader is used instead; otherwise the Debian
 * packages php-psr-http-message, php-psr-http-factory and php-nyholm-psr7 provide them.
 */

declare(strict_types=1);

require_once __DIR__ . '/../autoload.php';

spl_autoload_register(static function (string $class): void {
    $prefix = 'Pacer\\Tests\\';
    if (str_starts_with($class, $prefix)) {
        $file = __DIR__ . '/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
        if (is_file($file)) {
            require $file;
        }
    }
});

foreach (['Psr\\Http\\Message\\ServerRequestFactoryInterface', 'Nyholm\\Psr7\\Factory\\Psr17Factory'] as $required) {
    if (!class_exists($required) && !interface_exists($required)) {
        fwrite(STDERR, "tests/bootstrap.php: $required is missing; install the Debian packages "
            . "php-psr-http-message php-psr-http-factory php-nyholm-psr7 (or run composer install).\n");
        exit(1);
    }
}
