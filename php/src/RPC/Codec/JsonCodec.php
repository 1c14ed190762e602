<?php

declare(strict_types=1);

namespace Pacer\RPC\Codec;

use Pacer\Goridge\Frame;
use Pacer\RPC\Exception\CodecException;

/** JSON (flag 0x08), the default. Replies decode to associative arrays. */
final class JsonCodec implements CodecInterface
{
    public function getIndex(): int
    {
        return Frame::CODEC_JSON;
    }

    public function encode(mixed $payload): string
    {
        try {
            return \json_encode($payload, \JSON_THROW_ON_ERROR | \JSON_PRESERVE_ZERO_FRACTION | \JSON_UNESCAPED_SLASHES);
        } catch (\JsonException $e) {
            throw new CodecException('Unable to JSON-encode the RPC argument: ' . $e->getMessage(), 0, $e);
        }
    }

    /** @param int|null $options json_decode() flags */
    public function decode(string $payload, mixed $options = null): mixed
    {
        if ($payload === '') {
            return null;
        }
        try {
            return \json_decode($payload, true, 512, \JSON_THROW_ON_ERROR | (\is_int($options) ? $options : 0));
        } catch (\JsonException $e) {
            throw new CodecException('Unable to decode the RPC reply as JSON: ' . $e->getMessage(), 0, $e);
        }
    }
}
