<?php

declare(strict_types=1);

namespace Pacer\Jobs\Internal;

use Pacer\Jobs\JobsException;

/**
 * The few `jobs.v1` protobuf messages of the jobs RPC, encoded and decoded by hand
 * (docs/jobs-protocol.md §4), so the library needs no protobuf runtime. Field numbers
 * are RoadRunner's. Encoding follows the canonical order (ascending field numbers,
 * defaults omitted), byte for byte what the generated classes produce.
 *
 * @internal
 */
final class Proto
{
    private const VARINT = 0;
    private const LEN = 2;

    public static function varint(int $n): string
    {
        $out = '';
        // Negative int64 values take ten bytes (two's complement), as protobuf says.
        $u = $n;
        for ($i = 0; $i < 10; $i++) {
            $byte = $u & 0x7F;
            $u = ($u >> 7) & (\PHP_INT_MAX >> 6);
            if ($u === 0) {
                return $out . \chr($byte);
            }
            $out .= \chr($byte | 0x80);
        }

        return $out;
    }

    private static function key(int $field, int $type): string
    {
        return self::varint(($field << 3) | $type);
    }

    public static function bytes(int $field, string $value, bool $always = false): string
    {
        if ($value === '' && !$always) {
            return '';
        }

        return self::key($field, self::LEN) . self::varint(\strlen($value)) . $value;
    }

    public static function int(int $field, int $value): string
    {
        return $value === 0 ? '' : self::key($field, self::VARINT) . self::varint($value);
    }

    public static function bool(int $field, bool $value): string
    {
        return $value ? self::key($field, self::VARINT) . "\x01" : '';
    }

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
                $value .= self::bytes(1, (string) $v, true);
            }
            // map<string, HeaderValue>: an entry message {key = 1, value = 2}.
            $h .= self::bytes(4, self::bytes(1, (string) $k, true) . self::bytes(2, $value, true), true);
        }
        $options = self::int(1, $priority) . self::bytes(2, $pipeline) . self::int(3, $delay) . self::bool(6, $autoAck);

        return self::bytes(1, $name) . self::bytes(2, $id) . self::bytes(3, $payload) . $h . self::bytes(5, $options, true);
    }

    /** @param list<string> $names `jobs.v1.Pipelines` */
    public static function pipelines(array $names): string
    {
        $out = '';
        foreach ($names as $n) {
            $out .= self::bytes(1, $n, true);
        }

        return $out;
    }

    /** @param array<string, string> $map `jobs.v1.DeclareRequest` */
    public static function declare(array $map): string
    {
        \ksort($map, \SORT_STRING);
        $out = '';
        foreach ($map as $k => $v) {
            $out .= self::bytes(1, self::bytes(1, (string) $k, true) . self::bytes(2, (string) $v, true), true);
        }

        return $out;
    }

    /**
     * Splits a message into [field, wire type, value] triples (varints as int,
     * length-delimited as string).
     *
     * @return list<array{int, int, int|string}>
     */
    public static function fields(string $bytes): array
    {
        $out = [];
        $i = 0;
        $n = \strlen($bytes);
        while ($i < $n) {
            $key = self::readVarint($bytes, $i);
            $field = $key >> 3;
            $type = $key & 7;
            $value = match ($type) {
                self::VARINT => self::readVarint($bytes, $i),
                self::LEN => self::readBytes($bytes, $i),
                1 => self::skip($bytes, $i, 8),
                5 => self::skip($bytes, $i, 4),
                default => throw new JobsException("malformed protobuf reply (wire type $type)"),
            };
            $out[] = [$field, $type, $value];
        }

        return $out;
    }

    private static function readVarint(string $b, int &$i): int
    {
        $result = 0;
        for ($shift = 0; $shift < 64; $shift += 7) {
            if ($i >= \strlen($b)) {
                throw new JobsException('malformed protobuf reply (truncated varint)');
            }
            $byte = \ord($b[$i++]);
            $result |= ($byte & 0x7F) << $shift;
            if (($byte & 0x80) === 0) {
                return $result;
            }
        }
        throw new JobsException('malformed protobuf reply (varint too long)');
    }

    private static function readBytes(string $b, int &$i): string
    {
        $len = self::readVarint($b, $i);
        if ($len < 0 || $i + $len > \strlen($b)) {
            throw new JobsException('malformed protobuf reply (truncated field)');
        }
        $v = (string) \substr($b, $i, $len);
        $i += $len;

        return $v;
    }

    private static function skip(string $b, int &$i, int $len): string
    {
        $v = (string) \substr($b, $i, $len);
        $i += $len;

        return $v;
    }
}
