<?php

declare(strict_types=1);

namespace Pacer\Metrics;

use Pacer\RPC\Codec\JsonCodec;
use Pacer\RPC\Exception\ServiceException;
use Pacer\RPC\RPC;

/**
 * Application metrics through the server's `metrics` RPC service, exported with the
 * server's own Prometheus metrics.
 *
 * ```php
 * $metrics = new Metrics(RPC::fromEnvironment());
 * $metrics->declare('orders_total', Collector::counter()->withHelp('Orders placed')->withLabels('channel'));
 * $metrics->add('orders_total', 1, ['web']);
 * ```
 */
final class Metrics
{
    private readonly RPC $rpc;

    public function __construct(RPC $rpc)
    {
        $this->rpc = $rpc->withServicePrefix('metrics')->withCodec(new JsonCodec());
    }

    /** Declares a metric; declaring one that already exists is not an error. */
    public function declare(string $name, Collector $collector): void
    {
        try {
            $this->rpc->call('Declare', ['name' => $name, 'collector' => $collector->toArray()]);
        } catch (ServiceException $e) {
            if (\str_contains($e->getMessage(), 'tried to register existing collector')) {
                return;
            }
            throw new MetricsException($e->getMessage(), 0, $e);
        }
    }

    /** @param list<string> $labels values, in the declared label order */
    public function add(string $name, float $value, array $labels = []): void
    {
        $this->send('Add', $name, $value, $labels);
    }

    /** @param list<string> $labels */
    public function sub(string $name, float $value, array $labels = []): void
    {
        $this->send('Sub', $name, $value, $labels);
    }

    /** @param list<string> $labels */
    public function set(string $name, float $value, array $labels = []): void
    {
        $this->send('Set', $name, $value, $labels);
    }

    /** @param list<string> $labels */
    public function observe(string $name, float $value, array $labels = []): void
    {
        $this->send('Observe', $name, $value, $labels);
    }

    public function unregister(string $name): void
    {
        try {
            $this->rpc->call('Unregister', $name);
        } catch (ServiceException $e) {
            throw new MetricsException($e->getMessage(), 0, $e);
        }
    }

    /** @param list<string> $labels */
    private function send(string $method, string $name, float $value, array $labels): void
    {
        try {
            $this->rpc->call($method, ['name' => $name, 'value' => $value, 'labels' => \array_values($labels)]);
        } catch (ServiceException $e) {
            throw new MetricsException($e->getMessage(), 0, $e);
        }
    }
}
