<?php

declare(strict_types=1);

namespace Pacer\Goridge;

use Pacer\Goridge\Exception\RelayFactoryException;

/**
 * Frames over a pair of already open streams: STDIN/STDOUT of a worker started with the
 * `pipes` relay, or any readable and writable stream pair (the tests use it for the server
 * side of a pipe or an accepted socket).
 *
 * Input is switched to unbuffered reads, so that fread() hands a large payload over in
 * pipe-sized pieces instead of PHP's 8 KiB chunks, and stream_select() sees exactly what
 * the kernel has.
 */
final class StreamRelay extends Relay
{
    /** @var resource */
    private $in;
    /** @var resource */
    private $out;

    /**
     * @param resource $in
     * @param resource $out
     */
    public function __construct($in, $out)
    {
        foreach (['input' => $in, 'output' => $out] as $name => $stream) {
            if (!\is_resource($stream) || \get_resource_type($stream) !== 'stream') {
                throw new RelayFactoryException(\sprintf('StreamRelay %s must be an open stream.', $name));
            }
        }
        $this->in = $in;
        $this->out = $out;
        \stream_set_read_buffer($this->in, 0);
    }

    /** The `pipes` relay: frames arrive on STDIN and leave on STDOUT. */
    public static function stdio(): self
    {
        $in = \defined('STDIN') ? \STDIN : \fopen('php://stdin', 'rb');
        $out = \defined('STDOUT') ? \STDOUT : \fopen('php://stdout', 'wb');

        return new self($in, $out);
    }

    /** @return resource */
    protected function input()
    {
        return $this->in;
    }

    /** @return resource */
    protected function output()
    {
        return $this->out;
    }

    /**
     * Stops taking frames: closes the input, so the server's next write fails at once
     * (EPIPE) and it gives that job to another worker. For a worker that is about to exit
     * right after its last response.
     */
    public function closeInput(): void
    {
        if (\is_resource($this->in)) {
            @\fclose($this->in);
        }
    }

    public function close(): void
    {
        foreach ([$this->in, $this->out] as $stream) {
            if (\is_resource($stream)) {
                @\fclose($stream);
            }
        }
    }

    public function __toString(): string
    {
        return 'pipes';
    }
}
