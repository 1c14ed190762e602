<?php

declare(strict_types=1);

namespace Pacer\Tests\RPC;

use Pacer\Goridge\Frame;
use Pacer\Goridge\RelayInterface;
use Pacer\RPC\Codec\RawCodec;
use Pacer\RPC\Exception\CodecException;
use Pacer\RPC\Exception\RPCException;
use Pacer\RPC\Exception\ServiceException;
use Pacer\RPC\RPC;
use Pacer\Tests\Support\RpcServer;
use Pacer\Tests\Support\WithRpcServer;
use PHPUnit\Framework\TestCase;

final class RPCTest extends TestCase
{
    use WithRpcServer;

    private function rpc(): RPC
    {
        return RPC::create(self::$server->address);
    }

    public function testRequestFrameMatchesTheGoldenBytes(): void
    {
        $relay = new class () implements RelayInterface {
            /** @var list<Frame> */
            public array $sent = [];

            public function send(Frame $frame): void
            {
                $this->sent[] = $frame;
            }

            public function waitFrame(): Frame
            {
                $request = end($this->sent);

                return new Frame('resetter.Resettrue', [$request->options[0], 14], Frame::CODEC_JSON);
            }

            public function hasFrame(float $timeout = 0.0): bool
            {
                return true;
            }

            public function close(): void
            {
            }

            public function __toString(): string
            {
                return 'fake';
            }
        };

        self::assertTrue((new RPC($relay))->call('resetter.Reset', 'http'));

        $sent = $relay->sent[0];
        // Sequence numbers are process-wide; put 1 in to compare with docs/wire-protocol.md 1.5 h.
        $asFirstCall = new Frame($sent->payload, [1, $sent->options[1]], $sent->flags, $sent->byte10);
        self::assertSame(
            '15081400000082b9d20d0000010000000e00000072657365747465722e5265736574226874747022',
            bin2hex($asFirstCall->encode()),
        );
    }

    public function testJsonCallRoundTrip(): void
    {
        $rpc = $this->rpc();
        $argument = ['name' => 'x', 'value' => 1.0, 'list' => [1, 2, 3], 'nested' => ['a' => null]];

        self::assertSame($argument, $rpc->call('test.Echo', $argument));
        self::assertSame('plain', $rpc->call('test.Echo', 'plain'));

        $calls = $rpc->call('test.Calls', null);
        self::assertSame(['test.Echo', Frame::CODEC_JSON, '{"name":"x","value":1.0,"list":[1,2,3],"nested":{"a":null}}'], $calls[0]);
    }

    public function testRawCodec(): void
    {
        $rpc = $this->rpc()->withCodec(new RawCodec());
        $bytes = random_bytes(300);

        self::assertSame($bytes, $rpc->call('test.Echo', $bytes));
        $calls = $this->rpc()->call('test.Calls', null);
        self::assertSame(Frame::CODEC_RAW, end($calls)[1]);

        $this->expectException(CodecException::class);
        $rpc->call('test.Echo', ['not a string']);
    }

    public function testErrorReplyBecomesAServiceException(): void
    {
        $rpc = $this->rpc();
        try {
            $rpc->call('test.Fail', true);
            self::fail('an ERROR reply must throw');
        } catch (ServiceException $e) {
            self::assertSame("Error 'something broke' on " . self::$server->address, $e->getMessage());
        }
        self::assertSame('still works', $rpc->call('test.Echo', 'still works'), 'the connection stays usable');

        $this->expectException(ServiceException::class);
        $this->expectExceptionMessage("can't find service nope.Nope");
        $rpc->call('nope.Nope', 1);
    }

    public function testReplyWithAnotherSequenceIsRefused(): void
    {
        $this->expectException(RPCException::class);
        $this->expectExceptionMessageMatches('/sequence mismatch on test\.WrongSeq: sent #(\d+), received #\d+/');
        $this->rpc()->call('test.WrongSeq', 1);
    }

    public function testReplyWithoutOptionsIsRefused(): void
    {
        $this->expectException(RPCException::class);
        $this->expectExceptionMessage('expected 2 options');
        $this->rpc()->call('test.NoOptions', 1);
    }

    public function testServicePrefix(): void
    {
        $rpc = $this->rpc();
        self::assertTrue($rpc->withServicePrefix('resetter')->call('reset', 'http'));
        $calls = $rpc->call('test.Calls', null);
        self::assertSame(['resetter.Reset', Frame::CODEC_JSON, '"http"'], end($calls));
    }

    public function testSequenceIncreasesPerCall(): void
    {
        $relay = new class () implements RelayInterface {
            /** @var list<int> */
            public array $seqs = [];

            public function send(Frame $frame): void
            {
                $this->seqs[] = $frame->options[0];
            }

            public function waitFrame(): Frame
            {
                return new Frame('m1', [end($this->seqs), 1], Frame::CODEC_JSON);
            }

            public function hasFrame(float $timeout = 0.0): bool
            {
                return true;
            }

            public function close(): void
            {
            }

            public function __toString(): string
            {
                return 'fake';
            }
        };
        $rpc = new RPC($relay);
        $rpc->call('m', null);
        $rpc->withServicePrefix('x')->call('m', null);
        $rpc->call('m', null);

        self::assertSame([$relay->seqs[0], $relay->seqs[0] + 1, $relay->seqs[0] + 2], $relay->seqs);
    }

    public function testUnixSocket(): void
    {
        $server = new RpcServer('unix://' . sys_get_temp_dir() . '/pacer-rpc-' . bin2hex(random_bytes(4)) . '.sock');
        self::assertSame([1, 2], RPC::create($server->address)->call('test.Echo', [1, 2]));
    }
}
