<?php

declare(strict_types=1);

namespace Pacer\HttpFoundation;

/**
 * Catches what the app prints while it handles a request (echo, var_dump, a streamed
 * response sent from inside the framework) so that it becomes part of the response and
 * never reaches the relay. Output the app flushes with `ob_flush()` lands here too, not
 * further down the buffer stack.
 *
 * @internal
 */
final class OutputCapture
{
    private string $captured = '';
    private ?int $level = null;

    public function start(): void
    {
        $this->captured = '';
        $this->level = \ob_get_level();
        \ob_start(function (string $chunk): string {
            $this->captured .= $chunk;

            return '';
        });
    }

    /** Closes the capture buffer (and any the app left open above it); returns the output. */
    public function stop(): string
    {
        if ($this->level !== null) {
            while (\ob_get_level() > $this->level) {
                \ob_end_flush();
            }
            $this->level = null;
        }
        $output = $this->captured;
        $this->captured = '';

        return $output;
    }
}
