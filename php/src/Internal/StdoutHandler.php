<?php

declare(strict_types=1);

namespace Pacer\Internal;

/**
 * Keeps `echo`, `print`, `var_dump()` and displayed errors off the relay: with the pipes
 * relay STDOUT carries frames only, and a stray byte there corrupts the next frame header.
 * An output buffer with chunk size 1 hands every piece of output to a callback that
 * writes it to STDERR (which the server logs) and discards it.
 *
 * @internal
 */
final class StdoutHandler
{
    private static bool $registered = false;

    public static function register(): void
    {
        if (self::$registered) {
            return;
        }
        self::$registered = true;
        $stderr = \defined('STDERR') ? \STDERR : \fopen('php://stderr', 'wb');

        \ob_start(static function (string $chunk) use ($stderr): string {
            if ($chunk !== '' && \is_resource($stderr)) {
                \fwrite($stderr, $chunk);
            }

            return '';
        }, 1);
    }
}
