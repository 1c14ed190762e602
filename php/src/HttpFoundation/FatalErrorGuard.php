<?php

declare(strict_types=1);

namespace Pacer\HttpFoundation;

use Pacer\Goridge\Frame;
use Pacer\Goridge\StreamRelay;
use Pacer\Http\HttpWorker;
use Pacer\Payload;
use Pacer\Worker;

/**
 * Answers the request in flight when PHP dies under it — a fatal error (memory or time
 * exhausted) or `exit()` (e.g. Laravel's `dd()`) — instead of leaving the client with a
 * broken connection, and keeps whatever is printed at shutdown off the relay.
 *
 * On a fatal error PHP throws away every output buffer before the shutdown functions run,
 * so a framework's own shutdown handler (Laravel renders its error page) would print
 * straight to STDOUT, into the relay. Install the guard BEFORE the framework boots: its
 * shutdown function then runs first, opens a buffer that catches that output, and queues
 * a last shutdown function that sends it as the 500 response — as php-fpm would send it.
 * With nothing printed, an error frame makes pacer answer 500 itself. The process then
 * ends and pacer starts a fresh worker: a process that hit a fatal error is never reused.
 */
final class FatalErrorGuard
{
    private bool $inFlight = false;
    /** The capture of the app's output while it handles the request. */
    private ?OutputCapture $capture = null;
    /** What the request printed before PHP died (after a fatal error, only what it flushed). */
    private string $printed = '';
    private string $reason = '';

    private function __construct(private readonly Worker $worker)
    {
    }

    /** Registers the guard's shutdown function; call it before the framework boots. */
    public static function install(Worker $worker): self
    {
        $guard = new self($worker);
        \register_shutdown_function(static function () use ($guard): void {
            $guard->onShutdown();
        });

        return $guard;
    }

    /** A request was taken from pacer; until {@see responded()}, a death answers it. */
    public function begin(): void
    {
        $this->inFlight = true;
    }

    /** The app's output is being captured there (null: not any more). */
    public function capturing(?OutputCapture $capture): void
    {
        $this->capture = $capture;
    }

    /** The response (or an error frame) went out. */
    public function responded(): void
    {
        $this->inFlight = false;
        $this->capture = null;
    }

    /** The first shutdown function: catch what later ones print, answer at the very end. */
    private function onShutdown(): void
    {
        if (!$this->inFlight) {
            // Not serving: whatever shutdown handlers print belongs in the log.
            $stderr = self::stderr();
            \ob_start(static function (string $chunk) use ($stderr): string {
                \fwrite($stderr, $chunk);

                return '';
            }, 1);

            return;
        }
        if ($this->capture !== null) {
            $this->printed = $this->capture->stop();
        }
        $error = \error_get_last();
        $fatal = $error !== null && ($error['type'] & (\E_ERROR | \E_CORE_ERROR | \E_COMPILE_ERROR | \E_PARSE | \E_USER_ERROR)) !== 0;
        $this->reason = $fatal
            ? \sprintf('PHP fatal error: %s in %s:%d', $error['message'], $error['file'], $error['line'])
            : 'the app called exit() during the request';
        \ob_start();
        // Registered during shutdown, so it runs after every other shutdown function.
        \register_shutdown_function(function (): void {
            $this->answer();
        });
    }

    private function answer(): void
    {
        $output = $this->printed;
        while (\ob_get_level() > 0) {
            $output .= (string) \ob_get_clean();
        }
        \fwrite(self::stderr(), '[pacer worker] ' . $this->reason . "; the worker exits and pacer starts a new one\n");
        $relay = $this->worker->getRelay();
        if ($relay instanceof StreamRelay) {
            // Before answering: pacer must not hand this dying process the next request.
            $relay->closeInput();
        }
        try {
            if ($output !== '') {
                $context = HttpWorker::encodeResponseContext(500, ['Content-Type' => ['text/html; charset=UTF-8']]);
                $this->worker->respond(new Payload($output, $context), Frame::CODEC_JSON);
            } else {
                $this->worker->error($this->reason);
            }
            if (!$relay instanceof StreamRelay) {
                // A socket cannot refuse the next request: take it and hand it back.
                Retire::worker($this->worker);
            }
        } catch (\Throwable) {
            // The relay is gone too; pacer sees the exit and answers the client itself.
        }
    }

    /** @return resource */
    private static function stderr()
    {
        return \defined('STDERR') ? \STDERR : \fopen('php://stderr', 'wb');
    }
}
