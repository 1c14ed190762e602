<?php

declare(strict_types=1);

namespace Pacer\HttpFoundation;

use Pacer\Goridge\Frame;
use Pacer\Payload;
use Pacer\Worker;

/**
 * One streamed response in flight: the first frame carries the status and headers; a STOP
 * from pacer turns every later write into a no-op.
 *
 * @internal
 */
final class StreamState
{
    private bool $started = false;
    private bool $stopped = false;
    /** The first relay failure; output handlers must not throw, so it waits for finish(). */
    private ?\Throwable $failure = null;

    public function __construct(private readonly Worker $worker, private readonly string $context)
    {
    }

    public function write(string $chunk): void
    {
        if ($chunk === '' || $this->stopped || $this->failure !== null) {
            return;
        }
        try {
            $this->worker->respond(new Payload($chunk, $this->started ? '' : $this->context, false), Frame::CODEC_JSON);
            $this->started = true;
            if ($this->worker->isStreamStopped()) {
                $this->stopped = true;
            }
        } catch (\Throwable $e) {
            $this->failure = $e;
        }
    }

    /** Ends the stream; rethrows a relay failure from an earlier write. */
    /** Whether any frame went out (after that, an error can no longer replace the response). */
    public function started(): bool
    {
        return $this->started;
    }

    public function finish(): void
    {
        if ($this->failure !== null) {
            throw $this->failure;
        }
        if ($this->stopped) {
            // Confirms the stop, as Worker::respondStream() does.
            $this->worker->respond(new Payload());

            return;
        }
        $this->worker->respond(new Payload('', $this->started ? '' : $this->context), Frame::CODEC_JSON);
    }
}
