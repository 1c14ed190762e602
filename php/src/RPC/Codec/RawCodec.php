<?php

declare(strict_types=1);

namespace Pacer\RPC\Codec;

use Pacer\Goridge\Frame;
use Pacer\RPC\Exception\CodecException;

/** Raw bytes (flag 0x04): strings in, strings out (e.g. `rpc.Config`). */
final class RawCodec implements CodecInterface
{
    public function getIndex(): int
    {
        return Frame::CODEC_RAW;
    }

    public function encode(mixed $payload): string
    {
        if (!\is_string($payload)) {
            throw new CodecException(\sprintf('The raw codec sends strings only, got %s.', \get_debug_type($payload)));
        }

        return $payload;
    }

    public function decode(string $payload, mixed $options = null): string
    {
        return $payload;
    }
}
