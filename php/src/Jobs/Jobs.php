<?php

declare(strict_types=1);

namespace Pacer\Jobs;

use Pacer\Environment;
use Pacer\Internal\Protobuf;
use Pacer\Jobs\Internal\Proto;
use Pacer\RPC\Codec\ProtobufCodec;
use Pacer\RPC\Exception\ServiceException;
use Pacer\RPC\RPC;

/**
 * The producer side: `jobs.*` over RPC with the protobuf codec
 * (docs/jobs-protocol.md §4), the same calls RoadRunner's PHP jobs library makes.
 *
 * ```php
 * $jobs = Jobs::fromEnvironment();                  // RR_RPC, set for pacer's workers
 * $id = $jobs->push('emails', 'App\Mail\Welcome', json_encode(['to' => $to]), delay: 10);
 * ```
 */
final class Jobs
{
    private readonly RPC $rpc;

    public function __construct(RPC $rpc)
    {
        $this->rpc = $rpc->withCodec(new ProtobufCodec());
    }

    /** A producer on the RPC address in `RR_RPC` (or `$address`). */
    public static function fromEnvironment(?string $address = null): self
    {
        return new self($address !== null ? RPC::create($address) : RPC::fromEnvironment(Environment::fromGlobals()));
    }

    /**
     * Pushes one job; returns its id (a new UUID v4 unless given).
     *
     * @param array<string, string|list<string>> $headers
     */
    public function push(
        string $pipeline,
        string $name,
        string $payload,
        array $headers = [],
        int $delay = 0,
        int $priority = 0,
        bool $autoAck = false,
        ?string $id = null,
    ): string {
        $id ??= self::uuid4();
        $this->call('jobs.Push', Protobuf::bytes(1, self::job($pipeline, $name, $payload, $headers, $delay, $priority, $autoAck, $id), true));

        return $id;
    }

    /**
     * Pushes several jobs in one call: each a list of push() arguments by name
     * (`['pipeline' => …, 'name' => …, 'payload' => …, 'headers' => …, 'delay' => …]`).
     *
     * @param list<array<string, mixed>> $jobs
     * @return list<string> their ids
     */
    public function pushBatch(array $jobs): array
    {
        $ids = [];
        $body = '';
        foreach ($jobs as $j) {
            $id = (string) ($j['id'] ?? self::uuid4());
            $ids[] = $id;
            $body .= Protobuf::bytes(1, self::job(
                (string) $j['pipeline'],
                (string) $j['name'],
                (string) $j['payload'],
                (array) ($j['headers'] ?? []),
                (int) ($j['delay'] ?? 0),
                (int) ($j['priority'] ?? 0),
                (bool) ($j['autoAck'] ?? false),
                $id,
            ), true);
        }
        $this->call('jobs.PushBatch', $body);

        return $ids;
    }

    public function pause(string ...$pipelines): void
    {
        $this->call('jobs.Pause', Proto::pipelines($pipelines));
    }

    public function resume(string ...$pipelines): void
    {
        $this->call('jobs.Resume', Proto::pipelines($pipelines));
    }

    /** @return list<string> */
    public function list(): array
    {
        return self::names($this->call('jobs.List', ''));
    }

    /**
     * Declares a pipeline at run time: `['name' => 'p', 'driver' => 'amqp', 'queue' => …]`
     * (values as strings, like RoadRunner's `CreateInfo::toArray()`); it is consumed at once.
     *
     * @param array<string, string|int|bool> $pipeline
     */
    public function declare(array $pipeline): void
    {
        $map = [];
        foreach ($pipeline as $k => $v) {
            $map[$k] = \is_bool($v) ? ($v ? 'true' : 'false') : (string) $v;
        }
        $this->call('jobs.Declare', Proto::declare($map));
    }

    /** @return list<string> the destroyed pipelines */
    public function destroy(string ...$pipelines): array
    {
        return self::names($this->call('jobs.Destroy', Proto::pipelines($pipelines)));
    }

    /** @return array<string, Stat> by pipeline name */
    public function stat(): array
    {
        $out = [];
        foreach (Protobuf::fields($this->call('jobs.Stat', '')) as [$field, , $value]) {
            if ($field === 1) {
                $stat = Stat::fromProto((string) $value);
                $out[$stat->pipeline] = $stat;
            }
        }

        return $out;
    }

    /** @param array<string, string|list<string>> $headers */
    private static function job(string $pipeline, string $name, string $payload, array $headers, int $delay, int $priority, bool $autoAck, string $id): string
    {
        $h = [];
        foreach ($headers as $k => $v) {
            $h[(string) $k] = \array_map('strval', \array_values((array) $v));
        }

        return Proto::job($name, $id, $payload, $h, $pipeline, $priority, $delay, $autoAck);
    }

    /** @return list<string> */
    private static function names(string $pipelines): array
    {
        $out = [];
        foreach (Protobuf::fields($pipelines) as [$field, , $value]) {
            if ($field === 1) {
                $out[] = (string) $value;
            }
        }

        return $out;
    }

    private function call(string $method, string $body): string
    {
        try {
            return (string) $this->rpc->call($method, $body);
        } catch (ServiceException $e) {
            throw new JobsException($e->getMessage(), 0, $e);
        }
    }

    /** A random (version 4) UUID, as RoadRunner's library gives jobs. */
    public static function uuid4(): string
    {
        $b = \random_bytes(16);
        $b[6] = \chr((\ord($b[6]) & 0x0F) | 0x40);
        $b[8] = \chr((\ord($b[8]) & 0x3F) | 0x80);
        $h = \bin2hex($b);

        return \sprintf('%s-%s-%s-%s-%s', \substr($h, 0, 8), \substr($h, 8, 4), \substr($h, 12, 4), \substr($h, 16, 4), \substr($h, 20));
    }
}
