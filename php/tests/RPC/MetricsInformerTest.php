<?php

declare(strict_types=1);

namespace Pacer\Tests\RPC;

use Pacer\Environment;
use Pacer\Informer;
use Pacer\Metrics\Collector;
use Pacer\Metrics\Metrics;
use Pacer\Metrics\MetricsException;
use Pacer\RPC\RPC;
use Pacer\Tests\Support\WithRpcServer;
use PHPUnit\Framework\TestCase;

final class MetricsInformerTest extends TestCase
{
    use WithRpcServer;

    /** @return list<array{string, int, mixed}> calls as [method, flags, decoded body] */
    private function calls(RPC $rpc): array
    {
        return array_map(
            static fn (array $c) => [$c[0], $c[1], json_decode($c[2], true)],
            $rpc->call('test.Calls', null),
        );
    }

    public function testMetricsPayloadShapes(): void
    {
        $rpc = RPC::fromEnvironment(new Environment(['RR_RPC' => self::$server->address]));
        $metrics = new Metrics($rpc);

        $metrics->declare('orders_total', Collector::counter()->withNamespace('shop')->withHelp('Orders placed')->withLabels('channel'));
        $metrics->declare('latency', Collector::histogram(0.1, 0.5, 1.0));
        $metrics->declare('sizes', Collector::summary(['0.5' => 0.05, '0.99' => 0.001])->withSubsystem('io'));
        $metrics->declare('dup', Collector::gauge());
        $metrics->add('orders_total', 1, ['web']);
        $metrics->sub('queue', 2.5);
        $metrics->set('queue', 7);
        $metrics->observe('latency', 0.25, ['GET']);
        $metrics->unregister('orders_total');

        self::assertSame([
            ['metrics.Declare', 8, ['name' => 'orders_total', 'collector' => [
                'namespace' => 'shop', 'subsystem' => '', 'type' => 'counter', 'help' => 'Orders placed', 'labels' => ['channel'], 'buckets' => [],
            ]]],
            ['metrics.Declare', 8, ['name' => 'latency', 'collector' => [
                'namespace' => '', 'subsystem' => '', 'type' => 'histogram', 'help' => '', 'labels' => [], 'buckets' => [0.1, 0.5, 1.0],
            ]]],
            ['metrics.Declare', 8, ['name' => 'sizes', 'collector' => [
                'namespace' => '', 'subsystem' => 'io', 'type' => 'summary', 'help' => '', 'labels' => [], 'buckets' => [],
                'objectives' => ['0.5' => 0.05, '0.99' => 0.001],
            ]]],
            ['metrics.Declare', 8, ['name' => 'dup', 'collector' => [
                'namespace' => '', 'subsystem' => '', 'type' => 'gauge', 'help' => '', 'labels' => [], 'buckets' => [],
            ]]],
            ['metrics.Add', 8, ['name' => 'orders_total', 'value' => 1.0, 'labels' => ['web']]],
            ['metrics.Sub', 8, ['name' => 'queue', 'value' => 2.5, 'labels' => []]],
            ['metrics.Set', 8, ['name' => 'queue', 'value' => 7.0, 'labels' => []]],
            ['metrics.Observe', 8, ['name' => 'latency', 'value' => 0.25, 'labels' => ['GET']]],
            ['metrics.Unregister', 8, 'orders_total'],
        ], $this->calls($rpc));
    }

    public function testValuesAreSentAsFloats(): void
    {
        $rpc = RPC::create(self::$server->address);
        (new Metrics($rpc))->set('queue', 7);
        $raw = $rpc->call('test.Calls', null);
        self::assertSame('{"name":"queue","value":7.0,"labels":[]}', $raw[0][2]);
    }

    public function testMetricsErrorsAreMetricsExceptions(): void
    {
        $metrics = new Metrics(RPC::create(self::$server->address));
        $this->expectException(MetricsException::class);
        $this->expectExceptionMessage('undefined collector missing');
        $metrics->add('missing', 1);
    }

    public function testInformerAndReset(): void
    {
        $rpc = RPC::create(self::$server->address);
        $informer = new Informer($rpc);

        self::assertSame(['http'], $informer->plugins());
        $workers = $informer->workers('http');
        self::assertCount(1, $workers);
        self::assertSame(4242, $workers[0]->pid);
        self::assertSame(1, $workers[0]->status);
        self::assertSame('ready', $workers[0]->statusStr);
        self::assertSame(17, $workers[0]->numExecs);
        self::assertSame(31457280, $workers[0]->memoryUsage);
        self::assertSame(1.5, $workers[0]->cpuPercent);
        self::assertSame('php worker.php', $workers[0]->command);
        self::assertSame([], $informer->workers('grpc'), '{"workers":null} is no workers');
        self::assertTrue($informer->reset('http'));

        self::assertSame([
            ['informer.List', 8, true],
            ['informer.Workers', 8, 'http'],
            ['informer.Workers', 8, 'grpc'],
            ['resetter.Reset', 8, 'http'],
        ], $this->calls($rpc));
    }
}
