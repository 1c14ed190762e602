<?php

declare(strict_types=1);

namespace Pacer\Services;

use Pacer\Environment;
use Pacer\Internal\Protobuf;
use Pacer\RPC\Codec\ProtobufCodec;
use Pacer\RPC\Exception\CodecException;
use Pacer\RPC\Exception\ServiceException as RPCServiceException;
use Pacer\RPC\RPC;
use Pacer\Services\Exception\ServiceException;

/**
 * The process manager over RPC: RoadRunner's `service.*` methods with protobuf
 * `service.v1` messages (docs/wire-protocol.md §4.3), with the API of RoadRunner's PHP
 * services library (`Spiral\RoadRunner\Services\Manager`), so code written for it needs
 * only the other namespace.
 *
 * ```php
 * $services = Manager::fromEnvironment();           // RR_RPC, set for pacer's workers
 * $services->create('scheduler', 'php scheduler.php', processNum: 1, restartSec: 5);
 * $services->statuses('scheduler');                 // [['pid' => …, 'memory_usage' => …, …]]
 * $services->terminate('scheduler');
 * ```
 */
final class Manager
{
    private readonly RPC $rpc;

    public function __construct(RPC $rpc)
    {
        $this->rpc = $rpc->withCodec(new ProtobufCodec());
    }

    /** A client of the RPC address in `RR_RPC` (or `$address`). */
    public static function fromEnvironment(?string $address = null): self
    {
        return new self($address !== null ? RPC::create($address) : RPC::fromEnvironment(Environment::fromGlobals()));
    }

    /**
     * The names of the running services (from the config and created over RPC).
     *
     * @return list<string>
     * @throws ServiceException
     */
    public function list(): array
    {
        $services = [];
        foreach ($this->fields('service.List', '') as [$field, , $value]) {
            if ($field === 1) {
                $services[] = (string) $value;
            }
        }

        return $services;
    }

    /**
     * Starts a new service (`service.v1.Create`); the processes run when it returns.
     *
     * @param non-empty-string $name
     * @param non-empty-string $command split at whitespace, no shell
     * @param array<non-empty-string, string> $env
     * @throws ServiceException when the server refuses (exists already, cannot start, …)
     */
    public function create(
        string $name,
        string $command,
        int $processNum = 1,
        int $execTimeout = 0,
        bool $remainAfterExit = false,
        array $env = [],
        int $restartSec = 30,
        bool $serviceNameInLogs = false,
        int $stopTimeout = 5,
    ): bool {
        $create = Protobuf::bytes(1, $name)
            . Protobuf::bytes(2, $command)
            . Protobuf::int(3, $processNum)
            . Protobuf::int(4, $execTimeout)
            . Protobuf::bool(5, $remainAfterExit)
            . Protobuf::stringMap(6, $env)
            . Protobuf::int(7, $restartSec)
            . Protobuf::bool(8, $serviceNameInLogs)
            . Protobuf::int(9, $stopTimeout);

        return $this->ok('service.Create', $create);
    }

    /**
     * Stops every process of the service and starts them again.
     *
     * @param non-empty-string $name
     * @throws ServiceException
     */
    public function restart(string $name): bool
    {
        return $this->ok('service.Restart', self::service($name));
    }

    /**
     * Stops the service and removes it.
     *
     * @param non-empty-string $name
     * @throws ServiceException
     */
    public function terminate(string $name): bool
    {
        return $this->ok('service.Terminate', self::service($name));
    }

    /**
     * One entry per process: its pid, CPU (percent of its lifetime), resident memory in
     * bytes and command; `error` is set (code, message, details) when its state cannot be
     * read, e.g. while it waits to be restarted.
     *
     * @param non-empty-string $name
     * @return list<array{cpu_percent: float, pid: int, memory_usage: int, command: string, error: array{code: int, message: string, details: list<array{message: string, type_url: string}>}|null}>
     * @throws ServiceException
     */
    public function statuses(string $name): array
    {
        $result = [];
        foreach ($this->fields('service.Statuses', self::service($name)) as [$field, , $value]) {
            if ($field === 1) {
                $result[] = self::status((string) $value);
            }
        }

        return $result;
    }

    /** @param non-empty-string $name */
    private static function service(string $name): string
    {
        return Protobuf::bytes(1, $name);
    }

    /**
     * `service.v1.Status`.
     *
     * @return array{cpu_percent: float, pid: int, memory_usage: int, command: string, error: array{code: int, message: string, details: list<array{message: string, type_url: string}>}|null}
     */
    private static function status(string $bytes): array
    {
        $status = ['cpu_percent' => 0.0, 'pid' => 0, 'memory_usage' => 0, 'command' => '', 'error' => null];
        foreach (Protobuf::fields($bytes) as [$field, , $value]) {
            match ($field) {
                1 => $status['cpu_percent'] = Protobuf::float((string) $value),
                2 => $status['pid'] = (int) $value,
                3 => $status['memory_usage'] = (int) $value,
                4 => $status['command'] = (string) $value,
                5 => $status['error'] = self::error((string) $value),
                default => null,
            };
        }

        return $status;
    }

    /**
     * `common.v1.Status`, with its `google.protobuf.Any` details.
     *
     * @return array{code: int, message: string, details: list<array{message: string, type_url: string}>}
     */
    private static function error(string $bytes): array
    {
        $error = ['code' => 0, 'message' => '', 'details' => []];
        foreach (Protobuf::fields($bytes) as [$field, , $value]) {
            if ($field === 1) {
                // int32: a negative code arrives as a ten-byte varint.
                $error['code'] = (int) $value;
            } elseif ($field === 2) {
                $error['message'] = (string) $value;
            } elseif ($field === 3) {
                $any = ['message' => '', 'type_url' => ''];
                foreach (Protobuf::fields((string) $value) as [$f, , $v]) {
                    if ($f === 1) {
                        $any['type_url'] = (string) $v;
                    } elseif ($f === 2) {
                        $any['message'] = (string) $v;
                    }
                }
                $error['details'][] = $any;
            }
        }

        return $error;
    }

    /** `service.v1.Response`'s `ok`. */
    private function ok(string $method, string $body): bool
    {
        foreach ($this->fields($method, $body) as [$field, , $value]) {
            if ($field === 2) {
                return $value !== 0;
            }
        }

        return false;
    }

    /**
     * @return list<array{int, int, int|string}>
     * @throws ServiceException
     */
    private function fields(string $method, string $body): array
    {
        try {
            return Protobuf::fields((string) $this->rpc->call($method, $body));
        } catch (RPCServiceException|CodecException $e) {
            // One line, as RoadRunner's library: the server's text may hold tabs and newlines.
            throw new ServiceException(\str_replace(["\t", "\n"], ' ', $e->getMessage()), 0, $e);
        }
    }
}
