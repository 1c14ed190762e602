<?php

declare(strict_types=1);

namespace Pacer\Tests;

use Pacer\Goridge\Exception\FrameException;
use Pacer\Goridge\Exception\TransportException;
use Pacer\Goridge\Frame;
use Pacer\Tests\Support\WorkerProcess;
use PHPUnit\Framework\TestCase;

/**
 * The test plays the server: it starts testdata/workers/ops.php (a real PHP process using
 * this library) on the pipes relay and checks every frame it gets back.
 */
final class WorkerProcessTest extends TestCase
{
    private const OPS = WorkerProcess::WORKERS . '/ops.php';

    private static function golden(string $name): string
    {
        $golden = json_decode((string) file_get_contents(__DIR__ . '/../../testdata/goridge/frames.json'), true);
        foreach ($golden['frames'] as $frame) {
            if ($frame['name'] === $name) {
                return $frame['hex'];
            }
        }
        self::fail("no golden frame $name");
    }

    private function ready(array $env = []): WorkerProcess
    {
        $worker = WorkerProcess::pipes(self::OPS, $env);
        $worker->handshake();

        return $worker;
    }

    public function testHandshakeEchoAndStopCommand(): void
    {
        $worker = $this->ready();

        $worker->sendRequest('{"op":"echo"}', 'hello');
        $reply = $worker->receive();
        self::assertSame(0, $reply->flags, 'responses carry no codec flag');
        self::assertSame([13], $reply->options, 'one option: the context length');
        self::assertSame(0, $reply->byte10);
        self::assertSame('{"op":"echo"}hello', $reply->payload);

        self::assertSame(0, $worker->stop(), 'a stop command ends the worker loop and the process exits 0');
    }

    public function testPipesRelayWithExplicitStreams(): void
    {
        $worker = $this->ready(['RR_RELAY' => 'pipes://stdin:stdout']);
        $worker->sendRequest('{"op":"echo"}', 'x');
        self::assertSame('{"op":"echo"}x', $worker->receive()->payload);
        self::assertSame(0, $worker->stop());
    }

    public function testHandshakeAcceptsAnyTruthyPid(): void
    {
        $worker = WorkerProcess::pipes(self::OPS);
        $worker->send(new Frame('{"pid":true}', [], Frame::CONTROL | Frame::CODEC_JSON));
        $reply = $worker->receive();
        self::assertSame(Frame::CONTROL, $reply->flags);
        self::assertSame('{"pid":' . $worker->pid() . '}', $reply->payload);
    }

    public function testEightMebibytePayloadRoundTrips(): void
    {
        $worker = $this->ready();
        $body = random_bytes(8 << 20);

        $worker->sendRequest('{"op":"echo"}', $body);
        $reply = $worker->receive();

        self::assertSame([13], $reply->options);
        self::assertSame(13 + (8 << 20), strlen($reply->payload));
        self::assertTrue(substr($reply->payload, 13) === $body, 'the 8 MiB body comes back unchanged');
        self::assertSame(0, $worker->stop());
    }

    public function testErrorFrameKeepsTheWorker(): void
    {
        $worker = $this->ready();

        $worker->sendRequest('{"op":"error"}', 'boom');
        $reply = $worker->receive();
        self::assertSame(self::golden('worker_error'), bin2hex($reply->encode()), 'flags ERROR, no options, message as payload');

        $worker->sendRequest('{"op":"pid"}');
        self::assertSame('{"op":"pid"}' . $worker->pid(), $worker->receive()->payload, 'the worker keeps serving');
    }

    public function testStopRequestFrame(): void
    {
        $worker = $this->ready();

        $worker->sendRequest('{"op":"stop"}');
        $reply = $worker->receive();
        self::assertSame(self::golden('worker_stop_request'), bin2hex($reply->encode()), 'data frame, context {"stop":true}, empty body');
        self::assertSame(0, $worker->stop(), 'after asking to be replaced it still obeys the stop command');
    }

    public function testStreamingWithPingAndPong(): void
    {
        $worker = $this->ready();
        $context = '{"op":"stream","chunks":12}';
        $worker->sendRequest($context);

        for ($i = 1; $i <= 12; $i++) {
            $frame = $worker->receive();
            self::assertSame("chunk-$i", substr($frame->payload, $i === 1 ? strlen($context) : 0), "frame $i body");
            self::assertSame($i === 1 ? [strlen($context)] : [0], $frame->options, 'the context goes with the first frame only');
            self::assertSame(0, $frame->flags);
            if ($i === 6 || $i === 11) {
                self::assertSame(Frame::STREAM | Frame::PING, $frame->byte10, "frame $i follows 5 frames: PING");
                if ($i === 6) {
                    self::assertSame(self::golden('worker_stream_ping'), bin2hex($frame->encode()));
                }
                self::assertTrue($worker->isSilentFor(0.3), 'after a PING the worker waits for the PONG');
                $worker->send(new Frame('', [], 0, Frame::PONG));
            } else {
                self::assertSame(Frame::STREAM, $frame->byte10, "frame $i: STREAM only");
            }
        }
        $last = $worker->receive();
        self::assertSame(0, $last->byte10, 'the final frame has no STREAM bit');
        self::assertSame([0], $last->options);
        self::assertSame('', $last->payload);

        $worker->sendRequest('{"op":"echo"}', 'after');
        self::assertSame('{"op":"echo"}after', $worker->receive()->payload);
        self::assertSame(0, $worker->stop());
    }

    public function testServerStopInsteadOfPong(): void
    {
        $worker = $this->ready();
        $worker->sendRequest('{"op":"stream","chunks":1000}');

        for ($i = 1; $i <= 6; $i++) {
            $frame = $worker->receive();
        }
        self::assertSame(Frame::STREAM | Frame::PING, $frame->byte10);
        $worker->send(new Frame('', [], 0, Frame::STOP));

        $end = $worker->receive();
        self::assertSame(0, $end->byte10, 'the stop is confirmed by an end-of-stream frame');
        self::assertSame(0, $end->flags);
        self::assertSame([0], $end->options);
        self::assertSame('', $end->payload);

        $worker->sendRequest('{"op":"echo"}', 'next');
        self::assertSame('{"op":"echo"}next', $worker->receive()->payload, 'the worker is ready for the next request');
    }

    public function testServerStopBetweenPingsIsNoticedBeforeTheNextChunk(): void
    {
        $worker = $this->ready();
        $worker->sendRequest('{"op":"stream","chunks":1000,"delay_ms":300}');

        $first = $worker->receive();
        self::assertSame(Frame::STREAM, $first->byte10);
        $worker->send(new Frame('', [], 0, Frame::STOP));

        $frames = 1;
        do {
            $frame = $worker->receive();
            $frames++;
        } while ($frame->byte10 & Frame::STREAM);

        self::assertLessThanOrEqual(3, $frames, 'the worker polls for STOP before producing each chunk');
        self::assertSame('', $frame->payload);
        self::assertSame([0], $frame->options);
    }

    public function testLateStreamControlFramesAreIgnored(): void
    {
        $worker = $this->ready();
        $worker->sendRequest('{"op":"stream","chunks":2}');
        self::assertSame(Frame::STREAM, $worker->receive()->byte10);
        self::assertSame(Frame::STREAM, $worker->receive()->byte10);
        self::assertSame(0, $worker->receive()->byte10);

        // A STOP or PONG that crossed the end of the stream must not be taken for a request.
        $worker->send(new Frame('', [], 0, Frame::STOP));
        $worker->send(new Frame('', [], 0, Frame::PONG));
        $worker->sendRequest('{"op":"echo"}', 'still here');
        self::assertSame('{"op":"echo"}still here', $worker->receive()->payload);
    }

    public function testEchoGoesToStderrNotToTheRelay(): void
    {
        $worker = $this->ready();
        $worker->sendRequest('{"op":"print"}', "printed by the app\n");
        self::assertSame("{\"op\":\"print\"}printed by the app\n", $worker->receive()->payload);
        $worker->sendRequest('{"op":"stderr"}', 'a log line');
        self::assertSame('{"op":"stderr"}a log line', $worker->receive()->payload);
        self::assertSame(0, $worker->stop());

        self::assertStringContainsString("printed by the app\n", $worker->stderr());
        self::assertStringContainsString("a log line\n", $worker->stderr());
    }

    public function testPrintingBeforeTheWorkerExistsIsAReportedCrcMismatch(): void
    {
        $worker = WorkerProcess::pipes(self::OPS, ['OPS_BOOT_ECHO' => "Hello from boot!\n"]);
        $worker->send(new Frame('{"pid":1}', [], Frame::CONTROL | Frame::CODEC_JSON));
        try {
            $worker->receive();
            self::fail('the printed text is not a frame');
        } catch (FrameException $e) {
            self::assertSame(FrameException::CRC, $e->kind);
            self::assertStringStartsWith("Hello from boot!\n", $e->received);
            self::assertStringContainsString('"Hello from boot!\n', $e->getMessage());
        }
    }

    public function testGarbageOnStdoutIsAReportedCrcMismatch(): void
    {
        $worker = $this->ready();
        $worker->sendRequest('{"op":"garbage"}', 'this is definitely not a frame');
        try {
            $worker->receive();
            self::fail('garbage is not a frame');
        } catch (FrameException $e) {
            self::assertSame(FrameException::CRC, $e->kind);
            self::assertStringContainsString('this is definitely not a frame', $e->getMessage());
        }
    }

    public function testMissingScriptIsReportedAsCouldNotOpen(): void
    {
        $worker = WorkerProcess::pipes('/nonexistent/worker.php');
        try {
            $worker->receive();
            self::fail('PHP printed an error, not a frame');
        } catch (FrameException $e) {
            self::assertSame(FrameException::COULD_NOT_OPEN, $e->kind);
            self::assertStringContainsString('/nonexistent/worker.php', $e->getMessage());
        }
    }

    public function testBootExitClosesTheRelay(): void
    {
        $worker = WorkerProcess::pipes(self::OPS, ['OPS_BOOT_EXIT' => '3']);
        self::assertSame(3, $worker->waitExit());
        $this->expectException(TransportException::class);
        $this->expectExceptionMessage('EOF');
        $worker->receive();
    }

    public function testNoHandshakeNeverAnswers(): void
    {
        $worker = WorkerProcess::pipes(self::OPS, ['OPS_NO_HANDSHAKE' => '1']);
        $worker->send(new Frame('{"pid":1}', [], Frame::CONTROL | Frame::CODEC_JSON));
        self::assertTrue($worker->isSilentFor(0.5));
        self::assertTrue($worker->isRunning());
    }

    public function testBootSleepDelaysTheHandshake(): void
    {
        $start = microtime(true);
        $this->ready(['OPS_BOOT_SLEEP_MS' => '300']);
        self::assertGreaterThanOrEqual(0.3, microtime(true) - $start);
    }

    public function testUnknownControlFrameIsFatal(): void
    {
        $worker = $this->ready();
        $worker->send(new Frame('{"hello":1}', [], Frame::CONTROL | Frame::CODEC_JSON));
        self::assertSame(255, $worker->waitExit());
        self::assertStringContainsString('undefined control package', $worker->stderr());
    }

    public function testExitMidJob(): void
    {
        $worker = $this->ready();
        $worker->sendRequest('{"op":"exit"}');
        self::assertSame(1, $worker->waitExit());
    }

    public function testSleepThenEcho(): void
    {
        $worker = $this->ready();
        $start = microtime(true);
        $worker->sendRequest('{"op":"sleep","ms":200}', 'z');
        self::assertSame('{"op":"sleep","ms":200}z', $worker->receive()->payload);
        self::assertGreaterThanOrEqual(0.2, microtime(true) - $start);
    }

    public function testLeakGrowsTheResidentSetAndMemoryReportsUsage(): void
    {
        $worker = $this->ready();
        $rss = [];
        foreach ([0, 8192] as $kb) {
            $ctx = json_encode(['op' => 'leak', 'kb' => $kb]);
            $worker->sendRequest($ctx);
            $rss[] = (int) substr($worker->receive()->payload, strlen($ctx));
        }
        self::assertGreaterThan($rss[0] + (7 << 20), $rss[1], 'RSS grew by about 8 MiB');

        $worker->sendRequest('{"op":"memory"}');
        self::assertGreaterThan(8 << 20, (int) substr($worker->receive()->payload, strlen('{"op":"memory"}')));
    }

    public function testForkLeavesAChildInTheWorkersProcessGroup(): void
    {
        $worker = $this->ready();
        $ctx = '{"op":"fork","secs":30}';
        $worker->sendRequest($ctx);
        $child = (int) substr($worker->receive()->payload, strlen($ctx));
        try {
            self::assertGreaterThan(0, $child);
            self::assertNotSame($worker->pid(), $child);
            self::assertTrue(posix_kill($child, 0), 'the child is alive');
            self::assertSame(posix_getpgid($worker->pid()), posix_getpgid($child), 'same process group as the worker');
        } finally {
            posix_kill($child, SIGKILL);
        }
    }
}
