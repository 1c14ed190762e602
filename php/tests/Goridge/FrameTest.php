<?php

declare(strict_types=1);

namespace Pacer\Tests\Goridge;

use Pacer\Goridge\Exception\FrameException;
use Pacer\Goridge\Frame;
use PHPUnit\Framework\TestCase;

final class FrameTest extends TestCase
{
    public function testFlagAndStreamByteValuesMatchTheProtocol(): void
    {
        self::assertSame(
            [0x01, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80],
            [Frame::CONTROL, Frame::CODEC_RAW, Frame::CODEC_JSON, Frame::CODEC_MSGPACK, Frame::CODEC_GOB, Frame::ERROR, Frame::CODEC_PROTO],
        );
        self::assertSame([0x01, 0x02, 0x04, 0x08], [Frame::STREAM, Frame::STOP, Frame::PING, Frame::PONG]);
        self::assertSame([0x01, 0x02, 0x04, 0x08], [Frame::BYTE10_STREAM, Frame::BYTE10_STOP, Frame::BYTE10_PING, Frame::BYTE10_PONG]);
    }

    public function testHeaderLayout(): void
    {
        $bytes = (new Frame('abc', [7], Frame::CODEC_JSON, Frame::STREAM, 0x42))->encode();

        self::assertSame(16 + 3, strlen($bytes));
        self::assertSame(0x14, ord($bytes[0]), 'version 1 in the high nibble, HL 4 in the low one');
        self::assertSame(Frame::CODEC_JSON, ord($bytes[1]));
        self::assertSame(3, unpack('V', substr($bytes, 2, 4))[1], 'payload length, little-endian');
        self::assertSame(crc32(substr($bytes, 0, 6)), unpack('V', substr($bytes, 6, 4))[1], 'CRC-32 over bytes 0..5');
        self::assertSame(Frame::STREAM, ord($bytes[10]));
        self::assertSame(0x42, ord($bytes[11]));
        self::assertSame(7, unpack('V', substr($bytes, 12, 4))[1]);
        self::assertSame('abc', substr($bytes, 16));
    }

    /** @return iterable<string, array{int}> */
    public static function optionCounts(): iterable
    {
        foreach ([0, 1, 2, 5, 9, 10] as $n) {
            yield "$n options" => [$n];
        }
    }

    /** @dataProvider optionCounts */
    public function testRoundTripsEveryOptionCountUpToTen(int $count): void
    {
        $options = $count === 0 ? [] : range(0xFFFFFFFF - $count + 1, 0xFFFFFFFF);
        $frame = new Frame("payload\0with\xffbytes", $options, Frame::CODEC_RAW | Frame::ERROR, Frame::PING | Frame::STREAM);
        $bytes = $frame->encode();

        self::assertSame(3 + $count, ord($bytes[0]) & 0x0F);
        self::assertSame(4 * (3 + $count) + strlen($frame->payload), strlen($bytes));

        $decoded = Frame::decode($bytes);
        self::assertSame($options, $decoded->options);
        self::assertSame($frame->payload, $decoded->payload);
        self::assertSame($frame->flags, $decoded->flags);
        self::assertSame($frame->byte10, $decoded->byte10);

        $header = Frame::parseHeader(substr($bytes, 0, 12));
        self::assertSame(3 + $count, $header->headerWords);
        self::assertSame($count * 4 + strlen($frame->payload), $header->remainingLength());
    }

    public function testRefusesElevenOptions(): void
    {
        $this->expectException(FrameException::class);
        $this->expectExceptionMessage('at most 10 options');
        (new Frame('', range(1, 11)))->encode();
    }

    public function testRefusesOptionsOutsideUint32(): void
    {
        foreach ([-1, 0x100000000] as $bad) {
            try {
                (new Frame('', [$bad]))->encode();
                self::fail("option $bad must be refused");
            } catch (FrameException $e) {
                self::assertSame(FrameException::INVALID, $e->kind);
            }
        }
    }

    /** @return iterable<string, array{int, string}> */
    public static function badHeaderLengths(): iterable
    {
        foreach ([0, 1, 2, 14, 15] as $hl) {
            $head = pack('CCV', 0x10 | $hl, 0, 0);
            yield "HL $hl" => [$hl, $head . pack('VCC', crc32($head), 0, 0)];
        }
    }

    /** @dataProvider badHeaderLengths */
    public function testRefusesHeaderLengthsOutsideThreeToThirteen(int $hl, string $header): void
    {
        try {
            Frame::parseHeader($header);
            self::fail("HL $hl must be refused");
        } catch (FrameException $e) {
            self::assertSame(FrameException::HEADER_LENGTH, $e->kind);
            self::assertStringContainsString("$hl words", $e->getMessage());
        }
    }

    public function testHeaderLengthThirteenIsAccepted(): void
    {
        $head = pack('CCV', 0x1D, 0, 0);
        $header = Frame::parseHeader($head . pack('VCC', crc32($head), 0, 0));
        self::assertSame(13, $header->headerWords);
        self::assertSame(10, $header->optionCount());
        self::assertSame(40, $header->remainingLength());
    }

    public function testCrcErrorQuotesPrintedText(): void
    {
        try {
            Frame::parseHeader("Hello world!\n");
            self::fail('text is not a header');
        } catch (FrameException $e) {
            self::assertSame(FrameException::CRC, $e->kind);
            self::assertStringContainsString('"Hello world!', $e->getMessage());
            self::assertStringContainsString('48 65 6C 6C 6F', $e->getMessage());
            self::assertStringContainsString('STDOUT', $e->getMessage());
        }
    }

    public function testCouldNotOpenIsRecognisedBeforeTheCrc(): void
    {
        try {
            Frame::decode("Could not open input file: worker.php\n");
            self::fail('must be refused');
        } catch (FrameException $e) {
            self::assertSame(FrameException::COULD_NOT_OPEN, $e->kind);
            self::assertStringContainsString('worker script was not found', $e->getMessage());
        }
    }

    public function testWithReceivedQuotesTheWholeText(): void
    {
        try {
            Frame::parseHeader('Could not open input file: a.php');
        } catch (FrameException $e) {
            $full = $e->withReceived("Could not open input file: a.php\n");
            self::assertSame(FrameException::COULD_NOT_OPEN, $full->kind);
            self::assertStringContainsString('Could not open input file: a.php\n', $full->getMessage());
            self::assertSame(1, substr_count($full->getMessage(), 'Received'));

            return;
        }
        self::fail('must be refused');
    }

    public function testTruncatedFramesAreRefused(): void
    {
        $bytes = (new Frame('0123456789', [3]))->encode();
        foreach ([5, 12, 15, strlen($bytes) - 1] as $cut) {
            try {
                Frame::decode(substr($bytes, 0, $cut));
                self::fail("a frame cut at $cut bytes must be refused");
            } catch (FrameException $e) {
                self::assertSame(FrameException::TRUNCATED, $e->kind);
            }
        }
    }

    public function testCrcDoesNotCoverTheStreamByteOrOptions(): void
    {
        $a = (new Frame('', [1], 0, Frame::STOP))->encode();
        $b = (new Frame('', [2], 0, Frame::PONG))->encode();
        self::assertSame(substr($a, 6, 4), substr($b, 6, 4));
    }
}
