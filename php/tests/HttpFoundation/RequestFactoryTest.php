<?php

declare(strict_types=1);

namespace Pacer\Tests\HttpFoundation;

use Pacer\Http\HttpWorker;
use Pacer\HttpFoundation\RequestFactory;
use Pacer\Tests\Support\Loopback;
use PHPUnit\Framework\TestCase;
use Symfony\Component\HttpFoundation\File\UploadedFile;

final class RequestFactoryTest extends TestCase
{
    /** @var list<string> */
    private array $tempFiles = [];

    protected function tearDown(): void
    {
        foreach ($this->tempFiles as $file) {
            @unlink($file);
        }
    }

    private function tempFile(string $contents): string
    {
        $file = (string) tempnam(sys_get_temp_dir(), 'upload');
        file_put_contents($file, $contents);
        $this->tempFiles[] = $file;

        return $file;
    }

    /** @param array<string, mixed> $context */
    private static function pacerRequest(array $context, string $body = ''): \Pacer\Http\Request
    {
        return HttpWorker::decodeRequest(Loopback::httpContext($context), $body);
    }

    public function testBuildsWhatPhpFpmWouldSee(): void
    {
        $server = RequestFactory::frontControllerServer(['argv' => ['worker.php'], 'PATH' => '/usr/bin'], '/app/public');
        $factory = new RequestFactory(baseServer: $server);
        $request = $factory->create(self::pacerRequest([
            'method' => 'PUT',
            'uri' => 'https://shop.example:8443/cart/items?id=5&tags[]=a',
            'rawQuery' => 'id=5&tags[]=a',
            'headers' => ['Content-Type' => ['application/json'], 'Accept' => ['application/json'], 'X-Forwarded-For' => ['1.2.3.4']],
            'cookies' => ['session' => 'abc 123'],
            'attributes' => ['ipAddress' => '198.51.100.4'],
        ], '{"a":1}'));

        self::assertSame('PUT', $request->getMethod());
        self::assertSame('https', $request->getScheme());
        self::assertSame('shop.example', $request->getHost());
        self::assertSame(8443, $request->getPort());
        self::assertSame('/cart/items', $request->getPathInfo());
        self::assertSame('', $request->getBaseUrl(), 'the front controller is not part of the URL');
        self::assertSame(['id' => '5', 'tags' => ['a']], $request->query->all());
        self::assertSame('abc 123', $request->cookies->get('session'));
        self::assertSame('{"a":1}', $request->getContent());
        self::assertSame('application/json', $request->headers->get('content-type'));
        self::assertSame('198.51.100.4', $request->getClientIp());
        self::assertTrue($request->isSecure());
        self::assertSame('/app/public/index.php', $request->server->get('SCRIPT_FILENAME'));
        self::assertSame('/usr/bin', $request->server->get('PATH'), 'the worker environment stays');
        self::assertFalse($request->server->has('argv'));
    }

    public function testIndexPhpInThePathIsTheBaseUrl(): void
    {
        $factory = new RequestFactory(baseServer: RequestFactory::frontControllerServer([], '/app/public'));
        $request = $factory->create(self::pacerRequest(['uri' => 'http://example.com/index.php/posts/1']));

        self::assertSame('/index.php', $request->getBaseUrl());
        self::assertSame('/posts/1', $request->getPathInfo());
    }

    public function testFormFieldsAndUploads(): void
    {
        $doc = $this->tempFile('document bytes');
        $factory = new RequestFactory();
        $request = $factory->create(self::pacerRequest([
            'method' => 'POST',
            'parsed' => true,
            'headers' => ['Content-Type' => ['multipart/form-data; boundary=x']],
            'uploads' => [
                'doc' => ['name' => 'a.txt', 'mime' => 'text/plain', 'size' => 14, 'error' => 0, 'tmpName' => $doc],
                'more' => [
                    ['name' => 'b.txt', 'mime' => 'text/plain', 'size' => 0, 'error' => 4, 'tmpName' => ''],
                    ['name' => 'big.bin', 'mime' => '', 'size' => 0, 'error' => 1, 'tmpName' => ''],
                ],
                'gone' => ['name' => 'c.txt', 'mime' => 'text/plain', 'size' => 3, 'error' => 0, 'tmpName' => '/nonexistent/upload'],
            ],
        ], '{"title":"hello","tags":["x","y"]}'));

        self::assertSame(['title' => 'hello', 'tags' => ['x', 'y']], $request->request->all());
        self::assertSame('', $request->getContent(), 'a parsed form has no raw body');

        $file = $request->files->get('doc');
        self::assertInstanceOf(UploadedFile::class, $file);
        self::assertTrue($file->isValid(), 'created in test mode: valid although PHP did not move it');
        self::assertSame('a.txt', $file->getClientOriginalName());
        self::assertSame('text/plain', $file->getClientMimeType());
        self::assertSame('document bytes', file_get_contents($file->getPathname()));

        $more = $request->files->get('more');
        self::assertCount(1, $more, 'no file chosen (error 4) is left out, as PHP does');
        self::assertSame(UPLOAD_ERR_INI_SIZE, $more[1]->getError());
        self::assertFalse($more[1]->isValid());
        self::assertNull($request->files->get('gone'), 'a temp file that vanished counts as no file');

        $target = sys_get_temp_dir() . '/pacer-moved-' . getmypid();
        $moved = $file->move(dirname($target), basename($target));
        $this->tempFiles[] = $target;
        self::assertSame('document bytes', file_get_contents($moved->getPathname()), 'move() works on it');
    }

    public function testCustomUploadedFileClass(): void
    {
        $doc = $this->tempFile('x');
        $made = [];
        $factory = new RequestFactory(uploadedFile: static function (string $path, string $name, ?string $mime, int $error) use (&$made): UploadedFile {
            $made[] = [$path, $name, $mime, $error];

            return new UploadedFile($path, $name, $mime, $error, true);
        });
        $factory->create(self::pacerRequest([
            'method' => 'POST',
            'parsed' => true,
            'uploads' => ['doc' => ['name' => 'a.txt', 'mime' => '', 'size' => 1, 'error' => 0, 'tmpName' => $doc]],
        ]));

        self::assertSame([[$doc, 'a.txt', null, 0]], $made);
    }
}
