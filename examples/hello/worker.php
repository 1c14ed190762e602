<?php

/**
 * The bundled example app (`make run`): a PSR-7 worker on Pacer's PHP library and
 * Nyholm's PSR-7. It is also what the end-to-end tests and the benchmarks run.
 *
 *   GET  /               a small HTML page
 *   GET  /hello          "Hello, world!" (the benchmark's hello world)
 *   POST /echo           echoes a JSON body back (the 4 KiB JSON echo benchmark)
 *   GET  /api/info       JSON about this worker: pid, jobs served, memory
 *   GET  /work?ms=N      holds the worker for N ms (simulates a slow backend call)
 *   GET  /leak?kb=N      keeps N KiB more alive in this worker (a leaky endpoint)
 *   GET  /stream?n=N     N lines, one every 100 ms (a streamed response)
 *   POST /upload         multipart uploads: name, size, type and SHA-256 of each file
 *   GET  /log?msg=TEXT   writes "hello log: TEXT" to PHP's error log (stderr: pacer logs it)
 *   POST /enqueue?n=N    pushes N jobs to the `emails` pipeline (needs the `jobs` and
 *                        `rpc` sections: see examples/jobs/.rr.yaml); answers their ids
 *
 *   curl -F file=@README.md http://127.0.0.1:8080/upload
 */

declare(strict_types=1);

use Nyholm\Psr7\Factory\Psr17Factory;
use Pacer\Http\PSR7Worker;
use Pacer\Worker;

require __DIR__ . '/../../php/autoload.php';

$factory = new Psr17Factory();
$worker = Worker::create();
$psr7 = new PSR7Worker($worker, $factory, $factory, $factory);

$jobs = 0;
$leak = [];
$queue = null;

/**
 * One entry per uploaded file, nested fields (`files[]`, `a[b]`) flattened to their names.
 *
 * @param array<array-key, mixed> $files
 * @return list<array<string, mixed>>
 */
$describeUploads = static function (array $files, string $prefix = '') use (&$describeUploads): array {
    $out = [];
    foreach ($files as $key => $file) {
        $name = $prefix === '' ? (string) $key : $prefix . '[' . $key . ']';
        if (is_array($file)) {
            array_push($out, ...$describeUploads($file, $name));
            continue;
        }
        if (!$file instanceof \Psr\Http\Message\UploadedFileInterface) {
            continue;
        }
        $ok = $file->getError() === UPLOAD_ERR_OK;
        $out[] = [
            'field' => $name,
            'filename' => $file->getClientFilename(),
            'type' => $file->getClientMediaType(),
            'size' => $file->getSize(),
            'error' => $file->getError(),
            'sha256' => $ok ? hash('sha256', (string) $file->getStream()) : null,
        ];
    }

    return $out;
};

$respond = static function (int $status, string $type, string $body) use ($factory) {
    return $factory->createResponse($status)
        ->withHeader('Content-Type', $type)
        ->withBody($factory->createStream($body));
};

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
    $jobs++;
    try {
        $query = $request->getQueryParams();
        switch ($request->getUri()->getPath()) {
            case '/':
                $html = '<!doctype html><title>Pacer</title><link rel="stylesheet" href="/style.css">'
                    . '<h1>Pacer is serving PHP</h1><p>Worker ' . getmypid() . ' has served ' . $jobs . ' requests.</p>'
                    . '<ul><li><a href="/hello">/hello</a></li><li><a href="/api/info">/api/info</a></li>'
                    . '<li><a href="/stream?n=5">/stream?n=5</a></li></ul>';
                $psr7->respond($respond(200, 'text/html; charset=utf-8', $html));
                break;
            case '/hello':
                $psr7->respond($respond(200, 'text/plain', 'Hello, world!'));
                break;
            case '/echo':
                $psr7->respond($respond(200, 'application/json', (string) $request->getBody()));
                break;
            case '/api/info':
                $psr7->respond($respond(200, 'application/json', json_encode([
                    'pid' => getmypid(),
                    'jobs' => $jobs,
                    'memory' => memory_get_usage(true),
                    'php' => PHP_VERSION,
                ], JSON_THROW_ON_ERROR)));
                break;
            case '/work':
                usleep(max(0, min(60_000, (int) ($query['ms'] ?? 10))) * 1000);
                $psr7->respond($respond(200, 'text/plain', 'done'));
                break;
            case '/leak':
                $leak[] = str_repeat('x', max(0, (int) ($query['kb'] ?? 64)) * 1024);
                $psr7->respond($respond(200, 'text/plain', (string) memory_get_usage(true)));
                break;
            case '/log':
                error_log('hello log: ' . substr((string) ($query['msg'] ?? ''), 0, 200));
                $psr7->respond($respond(200, 'text/plain', 'logged'));
                break;
            case '/upload':
                $psr7->respond($respond(200, 'application/json', json_encode([
                    'files' => $describeUploads($request->getUploadedFiles()),
                    'fields' => $request->getParsedBody(),
                ], JSON_THROW_ON_ERROR)));
                break;
            case '/stream':
                $n = max(1, min(100, (int) ($query['n'] ?? 5)));
                $psr7->getHttpWorker()->respondStream(200, (static function () use ($n) {
                    for ($i = 1; $i <= $n; $i++) {
                        yield "line $i\n";
                        usleep(100_000);
                    }
                })(), ['Content-Type' => ['text/plain']]);
                break;
            case '/enqueue':
                // The producer side of examples/jobs: jobs.Push over RPC (RR_RPC).
                if (getenv('RR_RPC') === false) {
                    $psr7->respond($respond(503, 'text/plain', "no rpc section: jobs cannot be pushed\n"));
                    break;
                }
                $queue ??= \Pacer\Jobs\Jobs::fromEnvironment();
                $ids = [];
                for ($i = 0, $n = max(1, min(1000, (int) ($query['n'] ?? 1))); $i < $n; $i++) {
                    $ids[] = $queue->push('emails', 'App\\SendWelcome', json_encode(['to' => "user$i@example.com"], JSON_THROW_ON_ERROR));
                }
                $psr7->respond($respond(202, 'application/json', json_encode(['queued' => $ids], JSON_THROW_ON_ERROR)));
                break;
            default:
                $psr7->respond($respond(404, 'text/plain', 'Not found'));
        }
    } catch (\Throwable $e) {
        $worker->error((string) $e);
    }
}
