<?php

declare(strict_types=1);

namespace Pacer;

use Pacer\Informer\WorkerInfo;
use Pacer\RPC\Codec\JsonCodec;
use Pacer\RPC\RPC;

/**
 * Worker pool inspection and reset over RPC: `informer.List`, `informer.Workers`,
 * `resetter.Reset` (what `pacer workers` and `pacer reset` use).
 */
final class Informer
{
    private readonly RPC $rpc;

    public function __construct(RPC $rpc)
    {
        $this->rpc = $rpc->withCodec(new JsonCodec());
    }

    /** @return list<string> plugins that have workers */
    public function plugins(): array
    {
        return \array_values(\array_map('strval', (array) $this->rpc->call('informer.List', true)));
    }

    /** @return list<WorkerInfo> the workers of $plugin (empty for an unknown plugin) */
    public function workers(string $plugin = 'http'): array
    {
        $reply = $this->rpc->call('informer.Workers', $plugin);
        $workers = \is_array($reply) ? ($reply['workers'] ?? []) : [];

        return \array_values(\array_map(
            static fn (array $w): WorkerInfo => WorkerInfo::fromArray($w),
            \array_filter((array) $workers, 'is_array'),
        ));
    }

    /** Replaces every worker of $plugin (rolling); true when the server accepted. */
    public function reset(string $plugin = 'http'): bool
    {
        return $this->rpc->call('resetter.Reset', $plugin) === true;
    }
}
