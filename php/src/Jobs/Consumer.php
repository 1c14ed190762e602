<?php

declare(strict_types=1);

namespace Pacer\Jobs;

use Pacer\Payload;
use Pacer\Worker;

/**
 * A jobs worker's loop (`RR_MODE=jobs`):
 *
 * ```php
 * $consumer = new Consumer();
 * while ($task = $consumer->waitTask()) {
 *     try {
 *         handle($task->getName(), $task->getPayload());
 *         $task->ack();
 *     } catch (\Throwable $e) {
 *         $task->nack($e);            // or $task->withDelay(5)->requeue($e)
 *     }
 * }
 * ```
 */
final class Consumer
{
    private readonly Worker $worker;

    public function __construct(?Worker $worker = null)
    {
        $this->worker = $worker ?? Worker::create();
    }

    public function getWorker(): Worker
    {
        return $this->worker;
    }

    /** The next job, or null when the server stops this worker. */
    public function waitTask(): ?ReceivedTask
    {
        $payload = $this->worker->waitPayload();
        if ($payload === null) {
            return null;
        }

        return self::task($this->worker, $payload);
    }

    /** Reads a job frame's context (docs/jobs-protocol.md §2). */
    public static function task(Worker $worker, Payload $payload): ReceivedTask
    {
        if ($payload->header === '') {
            throw new JobsException('The job has no context: is this worker running in the jobs pool (RR_MODE=jobs)?');
        }
        try {
            $ctx = \json_decode($payload->header, true, 512, \JSON_THROW_ON_ERROR);
        } catch (\JsonException $e) {
            throw new JobsException('The job context is not JSON: ' . $e->getMessage(), 0, $e);
        }
        if (!\is_array($ctx) || !isset($ctx['id'], $ctx['job'])) {
            throw new JobsException('The job context lacks id or job.');
        }
        $headers = [];
        foreach ((array) ($ctx['headers'] ?? []) as $k => $values) {
            $headers[(string) $k] = \array_map('strval', \array_values((array) $values));
        }

        return new ReceivedTask(
            $worker,
            (string) $ctx['id'],
            (string) $ctx['job'],
            (string) ($ctx['pipeline'] ?? 'unknown'),
            (string) ($ctx['driver'] ?? 'unknown'),
            (string) ($ctx['queue'] ?? 'unknown'),
            $payload->body,
            $headers,
        );
    }
}
