<?php

declare(strict_types=1);

namespace Pacer\Laravel;

use Illuminate\Container\Container;
use Illuminate\Foundation\Application;
use Illuminate\Support\Facades\Facade;
use Illuminate\Support\Str;
use Pacer\Internal\PropertySnapshot;

/**
 * Puts a booted Laravel application back into its post-boot state after each request, so
 * nothing of one request (one client) reaches the next. Taken once, right after boot;
 * {@see reset()} after every request:
 *
 * 1. database: transactions left open are rolled back (and reported), the query log and
 *    the "records modified" flag cleared — connections stay open for the next request;
 * 2. auth: every guard is forgotten, so the user a request logged in (or set with
 *    `Auth::onceUsingId()`) is gone;
 * 3. session: the session drivers are forgotten, so the next request starts a fresh
 *    store that reads only its own session id;
 * 4. locale: back to the boot locale (translator, `app.locale`, Carbon);
 * 5. objects kept in place, properties back to their boot values: the config repository
 *    (`config([...])` at runtime), the view factory's shared data (`View::share()`), the
 *    cookie jar's queue, the translator, the URL generator's forced root and scheme;
 *    view state (sections, stacks, the Blade engines) is flushed, log context dropped;
 * 6. the container (and application) arrays back to their post-boot copy: every instance
 *    resolved during the request (request-bound singletons, scoped instances, the request
 *    itself), bindings, aliases, extenders and callbacks added during the request, service
 *    providers registered during it, terminating callbacks;
 * 7. facades forget what they resolved, and `Str`'s caches are flushed.
 *
 * Services that were resolved at boot (and so survive) are listed by {@see LaravelApp}'s
 * warm list; anything first resolved during a request is rebuilt for the next one.
 */
final class Resetter
{
    /** @var list<PropertySnapshot> */
    private array $snapshots = [];
    private readonly string $locale;

    public function __construct(private readonly Application $app)
    {
        $this->locale = $app->getLocale();
        $this->keep('config', ['items']);
        $this->keep('view', ['shared']);
        $this->keep('cookie', ['queued']);
        $this->keep('translator', ['locale', 'fallback']);
        $this->keep('url', ['forcedRoot', 'forceScheme', 'cachedRoot', 'cachedScheme', 'assetRoot']);
        // Last: the container's own arrays, as they are now (after boot and warming).
        $this->snapshots[] = PropertySnapshot::take($app, null, Container::class);
        $this->snapshots[] = PropertySnapshot::take($app, null, Application::class);
    }

    /** @param list<string> $properties */
    private function keep(string $service, array $properties): void
    {
        if ($this->app->resolved($service)) {
            $this->snapshots[] = PropertySnapshot::take($this->app->make($service), $properties);
        }
    }

    public function reset(): void
    {
        $app = $this->app;
        $this->resetDatabase();
        if ($app->resolved('auth')) {
            $app->make('auth')->forgetGuards();
        }
        if ($app->resolved('session')) {
            $app->make('session')->forgetDrivers();
        }
        if ($app->getLocale() !== $this->locale) {
            $app->setLocale($this->locale);
        }
        if ($app->resolved('view')) {
            $app->make('view')->flushState();
            $resolver = $app->make('view.engine.resolver');
            $resolver->forget('blade');
            $resolver->forget('php');
        }
        if ($app->resolved('log')) {
            $this->resetLogContext($app->make('log'));
        }
        foreach ($this->snapshots as $snapshot) {
            $snapshot->restore();
        }
        Facade::clearResolvedInstances();
        Str::flushCache();
    }

    private function resetDatabase(): void
    {
        if (!$this->app->resolved('db')) {
            return;
        }
        foreach ($this->app->make('db')->getConnections() as $name => $connection) {
            $level = $connection->transactionLevel();
            if ($level > 0) {
                $connection->rollBack(0);
                self::log(\sprintf(
                    'rolled back %d open transaction level(s) on database connection "%s" left by the request',
                    $level,
                    $name,
                ));
            }
            $connection->flushQueryLog();
            $connection->forgetRecordModificationState();
        }
    }

    /** Context added with `Log::withContext()` belongs to the request that added it. */
    private function resetLogContext(object $logManager): void
    {
        $channels = \Closure::bind(static fn (object $m): array => $m->channels ?? [], null, $logManager::class);
        foreach ($channels($logManager) as $logger) {
            if (\is_object($logger) && \method_exists($logger, 'withoutContext')) {
                $logger->withoutContext();
            }
        }
    }

    private static function log(string $message): void
    {
        $stderr = \defined('STDERR') ? \STDERR : \fopen('php://stderr', 'wb');
        \fwrite($stderr, '[pacer laravel] ' . $message . "\n");
    }
}
