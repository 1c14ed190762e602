<?php

// An HTTP worker that calls the greeter plugin over RPC (RR_RPC) for every request:
// GET /?name=pacer answers the greeter's JSON.
declare(strict_types=1);

require __DIR__ . '/../../php/autoload.php';

use Pacer\Http\HttpWorker;
use Pacer\RPC\RPC;
use Pacer\Worker;

$http = new HttpWorker(Worker::create());
$rpc = RPC::fromEnvironment();
while ($request = $http->waitRequest()) {
    try {
        $greeting = $rpc->call('greeter.Greet', $request->query['name'] ?? 'world');
        $http->respond(200, json_encode($greeting), ['Content-Type' => ['application/json']]);
    } catch (\Throwable $e) {
        $http->respond(500, $e->getMessage());
    }
}
