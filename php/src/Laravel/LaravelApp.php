<?php

declare(strict_types=1);

namespace Pacer\Laravel;

use Illuminate\Contracts\Http\Kernel as HttpKernel;
use Illuminate\Foundation\Application;
use Illuminate\Http\Request as IlluminateRequest;
use Illuminate\Http\UploadedFile;
use Pacer\HttpFoundation\RequestFactory;
use Pacer\HttpFoundation\WorkerApp;
use Symfony\Component\HttpFoundation\Request;
use Symfony\Component\HttpFoundation\Response;

/**
 * A Laravel application booted once per worker and served through its HTTP kernel, with
 * {@see Resetter} between requests.
 *
 * Boot: `bootstrap/app.php`, the HTTP kernel's bootstrappers (environment, config,
 * exception handling, facades, providers), every deferred provider, then the services
 * listed in the `pacer.warm` config key (default {@see DEFAULT_WARM}) are resolved, so
 * they are built once and kept; the container is then snapshotted.
 */
final class LaravelApp implements WorkerApp
{
    /**
     * Services built at boot and kept across requests (each reset in place by
     * {@see Resetter} where it holds request state). Anything else is rebuilt per request.
     * Not in the list on purpose: the session store and the redirector (which holds it).
     */
    public const DEFAULT_WARM = [
        'auth', 'cache', 'cache.store', 'config', 'cookie', 'db', 'db.factory', 'encrypter', 'events',
        'files', 'hash', 'hash.driver', 'log', 'router', 'routes', 'session', 'translator', 'url',
        'validator', 'view', 'view.engine.resolver', 'view.finder', 'blade.compiler', 'filesystem',
    ];

    /**
     * Request state that must never be in the post-boot snapshot, even when warming pulled
     * it in: the session store (a service that captured it, such as the redirector, would
     * hand one client's session to the next).
     */
    private const NEVER_KEPT = ['session.store', 'redirect'];

    private readonly HttpKernel $kernel;
    private readonly RequestFactory $requests;
    private readonly Resetter $resetter;

    public function __construct(private readonly Application $app)
    {
        // A worker is a PHP CLI process, but it serves HTTP: Laravel must render errors as
        // HTTP responses, never as console output (which would go to the relay's STDOUT).
        \Closure::bind(static function (Application $app): void {
            $app->isRunningInConsole = false;
        }, null, Application::class)($app);
        $this->kernel = $app->make(HttpKernel::class);
        if (\method_exists($this->kernel, 'bootstrap')) {
            $this->kernel->bootstrap();
        }
        $app->loadDeferredProviders();

        $publicDir = $app->basePath('public');
        $server = RequestFactory::frontControllerServer($_SERVER, $publicDir);
        $this->requests = new RequestFactory(
            IlluminateRequest::class,
            $server,
            // Laravel re-creates Symfony uploads without the "test" flag, which would make
            // them invalid (they were not moved by PHP); its own class keeps the flag.
            static fn (string $path, string $name, ?string $mime, int $error): UploadedFile
                => new UploadedFile($path, $name, $mime, $error, true),
        );

        // Services that need a request to be built (the URL generator) get a stand-in.
        $app->instance('request', IlluminateRequest::create((string) $app['config']->get('app.url', 'http://localhost'), 'GET', [], [], [], $server));
        $warm = $app['config']->get('pacer.warm', self::DEFAULT_WARM);
        foreach (\is_array($warm) ? $warm : [] as $service) {
            if (\is_string($service) && $app->bound($service)) {
                $app->make($service);
            }
        }
        foreach (self::NEVER_KEPT as $service) {
            $app->forgetInstance($service);
        }
        if ($app->resolved('session')) {
            $app->make('session')->forgetDrivers();
        }
        $this->resetter = new Resetter($app);
    }

    /** Boots the application of the Laravel project in $basePath (its `bootstrap/app.php`). */
    public static function fromBasePath(string $basePath): self
    {
        $_ENV['APP_RUNNING_IN_CONSOLE'] = false;
        $app = require \rtrim($basePath, '/') . '/bootstrap/app.php';
        if (!$app instanceof Application) {
            throw new \RuntimeException(\sprintf('%s/bootstrap/app.php must return the Laravel application.', $basePath));
        }

        return new self($app);
    }

    public function application(): Application
    {
        return $this->app;
    }

    public function createRequest(\Pacer\Http\Request $request): Request
    {
        return $this->requests->create($request);
    }

    public function handle(Request $request): Response
    {
        \assert($request instanceof IlluminateRequest);

        return $this->kernel->handle($request);
    }

    public function terminate(Request $request, Response $response): void
    {
        \assert($request instanceof IlluminateRequest);
        $this->kernel->terminate($request, $response);
    }

    public function reset(): void
    {
        $this->resetter->reset();
    }
}
