<?php

// Stands in for Composer's vendor/autoload.php: this example runs on Debian's packages
// (Symfony 5.4 components and bundles, Twig 3 under /usr/share/php), without network
// access. With Composer this file is generated and nothing else in the app changes.

declare(strict_types=1);

foreach ([
    'Symfony/Bundle/FrameworkBundle/autoload.php',
    'Symfony/Bundle/SecurityBundle/autoload.php',
    'Symfony/Bundle/TwigBundle/autoload.php',
    'Symfony/Component/Dotenv/autoload.php',
    'Symfony/Component/Runtime/autoload.php',
    'Symfony/Component/Yaml/autoload.php',
] as $debianAutoload) {
    require_once $debianAutoload; // on the include path (/usr/share/php)
}

spl_autoload_register(static function (string $class): void {
    if (str_starts_with($class, 'App\\')) {
        $file = dirname(__DIR__) . '/src/' . str_replace('\\', '/', substr($class, 4)) . '.php';
        if (is_file($file)) {
            require $file;
        }
    }
});

// pacer/worker: this repository's php/ (PACER_PHP_AUTOLOAD when the app was copied away).
require_once getenv('PACER_PHP_AUTOLOAD') ?: dirname(__DIR__, 3) . '/php/autoload.php';
