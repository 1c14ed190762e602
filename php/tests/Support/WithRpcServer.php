<?php

declare(strict_types=1);

namespace Pacer\Tests\Support;

use Pacer\RPC\RPC;

/**
 * One RpcServer for the whole test class (`self::$server`); each test starts with an
 * empty log of calls (`test.Calls` returns and clears it).
 */
trait WithRpcServer
{
    private static ?RpcServer $server = null;

    public static function setUpBeforeClass(): void
    {
        self::$server = new RpcServer();
    }

    public static function tearDownAfterClass(): void
    {
        self::$server = null;
    }

    protected function setUp(): void
    {
        // Each test sees only its own calls in test.Calls.
        RPC::create(self::$server->address)->call('test.Calls', null);
    }
}
