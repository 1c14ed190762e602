<?php

declare(strict_types=1);

namespace Pacer;

/**
 * What the server tells a worker through environment variables (docs/wire-protocol.md §2.9):
 * `RR_RELAY` (default `pipes`), `RR_MODE` (`http`, `jobs`, ...; default empty),
 * `RR_RPC` (default `tcp://127.0.0.1:6001`) and `RR_VERSION`.
 */
final class Environment
{
    public const MODE_HTTP = 'http';
    public const MODE_JOBS = 'jobs';
    public const MODE_GRPC = 'grpc';
    public const MODE_TCP = 'tcp';
    public const MODE_TEMPORAL = 'temporal';
    public const MODE_CENTRIFUGE = 'centrifuge';

    public const DEFAULT_RELAY = 'pipes';
    public const DEFAULT_RPC = 'tcp://127.0.0.1:6001';

    /** @param array<string, string> $env */
    public function __construct(private readonly array $env = [])
    {
    }

    /** The process environment, then `$_ENV`, then string entries of `$_SERVER`. */
    public static function fromGlobals(): self
    {
        $env = [];
        foreach ([$_SERVER, $_ENV, \getenv()] as $source) {
            foreach ($source as $name => $value) {
                if (\is_string($name) && \is_string($value)) {
                    $env[$name] = $value;
                }
            }
        }

        return new self($env);
    }

    public function get(string $name, ?string $default = null): ?string
    {
        $value = $this->env[$name] ?? null;

        return $value === null || $value === '' ? $default : $value;
    }

    public function getMode(): string
    {
        return $this->get('RR_MODE', '');
    }

    public function getRelayAddress(): string
    {
        return $this->get('RR_RELAY', self::DEFAULT_RELAY);
    }

    public function getRPCAddress(): string
    {
        return $this->get('RR_RPC', self::DEFAULT_RPC);
    }

    public function getVersion(): string
    {
        return $this->get('RR_VERSION', '');
    }
}
