<?php

declare(strict_types=1);

namespace Pacer\Tests;

use Pacer\Goridge\Frame;
use Pacer\Tests\Support\WorkerProcess;
use PHPUnit\Framework\TestCase;

/**
 * The same worker over socket relays: the test listens, sets RR_RELAY, starts ops.php and
 * accepts its connection; the worker must not send anything before the server speaks.
 */
final class WorkerSocketTest extends TestCase
{
    private const OPS = WorkerProcess::WORKERS . '/ops.php';

    /** @return iterable<string, array{'tcp'|'unix'}> */
    public static function relays(): iterable
    {
        yield 'tcp' => ['tcp'];
        yield 'unix' => ['unix'];
    }

    /** @dataProvider relays */
    public function testFullSessionOverSocket(string $kind): void
    {
        $worker = WorkerProcess::socket(self::OPS, $kind);
        self::assertTrue($worker->isSilentFor(0.2), 'the server speaks first');
        $worker->handshake();

        $worker->sendRequest('{"op":"echo"}', 'over a socket');
        $reply = $worker->receive();
        self::assertSame(0, $reply->flags);
        self::assertSame([13], $reply->options);
        self::assertSame('{"op":"echo"}over a socket', $reply->payload);

        $body = random_bytes(8 << 20);
        $worker->sendRequest('{"op":"echo"}', $body);
        self::assertTrue(substr($worker->receive()->payload, 13) === $body, '8 MiB round trip');

        $worker->sendRequest('{"op":"error"}', 'boom');
        $error = $worker->receive();
        self::assertSame(Frame::ERROR, $error->flags);
        self::assertSame('boom', $error->payload);

        $worker->sendRequest('{"op":"print"}', 'printed');
        self::assertSame('{"op":"print"}printed', $worker->receive()->payload);

        self::assertSame(0, $worker->stop());
        self::assertSame('', $worker->stdout(), 'nothing reached the real STDOUT');
        self::assertStringContainsString('printed', $worker->stderr());
    }

    /** @dataProvider relays */
    public function testStreamingOverSocket(string $kind): void
    {
        $worker = WorkerProcess::socket(self::OPS, $kind);
        $worker->handshake();
        $worker->sendRequest('{"op":"stream","chunks":7}');

        $bits = [];
        do {
            $frame = $worker->receive();
            $bits[] = $frame->byte10;
            if ($frame->byte10 & Frame::PING) {
                self::assertTrue($worker->isSilentFor(0.2), 'waits for the PONG');
                $worker->send(new Frame('', [], 0, Frame::PONG));
            }
        } while ($frame->byte10 & Frame::STREAM);

        self::assertSame([1, 1, 1, 1, 1, 5, 1, 0], $bits);

        // Server STOP at the PING.
        $worker->sendRequest('{"op":"stream","chunks":100}');
        for ($i = 1; $i <= 6; $i++) {
            $frame = $worker->receive();
        }
        self::assertSame(Frame::STREAM | Frame::PING, $frame->byte10);
        $worker->send(new Frame('', [], 0, Frame::STOP));
        $end = $worker->receive();
        self::assertSame([0, [0], ''], [$end->byte10, $end->options, $end->payload]);

        self::assertSame(0, $worker->stop());
    }

    public function testIdleLongerThanTheSocketTimeout(): void
    {
        // PHP socket reads time out after default_socket_timeout; an idle worker must keep
        // waiting for its next request instead of failing.
        $worker = WorkerProcess::socket(self::OPS, 'tcp', [], ['-d', 'default_socket_timeout=1']);
        $worker->handshake();
        self::assertTrue($worker->isSilentFor(2.5));
        self::assertTrue($worker->isRunning(), 'still alive after idling past the timeout');

        $worker->sendRequest('{"op":"echo"}', 'after idling');
        self::assertSame('{"op":"echo"}after idling', $worker->receive()->payload);
        self::assertSame(0, $worker->stop());
    }
}
