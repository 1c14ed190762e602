<?php

declare(strict_types=1);

namespace Pacer\RPC\Codec;

use Pacer\RPC\Exception\CodecException;

/** How RPC arguments and results are encoded; the index is the frame's codec flag. */
interface CodecInterface
{
    /** One of the Frame::CODEC_* flags. */
    public function getIndex(): int;

    /** @throws CodecException */
    public function encode(mixed $payload): string;

    /** @throws CodecException */
    public function decode(string $payload, mixed $options = null): mixed;
}
