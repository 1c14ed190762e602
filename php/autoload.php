<?php

/**
 * Autoloader for using this package without Composer (tests, test workers, quick
 * experiments): `require 'path/to/php/autoload.php';`
 *
 * Loads `Pacer\` classes from src/, then the PSR HTTP interfaces and Nyholm's PSR-7 from
 * vendor/ if Composer installed them, else from the Debian packages under /usr/share/php.
 */

declare(strict_types=1);

spl_autoload_register(static function (string $class): void {
    $prefix = 'Pacer\\';
    if (str_starts_with($class, $prefix)) {
        $file = __DIR__ . '/src/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
        if (is_file($file)) {
            require $file;
        }
    }
});

if (is_file(__DIR__ . '/vendor/autoload.php')) {
    require_once __DIR__ . '/vendor/autoload.php';
} else {
    foreach ([
        '/usr/share/php/Psr/Http/Message/autoload.php',
        '/usr/share/php/Psr/Http/Message/factory-autoload.php',
        '/usr/share/php/Nyholm/Psr7/autoload.php',
    ] as $debianAutoload) {
        if (is_file($debianAutoload)) {
            require_once $debianAutoload;
        }
    }
}
