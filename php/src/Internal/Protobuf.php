<?php

declare(strict_types=1);

namespace Pacer\Internal;

use Pacer\RPC\Exception\CodecException;

/**
 * The protobuf wire format by hand, for the few RPC messages the library sends (`jobs.v1`,
 * `service.v1`), so it needs no protobuf runtime. Encoders follow the canonical order
 * (ascending field numbers, proto3 defaults omitted), byte for byte what generated classes
 * produce; the decoder splits a message into its fields.
 *
 * @internal
 */
final class Protobuf
{
    public const VARINT = 0;
    public const FIXED64 = 1;
    public const LEN = 2;
    public const FIXED32 = 5;

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

    /** A length-delimited field (string, bytes, message); empty ones only when `$always`. */
    public static function bytes(int $field, string $value, bool $always = false): string
    {
        if ($value === '' && !$always) {
            return '';
        }

        return self::key($field, self::LEN) . self::varint(\strlen($value)) . $value;
    }

    /** An int32/int64/uint64 field. */
    public static function int(int $field, int $value): string
    {
        return $value === 0 ? '' : self::key($field, self::VARINT) . self::varint($value);
    }

    public static function bool(int $field, bool $value): string
    {
        return $value ? self::key($field, self::VARINT) . "\x01" : '';
    }

    /**
     * A `map<string, string>` field: one entry message {key = 1, value = 2} per pair, in key
     * order (as the generated code of the server's tests writes them).
     *
     * @param array<string, string> $map
     */
    public static function stringMap(int $field, array $map): string
    {
        \ksort($map, \SORT_STRING);
        $out = '';
        foreach ($map as $k => $v) {
            $out .= self::bytes($field, self::bytes(1, (string) $k, true) . self::bytes(2, (string) $v, true), true);
        }

        return $out;
    }

    /** The value of a `float` field (wire type 5) as PHP's float. */
    public static function float(string $fixed32): float
    {
        if (\strlen($fixed32) !== 4) {
            throw new CodecException('malformed protobuf message (a float field is not 4 bytes)');
        }
        $v = \unpack('g', $fixed32);

        return (float) ($v === false ? 0.0 : $v[1]);
    }

    /**
     * Splits a message into [field, wire type, value] triples (varints as int,
     * length-delimited and fixed-width fields as string).
     *
     * @return list<array{int, int, int|string}>
     * @throws CodecException on malformed bytes
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
                self::LEN => self::take($bytes, $i, self::readVarint($bytes, $i)),
                self::FIXED64 => self::take($bytes, $i, 8),
                self::FIXED32 => self::take($bytes, $i, 4),
                default => throw new CodecException("malformed protobuf message (wire type $type)"),
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
                throw new CodecException('malformed protobuf message (truncated varint)');
            }
            $byte = \ord($b[$i++]);
            $result |= ($byte & 0x7F) << $shift;
            if (($byte & 0x80) === 0) {
                return $result;
            }
        }
        throw new CodecException('malformed protobuf message (varint too long)');
    }

    private static function take(string $b, int &$i, int $len): string
    {
        if ($len < 0 || $i + $len > \strlen($b)) {
            throw new CodecException('malformed protobuf message (truncated field)');
        }
        $v = (string) \substr($b, $i, $len);
        $i += $len;

        return $v;
    }
}
