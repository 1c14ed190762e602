<?php

/**
 * Serves a Laravel application under pacer: boots it once, then answers requests through
 * its HTTP kernel with the state reset between requests (Pacer\Laravel\Resetter).
 *
 *   server:
 *     command: "php vendor/pacer/worker/bin/laravel-worker.php"
 *
 * The application is the one in APP_BASE_PATH, or else the working directory; its
 * vendor/autoload.php must load Laravel and pacer/worker.
 */

declare(strict_types=1);

ini_set('display_errors', 'stderr');

$basePath = getenv('APP_BASE_PATH') ?: getcwd();
require $basePath . '/vendor/autoload.php';

$worker = Pacer\Worker::create();
// Before the app boots, so that it sees fatal errors first (see FatalErrorGuard).
$guard = Pacer\HttpFoundation\FatalErrorGuard::install($worker);
try {
    $app = Pacer\Laravel\LaravelApp::fromBasePath($basePath);
} catch (Throwable $e) {
    fwrite(STDERR, sprintf("[pacer laravel] the application in %s did not boot: %s\n", $basePath, $e));
    exit(1);
}

exit((new Pacer\HttpFoundation\Server($worker, $app, $guard))->serve());
