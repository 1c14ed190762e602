<?php

declare(strict_types=1);

namespace Pacer\Tests\Goridge;

use Pacer\Goridge\Exception\FrameException;
use Pacer\Goridge\Frame;
use PHPUnit\Framework\TestCase;

/**
 * The golden frames shared with the Rust codec (testdata/goridge/frames.json): every good
 * frame decodes to its listed fields and re-encodes byte for byte; every bad one is refused
 * with the named error kind.
 */
final class GoldenFramesTest extends TestCase
{
    private const FILE = __DIR__ . '/../../../testdata/goridge/frames.json';

    /** @return array<string, mixed> */
    private static function golden(): array
    {
        $json = file_get_contents(self::FILE);
        self::assertIsString($json, 'golden frames file is readable');

        return json_decode($json, true, 512, JSON_THROW_ON_ERROR);
    }

    /** @return iterable<string, array{array<string, mixed>}> */
    public static function goodFrames(): iterable
    {
        foreach (self::golden()['frames'] as $frame) {
            yield $frame['name'] => [$frame];
        }
    }

    /** @return iterable<string, array{array<string, mixed>}> */
    public static function badFrames(): iterable
    {
        foreach (self::golden()['bad'] as $frame) {
            yield $frame['name'] => [$frame];
        }
    }

    public function testTheFileHasTheExpectedFrames(): void
    {
        $golden = self::golden();
        // Guards against an emptied file turning the data-provider tests into no-ops.
        self::assertGreaterThanOrEqual(13, count($golden['frames']));
        self::assertGreaterThanOrEqual(3, count($golden['bad']));
    }

    /** @dataProvider goodFrames */
    public function testDecodesAndReEncodesByteForByte(array $golden): void
    {
        $bytes = hex2bin($golden['hex']);
        $payload = array_key_exists('payload', $golden) ? $golden['payload'] : hex2bin($golden['payload_hex']);

        $frame = Frame::decode($bytes);

        self::assertSame($golden['flags'], $frame->flags, 'flags');
        self::assertSame($golden['byte10'], $frame->byte10, 'byte10');
        self::assertSame($golden['byte11'], $frame->byte11, 'byte11');
        self::assertSame($golden['options'], $frame->options, 'options');
        self::assertSame($payload, $frame->payload, 'payload');

        $fresh = new Frame($payload, $golden['options'], $golden['flags'], $golden['byte10'], $golden['byte11']);
        self::assertSame($golden['hex'], bin2hex($fresh->encode()), 'encoding the listed fields');
        self::assertSame($golden['hex'], bin2hex($frame->encode()), 're-encoding the decoded frame');
    }

    /** @dataProvider badFrames */
    public function testRefusesBadFrames(array $golden): void
    {
        $bytes = hex2bin($golden['hex']);
        try {
            Frame::decode($bytes);
            self::fail('decoding ' . $golden['name'] . ' must fail');
        } catch (FrameException $e) {
            self::assertSame($golden['error'], $e->kind);
            // The message quotes what was received, so a CRC error caused by printed text is obvious.
            self::assertStringContainsString(strtoupper(substr($golden['hex'], 0, 8)), str_replace(' ', '', $e->getMessage()));
        }
    }
}
