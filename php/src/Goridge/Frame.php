<?php

declare(strict_types=1);

namespace Pacer\Goridge;

use Pacer\Goridge\Exception\FrameException;

/**
 * One Goridge v3 frame (docs/wire-protocol.md §1).
 *
 * Layout, little-endian:
 *
 *     0      version (high nibble, always 1) | header length in words HL (low nibble, 3..13)
 *     1      flags (CONTROL, codec bits, ERROR)
 *     2..5   payload length (uint32)
 *     6..9   CRC-32/IEEE of bytes 0..5 (PHP crc32(), zlib, Go ChecksumIEEE)
 *     10     stream byte (STREAM, STOP, PING, PONG), not covered by the CRC
 *     11     reserved, round-tripped as is
 *     12..   HL-3 options, uint32 each
 *     4*HL.. payload
 *
 * Unlike RoadRunner's PHP library this one verifies the CRC and the header length of
 * every frame it reads, so that text printed where a frame was expected is reported with
 * the offending bytes instead of being taken for a length.
 */
final class Frame
{
    /** Protocol version, written to the high nibble of byte 0. */
    public const VERSION = 1;
    /** Size of the fixed part of the header. */
    public const HEADER_SIZE = 12;
    /** Go's frame code refuses more (HL would exceed 13). */
    public const MAX_OPTIONS = 10;

    // Flags (byte 1).
    /** Control message with a JSON payload: PID handshake, stop. */
    public const CONTROL = 0x01;
    public const CODEC_RAW = 0x04;
    public const CODEC_JSON = 0x08;
    public const CODEC_MSGPACK = 0x10;
    public const CODEC_GOB = 0x20;
    /** The payload is an error message. */
    public const ERROR = 0x40;
    public const CODEC_PROTO = 0x80;

    // Stream byte (byte 10).
    /** Worker -> server: more frames of this response follow. */
    public const STREAM = 0x01;
    /** Server -> worker: cancel the current stream. */
    public const STOP = 0x02;
    /** Worker -> server: answer with PONG. */
    public const PING = 0x04;
    /** Server -> worker: answer to PING. */
    public const PONG = 0x08;

    // RoadRunner's names for the stream byte bits, for code ported from spiral/goridge.
    public const BYTE10_STREAM = self::STREAM;
    public const BYTE10_STOP = self::STOP;
    public const BYTE10_PING = self::PING;
    public const BYTE10_PONG = self::PONG;

    private const UINT32_MAX = 0xFFFFFFFF;

    /**
     * @param list<int> $options uint32 words (at most 10)
     */
    public function __construct(
        public string $payload = '',
        public array $options = [],
        public int $flags = 0,
        public int $byte10 = 0,
        public int $byte11 = 0,
    ) {
    }

    public function hasFlag(int $flag): bool
    {
        return ($this->flags & $flag) === $flag;
    }

    public function hasStreamBit(int $bit): bool
    {
        return ($this->byte10 & $bit) === $bit;
    }

    /**
     * The whole frame as one string (header, options, payload), ready for a single write.
     *
     * @throws FrameException when the frame cannot be represented on the wire
     */
    public function encode(): string
    {
        $options = \array_values($this->options);
        $count = \count($options);
        if ($count > self::MAX_OPTIONS) {
            throw new FrameException(
                FrameException::INVALID,
                \sprintf('A Goridge frame carries at most %d options, got %d.', self::MAX_OPTIONS, $count),
            );
        }
        foreach ($options as $i => $option) {
            if (!\is_int($option) || $option < 0 || $option > self::UINT32_MAX) {
                throw new FrameException(
                    FrameException::INVALID,
                    \sprintf('Frame option %d must be an integer in 0..%d, got %s.', $i, self::UINT32_MAX, \var_export($option, true)),
                );
            }
        }
        $length = \strlen($this->payload);
        if ($length > self::UINT32_MAX) {
            throw new FrameException(FrameException::INVALID, \sprintf('Frame payload of %d bytes exceeds 4 GiB.', $length));
        }
        foreach (['flags' => $this->flags, 'byte10' => $this->byte10, 'byte11' => $this->byte11] as $name => $value) {
            if ($value < 0 || $value > 0xFF) {
                throw new FrameException(FrameException::INVALID, \sprintf('Frame %s must fit in one byte, got %d.', $name, $value));
            }
        }

        $head = \pack('CCV', (self::VERSION << 4) | (3 + $count), $this->flags, $length);
        $head .= \pack('VCC', \crc32($head), $this->byte10, $this->byte11);
        if ($count > 0) {
            $head .= \pack('V*', ...$options);
        }

        return $head . $this->payload;
    }

    /**
     * Parses and verifies the 12-byte header (CRC first, then the header length).
     *
     * @throws FrameException with the received bytes quoted in the message
     */
    public static function parseHeader(string $header): FrameHeader
    {
        if (\strlen($header) < self::HEADER_SIZE) {
            throw new FrameException(
                FrameException::TRUNCATED,
                \sprintf('Incomplete Goridge frame header: need %d bytes. Received %s', self::HEADER_SIZE, FrameException::quote($header)),
                $header,
            );
        }
        if (\strncmp($header, 'Could not op', self::HEADER_SIZE) === 0) {
            throw new FrameException(
                FrameException::COULD_NOT_OPEN,
                'The peer printed PHP\'s "Could not open input file" instead of speaking Goridge: '
                . 'the worker script was not found (check the command and the working directory). Received '
                . FrameException::quote($header),
                $header,
            );
        }

        /** @var array{v: int, flags: int, len: int, crc: int, b10: int, b11: int} $h */
        $h = \unpack('Cv/Cflags/Vlen/Vcrc/Cb10/Cb11', $header);
        $expected = \crc32(\substr($header, 0, 6));
        if ($expected !== $h['crc']) {
            throw new FrameException(
                FrameException::CRC,
                \sprintf(
                    'Invalid Goridge frame: header CRC mismatch (computed 0x%08X over bytes 0..5, header carries 0x%08X); '
                    . 'something other than a frame was written to the relay, e.g. output printed to STDOUT. Received %s',
                    $expected,
                    $h['crc'],
                    FrameException::quote($header),
                ),
                $header,
            );
        }
        $words = $h['v'] & 0x0F;
        if ($words < 3 || $words > 3 + self::MAX_OPTIONS) {
            throw new FrameException(
                FrameException::HEADER_LENGTH,
                \sprintf('Invalid Goridge frame: header length of %d words is outside 3..13. Received %s', $words, FrameException::quote($header)),
                $header,
            );
        }

        return new FrameHeader($words, $h['flags'], $h['len'], $h['b10'], $h['b11']);
    }

    /**
     * Builds a frame from a verified header and the bytes that follow it
     * ({@see FrameHeader::remainingLength()} of them).
     */
    public static function fromParts(FrameHeader $header, string $rest): self
    {
        if (\strlen($rest) !== $header->remainingLength()) {
            throw new FrameException(
                FrameException::TRUNCATED,
                \sprintf('Goridge frame body has %d bytes, the header announces %d.', \strlen($rest), $header->remainingLength()),
                $rest,
            );
        }
        $optionBytes = $header->optionCount() * 4;
        $options = $optionBytes > 0 ? \array_values(\unpack('V*', \substr($rest, 0, $optionBytes))) : [];

        return new self(
            $optionBytes > 0 ? \substr($rest, $optionBytes) : $rest,
            $options,
            $header->flags,
            $header->byte10,
            $header->byte11,
        );
    }

    /**
     * Decodes exactly one complete frame.
     *
     * @throws FrameException
     */
    public static function decode(string $bytes): self
    {
        $header = self::parseHeader($bytes);
        $rest = \substr($bytes, self::HEADER_SIZE);
        if (\strlen($rest) !== $header->remainingLength()) {
            throw new FrameException(
                FrameException::TRUNCATED,
                \sprintf(
                    'Goridge frame length mismatch: the header announces %d bytes after it, %d given. Received %s',
                    $header->remainingLength(),
                    \strlen($rest),
                    FrameException::quote($bytes),
                ),
                $bytes,
            );
        }

        return self::fromParts($header, $rest);
    }
}
