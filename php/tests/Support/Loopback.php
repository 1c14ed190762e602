<?php

declare(strict_types=1);

namespace Pacer\Tests\Support;

use Pacer\Goridge\Frame;
use Pacer\Goridge\StreamRelay;
use Pacer\Worker;
use PHPUnit\Framework\Assert;

/**
 * A worker and a "server" in one process, joined by a unix socket pair: the test queues
 * request frames, lets the worker read them, then reads what the worker wrote. Good for
 * flows where nobody waits on the other (no PING/PONG); those run against real processes.
 */
final class Loopback
{
    public readonly Worker $worker;
    public readonly StreamRelay $server;

    public function __construct()
    {
        $pair = stream_socket_pair(STREAM_PF_UNIX, STREAM_SOCK_STREAM, STREAM_IPPROTO_IP);
        Assert::assertIsArray($pair);
        $this->worker = new Worker(new StreamRelay($pair[0], $pair[0]), false);
        $this->server = new StreamRelay($pair[1], $pair[1]);
    }

    /**
     * A JSON HTTP request context: `$overrides` over a GET of http://example.com/ with
     * the required keys filled in.
     *
     * @param array<string, mixed> $overrides
     */
    public static function httpContext(array $overrides = []): string
    {
        return json_encode($overrides + [
            'remoteAddr' => '10.0.0.7',
            'protocol' => 'HTTP/1.1',
            'method' => 'GET',
            'uri' => 'http://example.com/',
            'headers' => new \stdClass(),
            'cookies' => new \stdClass(),
            'rawQuery' => '',
            'parsed' => false,
            'uploads' => null,
            'attributes' => new \stdClass(),
        ], JSON_THROW_ON_ERROR);
    }

    /**
     * Sends an HTTP request: the context `httpContext()` makes, then `$body`.
     *
     * @param array<string, mixed> $overrides
     */
    public function sendHttpRequest(array $overrides = [], string $body = ''): void
    {
        $context = self::httpContext($overrides);
        $this->server->send(new Frame($context . $body, [strlen($context)], Frame::CODEC_JSON));
    }

    public function receive(): Frame
    {
        Assert::assertTrue($this->server->hasFrame(2.0), 'the worker wrote a frame');

        return $this->server->waitFrame();
    }

    /**
     * Reads one response frame and splits it.
     *
     * @return array{context: array<string, mixed>, rawContext: string, body: string, frame: Frame}
     */
    public function receiveHttpResponse(): array
    {
        $frame = $this->receive();
        Assert::assertCount(1, $frame->options);
        $raw = substr($frame->payload, 0, $frame->options[0]);

        return [
            'context' => json_decode($raw, true, 512, JSON_THROW_ON_ERROR),
            'rawContext' => $raw,
            'body' => substr($frame->payload, $frame->options[0]),
            'frame' => $frame,
        ];
    }
}
