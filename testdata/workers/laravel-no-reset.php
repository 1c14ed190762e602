<?php

/**
 * The control of the Laravel leak tests (sidecar/tests/laravel.rs): the same bridge as
 * php/bin/laravel-worker.php, but the reset between requests does nothing. The tests run
 * their probes against it and expect every leak to show, which proves each probe can see
 * the leak it guards against.
 */

declare(strict_types=1);

use Pacer\HttpFoundation\FatalErrorGuard;
use Pacer\HttpFoundation\Server;
use Pacer\HttpFoundation\WorkerApp;
use Pacer\Laravel\LaravelApp;
use Symfony\Component\HttpFoundation\Request;
use Symfony\Component\HttpFoundation\Response;

$basePath = getcwd();
require $basePath . '/vendor/autoload.php';

$worker = Pacer\Worker::create();
$guard = FatalErrorGuard::install($worker);
$laravel = LaravelApp::fromBasePath($basePath);

$withoutReset = new class ($laravel) implements WorkerApp {
    public function __construct(private readonly LaravelApp $app)
    {
    }

    public function createRequest(\Pacer\Http\Request $request): Request
    {
        return $this->app->createRequest($request);
    }

    public function handle(Request $request): Response
    {
        return $this->app->handle($request);
    }

    public function terminate(Request $request, Response $response): void
    {
        $this->app->terminate($request, $response);
    }

    public function reset(): void
    {
    }
};

exit((new Server($worker, $withoutReset, $guard))->serve());
