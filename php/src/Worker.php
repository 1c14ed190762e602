<?php

declare(strict_types=1);

namespace Pacer;

use Pacer\Exception\StreamStoppedException;
use Pacer\Exception\WorkerException;
use Pacer\Goridge\Exception\TransportException;
use Pacer\Goridge\Frame;
use Pacer\Goridge\Relay;
use Pacer\Goridge\RelayInterface;
use Pacer\Internal\StdoutHandler;

/**
 * The worker side of the Goridge worker protocol (docs/wire-protocol.md §2, §10).
 *
 * ```php
 * $worker = Worker::create();
 * while ($payload = $worker->waitPayload()) {
 *     $worker->respond(new Payload('done: ' . $payload->body));
 * }
 * ```
 *
 * Control frames never reach the application: the PID handshake is answered here, a stop
 * command makes {@see waitPayload()} return null. Stream control frames from the server
 * (PONG, STOP) are consumed while a streamed response is being sent; any that arrive late
 * are skipped.
 *
 * Streaming: every frame of a streamed response but the last carries the STREAM bit. After
 * every 5 stream frames the next one also carries PING, and the worker then blocks until
 * the server answers PONG (or STOP). Before producing each chunk the worker also polls,
 * without blocking, for a STOP. On STOP it stops producing and sends an empty end-of-stream
 * frame (one option, 0) so the server knows the stream is closed.
 */
class Worker
{
    private const JSON_FLAGS = \JSON_THROW_ON_ERROR | \JSON_PRESERVE_ZERO_FRACTION | \JSON_UNESCAPED_SLASHES;
    /** A PING rides on the next stream frame after this many frames. */
    public const PING_EVERY = 5;

    /** Seconds to wait for a PONG after a PING; null waits as long as it takes. */
    public ?float $pongTimeout = null;

    /**
     * Receives the worker's own diagnostics (one line each, no newline); by default they go
     * to STDERR, which the server logs.
     *
     * @var (\Closure(string): void)|null
     */
    public ?\Closure $logger = null;

    /** @var list<Frame> frames that arrived while streaming and belong to the next wait */
    private array $queue = [];
    /** Data frames sent so far in the current streamed response. */
    private int $streamFrames = 0;
    private bool $streamStopped = false;

    /**
     * @param bool $interceptSideEffects send `echo` and other output to STDERR instead of STDOUT
     */
    public function __construct(
        private readonly RelayInterface $relay,
        bool $interceptSideEffects = true,
    ) {
        if ($interceptSideEffects) {
            StdoutHandler::register();
        }
    }

    /** A worker on the relay named by `RR_RELAY` (default `pipes`). */
    public static function create(bool $interceptSideEffects = true, ?Environment $env = null): self
    {
        $env ??= Environment::fromGlobals();

        return new self(Relay::create($env->getRelayAddress()), $interceptSideEffects);
    }

    public function getRelay(): RelayInterface
    {
        return $this->relay;
    }

    /**
     * Waits for the next request. Returns null when the server asks the worker to stop;
     * the worker loop should then end and the process exit.
     *
     * @throws WorkerException on a control frame that is neither a PID request nor a stop
     * @throws TransportException when the relay is closed
     */
    public function waitPayload(): ?Payload
    {
        while (true) {
            $frame = $this->queue !== [] ? \array_shift($this->queue) : $this->relay->waitFrame();

            if ($frame->hasFlag(Frame::CONTROL)) {
                if ($this->handleControl($frame->payload)) {
                    continue;
                }

                return null;
            }
            if (($frame->byte10 & (Frame::STOP | Frame::PONG)) !== 0) {
                // A PONG or STOP that arrived after its stream ended.
                continue;
            }

            $this->streamFrames = 0;
            $this->streamStopped = false;
            $contextLength = $frame->options[0] ?? 0;
            if ($contextLength > \strlen($frame->payload)) {
                throw new WorkerException(\sprintf(
                    'Invalid data frame: context length %d exceeds the payload length %d.',
                    $contextLength,
                    \strlen($frame->payload),
                ));
            }

            return new Payload(
                (string) \substr($frame->payload, $contextLength),
                (string) \substr($frame->payload, 0, $contextLength),
            );
        }
    }

    /**
     * Sends a response. With `$payload->eos === false` the frame is one chunk of a streamed
     * response (STREAM bit); see {@see respondStream()} for the convenient form.
     *
     * @param int|null $codec flags for the frame, e.g. {@see Frame::CODEC_JSON}; null sends 0
     */
    public function respond(Payload $payload, ?int $codec = null): void
    {
        $frame = new Frame($payload->header . $payload->body, [\strlen($payload->header)], $codec ?? 0);
        $ping = false;
        if (!$payload->eos) {
            $frame->byte10 |= Frame::STREAM;
            if ($this->streamFrames > 0 && $this->streamFrames % self::PING_EVERY === 0 && !$this->streamStopped) {
                $frame->byte10 |= Frame::PING;
                $ping = true;
            }
        }

        $this->relay->send($frame);

        if ($payload->eos) {
            $this->streamFrames = 0;
            $this->streamStopped = false;

            return;
        }
        $this->streamFrames++;
        if ($ping) {
            $this->awaitPong();
        }
    }

    /**
     * Sends a streamed response: one frame per chunk with the STREAM bit, then a final frame
     * without it (carrying the generator's return value, usually empty). The context goes
     * with the first frame only; later frames carry an empty context (option 0).
     *
     * Returns false when the server stopped the stream: the iterable is not consumed any
     * further (a generator gets a {@see StreamStoppedException} thrown in, so its `finally`
     * blocks run) and an empty end-of-stream frame confirms the stop.
     *
     * @param iterable<mixed, string|\Stringable> $chunks
     */
    public function respondStream(iterable $chunks, string $header = '', ?int $codec = null): bool
    {
        $iterator = $chunks instanceof \Iterator ? $chunks
            : ($chunks instanceof \IteratorAggregate ? new \IteratorIterator($chunks) : new \ArrayIterator((array) $chunks));
        $iterator->rewind();
        $sent = 0;

        while ($iterator->valid()) {
            $this->respond(new Payload((string) $iterator->current(), $sent === 0 ? $header : '', false), $codec);
            $sent++;

            if (!$this->streamStopped) {
                $this->pollStreamControl();
            }
            if ($this->streamStopped) {
                if ($iterator instanceof \Generator) {
                    try {
                        $iterator->throw(new StreamStoppedException());
                    } catch (\Throwable) {
                        // The generator is done either way.
                    }
                }
                $this->respond(new Payload());

                return false;
            }

            try {
                $iterator->next();
            } catch (\Throwable $e) {
                // Part of the response is already on its way; close the stream and report.
                $this->respond(new Payload());
                $this->log(\sprintf('response stream aborted by %s: %s', $e::class, $e->getMessage()));

                return false;
            }
        }

        $tail = $iterator instanceof \Generator ? (string) ($iterator->getReturn() ?? '') : '';
        $this->respond(new Payload($tail, $sent === 0 ? $header : ''), $codec);

        return true;
    }

    /** Whether the server stopped the streamed response currently being sent. */
    public function isStreamStopped(): bool
    {
        if (!$this->streamStopped && $this->streamFrames > 0) {
            $this->pollStreamControl();
        }

        return $this->streamStopped;
    }

    /**
     * Reports a failed request (ERROR flag, no options, the message as payload). The server
     * answers the client with an error and keeps this worker.
     */
    public function error(string $message): void
    {
        $this->relay->send(new Frame($message, [], Frame::ERROR));
        $this->streamFrames = 0;
        $this->streamStopped = false;
    }

    /**
     * Asks to be replaced: a data frame with context `{"stop":true}` and an empty body. The
     * server re-runs the current request on another worker and then sends this worker the
     * stop command, so keep calling {@see waitPayload()} until it returns null.
     */
    public function stop(): void
    {
        $this->respond(new Payload('', \json_encode(['stop' => true], self::JSON_FLAGS)));
    }

    /** Returns true to keep waiting, false for a stop command. */
    private function handleControl(string $json): bool
    {
        try {
            $command = \json_decode($json, true, 512, \JSON_THROW_ON_ERROR);
        } catch (\JsonException $e) {
            throw new WorkerException('Invalid control frame, JSON payload expected: ' . $e->getMessage() . ' in ' . \var_export($json, true));
        }
        if (!\is_array($command)) {
            throw new WorkerException('Invalid control frame, JSON object expected, got ' . \var_export($json, true));
        }
        if (!empty($command['stop'])) {
            return false;
        }
        if (!empty($command['pid'])) {
            $this->relay->send(new Frame(\json_encode(['pid' => \getmypid()], self::JSON_FLAGS), [], Frame::CONTROL));

            return true;
        }

        throw new WorkerException('Invalid task header, undefined control package: ' . $json);
    }

    /** Consumes stream control frames that have already arrived (never blocks). */
    private function pollStreamControl(): void
    {
        while (!$this->streamStopped && $this->relay->hasFrame(0.0)) {
            $this->takeStreamControl($this->relay->waitFrame());
        }
    }

    /** Blocks until the PONG for the PING just sent, or a STOP. */
    private function awaitPong(): void
    {
        $deadline = $this->pongTimeout === null ? null : \microtime(true) + $this->pongTimeout;
        while (true) {
            if ($deadline !== null && !$this->relay->hasFrame(\max(0.0, $deadline - \microtime(true)))) {
                throw new TransportException(\sprintf('No PONG from the server within %.1f s of a PING.', $this->pongTimeout));
            }
            $frame = $this->relay->waitFrame();
            if ($this->takeStreamControl($frame) || $this->streamStopped) {
                return;
            }
        }
    }

    /** Returns true for a PONG; records a STOP; keeps anything else for waitPayload(). */
    private function takeStreamControl(Frame $frame): bool
    {
        if (!$frame->hasFlag(Frame::CONTROL)) {
            if (($frame->byte10 & Frame::STOP) !== 0) {
                $this->streamStopped = true;

                return false;
            }
            if (($frame->byte10 & Frame::PONG) !== 0) {
                return true;
            }
        }
        $this->queue[] = $frame;

        return false;
    }

    private function log(string $message): void
    {
        if ($this->logger !== null) {
            ($this->logger)($message);

            return;
        }
        $stderr = \defined('STDERR') ? \STDERR : \fopen('php://stderr', 'wb');
        \fwrite($stderr, '[pacer worker] ' . $message . "\n");
    }
}
