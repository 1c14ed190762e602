<?php

declare(strict_types=1);

namespace Pacer\Tests\HttpFoundation;

use Pacer\Goridge\Frame;
use Pacer\HttpFoundation\ResponseSender;
use Pacer\Tests\Support\Loopback;
use PHPUnit\Framework\TestCase;
use Symfony\Component\HttpFoundation\BinaryFileResponse;
use Symfony\Component\HttpFoundation\Cookie;
use Symfony\Component\HttpFoundation\Response;
use Symfony\Component\HttpFoundation\StreamedResponse;

final class ResponseSenderTest extends TestCase
{
    private Loopback $loop;
    private ResponseSender $sender;

    protected function setUp(): void
    {
        $this->loop = new Loopback();
        $this->sender = new ResponseSender($this->loop->worker);
    }

    public function testHeadersCookiesAndBodyInOneFrame(): void
    {
        $response = new Response('<p>hi</p>', 201, ['X-Multi' => ['a', 'b'], 'Content-Type' => 'text/html; charset=UTF-8']);
        $response->headers->setCookie(Cookie::create('one', '1'));
        $response->headers->setCookie(Cookie::create('two', '2', 0, '/', null, false, true, false, 'lax'));

        $this->sender->send($response, 'printed;');
        $reply = $this->loop->receiveHttpResponse();

        self::assertSame(201, $reply['context']['status']);
        self::assertSame(['a', 'b'], $reply['context']['headers']['X-Multi']);
        self::assertSame(['one=1; path=/; httponly; samesite=lax', 'two=2; path=/; httponly; samesite=lax'], $reply['context']['headers']['Set-Cookie']);
        self::assertSame('printed;<p>hi</p>', $reply['body']);
        self::assertSame(0, $reply['frame']->byte10 & Frame::STREAM);
    }

    public function testPhpsDefaultContentTypeWhenTheAppSetNone(): void
    {
        $response = new Response('plain');
        $response->headers->remove('Content-Type');

        $this->sender->send($response);

        self::assertSame(['text/html; charset=UTF-8'], $this->loop->receiveHttpResponse()['context']['headers']['Content-Type']);
    }

    public function testStreamedResponseSendsAFrameOnEveryObFlush(): void
    {
        $response = new StreamedResponse(static function (): void {
            echo 'first ';
            ob_flush();
            echo 'second ';
            ob_flush();
            echo 'tail';
        }, 200, ['Content-Type' => 'text/plain']);

        $this->sender->send($response);

        $first = $this->loop->receiveHttpResponse();
        self::assertSame(200, $first['context']['status']);
        self::assertSame('first ', $first['body']);
        self::assertNotSame(0, $first['frame']->byte10 & Frame::STREAM);
        $bodies = [];
        do {
            $frame = $this->loop->receive();
            $bodies[] = substr($frame->payload, $frame->options[0] ?? 0);
        } while (($frame->byte10 & Frame::STREAM) !== 0);
        self::assertSame('second tail', implode('', $bodies));
    }

    public function testSmallWritesAreBatchedUpToTheChunkSize(): void
    {
        $this->sender->chunkSize = 1000;
        $response = new StreamedResponse(static function (): void {
            for ($i = 0; $i < 9; $i++) {
                echo str_repeat('x', 400);
            }
        });

        $this->sender->send($response);

        $sizes = [];
        do {
            $frame = $this->loop->receive();
            $sizes[] = strlen($frame->payload) - ($frame->options[0] ?? 0);
        } while (($frame->byte10 & Frame::STREAM) !== 0);
        self::assertSame([1200, 1200, 1200, 0], $sizes, 'a frame once 1000 bytes are waiting, then the end');
    }

    public function testBinaryFileResponse(): void
    {
        $file = (string) tempnam(sys_get_temp_dir(), 'download');
        file_put_contents($file, str_repeat('0123456789', 1000));
        try {
            $response = new BinaryFileResponse($file);
            $response->prepare(\Symfony\Component\HttpFoundation\Request::create('/'));
            $this->sender->send($response);

            $first = $this->loop->receiveHttpResponse();
            self::assertSame('10000', $first['context']['headers']['Content-Length'][0]);
            $body = $first['body'];
            $frame = $first['frame'];
            while (($frame->byte10 & Frame::STREAM) !== 0) {
                $frame = $this->loop->receive();
                $body .= substr($frame->payload, $frame->options[0] ?? 0);
            }
            self::assertSame(str_repeat('0123456789', 1000), $body);
        } finally {
            @unlink($file);
        }
    }
}
