<?php

/**
 * PSR-7 "hello world" worker.
 *
 *   .rr.yaml:  server: { command: "php examples/psr7-hello.php" }
 *              http:   { address: 0.0.0.0:8080 }
 *   run:       pacer serve -c .rr.yaml
 *
 * Uses Composer's autoloader when installed, else this checkout's php/autoload.php.
 */

declare(strict_types=1);

use Nyholm\Psr7\Factory\Psr17Factory;
use Pacer\Http\PSR7Worker;
use Pacer\Worker;

require is_file(__DIR__ . '/../vendor/autoload.php') ? __DIR__ . '/../vendor/autoload.php' : __DIR__ . '/../autoload.php';

$factory = new Psr17Factory();
$worker = Worker::create();                 // relay from RR_RELAY (pipes by default)
$psr7 = new PSR7Worker($worker, $factory, $factory, $factory);

// Boot the application here, once; every request below reuses it.

while (true) {
    try {
        $request = $psr7->waitRequest();
        if ($request === null) {
            break;                          // the server asked this worker to stop
        }
    } catch (\Throwable $e) {
        $worker->error((string) $e);        // a request that could not be decoded
        continue;
    }

    try {
        $name = $request->getQueryParams()['name'] ?? 'world';
        $response = $factory->createResponse(200)
            ->withHeader('Content-Type', 'text/plain; charset=utf-8')
            ->withBody($factory->createStream(sprintf("Hello, %s!\n", $name)));
        $psr7->respond($response);
    } catch (\Throwable $e) {
        $worker->error((string) $e);        // the server answers 500; this worker stays
    }
}
