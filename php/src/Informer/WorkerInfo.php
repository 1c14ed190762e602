<?php

declare(strict_types=1);

namespace Pacer\Informer;

/** One worker process as `informer.Workers` describes it. */
final class WorkerInfo
{
    public function __construct(
        public readonly int $pid,
        /** FSM state number (1 ready, 2 working, ...); see {@see $statusStr}. */
        public readonly int $status,
        public readonly int $numExecs,
        /** Creation time, Unix nanoseconds. */
        public readonly int $created,
        /** Resident set size in bytes. */
        public readonly int $memoryUsage,
        public readonly float $cpuPercent,
        public readonly string $command,
        public readonly string $statusStr,
    ) {
    }

    /** @param array<string, mixed> $data */
    public static function fromArray(array $data): self
    {
        return new self(
            (int) ($data['pid'] ?? 0),
            (int) ($data['status'] ?? 0),
            (int) ($data['numExecs'] ?? 0),
            (int) ($data['created'] ?? 0),
            (int) ($data['memoryUsage'] ?? 0),
            (float) ($data['CPUPercent'] ?? 0.0),
            (string) ($data['command'] ?? ''),
            (string) ($data['statusStr'] ?? ''),
        );
    }
}
