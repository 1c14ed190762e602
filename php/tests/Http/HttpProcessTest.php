<?php

declare(strict_types=1);

namespace Pacer\Tests\Http;

use Pacer\Goridge\Frame;
use Pacer\Tests\Support\WorkerProcess;
use PHPUnit\Framework\TestCase;

/**
 * The HTTP test workers of testdata/workers as real processes: raw-http.php (no library,
 * written from the protocol notes) and http.php (PSR7Worker + Nyholm).
 */
final class HttpProcessTest extends TestCase
{
    /** @var list<string> */
    private array $tempFiles = [];

    protected function tearDown(): void
    {
        foreach ($this->tempFiles as $file) {
            @unlink($file);
        }
    }

    /** @param array<string, mixed> $overrides */
    private static function context(array $overrides = []): string
    {
        return json_encode($overrides + [
            'remoteAddr' => '192.0.2.1',
            'protocol' => 'HTTP/1.1',
            'method' => 'GET',
            'uri' => 'http://app.test/',
            'headers' => ['User-Agent' => ['curl/8']],
            'cookies' => new \stdClass(),
            'rawQuery' => '',
            'parsed' => false,
            'uploads' => null,
            'attributes' => new \stdClass(),
        ], JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES);
    }

    /**
     * @param array<string, mixed> $overrides
     * @return array{status: int, headers: array<string, list<string>>, body: string, frame: Frame}
     */
    private static function call(WorkerProcess $worker, string $path, array $overrides = [], string $body = ''): array
    {
        $parts = explode('?', $path, 2);
        $worker->sendRequest(self::context($overrides + ['uri' => 'http://app.test' . $path, 'rawQuery' => $parts[1] ?? '']), $body);

        return self::response($worker->receive());
    }

    /** @return array{status: int, headers: array<string, list<string>>, body: string, frame: Frame} */
    private static function response(Frame $frame): array
    {
        self::assertCount(1, $frame->options, 'one option: the context length');
        $context = json_decode(substr($frame->payload, 0, $frame->options[0]), true, 512, JSON_THROW_ON_ERROR);

        return [
            'status' => $context['status'],
            'headers' => $context['headers'],
            'body' => substr($frame->payload, $frame->options[0]),
            'frame' => $frame,
        ];
    }

    public function testRawHttpWorkerEchoesTheRequest(): void
    {
        $worker = WorkerProcess::pipes(WorkerProcess::WORKERS . '/raw-http.php');
        $worker->handshake();

        $binary = random_bytes(4096);
        $worker->sendRequest(self::context([
            'method' => 'POST',
            'uri' => 'http://app.test/path/x?a=1&b[]=2',
            'rawQuery' => 'a=1&b[]=2',
            'headers' => ['Content-Type' => ['application/octet-stream'], 'Accept' => ['a', 'b']],
            'cookies' => ['sid' => 'xyz'],
            'attributes' => ['k' => ['v']],
        ]), $binary);
        $frame = $worker->receive();

        self::assertSame(0, $frame->flags);
        self::assertSame('{"status":200,"headers":{"Content-Type":["application/json"]}}', substr($frame->payload, 0, $frame->options[0]));
        $echo = json_decode(substr($frame->payload, $frame->options[0]), true, 512, JSON_THROW_ON_ERROR);
        self::assertSame('POST', $echo['method']);
        self::assertSame('http://app.test/path/x?a=1&b[]=2', $echo['uri']);
        self::assertSame('a=1&b[]=2', $echo['rawQuery']);
        self::assertSame(['Content-Type' => ['application/octet-stream'], 'Accept' => ['a', 'b']], $echo['headers']);
        self::assertSame(['sid' => 'xyz'], $echo['cookies']);
        self::assertSame(['k' => ['v']], $echo['attributes']);
        self::assertFalse($echo['parsed']);
        self::assertSame(4096, $echo['bodyLength']);
        self::assertSame(hash('sha256', $binary), $echo['bodySha256']);

        $worker->sendRequest('');
        self::assertSame(0, $worker->waitExit(), 'empty context and body end the worker');
    }

    public function testRawHttpWorkerOverTcp(): void
    {
        $worker = WorkerProcess::socket(WorkerProcess::WORKERS . '/raw-http.php', 'tcp');
        $worker->handshake();
        $response = self::call($worker, '/over-tcp', ['method' => 'PUT', 'parsed' => true], '{"x":"y"}');
        $echo = json_decode($response['body'], true);
        self::assertSame(['PUT', true, '{"x":"y"}'], [$echo['method'], $echo['parsed'], $echo['body']]);
        self::assertSame(0, $worker->stop());
    }

    public function testPsr7WorkerRoutes(): void
    {
        $worker = WorkerProcess::pipes(WorkerProcess::WORKERS . '/http.php');
        $worker->handshake();

        $hello = self::call($worker, '/');
        self::assertSame(Frame::CODEC_JSON, $hello['frame']->flags);
        self::assertSame([200, 'Hello, world!'], [$hello['status'], $hello['body']]);
        self::assertSame(['text/plain; charset=utf-8'], $hello['headers']['Content-Type']);

        $teapot = self::call($worker, '/status/418');
        self::assertSame([418, 'status 418'], [$teapot['status'], $teapot['body']]);
        $noContent = self::call($worker, '/status/204');
        self::assertSame([204, ''], [$noContent['status'], $noContent['body']]);

        $headers = self::call($worker, '/headers');
        self::assertSame(['a', 'b'], $headers['headers']['X-Multi']);
        self::assertSame(['first=1; Path=/', 'second=2; Path=/; HttpOnly'], $headers['headers']['Set-Cookie']);

        $bad = self::call($worker, '/bad-header');
        self::assertSame(["evil\r\nInjected: yes"], $bad['headers']['X-Bad'], 'sent as is: the server must refuse it');

        $pid = self::call($worker, '/pid');
        self::assertSame((string) $worker->pid(), $pid['body']);

        self::assertSame(404, self::call($worker, '/nope')['status']);

        $worker->sendRequest(self::context(['uri' => 'http://app.test/error']));
        $error = $worker->receive();
        self::assertSame(Frame::ERROR, $error->flags);
        self::assertSame([], $error->options);
        self::assertSame('RuntimeException: boom from /error', $error->payload);
        self::assertSame(200, self::call($worker, '/')['status'], 'the worker keeps serving after an error');

        $sleep = self::call($worker, '/sleep?ms=50');
        self::assertSame('slept 50 ms', $sleep['body']);

        $leak1 = (int) self::call($worker, '/leak?kb=0')['body'];
        $leak2 = (int) self::call($worker, '/leak?kb=4096')['body'];
        self::assertGreaterThan($leak1 + (3 << 20), $leak2);

        $worker->sendRequest('', '', Frame::CODEC_JSON);
        self::assertSame(0, $worker->waitExit(), 'empty context and body end the PSR-7 loop');
    }

    public function testPsr7EchoWithFormAndUploads(): void
    {
        $worker = WorkerProcess::pipes(WorkerProcess::WORKERS . '/http.php');
        $worker->handshake();
        $file = tempnam(sys_get_temp_dir(), 'upload');
        $this->tempFiles[] = $file;
        file_put_contents($file, 'uploaded bytes');

        $echo = self::call($worker, '/echo?q=search&page=2', [
            'method' => 'POST',
            'headers' => ['Content-Type' => ['multipart/form-data; boundary=x'], 'X-Multi' => ['1', '2']],
            'cookies' => ['sid' => 'abc'],
            'parsed' => true,
            'uploads' => [
                'avatar' => ['name' => 'a.png', 'mime' => 'image/png', 'size' => 14, 'error' => 0, 'tmpName' => $file],
                'docs' => [['name' => 'missing.txt', 'mime' => 'text/plain', 'size' => 0, 'error' => 4, 'tmpName' => '']],
            ],
        ], '{"title":"Hi","tags":["x","y"]}');

        $data = json_decode($echo['body'], true, 512, JSON_THROW_ON_ERROR);
        self::assertSame('POST', $data['method']);
        self::assertSame('/echo', $data['path']);
        self::assertSame(['q' => 'search', 'page' => '2'], $data['query']);
        self::assertSame(['1', '2'], $data['headers']['X-Multi']);
        self::assertSame(['app.test'], $data['headers']['Host']);
        self::assertSame(['sid' => 'abc'], $data['cookies']);
        self::assertSame(['title' => 'Hi', 'tags' => ['x', 'y']], $data['parsedBody']);
        self::assertSame('192.0.2.1', $data['remoteAddr']);
        self::assertSame([
            ['field' => 'avatar', 'name' => 'a.png', 'size' => 14, 'error' => 0, 'mime' => 'image/png'],
            ['field' => 'docs[0]', 'name' => 'missing.txt', 'size' => 0, 'error' => 4, 'mime' => 'text/plain'],
        ], $data['uploads']);

        $upload = self::call($worker, '/upload', ['method' => 'POST', 'parsed' => true, 'uploads' => [
            'f' => ['name' => 'a.png', 'mime' => 'image/png', 'size' => 14, 'error' => 0, 'tmpName' => $file],
        ]]);
        self::assertSame([[
            'field' => 'f',
            'name' => 'a.png',
            'size' => 14,
            'error' => 0,
            'tmp_exists' => true,
            'tmp_uid' => fileowner($file),
            'tmp_gid' => filegroup($file),
            'sha256' => hash('sha256', 'uploaded bytes'),
        ]], json_decode($upload['body'], true));
    }

    public function testPsr7StreamWithPingPongAndStop(): void
    {
        $worker = WorkerProcess::pipes(WorkerProcess::WORKERS . '/http.php');
        $worker->handshake();

        $worker->sendRequest(self::context(['uri' => 'http://app.test/stream?chunks=7', 'rawQuery' => 'chunks=7']));
        $first = self::response($worker->receive());
        self::assertSame(200, $first['status']);
        self::assertSame('chunk-1' . "\n", $first['body']);
        $body = $first['body'];
        $bits = [$first['frame']->byte10];
        do {
            $frame = $worker->receive();
            $bits[] = $frame->byte10;
            self::assertSame([0], $frame->options);
            $body .= $frame->payload;
            if ($frame->byte10 & Frame::PING) {
                $worker->send(new Frame('', [], 0, Frame::PONG));
            }
        } while ($frame->byte10 & Frame::STREAM);
        self::assertSame([1, 1, 1, 1, 1, 5, 1, 0], $bits);
        self::assertSame("chunk-1\nchunk-2\nchunk-3\nchunk-4\nchunk-5\nchunk-6\nchunk-7\n", $body);

        $worker->sendRequest(self::context(['uri' => 'http://app.test/stream?chunks=1000&delay_ms=20', 'rawQuery' => 'chunks=1000&delay_ms=20']));
        $worker->receive();
        $worker->send(new Frame('', [], 0, Frame::STOP));
        do {
            $frame = $worker->receive();
        } while ($frame->byte10 & Frame::STREAM);
        self::assertSame(['', [0]], [$frame->payload, $frame->options], 'an empty end-of-stream frame confirms the STOP');
        self::assertSame(200, self::call($worker, '/')['status']);
    }

    public function testExampleHelloWorker(): void
    {
        $worker = WorkerProcess::pipes(__DIR__ . '/../../examples/psr7-hello.php');
        $worker->handshake();

        $response = self::call($worker, '/?name=Pacer');

        self::assertSame(200, $response['status']);
        self::assertSame(['text/plain; charset=utf-8'], $response['headers']['Content-Type']);
        self::assertSame("Hello, Pacer!\n", $response['body']);
        self::assertSame(0, $worker->stop());
    }
}
