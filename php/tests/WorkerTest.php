<?php

declare(strict_types=1);

namespace Pacer\Tests;

use Pacer\Environment;
use Pacer\Exception\WorkerException;
use Pacer\Goridge\Frame;
use Pacer\Goridge\SocketRelay;
use Pacer\Goridge\StreamRelay;
use Pacer\Payload;
use Pacer\Tests\Support\Loopback;
use Pacer\Worker;
use PHPUnit\Framework\TestCase;

/** Worker behaviour that needs no second process (see WorkerProcessTest for the rest). */
final class WorkerTest extends TestCase
{
    public function testEnvironmentDefaults(): void
    {
        $env = new Environment([]);
        self::assertSame('pipes', $env->getRelayAddress());
        self::assertSame('tcp://127.0.0.1:6001', $env->getRPCAddress());
        self::assertSame('', $env->getMode());
        self::assertSame('', $env->getVersion());

        $env = new Environment(['RR_RELAY' => 'unix:///run/rr.sock', 'RR_MODE' => 'http', 'RR_RPC' => 'tcp://10.0.0.1:7000', 'RR_VERSION' => '2025.1.15']);
        self::assertSame('unix:///run/rr.sock', $env->getRelayAddress());
        self::assertSame(Environment::MODE_HTTP, $env->getMode());
        self::assertSame('tcp://10.0.0.1:7000', $env->getRPCAddress());
        self::assertSame('2025.1.15', $env->getVersion());
    }

    public function testEnvironmentFromGlobalsReadsTheProcessEnvironment(): void
    {
        putenv('RR_MODE=jobs');
        try {
            self::assertSame('jobs', Environment::fromGlobals()->getMode());
        } finally {
            putenv('RR_MODE');
        }
    }

    public function testCreateUsesTheRelayFromTheEnvironment(): void
    {
        $worker = Worker::create(false, new Environment(['RR_RELAY' => 'tcp://127.0.0.1:1']));
        self::assertInstanceOf(SocketRelay::class, $worker->getRelay());
        self::assertSame('tcp://127.0.0.1:1', (string) $worker->getRelay());
        self::assertInstanceOf(StreamRelay::class, Worker::create(false, new Environment([]))->getRelay());
    }

    public function testSplitsContextAndBody(): void
    {
        $loop = new Loopback();
        $loop->server->send(new Frame('{"a":1}body bytes', [7], Frame::CODEC_JSON));
        $loop->server->send(new Frame('only body', [0]));
        $loop->server->send(new Frame('no option at all'));

        $first = $loop->worker->waitPayload();
        self::assertSame(['{"a":1}', 'body bytes', true], [$first->header, $first->body, $first->eos]);
        self::assertSame('{"a":1}', $first->context());
        $second = $loop->worker->waitPayload();
        self::assertSame(['', 'only body'], [$second->header, $second->body]);
        $third = $loop->worker->waitPayload();
        self::assertSame(['', 'no option at all'], [$third->header, $third->body]);
    }

    public function testContextLongerThanThePayloadIsRefused(): void
    {
        $loop = new Loopback();
        $loop->server->send(new Frame('short', [6]));

        $this->expectException(WorkerException::class);
        $this->expectExceptionMessage('context length 6 exceeds the payload length 5');
        $loop->worker->waitPayload();
    }

    public function testPidHandshakeIsAnsweredInsideWaitPayload(): void
    {
        $loop = new Loopback();
        $loop->server->send(new Frame('{"pid":4242}', [], Frame::CONTROL | Frame::CODEC_JSON));
        $loop->server->send(new Frame('ctxbody', [3]));

        $payload = $loop->worker->waitPayload();

        self::assertSame('body', $payload->body);
        $reply = $loop->receive();
        self::assertSame(Frame::CONTROL, $reply->flags);
        self::assertSame([], $reply->options);
        self::assertSame('{"pid":' . getmypid() . '}', $reply->payload);
    }

    /** @return iterable<string, array{string, string}> */
    public static function badControls(): iterable
    {
        yield 'unknown command' => ['{"reload":true}', 'undefined control package'];
        yield 'falsy pid' => ['{"pid":0}', 'undefined control package'];
        yield 'not JSON' => ['pid please', 'JSON payload expected'];
        yield 'not an object' => ['42', 'JSON object expected'];
    }

    /** @dataProvider badControls */
    public function testOtherControlFramesAreErrors(string $payload, string $message): void
    {
        $loop = new Loopback();
        $loop->server->send(new Frame($payload, [], Frame::CONTROL | Frame::CODEC_JSON));

        $this->expectException(WorkerException::class);
        $this->expectExceptionMessage($message);
        $loop->worker->waitPayload();
    }

    public function testRespondFlagsAndStreamBit(): void
    {
        $loop = new Loopback();
        $loop->worker->respond(new Payload('b', 'ctx'));
        $loop->worker->respond(new Payload('b', 'ctx'), Frame::CODEC_JSON);
        $loop->worker->respond(new Payload('part', '', false), Frame::CODEC_PROTO);

        $plain = $loop->receive();
        self::assertSame([0, 0, [3], 'ctxb'], [$plain->flags, $plain->byte10, $plain->options, $plain->payload]);
        self::assertSame(Frame::CODEC_JSON, $loop->receive()->flags);
        $part = $loop->receive();
        self::assertSame([Frame::CODEC_PROTO, Frame::STREAM], [$part->flags, $part->byte10]);
    }

    public function testErrorAndStopFrames(): void
    {
        $loop = new Loopback();
        $loop->worker->error('boom');
        $loop->worker->stop();

        self::assertSame('134004000000881e11e30000626f6f6d', bin2hex($loop->receive()->encode()));
        self::assertSame('14000d000000f339efdb00000d0000007b2273746f70223a747275657d', bin2hex($loop->receive()->encode()));
    }

    public function testStopPolledBetweenChunksEndsTheStream(): void
    {
        $loop = new Loopback();
        $finally = false;
        $produced = 0;
        $chunks = (static function () use (&$finally, &$produced) {
            try {
                for ($i = 1; $i <= 4; $i++) {
                    $produced++;
                    yield "c$i";
                }
            } finally {
                $finally = true;
            }
        })();
        // The STOP is already waiting when the first chunk has been sent.
        $loop->server->send(new Frame('', [], 0, Frame::STOP));

        self::assertFalse($loop->worker->respondStream($chunks, 'H'));

        self::assertSame(1, $produced, 'nothing more is produced after the STOP');
        self::assertTrue($finally, 'the generator was closed (StreamStoppedException thrown in)');
        $first = $loop->receive();
        self::assertSame(['Hc1', Frame::STREAM], [$first->payload, $first->byte10]);
        $end = $loop->receive();
        self::assertSame(['', 0, [0], 0], [$end->payload, $end->byte10, $end->options, $end->flags]);
    }

    public function testDataFramesArrivingDuringAStreamAreKeptForLater(): void
    {
        $loop = new Loopback();
        $loop->server->send(new Frame('{"stop":true}', [], Frame::CONTROL | Frame::CODEC_JSON));

        self::assertTrue($loop->worker->respondStream(['x', 'y']));
        self::assertNull($loop->worker->waitPayload(), 'the stop command seen while streaming still ends the loop');
    }

    /** @return iterable<string, array{bool, string, string}> */
    public static function interception(): iterable
    {
        yield 'intercepted (default)' => [true, '', 'to stderr too'];
        yield 'not intercepted' => [false, 'to stderr too', ''];
    }

    /** @dataProvider interception */
    public function testEchoIsInterceptedWhenAsked(bool $intercept, string $expectedStdout, string $expectedStderr): void
    {
        // In a child process: the output buffer must send echo to STDERR, not STDOUT.
        $script = sprintf(
            'require %s; new Pacer\Worker(Pacer\Goridge\Relay::create("pipes"), %s); echo "to stderr"; print " too";',
            var_export(__DIR__ . '/../autoload.php', true),
            var_export($intercept, true),
        );
        $proc = proc_open([PHP_BINARY, '-r', $script], [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes);
        $stdout = stream_get_contents($pipes[1]);
        $stderr = stream_get_contents($pipes[2]);
        proc_close($proc);

        self::assertSame($expectedStdout, $stdout);
        self::assertSame($expectedStderr, $stderr);
    }
}
