<?php

declare(strict_types=1);

namespace Pacer\Jobs\Internal;

use Pacer\Internal\Protobuf;

/**
 * The few `jobs.v1` protobuf messages of the jobs RPC (docs/jobs-protocol.md §4), on the
 * hand-written wire helpers of {@see Protobuf}. Field numbers are RoadRunner's.
 *
 * @internal
 */
final class Proto
{
    /**
     * `jobs.v1.Job`.
     *
     * @param array<string, list<string>> $headers
     */
    public static function job(
        string $name,
        string $id,
        string $payload,
        array $headers,
        string $pipeline,
        int $priority,
        int $delay,
        bool $autoAck,
    ): string {
        \ksort($headers, \SORT_STRING);
        $h = '';
        foreach ($headers as $k => $values) {
            if ($values === []) {
                continue;
            }
            $value = '';
            foreach ($values as $v) {
                $value .= Protobuf::bytes(1, (string) $v, true);
            }
            // map<string, HeaderValue>: an entry message {key = 1, value = 2}.
            $h .= Protobuf::bytes(4, Protobuf::bytes(1, (string) $k, true) . Protobuf::bytes(2, $value, true), true);
        }
        $options = Protobuf::int(1, $priority) . Protobuf::bytes(2, $pipeline) . Protobuf::int(3, $delay) . Protobuf::bool(6, $autoAck);

        return Protobuf::bytes(1, $name) . Protobuf::bytes(2, $id) . Protobuf::bytes(3, $payload) . $h . Protobuf::bytes(5, $options, true);
    }

    /** @param list<string> $names `jobs.v1.Pipelines` */
    public static function pipelines(array $names): string
    {
        $out = '';
        foreach ($names as $n) {
            $out .= Protobuf::bytes(1, $n, true);
        }

        return $out;
    }

    /** @param array<string, string> $map `jobs.v1.DeclareRequest` */
    public static function declare(array $map): string
    {
        return Protobuf::stringMap(1, $map);
    }
}
