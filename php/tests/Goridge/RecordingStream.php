<?php

declare(strict_types=1);

namespace Pacer\Tests\Goridge;

/** A user-space stream wrapper that records every write call (see RelayTest). */
final class RecordingStream
{
    /** @var list<string> */
    public static array $writes = [];

    /** @var resource|null set by PHP */
    public $context;

    public function stream_open(string $path, string $mode, int $options, ?string &$opened): bool
    {
        return true;
    }

    public function stream_write(string $data): int
    {
        self::$writes[] = $data;

        return strlen($data);
    }

    public function stream_read(int $count): string
    {
        return '';
    }

    public function stream_eof(): bool
    {
        return true;
    }

    public function stream_set_option(int $option, int $arg1, ?int $arg2): bool
    {
        return false;
    }

    public function stream_cast(int $castAs)
    {
        return false;
    }
}
