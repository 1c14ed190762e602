<?php
// pacer worker: boots the Slim app ONCE, then serves requests in a loop through our
// PSR-7 worker (Nyholm requests in; Slim's own Response class out, since Slim 3 route
// handlers use its helpers such as withJson()).
declare(strict_types=1);

use Nyholm\Psr7\Factory\Psr17Factory;
use Pacer\Http\PSR7Worker;
use Pacer\Worker;

require __DIR__ . '/../../../php/autoload.php';

$app = require __DIR__ . '/app.php';
$factory = new Psr17Factory();
$worker = Worker::create();
$psr7 = new PSR7Worker($worker, $factory, $factory, $factory);

while (true) {
    try {
        $request = $psr7->waitRequest();
    } catch (\Throwable $e) {
        $worker->error((string) $e);
        continue;
    }
    if ($request === null) {
        break;
    }
    try {
        $headers = new Slim\Http\Headers(['Content-Type' => 'text/html; charset=UTF-8']);
        $response = (new Slim\Http\Response(200, $headers))->withProtocolVersion('1.1');
        $psr7->respond($app->process($request, $response));
    } catch (\Throwable $e) {
        $worker->error((string) $e);
    }
}
