<?php

declare(strict_types=1);

namespace Pacer\Tests\Http;

use Pacer\Exception\WorkerException;
use Pacer\Goridge\Frame;
use Pacer\Http\HttpWorker;
use Pacer\Tests\Support\Loopback;
use PHPUnit\Framework\TestCase;

final class HttpWorkerTest extends TestCase
{
    public function testDecodesTheJsonRequestContext(): void
    {
        $loop = new Loopback();
        $http = new HttpWorker($loop->worker);
        $loop->sendHttpRequest([
            'method' => 'POST',
            'protocol' => 'HTTP/2.0',
            'uri' => 'https://example.com/a/b?x=1&list[]=2&list[]=3',
            'rawQuery' => 'x=1&list[]=2&list[]=3',
            'headers' => ['Content-Type' => ['text/plain'], 'X-Multi' => ['a', 'b'], '' => ['dropped']],
            'cookies' => ['session' => 'abc', 'theme' => 'dark'],
            'attributes' => ['ipAddress' => '203.0.113.9', 'route' => 'r1'],
        ], 'raw body');

        $request = $http->waitRequest();

        self::assertNotNull($request);
        self::assertSame('POST', $request->method);
        self::assertSame('HTTP/2.0', $request->protocol);
        self::assertSame('https://example.com/a/b?x=1&list[]=2&list[]=3', $request->uri);
        self::assertSame('/a/b?x=1&list[]=2&list[]=3', $request->getPathAndQuery());
        self::assertSame(['x' => '1', 'list' => ['2', '3']], $request->query);
        self::assertSame(['Content-Type' => ['text/plain'], 'X-Multi' => ['a', 'b']], $request->headers);
        self::assertSame('a, b', $request->getHeaderLine('x-multi'));
        self::assertSame(['session' => 'abc', 'theme' => 'dark'], $request->cookies);
        self::assertSame('10.0.0.7', $request->remoteAddr);
        self::assertSame('203.0.113.9', $request->getRemoteAddr(), 'the ipAddress attribute overrides the address');
        self::assertSame('raw body', $request->body);
        self::assertFalse($request->parsed);
        self::assertNull($request->getParsedBody());
        self::assertSame([], $request->uploads);
    }

    public function testMinimalContextAndParsedBody(): void
    {
        $loop = new Loopback();
        $http = new HttpWorker($loop->worker);
        $minimal = '{"remoteAddr":"127.0.0.1","protocol":"HTTP/1.1","method":"POST","uri":"http://h/p","rawQuery":"","parsed":true}';
        $body = '{"name":"Ann","tags":["a","b"],"address":{"city":"Oslo"}}';
        $loop->server->send(new Frame($minimal . $body, [strlen($minimal)], Frame::CODEC_JSON));

        $request = $http->waitRequest();

        self::assertTrue($request->parsed);
        self::assertSame(['name' => 'Ann', 'tags' => ['a', 'b'], 'address' => ['city' => 'Oslo']], $request->getParsedBody());
        self::assertSame([], $request->headers);
    }

    public function testParsedWithEmptyBodyIsAnEmptyTree(): void
    {
        $loop = new Loopback();
        $http = new HttpWorker($loop->worker);
        $loop->sendHttpRequest(['method' => 'POST', 'parsed' => true]);

        self::assertSame([], $http->waitRequest()->getParsedBody());
    }

    public function testEmptyContextAndBodyEndsTheLoop(): void
    {
        $loop = new Loopback();
        $http = new HttpWorker($loop->worker);
        $loop->server->send(new Frame('', [0], Frame::CODEC_JSON));

        self::assertNull($http->waitRequest());
    }

    public function testStopCommandEndsTheLoop(): void
    {
        $loop = new Loopback();
        $http = new HttpWorker($loop->worker);
        $loop->server->send(new Frame('{"stop":true}', [], Frame::CONTROL | Frame::CODEC_JSON));

        self::assertNull($http->waitRequest());
    }

    public function testMissingRequiredKeyIsReported(): void
    {
        $loop = new Loopback();
        $http = new HttpWorker($loop->worker);
        $ctx = '{"remoteAddr":"1","protocol":"HTTP/1.1","method":"GET","rawQuery":"","parsed":false}';
        $loop->server->send(new Frame($ctx, [strlen($ctx)]));

        $this->expectException(WorkerException::class);
        $this->expectExceptionMessage('lacks "uri"');
        $http->waitRequest();
    }

    public function testProtobufContextIsReportedClearly(): void
    {
        $loop = new Loopback();
        $http = new HttpWorker($loop->worker);
        $proto = "\x0a\x09127.0.0.1\x12\x08HTTP/1.1";
        $loop->server->send(new Frame($proto, [strlen($proto)], Frame::CODEC_PROTO));

        $this->expectException(WorkerException::class);
        $this->expectExceptionMessage('protobuf');
        $http->waitRequest();
    }

    public function testRespondWritesTheJsonResponseContext(): void
    {
        $loop = new Loopback();
        $http = new HttpWorker($loop->worker);
        $http->respond(201, 'created', [
            'Content-Type' => ['application/json'],
            'Set-Cookie' => ['a=1; Path=/', 'b=2; HttpOnly'],
            'X-Single' => 'one',
            'Location' => ['/items/1'],
        ]);

        $response = $loop->receiveHttpResponse();
        self::assertSame(Frame::CODEC_JSON, $response['frame']->flags);
        self::assertSame(0, $response['frame']->byte10);
        self::assertSame([
            'status' => 201,
            'headers' => [
                'Content-Type' => ['application/json'],
                'Set-Cookie' => ['a=1; Path=/', 'b=2; HttpOnly'],
                'X-Single' => ['one'],
                'Location' => ['/items/1'],
            ],
        ], $response['context']);
        self::assertSame('created', $response['body']);
    }

    public function testEmptyHeadersEncodeAsAnObject(): void
    {
        $loop = new Loopback();
        $http = new HttpWorker($loop->worker);
        $http->respond(204, '');

        $response = $loop->receiveHttpResponse();
        self::assertSame('{"status":204,"headers":{}}', $response['rawContext']);
        self::assertSame('', $response['body']);
        self::assertSame('{"status":200,"headers":{}}', HttpWorker::encodeResponseContext(200, ['X-Empty' => []]));
    }

    public function testCodecZeroLikeOlderLibraries(): void
    {
        $loop = new Loopback();
        $http = new HttpWorker($loop->worker, null);
        $http->respond(200, 'ok');

        self::assertSame(0, $loop->receive()->flags);
    }

    public function testEarlyHintsThenFinalResponse(): void
    {
        $loop = new Loopback();
        $http = new HttpWorker($loop->worker);
        $http->respond(103, '', ['Link' => ['</style.css>; rel=preload; as=style']], false);
        $http->respond(200, 'page');

        $hints = $loop->receiveHttpResponse();
        self::assertSame(Frame::STREAM, $hints['frame']->byte10);
        self::assertSame(103, $hints['context']['status']);
        $final = $loop->receiveHttpResponse();
        self::assertSame(0, $final['frame']->byte10);
        self::assertSame('page', $final['body']);
    }

    public function testInformationalStatusWithABodyIsRefused(): void
    {
        $http = new HttpWorker((new Loopback())->worker);
        $this->expectException(\InvalidArgumentException::class);
        $http->respond(100, 'nope');
    }

    public function testStreamedResponseSendsTheContextOnce(): void
    {
        $loop = new Loopback();
        $http = new HttpWorker($loop->worker);

        self::assertTrue($http->respondStream(200, ['one', 'two', 'three'], ['Content-Type' => 'text/plain']));

        $first = $loop->receiveHttpResponse();
        self::assertSame(['status' => 200, 'headers' => ['Content-Type' => ['text/plain']]], $first['context']);
        self::assertSame('one', $first['body']);
        self::assertSame(Frame::STREAM, $first['frame']->byte10);
        foreach (['two', 'three'] as $chunk) {
            $frame = $loop->receive();
            self::assertSame([0], $frame->options);
            self::assertSame($chunk, $frame->payload);
            self::assertSame(Frame::STREAM, $frame->byte10);
            self::assertSame(Frame::CODEC_JSON, $frame->flags);
        }
        $last = $loop->receive();
        self::assertSame([0, [0], ''], [$last->byte10, $last->options, $last->payload]);
    }

    public function testEmptyStreamIsOneCompleteResponse(): void
    {
        $loop = new Loopback();
        $http = new HttpWorker($loop->worker);
        self::assertTrue($http->respondStream(204, []));

        $only = $loop->receiveHttpResponse();
        self::assertSame(0, $only['frame']->byte10);
        self::assertSame(204, $only['context']['status']);
    }

    public function testGeneratorFailureMidStreamClosesTheStream(): void
    {
        $loop = new Loopback();
        $http = new HttpWorker($loop->worker);
        $chunks = (static function () {
            yield 'partial';
            throw new \RuntimeException('database went away');
        })();

        $logged = [];
        $loop->worker->logger = static function (string $line) use (&$logged): void {
            $logged[] = $line;
        };
        self::assertFalse($http->respondStream(200, $chunks));
        self::assertSame(['response stream aborted by RuntimeException: database went away'], $logged);

        self::assertSame(Frame::STREAM, $loop->receive()->byte10);
        $end = $loop->receive();
        self::assertSame([0, ''], [$end->byte10, $end->payload], 'an empty end-of-stream frame closes the response');
    }
}
