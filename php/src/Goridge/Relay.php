<?php

declare(strict_types=1);

namespace Pacer\Goridge;

use Pacer\Goridge\Exception\FrameException;
use Pacer\Goridge\Exception\RelayFactoryException;
use Pacer\Goridge\Exception\TransportException;

/**
 * Frame reading and writing over PHP streams, shared by {@see StreamRelay} (pipes) and
 * {@see SocketRelay} (TCP and unix sockets), and the factory {@see Relay::create()}.
 *
 * Reading follows the Go reader: the fixed 12-byte header first, verified, then
 * `(HL-3)*4 + payload length` bytes, looping over short reads. Writing sends the whole
 * encoded frame with one fwrite() and only loops if the kernel accepted part of it.
 */
abstract class Relay implements RelayInterface
{
    public const PIPES = 'pipes';

    /** Largest single fread(): keeps a big payload from allocating its full size per call. */
    private const READ_CHUNK = 1 << 20;
    /** How many bytes after a bad header are quoted in the error. */
    private const DIAGNOSTIC_BYTES = 512;

    /**
     * Opens a relay from a RoadRunner-style address (the `RR_RELAY` environment variable):
     *
     * - `pipes`: STDIN/STDOUT of this process
     * - `pipes://IN:OUT`: `php://IN` and `php://OUT`, e.g. `pipes://stdin:stdout`
     * - `tcp://host:port`, `unix:///absolute/path.sock`, `unix://relative.sock`
     *
     * Socket relays connect lazily, on first use.
     */
    public static function create(string $dsn): RelayInterface
    {
        $dsn = \trim($dsn);
        if ($dsn === self::PIPES) {
            return StreamRelay::stdio();
        }
        if (\preg_match('#^pipes://([a-z0-9_]+):([a-z0-9_]+)$#i', $dsn, $m) === 1) {
            return new StreamRelay(self::open('php://' . $m[1], 'rb'), self::open('php://' . $m[2], 'wb'));
        }
        if (\str_starts_with($dsn, 'tcp://') || \str_starts_with($dsn, 'unix://')) {
            return new SocketRelay($dsn);
        }

        throw new RelayFactoryException(\sprintf(
            'Unknown relay address "%s": expected "pipes", "pipes://IN:OUT", "tcp://host:port" or "unix://path".',
            $dsn,
        ));
    }

    /** @return resource */
    abstract protected function input();

    /** @return resource */
    abstract protected function output();

    public function send(Frame $frame): void
    {
        $this->write($frame->encode());
    }

    public function waitFrame(): Frame
    {
        $in = $this->input();
        $head = $this->readExactly($in, Frame::HEADER_SIZE, 'frame header');
        try {
            $header = Frame::parseHeader($head);
        } catch (FrameException $e) {
            throw $e->withReceived($head . $this->readAvailable($in, self::DIAGNOSTIC_BYTES));
        }
        $rest = $header->remainingLength() > 0
            ? $this->readExactly($in, $header->remainingLength(), 'frame body')
            : '';

        return Frame::fromParts($header, $rest);
    }

    public function hasFrame(float $timeout = 0.0): bool
    {
        $read = [$this->input()];
        $write = $except = null;
        $seconds = (int) \floor($timeout);
        $micro = (int) (($timeout - $seconds) * 1_000_000);
        $ready = @\stream_select($read, $write, $except, $seconds, $micro);
        if ($ready === false) {
            // Interrupted by a signal, or a broken stream: nothing to read right now.
            return false;
        }

        return $ready > 0;
    }

    /**
     * Writes all of $data, starting with a single fwrite() of the whole string.
     *
     * @param resource|null $stream defaults to the relay's output
     */
    protected function write(string $data, $stream = null): void
    {
        $out = $stream ?? $this->output();
        $total = \strlen($data);
        $written = 0;
        while ($written < $total) {
            $n = @\fwrite($out, $written === 0 ? $data : \substr($data, $written));
            if ($n === false || $n === 0) {
                $error = \error_get_last()['message'] ?? 'the peer closed the stream';
                throw new TransportException(\sprintf(
                    'Unable to write a frame to %s after %d of %d bytes: %s',
                    $this,
                    $written,
                    $total,
                    $error,
                ));
            }
            $written += $n;
        }
    }

    /**
     * Reads exactly $length bytes, looping over short reads and read timeouts.
     *
     * @param resource $in
     */
    protected function readExactly($in, int $length, string $what): string
    {
        $parts = [];
        $got = 0;
        $idle = 0;
        while ($got < $length) {
            $chunk = @\fread($in, \min($length - $got, self::READ_CHUNK));
            if ($chunk === false || $chunk === '') {
                if (\feof($in)) {
                    throw new TransportException(\sprintf(
                        'Relay %s closed (EOF) while reading the %s: got %d of %d bytes.',
                        $this,
                        $what,
                        $got,
                        $length,
                    ));
                }
                if (!\is_resource($in)) {
                    throw new TransportException(\sprintf('Relay %s is closed.', $this));
                }
                // A socket read timeout or an interrupted read: wait until readable again.
                // A stream that keeps reporting "readable" yet yields nothing is broken.
                $timedOut = (\stream_get_meta_data($in)['timed_out'] ?? false) === true;
                if (!$timedOut && ++$idle > 1000) {
                    throw new TransportException(\sprintf('Relay %s yields no data while reading the %s.', $this, $what));
                }
                $read = [$in];
                $write = $except = null;
                if (@\stream_select($read, $write, $except, 1) === false && !\is_resource($in)) {
                    throw new TransportException(\sprintf('Relay %s failed while reading the %s.', $this, $what));
                }
                continue;
            }
            $idle = 0;
            $parts[] = $chunk;
            $got += \strlen($chunk);
        }

        return \count($parts) === 1 ? $parts[0] : \implode('', $parts);
    }

    /**
     * Whatever is readable right now, up to $max bytes, without blocking (for diagnostics).
     *
     * @param resource $in
     */
    private function readAvailable($in, int $max): string
    {
        $data = '';
        while (\strlen($data) < $max) {
            $read = [$in];
            $write = $except = null;
            if (!@\stream_select($read, $write, $except, 0, 20_000)) {
                break;
            }
            $chunk = @\fread($in, $max - \strlen($data));
            if ($chunk === false || $chunk === '') {
                break;
            }
            $data .= $chunk;
        }

        return $data;
    }

    /** @return resource */
    private static function open(string $path, string $mode)
    {
        $stream = @\fopen($path, $mode);
        if ($stream === false) {
            throw new RelayFactoryException(\sprintf('Unable to open %s for the pipes relay.', $path));
        }

        return $stream;
    }
}
