<?php

declare(strict_types=1);

namespace Pacer\Tests\Goridge;

use Pacer\Goridge\Exception\FrameException;
use Pacer\Goridge\Exception\RelayFactoryException;
use Pacer\Goridge\Exception\TransportException;
use Pacer\Goridge\Frame;
use Pacer\Goridge\Relay;
use Pacer\Goridge\SocketRelay;
use Pacer\Goridge\StreamRelay;
use PHPUnit\Framework\TestCase;

final class RelayTest extends TestCase
{
    public function testCreateUnderstandsEveryAddressForm(): void
    {
        self::assertInstanceOf(StreamRelay::class, Relay::create('pipes'));
        self::assertInstanceOf(StreamRelay::class, Relay::create('pipes://stdin:stdout'));
        $tcp = Relay::create('tcp://127.0.0.1:6001');
        self::assertInstanceOf(SocketRelay::class, $tcp);
        self::assertSame('tcp://127.0.0.1:6001', (string) $tcp);
        self::assertFalse($tcp->isConnected(), 'socket relays connect lazily');
        self::assertInstanceOf(SocketRelay::class, Relay::create('tcp://[::1]:6001'));
        self::assertSame('unix:///tmp/rr.sock', (string) Relay::create('unix:///tmp/rr.sock'));
    }

    /** @return iterable<string, array{string}> */
    public static function badAddresses(): iterable
    {
        foreach (['', 'pipe', 'http://x', 'tcp://host', 'tcp://host:99999', 'tcp://:80', 'unix://', 'pipes://stdin'] as $dsn) {
            yield $dsn === '' ? 'empty' : $dsn => [$dsn];
        }
    }

    /** @dataProvider badAddresses */
    public function testCreateRefusesBadAddresses(string $dsn): void
    {
        $this->expectException(RelayFactoryException::class);
        Relay::create($dsn);
    }

    public function testSocketRelayConnectsOnFirstUseOnly(): void
    {
        $server = stream_socket_server('tcp://127.0.0.1:0');
        $relay = new SocketRelay('tcp://' . stream_socket_get_name($server, false));

        self::assertFalse(@stream_socket_accept($server, 0.1), 'nothing connects at construction');

        self::assertFalse($relay->hasFrame(), 'polling connects, and nothing has arrived');
        $conn = stream_socket_accept($server, 1);
        self::assertIsResource($conn);
        $peer = new StreamRelay($conn, $conn);

        $peer->send(new Frame('ping?', [1, 2], Frame::CODEC_RAW));
        self::assertTrue($relay->hasFrame(1.0));
        $frame = $relay->waitFrame();
        self::assertSame([1, 2], $frame->options);
        self::assertSame('ping?', $frame->payload);

        $relay->send(new Frame('pong!', [], Frame::CONTROL));
        self::assertSame('pong!', $peer->waitFrame()->payload);

        fclose($conn);
        $this->expectException(TransportException::class);
        $this->expectExceptionMessage('EOF');
        $relay->waitFrame();
    }

    public function testConnectFailureIsATransportError(): void
    {
        $server = stream_socket_server('tcp://127.0.0.1:0');
        $address = 'tcp://' . stream_socket_get_name($server, false);
        fclose($server);

        $this->expectException(TransportException::class);
        $this->expectExceptionMessage("Unable to connect to relay $address");
        (new SocketRelay($address, 1.0))->send(new Frame('x'));
    }

    public function testReadsLoopOverShortReads(): void
    {
        // A separate process dribbles a 3-option frame a few bytes at a time.
        $frame = new Frame(str_repeat('payload!', 100), [7, 8, 9], Frame::CODEC_JSON, Frame::STREAM);
        $hex = bin2hex($frame->encode());
        $script = sprintf(
            '$b = hex2bin("%s"); foreach (str_split($b, 5) as $p) { fwrite(STDOUT, $p); fflush(STDOUT); usleep(300); }',
            $hex,
        );
        $proc = proc_open([PHP_BINARY, '-r', $script], [0 => ['pipe', 'r'], 1 => ['pipe', 'w']], $pipes);
        $relay = new StreamRelay($pipes[1], $pipes[0]);

        $got = $relay->waitFrame();

        self::assertSame([7, 8, 9], $got->options);
        self::assertSame($frame->payload, $got->payload);
        self::assertSame(Frame::STREAM, $got->byte10);
        proc_close($proc);
    }

    public function testEachFrameIsWrittenWithOneWrite(): void
    {
        // A PHP reader of the pipes relay takes the header with one fread(12); a frame
        // written in pieces could reach it split. The recording stream sees every write.
        RecordingStream::$writes = [];
        stream_wrapper_register('pacer-record', RecordingStream::class);
        try {
            $out = fopen('pacer-record://out', 'wb');
            $relay = new StreamRelay(fopen('php://memory', 'rb'), $out);
            $first = new Frame('{"status":200,"headers":{}}hello', [27], Frame::CODEC_JSON, Frame::STREAM);
            $relay->send($first);
            $relay->send(new Frame('boom', [], Frame::ERROR));
        } finally {
            stream_wrapper_unregister('pacer-record');
        }

        self::assertSame([$first->encode(), hex2bin('134004000000881e11e30000626f6f6d')], RecordingStream::$writes);
    }

    public function testBadHeaderErrorQuotesWhatFollowsIt(): void
    {
        $pair = stream_socket_pair(STREAM_PF_UNIX, STREAM_SOCK_STREAM, STREAM_IPPROTO_IP);
        fwrite($pair[1], "PHP Warning:  Undefined variable \$x in /app/worker.php on line 3\n");
        $relay = new StreamRelay($pair[0], $pair[0]);
        try {
            $relay->waitFrame();
            self::fail('text is not a frame');
        } catch (FrameException $e) {
            self::assertSame(FrameException::CRC, $e->kind);
            self::assertStringContainsString('on line 3\n', $e->getMessage(), 'quotes beyond the 12 header bytes');
            self::assertStringEndsWith("line 3\n", $e->received);
        }
    }

    public function testHasFrameOnPipes(): void
    {
        $proc = proc_open([PHP_BINARY, '-r', 'usleep(200000); fwrite(STDOUT, hex2bin("13000000000096d180340800"));'], [0 => ['pipe', 'r'], 1 => ['pipe', 'w']], $pipes);
        $relay = new StreamRelay($pipes[1], $pipes[0]);

        self::assertFalse($relay->hasFrame(), 'nothing yet, and polling does not block');
        self::assertTrue($relay->hasFrame(5.0));
        self::assertSame(Frame::PONG, $relay->waitFrame()->byte10);
        proc_close($proc);
    }
}
