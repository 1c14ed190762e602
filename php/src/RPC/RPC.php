<?php

declare(strict_types=1);

namespace Pacer\RPC;

use Pacer\Environment;
use Pacer\Goridge\Frame;
use Pacer\Goridge\Relay;
use Pacer\Goridge\RelayInterface;
use Pacer\RPC\Codec\CodecInterface;
use Pacer\RPC\Codec\JsonCodec;
use Pacer\RPC\Exception\RPCException;
use Pacer\RPC\Exception\ServiceException;

/**
 * Synchronous Goridge RPC client (docs/wire-protocol.md §4): each call is one frame with the
 * options `[seq, strlen(method)]`, flags = codec, payload = method . encoded argument, and
 * waits for the reply with the same seq.
 *
 * ```php
 * $rpc = RPC::create('tcp://127.0.0.1:6001');
 * $rpc->call('resetter.Reset', 'http');
 * $informer = $rpc->withServicePrefix('informer');
 * $informer->call('workers', 'http');          // informer.Workers
 * ```
 */
final class RPC
{
    /** Shared by every client in the process, like RoadRunner's, so replies never mix up. */
    private static int $seq = 1;

    private CodecInterface $codec;
    private string $service = '';

    public function __construct(
        private readonly RelayInterface $relay,
        ?CodecInterface $codec = null,
    ) {
        $this->codec = $codec ?? new JsonCodec();
    }

    /** A client of the RPC server at $dsn (`tcp://host:port` or `unix://path`), connecting lazily. */
    public static function create(string $dsn = Environment::DEFAULT_RPC, ?CodecInterface $codec = null): self
    {
        return new self(Relay::create($dsn), $codec);
    }

    /** A client of the server named by `RR_RPC`. */
    public static function fromEnvironment(?Environment $env = null, ?CodecInterface $codec = null): self
    {
        return self::create(($env ?? Environment::fromGlobals())->getRPCAddress(), $codec);
    }

    /** Calls become `$service.Method` (the method name's first letter upper-cased). */
    public function withServicePrefix(string $service): self
    {
        $clone = clone $this;
        $clone->service = $service;

        return $clone;
    }

    public function withCodec(CodecInterface $codec): self
    {
        $clone = clone $this;
        $clone->codec = $codec;

        return $clone;
    }

    public function getRelay(): RelayInterface
    {
        return $this->relay;
    }

    /**
     * @param mixed $options passed to the codec's decode()
     *
     * @throws ServiceException when the server answers with an error
     * @throws RPCException on a malformed reply or one for another call
     */
    public function call(string $method, mixed $payload, mixed $options = null): mixed
    {
        $name = $this->service === '' ? $method : $this->service . '.' . \ucfirst($method);
        $seq = self::$seq++;
        if (self::$seq > 0xFFFFFFFF) {
            self::$seq = 1;
        }

        $this->relay->send(new Frame($name . $this->codec->encode($payload), [$seq, \strlen($name)], $this->codec->getIndex()));
        $reply = $this->relay->waitFrame();

        if (\count($reply->options) !== 2) {
            throw new RPCException(\sprintf('Invalid RPC reply to %s: expected 2 options [seq, method length], got %d.', $name, \count($reply->options)));
        }
        if ($reply->options[0] !== $seq) {
            throw new RPCException(\sprintf('RPC reply sequence mismatch on %s: sent #%d, received #%d.', $name, $seq, $reply->options[0]));
        }
        if ($reply->options[1] > \strlen($reply->payload)) {
            throw new RPCException(\sprintf('Invalid RPC reply to %s: method length %d exceeds the payload.', $name, $reply->options[1]));
        }
        $body = (string) \substr($reply->payload, $reply->options[1]);

        if ($reply->hasFlag(Frame::ERROR)) {
            throw new ServiceException(\sprintf("Error '%s' on %s", $body, $this->relay));
        }

        return $this->codec->decode($body, $options);
    }
}
