<?php

declare(strict_types=1);

namespace Pacer\RPC\Codec;

use Pacer\Goridge\Frame;
use Pacer\RPC\Exception\CodecException;

/**
 * The protobuf codec (flag 0x80), as RoadRunner's `jobs.*`, `kv.*` and `lock.*` methods
 * take it. It sends encoded message bytes: a string, or any object with
 * `serializeToString()` (a google/protobuf message). Replies are returned as bytes, or
 * merged into a new `$options` instance when `$options` names a class with
 * `mergeFromString()`.
 */
final class ProtobufCodec implements CodecInterface
{
    public function getIndex(): int
    {
        return Frame::CODEC_PROTO;
    }

    public function encode(mixed $payload): string
    {
        if (\is_string($payload)) {
            return $payload;
        }
        if (\is_object($payload) && \method_exists($payload, 'serializeToString')) {
            return (string) $payload->serializeToString();
        }

        throw new CodecException(\sprintf('The protobuf codec sends encoded bytes or a protobuf message, got %s.', \get_debug_type($payload)));
    }

    public function decode(string $payload, mixed $options = null): mixed
    {
        if (\is_string($options) && \class_exists($options) && \method_exists($options, 'mergeFromString')) {
            $message = new $options();
            $message->mergeFromString($payload);

            return $message;
        }

        return $payload;
    }
}
