<?php

declare(strict_types=1);

namespace Pacer\Tests\Support;

use PHPUnit\Framework\Assert;

/** Runs tests/fixtures/rpc-server.php and knows its address. */
final class RpcServer
{
    /** @var resource */
    private $proc;
    public readonly string $address;

    public function __construct(string $listen = 'tcp://127.0.0.1:0')
    {
        $this->proc = proc_open(
            [PHP_BINARY, __DIR__ . '/../fixtures/rpc-server.php', $listen],
            [0 => ['file', '/dev/null', 'r'], 1 => ['pipe', 'w'], 2 => STDERR],
            $pipes,
        );
        Assert::assertIsResource($this->proc);
        $read = [$pipes[1]];
        $write = $except = null;
        Assert::assertSame(1, stream_select($read, $write, $except, 10), 'the RPC server starts');
        $this->address = trim((string) fgets($pipes[1]));
        Assert::assertMatchesRegularExpression('#^(tcp|unix)://#', $this->address);
    }

    public function __destruct()
    {
        proc_terminate($this->proc, 9);
        proc_close($this->proc);
        if (str_starts_with($this->address, 'unix://')) {
            @unlink(substr($this->address, strlen('unix://')));
        }
    }
}
