<?php

declare(strict_types=1);

namespace Pacer\HttpFoundation;

use Pacer\Exception\WorkerException;
use Pacer\Http\HttpWorker;
use Pacer\Worker;

/**
 * The worker loop for an HttpFoundation framework (Laravel, Symfony): take a request from
 * pacer, let the app handle it, send the response, terminate, reset — until pacer asks
 * the worker to stop.
 *
 * * Whatever the app prints while handling (echo, var_dump) is captured and sent before
 *   the body, as php-fpm would; nothing reaches the relay.
 * * A throwable that escapes the app becomes an error frame: pacer answers 500, the worker
 *   stays.
 * * A fatal error or `exit()` (e.g. `dd()`) during a request is answered by
 *   {@see FatalErrorGuard}. `dump()`/`dd()` print HTML into the response, as under php-fpm.
 * * When the reset fails, the worker retires (hands every further request back, see
 *   {@see Retire}) and exits with status 1 when pacer stops it; when a response broke off
 *   half-way it exits at once. pacer starts a fresh one: the old one's state is unknown.
 */
final class Server
{
    private const CONTINUE = 0;
    private const RETIRE = 1;
    private const EXIT = 2;

    private readonly HttpWorker $http;
    private readonly ResponseSender $sender;
    private readonly FatalErrorGuard $guard;
    private readonly OutputCapture $capture;

    /**
     * @param FatalErrorGuard|null $guard installed before the app booted (see there why);
     *                                   installed here when null
     */
    public function __construct(
        private readonly Worker $worker,
        private readonly WorkerApp $app,
        ?FatalErrorGuard $guard = null,
    ) {
        $this->http = new HttpWorker($worker);
        $this->sender = new ResponseSender($worker);
        $this->guard = $guard ?? FatalErrorGuard::install($worker);
        $this->capture = new OutputCapture();
        // dump()/dd() in a CLI process would write to php://stdout — the relay. As HTML to
        // php://output they are part of the response, as under php-fpm.
        $_SERVER['VAR_DUMPER_FORMAT'] ??= 'html';
    }

    public function sender(): ResponseSender
    {
        return $this->sender;
    }

    /** Serves until pacer says stop (0), or until the worker must be replaced (1). */
    public function serve(): int
    {
        while (true) {
            try {
                $request = $this->http->waitRequest();
            } catch (WorkerException $e) {
                // A context this worker cannot read: that request fails, the worker stays.
                $this->worker->error($e->getMessage());
                continue;
            }
            if ($request === null) {
                return 0;
            }
            $next = $this->serveOne($request);
            if ($next === self::RETIRE) {
                try {
                    Retire::worker($this->worker);
                } catch (\Throwable) {
                    // The relay itself broke: just exit, pacer notices.
                }
            }
            if ($next !== self::CONTINUE) {
                return 1;
            }
        }
    }

    /**
     * One request; then {@see CONTINUE}, {@see RETIRE} (state unknown, the relay fine) or
     * {@see EXIT} (the relay is mid-response: only an exit ends it cleanly).
     */
    private function serveOne(\Pacer\Http\Request $pacerRequest): int
    {
        $this->guard->begin();
        try {
            $request = $this->app->createRequest($pacerRequest);
            [$response, $output] = $this->handle($request);
        } catch (\Throwable $e) {
            self::log('request failed: ' . self::describe($e));
            $this->worker->error(self::describe($e));
            $this->guard->responded();

            return $this->reset();
        }

        // From here a death cannot be answered cleanly: a streamed body may be half-way.
        $this->guard->responded();
        try {
            $this->sender->send($response, $output);
        } catch (\Throwable $e) {
            // Part of the response may be on its way: the relay is in an unknown state.
            self::log('sending the response failed, the worker exits: ' . self::describe($e));

            return self::EXIT;
        }

        try {
            $this->app->terminate($request, $response);
        } catch (\Throwable $e) {
            self::log('terminate failed: ' . self::describe($e));
        }

        return $this->reset();
    }

    /**
     * The app's response and what it printed meanwhile.
     *
     * @return array{\Symfony\Component\HttpFoundation\Response, string}
     */
    private function handle(\Symfony\Component\HttpFoundation\Request $request): array
    {
        $this->capture->start();
        $this->guard->capturing($this->capture);
        try {
            $response = $this->app->handle($request);
        } finally {
            $this->guard->capturing(null);
            $output = $this->capture->stop();
        }

        return [$response, $output];
    }

    private function reset(): int
    {
        try {
            $this->app->reset();
        } catch (\Throwable $e) {
            self::log('reset failed, the worker retires: ' . self::describe($e));

            return self::RETIRE;
        }

        return self::CONTINUE;
    }

    private static function describe(\Throwable $e): string
    {
        return \sprintf('%s: %s in %s:%d', $e::class, $e->getMessage(), $e->getFile(), $e->getLine());
    }

    private static function log(string $message): void
    {
        $stderr = \defined('STDERR') ? \STDERR : \fopen('php://stderr', 'wb');
        \fwrite($stderr, '[pacer worker] ' . $message . "\n");
    }
}
