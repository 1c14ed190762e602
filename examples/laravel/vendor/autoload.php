<?php

// Stands in for Composer's vendor/autoload.php: this example runs on Debian's packages
// (php-laravel-framework 8.83 and its dependencies under /usr/share/php), without network
// access. With Composer (`composer require laravel/framework pacer/worker`) this file is
// generated instead and nothing else in the app changes.

declare(strict_types=1);

require_once 'Illuminate/autoload.php'; // Debian's, on the include path (/usr/share/php)

spl_autoload_register(static function (string $class): void {
    foreach (['App\\' => '/app/', 'Database\\Seeders\\' => '/database/seeders/'] as $prefix => $dir) {
        if (str_starts_with($class, $prefix)) {
            $file = dirname(__DIR__) . $dir . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
            if (is_file($file)) {
                require $file;
            }

            return;
        }
    }
});

// pacer/worker: this repository's php/ (PACER_PHP_AUTOLOAD when the app was copied away).
require_once getenv('PACER_PHP_AUTOLOAD') ?: dirname(__DIR__, 3) . '/php/autoload.php';
