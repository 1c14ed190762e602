<?php
// The pacer side of the hello-world / JSON-echo / overload benchmarks: our library's
// HttpWorker with no PSR-7 layer, the counterpart of apps/plain/index.php under php-fpm
// (both are "the smallest reasonable PHP app" on their server).
declare(strict_types=1);

require __DIR__ . '/../../php/autoload.php';

$http = new Pacer\Http\HttpWorker(Pacer\Worker::create());
while ($request = $http->waitRequest()) {
    $path = parse_url($request->uri, PHP_URL_PATH);
    switch ($path) {
        case '/hello':
            $http->respond(200, 'Hello, world!', ['Content-Type' => ['text/plain']]);
            break;
        case '/echo':
            $http->respond(200, $request->body, ['Content-Type' => ['application/json']]);
            break;
        case '/work':
            usleep(max(0, min(60_000, (int) ($request->query['ms'] ?? 20))) * 1000);
            $http->respond(200, 'done', ['Content-Type' => ['text/plain']]);
            break;
        default:
            $http->respond(404, 'Not found', ['Content-Type' => ['text/plain']]);
    }
}
