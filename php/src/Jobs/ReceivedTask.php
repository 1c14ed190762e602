<?php

declare(strict_types=1);

namespace Pacer\Jobs;

use Pacer\Payload;
use Pacer\Worker;

/**
 * A job handed to this worker (docs/jobs-protocol.md §2). Answer it exactly once:
 * {@see ack()}, {@see nack()}, {@see requeue()} (or the older {@see complete()} /
 * {@see fail()}). Headers set with {@see withHeader()} travel with a requeue.
 */
final class ReceivedTask
{
    private const TYPE_SUCCESS = 0;
    private const TYPE_ERROR = 1;
    private const TYPE_ACK = 2;
    private const TYPE_NACK = 3;
    private const TYPE_REQUEUE = 4;

    private ?int $answered = null;
    private int $delay = 0;

    /** @param array<string, list<string>> $headers */
    public function __construct(
        private readonly Worker $worker,
        public readonly string $id,
        public readonly string $name,
        public readonly string $pipeline,
        public readonly string $driver,
        public readonly string $queue,
        public readonly string $payload,
        private array $headers = [],
    ) {
    }

    public function getId(): string
    {
        return $this->id;
    }

    public function getName(): string
    {
        return $this->name;
    }

    public function getPipeline(): string
    {
        return $this->pipeline;
    }

    public function getQueue(): string
    {
        return $this->queue;
    }

    public function getDriver(): string
    {
        return $this->driver;
    }

    public function getPayload(): string
    {
        return $this->payload;
    }

    /** @return array<string, list<string>> */
    public function getHeaders(): array
    {
        return $this->headers;
    }

    public function hasHeader(string $name): bool
    {
        return ($this->headers[$name] ?? []) !== [];
    }

    /** @return list<string> */
    public function getHeader(string $name): array
    {
        return $this->headers[$name] ?? [];
    }

    public function getHeaderLine(string $name): string
    {
        return \implode(',', $this->getHeader($name));
    }

    /** Failed deliveries before this one (pacer's `attempts` header; 0 on the first). */
    public function getAttempts(): int
    {
        return (int) ($this->headers['attempts'][0] ?? 0);
    }

    /** @param string|list<string> $value */
    public function withHeader(string $name, string|array $value): self
    {
        $self = clone $this;
        $self->headers[$name] = \array_values((array) $value);

        return $self;
    }

    /** The delay, in seconds, of a requeue or a nack with redelivery. */
    public function withDelay(int $seconds): self
    {
        if ($seconds < 0) {
            throw new \InvalidArgumentException('The delay must be 0 or more seconds.');
        }
        $self = clone $this;
        $self->delay = $seconds;

        return $self;
    }

    public function ack(): void
    {
        $this->respond(self::TYPE_ACK);
    }

    /** Rejects the job; with `$redelivery` it comes back (after the delay, if any). */
    public function nack(string|\Stringable|\Throwable $message, bool $redelivery = false): void
    {
        $this->respond(self::TYPE_NACK, [
            'message' => (string) $message,
            'requeue' => $redelivery,
            'delay_seconds' => $this->delay,
        ]);
    }

    /** Pushes the job again (after the delay), with this task's headers. */
    public function requeue(string|\Stringable|\Throwable $message): void
    {
        $data = ['message' => (string) $message, 'delay_seconds' => $this->delay];
        if ($this->headers !== []) {
            $data['headers'] = $this->headers;
        }
        $this->respond(self::TYPE_REQUEUE, $data);
    }

    /** The older success answer (RoadRunner's `complete()`). */
    public function complete(): void
    {
        $this->respond(self::TYPE_SUCCESS);
    }

    /** The older failure answer (RoadRunner's `fail()`). */
    public function fail(string|\Stringable|\Throwable $error, bool $requeue = false): void
    {
        $data = ['message' => (string) $error, 'requeue' => $requeue, 'delay_seconds' => $this->delay];
        if ($this->headers !== []) {
            $data['headers'] = $this->headers;
        }
        $this->respond(self::TYPE_ERROR, $data);
    }

    public function isCompleted(): bool
    {
        return $this->answered !== null;
    }

    public function isSuccessful(): bool
    {
        return $this->answered === self::TYPE_ACK || $this->answered === self::TYPE_SUCCESS;
    }

    /** @param array<string, mixed> $data */
    private function respond(int $type, array $data = []): void
    {
        if ($this->answered !== null) {
            throw new JobsException(\sprintf('Job %s was already answered.', $this->id));
        }
        $this->worker->respond(new Payload(\json_encode(['type' => $type, 'data' => $data], \JSON_THROW_ON_ERROR)));
        $this->answered = $type;
    }
}
