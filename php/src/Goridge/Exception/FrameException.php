<?php

declare(strict_types=1);

namespace Pacer\Goridge\Exception;

/**
 * Bytes that are not a valid Goridge frame.
 *
 * {@see self::$kind} names what was wrong, with the same names as the golden frames in
 * testdata/goridge/frames.json and the Rust codec's error variants, so that both sides of
 * the wire report the same failure the same way. {@see self::$received} holds the raw bytes
 * that were read (the 12-byte header, plus whatever else was readable at that moment), which
 * is what you need to see when PHP printed text where a frame was expected.
 */
final class FrameException extends GoridgeException
{
    /** The header CRC-32 does not match bytes 0..5. */
    public const CRC = 'crc';
    /** The header is the text "Could not op", the start of PHP's "Could not open input file". */
    public const COULD_NOT_OPEN = 'could_not_open';
    /** The header length nibble is outside 3..13. */
    public const HEADER_LENGTH = 'header_length';
    /** Fewer bytes than a header, or than the header announces. */
    public const TRUNCATED = 'truncated';
    /** A frame that cannot be encoded (too many options, option out of range). */
    public const INVALID = 'invalid';

    public function __construct(
        public readonly string $kind,
        string $message,
        public readonly string $received = '',
    ) {
        parent::__construct($message);
    }

    /** A copy of this error quoting `$received` (more bytes than the header alone). */
    public function withReceived(string $received): self
    {
        $message = $this->getMessage();
        $cut = \strpos($message, ' Received ');
        if ($cut !== false) {
            $message = \substr($message, 0, $cut);
        }

        return new self($this->kind, $message . ' Received ' . self::quote($received), $received);
    }

    /**
     * Renders bytes for an error message: printable ASCII as is, everything else as \xNN,
     * cut after $max bytes, followed by the hex of the first 32 bytes.
     */
    public static function quote(string $bytes, int $max = 512): string
    {
        $shown = \substr($bytes, 0, $max);
        $text = '';
        for ($i = 0, $n = \strlen($shown); $i < $n; $i++) {
            $c = \ord($shown[$i]);
            $text .= match (true) {
                $c === 0x0a => '\n',
                $c === 0x0d => '\r',
                $c === 0x09 => '\t',
                $c === 0x5c => '\\\\',
                $c === 0x22 => '\"',
                $c >= 0x20 && $c < 0x7f => $shown[$i],
                default => \sprintf('\x%02X', $c),
            };
        }
        $more = \strlen($bytes) > $max ? \sprintf('... (%d bytes in all)', \strlen($bytes)) : '';
        $hex = \strtoupper(\implode(' ', \str_split(\bin2hex(\substr($bytes, 0, 32)), 2)));

        return \sprintf('%d bytes: "%s"%s (hex: %s%s)', \strlen($bytes), $text, $more, $hex, \strlen($bytes) > 32 ? ' ...' : '');
    }
}
