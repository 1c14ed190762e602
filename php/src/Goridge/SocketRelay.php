<?php

declare(strict_types=1);

namespace Pacer\Goridge;

use Pacer\Goridge\Exception\RelayFactoryException;
use Pacer\Goridge\Exception\TransportException;

/**
 * Frames over a TCP or unix socket that this process connects to (the server listens).
 * The connection is opened lazily, on the first send, wait or poll, like RoadRunner's
 * SocketRelay: a worker creating its relay during boot does not connect before it is
 * ready, and the server always speaks first (the PID command).
 */
final class SocketRelay extends Relay
{
    /** @var resource|null */
    private $socket = null;

    /**
     * @param string $address `tcp://host:port` or `unix://path` (`unix:///abs/path.sock`)
     * @param float $connectTimeout seconds
     */
    public function __construct(
        private readonly string $address,
        private readonly float $connectTimeout = 10.0,
    ) {
        if (\str_starts_with($address, 'tcp://')) {
            if (\preg_match('#^tcp://(\[[0-9a-f:.]+\]|[^:/\[\]]+):(\d{1,5})$#i', $address, $m) !== 1 || (int) $m[2] > 65535) {
                throw new RelayFactoryException(\sprintf('Invalid TCP relay address "%s": expected tcp://host:port.', $address));
            }
        } elseif (\str_starts_with($address, 'unix://')) {
            if (\strlen($address) <= \strlen('unix://')) {
                throw new RelayFactoryException(\sprintf('Invalid unix relay address "%s": the socket path is missing.', $address));
            }
        } else {
            throw new RelayFactoryException(\sprintf('Invalid socket relay address "%s": expected tcp:// or unix://.', $address));
        }
    }

    public function isConnected(): bool
    {
        return \is_resource($this->socket);
    }

    /** Connects now instead of on first use. */
    public function connect(): void
    {
        if ($this->isConnected()) {
            return;
        }
        $context = \stream_context_create(['socket' => ['tcp_nodelay' => true]]);
        $socket = @\stream_socket_client(
            $this->address,
            $errno,
            $errstr,
            $this->connectTimeout,
            \STREAM_CLIENT_CONNECT,
            $context,
        );
        if ($socket === false) {
            throw new TransportException(\sprintf('Unable to connect to relay %s: %s (%d).', $this->address, $errstr ?: 'unknown error', $errno));
        }
        \stream_set_blocking($socket, true);
        \stream_set_read_buffer($socket, 0);
        $this->socket = $socket;
    }

    /** @return resource */
    protected function input()
    {
        $this->connect();

        return $this->socket;
    }

    /** @return resource */
    protected function output()
    {
        $this->connect();

        return $this->socket;
    }

    public function close(): void
    {
        if (\is_resource($this->socket)) {
            @\fclose($this->socket);
        }
        $this->socket = null;
    }

    public function __toString(): string
    {
        return $this->address;
    }
}
