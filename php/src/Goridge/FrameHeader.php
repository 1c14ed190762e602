<?php

declare(strict_types=1);

namespace Pacer\Goridge;

/**
 * The fixed 12 bytes at the start of every frame, already verified
 * ({@see Frame::parseHeader()}). It tells a reader how many more bytes belong to the frame.
 */
final class FrameHeader
{
    public function __construct(
        /** Header length in 32-bit words: 3 plus the number of options (3..13). */
        public readonly int $headerWords,
        public readonly int $flags,
        /** Number of payload bytes after the options. */
        public readonly int $payloadLength,
        public readonly int $byte10,
        public readonly int $byte11,
    ) {
    }

    public function optionCount(): int
    {
        return $this->headerWords - 3;
    }

    /** Bytes that follow the 12-byte header: the options words and the payload. */
    public function remainingLength(): int
    {
        return ($this->headerWords - 3) * 4 + $this->payloadLength;
    }
}
