<?php

declare(strict_types=1);

namespace Pacer\Tests\Jobs;

use Pacer\Internal\Protobuf;
use Pacer\Jobs\Internal\Proto;
use Pacer\Jobs\Stat;
use PHPUnit\Framework\TestCase;

/**
 * The hand-written `jobs.v1` encoder against testdata/jobs/proto-golden.json, the bytes
 * the Rust server's prost messages produce (sidecar/src/jobs/proto.rs checks the same file).
 */
final class ProtoTest extends TestCase
{
    /** @return array<string, mixed> */
    private static function golden(): array
    {
        return \json_decode((string) \file_get_contents(__DIR__ . '/../../../testdata/jobs/proto-golden.json'), true, 512, \JSON_THROW_ON_ERROR);
    }

    public function testEncodesLikeTheServer(): void
    {
        $g = self::golden();
        $j = $g['push_request']['job'];
        $job = Proto::job($j['job'], $j['id'], $j['payload'], $j['headers'], $j['pipeline'], $j['priority'], $j['delay'], $j['auto_ack']);
        self::assertSame($g['push_request']['hex'], \bin2hex(Protobuf::bytes(1, $job, true)));
        self::assertSame($g['pipelines']['hex'], \bin2hex(Proto::pipelines($g['pipelines']['pipelines'])));
        self::assertSame($g['declare']['hex'], \bin2hex(Proto::declare($g['declare']['pipeline'])));
    }

    public function testDecodesStats(): void
    {
        $g = self::golden();
        $fields = Protobuf::fields((string) \hex2bin($g['stats']['hex']));
        self::assertCount(1, $fields);
        $stat = Stat::fromProto((string) $fields[0][2]);
        self::assertSame($g['stats']['stats'][0], (array) $stat);
    }

    public function testVarints(): void
    {
        self::assertSame('00', \bin2hex(Protobuf::varint(0)));
        self::assertSame('ac02', \bin2hex(Protobuf::varint(300)));
        self::assertSame('ffffffffffffffffff01', \bin2hex(Protobuf::varint(-1)));
        self::assertSame([[3, 0, -1]], Protobuf::fields("\x18" . Protobuf::varint(-1)));
    }
}
