<?php

declare(strict_types=1);

namespace Pacer\Tests\Http;

use Nyholm\Psr7\Factory\Psr17Factory;
use Pacer\Goridge\Frame;
use Pacer\Http\PSR7Worker;
use Pacer\Tests\Support\Loopback;
use PHPUnit\Framework\TestCase;
use Psr\Http\Message\UploadedFileInterface;

final class PSR7WorkerTest extends TestCase
{
    private Psr17Factory $factory;
    private Loopback $loop;
    private PSR7Worker $psr7;
    /** @var list<string> */
    private array $tempFiles = [];
    /** @var array<array-key, mixed> */
    private array $savedServer;

    protected function setUp(): void
    {
        $this->savedServer = $_SERVER;
        $this->factory = new Psr17Factory();
        $this->loop = new Loopback();
        $this->psr7 = new PSR7Worker($this->loop->worker, $this->factory, $this->factory, $this->factory);
    }

    protected function tearDown(): void
    {
        $_SERVER = $this->savedServer;
        foreach ($this->tempFiles as $file) {
            @unlink($file);
        }
    }

    private function tempFile(string $contents): string
    {
        $file = tempnam(sys_get_temp_dir(), 'upload');
        file_put_contents($file, $contents);
        $this->tempFiles[] = $file;

        return $file;
    }

    public function testMapsTheRequest(): void
    {
        $this->loop->sendHttpRequest([
            'method' => 'PUT',
            'protocol' => 'HTTP/2.0',
            'uri' => 'https://shop.example:8443/cart/items?id=5&tags[]=a&tags[]=b',
            'rawQuery' => 'id=5&tags[]=a&tags[]=b',
            'headers' => ['Content-Type' => ['text/plain; charset=utf-8'], 'Accept' => ['text/html', 'application/json'], 'X-Request-Id' => ['r-1']],
            'cookies' => ['session' => 'abc 123', 'theme' => 'dark'],
            'attributes' => ['route' => 'cart.put', 'ipAddress' => '198.51.100.4'],
        ], 'raw text body');

        $request = $this->psr7->waitRequest();

        self::assertNotNull($request);
        self::assertSame('PUT', $request->getMethod());
        self::assertSame('2', $request->getProtocolVersion());
        self::assertSame('https', $request->getUri()->getScheme());
        self::assertSame('shop.example', $request->getUri()->getHost());
        self::assertSame(8443, $request->getUri()->getPort());
        self::assertSame('/cart/items', $request->getUri()->getPath());
        self::assertSame(['id' => '5', 'tags' => ['a', 'b']], $request->getQueryParams());
        self::assertSame(['session' => 'abc 123', 'theme' => 'dark'], $request->getCookieParams());
        self::assertSame(['text/html', 'application/json'], $request->getHeader('accept'));
        self::assertSame('r-1', $request->getHeaderLine('X-Request-Id'));
        self::assertSame('shop.example:8443', $request->getHeaderLine('Host'), 'Host comes from the URI');
        self::assertSame('cart.put', $request->getAttribute('route'));
        self::assertSame('raw text body', (string) $request->getBody());
        self::assertNull($request->getParsedBody());

        $server = $request->getServerParams();
        self::assertSame('/cart/items?id=5&tags[]=a&tags[]=b', $server['REQUEST_URI']);
        self::assertSame('PUT', $server['REQUEST_METHOD']);
        self::assertSame('198.51.100.4', $server['REMOTE_ADDR']);
        self::assertSame('HTTP/2.0', $server['SERVER_PROTOCOL']);
        self::assertSame('id=5&tags[]=a&tags[]=b', $server['QUERY_STRING']);
        self::assertSame('text/plain; charset=utf-8', $server['CONTENT_TYPE']);
        self::assertSame('text/html, application/json', $server['HTTP_ACCEPT']);
        self::assertSame('on', $server['HTTPS']);
        self::assertIsInt($server['REQUEST_TIME']);
        self::assertSame($server, $_SERVER, '$_SERVER is rewritten for code that reads it');
    }

    public function testParsedJsonBody(): void
    {
        $this->loop->sendHttpRequest(
            ['method' => 'POST', 'parsed' => true, 'headers' => ['Content-Type' => ['application/x-www-form-urlencoded']]],
            '{"user":{"name":"Ann","roles":["admin","dev"]},"remember":"1"}',
        );

        $request = $this->psr7->waitRequest();

        self::assertSame(['user' => ['name' => 'Ann', 'roles' => ['admin', 'dev']], 'remember' => '1'], $request->getParsedBody());
    }

    public function testProtocolVersions(): void
    {
        foreach (['HTTP/1.0' => '1.0', 'HTTP/1.1' => '1.1', 'HTTP/2.0' => '2', 'HTTP/3.0' => '3', 'SPDY' => '1.1'] as $wire => $psr) {
            $this->loop->sendHttpRequest(['protocol' => $wire]);
            self::assertSame($psr, $this->psr7->waitRequest()->getProtocolVersion(), $wire);
        }
    }

    public function testNestedUploadsTree(): void
    {
        $avatar = $this->tempFile('PNG-BYTES');
        $doc1 = $this->tempFile('first document');
        $doc2 = $this->tempFile('second');
        $this->loop->sendHttpRequest([
            'method' => 'POST',
            'parsed' => true,
            'uploads' => [
                'avatar' => ['name' => 'me.png', 'mime' => 'image/png', 'size' => 9, 'error' => 0, 'tmpName' => $avatar],
                'docs' => [
                    ['name' => 'a.txt', 'mime' => 'text/plain', 'size' => 14, 'error' => 0, 'tmpName' => $doc1],
                    ['name' => 'b.txt', 'mime' => 'text/plain', 'size' => 6, 'error' => 0, 'tmpName' => $doc2],
                ],
                'profile' => [
                    'cv' => ['name' => 'cv.pdf', 'mime' => 'application/pdf', 'size' => 0, 'error' => 4, 'tmpName' => ''],
                    // A form field literally called "name" holding a file.
                    'name' => ['name' => 'n.txt', 'mime' => 'text/plain', 'size' => 0, 'error' => 8, 'tmpName' => ''],
                ],
            ],
        ], '{"title":"hello"}');

        $request = $this->psr7->waitRequest();
        $files = $request->getUploadedFiles();

        self::assertSame(['title' => 'hello'], $request->getParsedBody());
        self::assertSame(['avatar', 'docs', 'profile'], array_keys($files));

        $this->assertUpload($files['avatar'], 'me.png', 'image/png', 9, UPLOAD_ERR_OK, 'PNG-BYTES');
        self::assertCount(2, $files['docs']);
        $this->assertUpload($files['docs'][0], 'a.txt', 'text/plain', 14, UPLOAD_ERR_OK, 'first document');
        $this->assertUpload($files['docs'][1], 'b.txt', 'text/plain', 6, UPLOAD_ERR_OK, 'second');
        self::assertSame(UPLOAD_ERR_NO_FILE, $files['profile']['cv']->getError());
        self::assertSame('cv.pdf', $files['profile']['cv']->getClientFilename());
        self::assertSame(UPLOAD_ERR_EXTENSION, $files['profile']['name']->getError());

        $target = sys_get_temp_dir() . '/pacer-moved-' . bin2hex(random_bytes(4));
        $this->tempFiles[] = $target;
        $files['docs'][1]->moveTo($target);
        self::assertSame('second', file_get_contents($target));
    }

    public function testUploadWhoseTempFileVanishedIsReportedMissing(): void
    {
        $this->loop->sendHttpRequest(['method' => 'POST', 'uploads' => [
            'f' => ['name' => 'x.bin', 'mime' => 'application/octet-stream', 'size' => 3, 'error' => 0, 'tmpName' => '/nonexistent/upload123'],
        ]]);

        $file = $this->psr7->waitRequest()->getUploadedFiles()['f'];
        self::assertSame(UPLOAD_ERR_NO_FILE, $file->getError());
    }

    private function assertUpload(mixed $file, string $name, string $mime, int $size, int $error, string $contents): void
    {
        self::assertInstanceOf(UploadedFileInterface::class, $file);
        self::assertSame($name, $file->getClientFilename());
        self::assertSame($mime, $file->getClientMediaType());
        self::assertSame($size, $file->getSize());
        self::assertSame($error, $file->getError());
        self::assertSame($contents, (string) $file->getStream());
    }

    public function testRespondWithMultiValueHeadersAndTwoCookies(): void
    {
        $response = $this->factory->createResponse(302)
            ->withHeader('Location', '/login')
            ->withHeader('Vary', ['Accept', 'Cookie'])
            ->withAddedHeader('Set-Cookie', 'a=1; Path=/')
            ->withAddedHeader('Set-Cookie', 'b=2; Secure; HttpOnly')
            ->withBody($this->factory->createStream('see other'));

        $this->psr7->respond($response);

        $wire = $this->loop->receiveHttpResponse();
        self::assertSame(Frame::CODEC_JSON, $wire['frame']->flags);
        self::assertSame(302, $wire['context']['status']);
        self::assertSame(['/login'], $wire['context']['headers']['Location']);
        self::assertSame(['Accept', 'Cookie'], $wire['context']['headers']['Vary']);
        self::assertSame(['a=1; Path=/', 'b=2; Secure; HttpOnly'], $wire['context']['headers']['Set-Cookie']);
        self::assertSame('see other', $wire['body']);
    }

    public function testRespondWithoutHeadersSendsAnEmptyObject(): void
    {
        $this->psr7->respond($this->factory->createResponse(204));

        self::assertSame('{"status":204,"headers":{}}', $this->loop->receiveHttpResponse()['rawContext']);
    }

    public function testChunkedResponseBody(): void
    {
        $this->psr7->chunkSize = 4;
        $body = $this->factory->createStream('0123456789');
        $body->seek(7); // respond() rewinds
        $this->psr7->respond($this->factory->createResponse(200)->withHeader('Content-Type', 'text/plain')->withBody($body));

        $first = $this->loop->receiveHttpResponse();
        self::assertSame(['status' => 200, 'headers' => ['Content-Type' => ['text/plain']]], $first['context']);
        self::assertSame('0123', $first['body']);
        self::assertSame(Frame::STREAM, $first['frame']->byte10);
        $rest = [];
        do {
            $frame = $this->loop->receive();
            $rest[] = [$frame->payload, $frame->byte10];
        } while ($frame->byte10 & Frame::STREAM);
        self::assertSame([['4567', Frame::STREAM], ['89', Frame::STREAM], ['', 0]], $rest);
    }

    public function testEndOfRequestsReturnsNull(): void
    {
        $this->loop->server->send(new Frame('{"stop":true}', [], Frame::CONTROL | Frame::CODEC_JSON));
        self::assertNull($this->psr7->waitRequest());
    }
}
