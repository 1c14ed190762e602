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

// The HttpFoundation bridge's tests: Debian's php-symfony-http-foundation.
if (!class_exists('Symfony\\Component\\HttpFoundation\\Request') && stream_resolve_include_path('Symfony/Component/HttpFoundation/autoload.php')) {
    require_once 'Symfony/Component/HttpFoundation/autoload.php';
}

foreach (['Psr\\Http\\Message\\ServerRequestFactoryInterface', 'Nyholm\\Psr7\\Factory\\Psr17Factory', 'Symfony\\Component\\HttpFoundation\\Request'] as $required) {
    if (!class_exists($required) && !interface_exists($required)) {
        fwrite(STDERR, "tests/bootstrap.php: $required is missing; install the Debian packages "
            . "php-psr-http-message php-psr-http-factory php-nyholm-psr7 php-symfony-http-foundation (or run composer install).\n");
        exit(1);
    }
}
