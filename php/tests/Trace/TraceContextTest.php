<?php

declare(strict_types=1);

namespace Pacer\Tests\Trace;

use Pacer\Trace\TraceContext;
use PHPUnit\Framework\TestCase;

/**
 * The propagation contract with pacer (README "Tracing"): what the sidecar puts in
 * `traceparent`/`tracestate` is read back here; the same header shapes are asserted on
 * the Rust side by sidecar/tests/otel.rs against a real collector.
 */
final class TraceContextTest extends TestCase
{
    private const TP = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

    public function testReadsPsr7HeadersCaseInsensitively(): void
    {
        $ctx = TraceContext::fromHeaders(['Traceparent' => [self::TP], 'TraceState' => ['rojo=1']]);
        self::assertNotNull($ctx);
        self::assertSame('4bf92f3577b34da6a3ce929d0e0e4736', $ctx->traceId);
        self::assertSame('00f067aa0ba902b7', $ctx->spanId);
        self::assertNull($ctx->parentSpanId);
        self::assertTrue($ctx->sampled);
        self::assertSame('rojo=1', $ctx->traceState);
        self::assertSame(self::TP, $ctx->traceparent());
    }

    public function testReadsServerVariables(): void
    {
        $ctx = TraceContext::fromHeaders(['HTTP_TRACEPARENT' => '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00']);
        self::assertNotNull($ctx);
        self::assertFalse($ctx->sampled);
        self::assertSame(['traceparent' => '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00'], $ctx->headers());
    }

    public function testAChildKeepsTheTraceAndPointsAtItsParent(): void
    {
        $ctx = TraceContext::fromTraceparent(self::TP, 'rojo=1');
        self::assertNotNull($ctx);
        $child = $ctx->child();
        self::assertSame($ctx->traceId, $child->traceId);
        self::assertSame($ctx->spanId, $child->parentSpanId);
        self::assertMatchesRegularExpression('/^[0-9a-f]{16}$/', $child->spanId);
        self::assertNotSame($ctx->spanId, $child->spanId);
        self::assertSame(
            ['traceparent' => "00-{$ctx->traceId}-{$child->spanId}-01", 'tracestate' => 'rojo=1'],
            $child->headers(),
        );
    }

    public function testInvalidValuesAreNotAContext(): void
    {
        foreach ([
            '',
            '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01',
            '00-00000000000000000000000000000000-00f067aa0ba902b7-01',
            '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01',
            'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
            '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x',
            '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7',
        ] as $bad) {
            self::assertNull(TraceContext::fromTraceparent($bad), $bad);
        }
        self::assertNull(TraceContext::fromHeaders(['x-other' => 'y']));
        // A later version is read by its version-00 prefix.
        $future = TraceContext::fromTraceparent('cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more');
        self::assertNotNull($future);
        self::assertSame(self::TP, $future->traceparent());
    }
}
