<?php

declare(strict_types=1);

namespace Pacer\Jobs;

/** One pipeline's state, from `jobs.Stat`. */
final class Stat
{
    public function __construct(
        public readonly string $pipeline,
        public readonly string $driver,
        public readonly string $queue,
        /** Jobs ready in the broker. */
        public readonly int $active,
        /** Jobs waiting for their delay. */
        public readonly int $delayed,
        /** Jobs delivered and not yet settled. */
        public readonly int $reserved,
        /** Whether the pipeline is consumed. */
        public readonly bool $ready,
        public readonly int $priority,
    ) {
    }

    /** Decodes a `jobs.v1.Stat` message. */
    public static function fromProto(string $bytes): self
    {
        $v = ['', '', '', 0, 0, 0, false, 0];
        foreach (\Pacer\Internal\Protobuf::fields($bytes) as [$field, , $value]) {
            if ($field >= 1 && $field <= 8) {
                $v[$field - 1] = $field === 7 ? (bool) $value : $value;
            }
        }

        return new self((string) $v[0], (string) $v[1], (string) $v[2], (int) $v[3], (int) $v[4], (int) $v[5], (bool) $v[6], (int) $v[7]);
    }
}
