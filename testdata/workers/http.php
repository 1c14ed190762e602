<?php

/**
 * A PSR-7 worker (Pacer\Http\PSR7Worker + Nyholm) with the routes the server's HTTP tests
 * use:
 *
 *   /                        "Hello, world!" (text/plain)
 *   /echo                    JSON: method, uri, path, query, headers, cookies, parsedBody,
 *                            body, protocol, remoteAddr, uploads (field, name, size, error, mime)
 *   /status/{code}           that status; body "status {code}" (empty for 1xx, 204, 304)
 *   /headers                 X-Multi: a, b (two values) and two Set-Cookie headers
 *   /stream?chunks=N&delay_ms=D   streamed body "chunk-1\n" .. "chunk-N\n" (honours STOP)
 *   /sleep?ms=N              sleeps, then "slept N ms"
 *   /leak?kb=N               keeps N KiB more forever, body = RSS in bytes
 *   /error                   throws; the worker sends an error frame
 *   /upload                  JSON list: for each uploaded file its field, name, size,
 *                            error, tmp_exists (the server's temp file), tmp_uid and
 *                            tmp_gid (its owner), sha256
 *   /bad-header              a header value containing "\r\n" (sent as is)
 *   /pid                     getmypid()
 *   /trace                   JSON: the trace context pacer sent as Pacer\Trace\TraceContext
 *                            reads it (traceId, spanId, sampled, traceState) and the
 *                            traceparent of a child span (or null without a context)
 *   /fork?secs=N&sleep_ms=M  starts `sh -c 'sleep N & exec sleep N'` (a child and a
 *                            grandchild in this worker's process group, holding its
 *                            stdin/stdout), then sleeps M ms; JSON {parent, child}
 *   /orphan?n=N              leaves N short-lived background processes whose parent (a shell)
 *                            has exited: they are re-parented to PID 1 and become zombies
 *                            there when they exit, unless PID 1 reaps them
 *   anything else            404
 */

declare(strict_types=1);

use Nyholm\Psr7\Factory\Psr17Factory;
use Pacer\Http\PSR7Worker;
use Pacer\Worker;
use Psr\Http\Message\ResponseInterface;
use Psr\Http\Message\UploadedFileInterface;

require __DIR__ . '/autoload.php';

$factory = new Psr17Factory();
$worker = Worker::create();
$psr7 = new PSR7Worker($worker, $factory, $factory, $factory);
$leaked = [];

$text = static fn (int $status, string $body): ResponseInterface => $factory->createResponse($status)
    ->withHeader('Content-Type', 'text/plain; charset=utf-8')
    ->withBody($factory->createStream($body));
$json = static fn (mixed $data): ResponseInterface => $factory->createResponse(200)
    ->withHeader('Content-Type', 'application/json')
    ->withBody($factory->createStream(json_encode($data, JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE)));

/** @return list<array{field: string, file: UploadedFileInterface}> */
$flatten = static function (array $tree, string $prefix = '') use (&$flatten): array {
    $out = [];
    foreach ($tree as $key => $node) {
        $field = $prefix === '' ? (string) $key : "{$prefix}[{$key}]";
        if ($node instanceof UploadedFileInterface) {
            $out[] = ['field' => $field, 'file' => $node];
        } elseif (is_array($node)) {
            array_push($out, ...$flatten($node, $field));
        }
    }

    return $out;
};

$rss = static function (): int {
    $status = (string) @file_get_contents('/proc/self/status');

    return preg_match('/^VmRSS:\s+(\d+)\s+kB/m', $status, $m) === 1 ? (int) $m[1] * 1024 : memory_get_usage(true);
};

while (true) {
    try {
        $request = $psr7->waitRequest();
        if ($request === null) {
            break;
        }
    } catch (\Throwable $e) {
        $worker->error((string) $e);
        continue;
    }

    try {
        $path = $request->getUri()->getPath();
        $query = $request->getQueryParams();

        if ($path === '/') {
            $psr7->respond($text(200, 'Hello, world!'));
        } elseif ($path === '/echo') {
            $psr7->respond($json([
                'method' => $request->getMethod(),
                'uri' => (string) $request->getUri(),
                'path' => $path,
                'query' => $query,
                'headers' => $request->getHeaders(),
                'cookies' => $request->getCookieParams(),
                'parsedBody' => $request->getParsedBody(),
                'body' => (string) $request->getBody(),
                'protocol' => $request->getProtocolVersion(),
                'remoteAddr' => $request->getServerParams()['REMOTE_ADDR'] ?? null,
                'uploads' => array_map(static fn (array $u) => [
                    'field' => $u['field'],
                    'name' => $u['file']->getClientFilename(),
                    'size' => $u['file']->getSize(),
                    'error' => $u['file']->getError(),
                    'mime' => $u['file']->getClientMediaType(),
                ], $flatten($request->getUploadedFiles())),
            ]));
        } elseif (preg_match('#^/status/(\d{3})$#', $path, $m) === 1) {
            $code = (int) $m[1];
            $empty = $code < 200 || $code === 204 || $code === 304;
            $psr7->getHttpWorker()->respond($code, $empty ? '' : "status $code", ['Content-Type' => ['text/plain']]);
        } elseif ($path === '/headers') {
            $psr7->respond($text(200, 'headers')
                ->withHeader('X-Multi', ['a', 'b'])
                ->withAddedHeader('Set-Cookie', 'first=1; Path=/')
                ->withAddedHeader('Set-Cookie', 'second=2; Path=/; HttpOnly'));
        } elseif ($path === '/stream') {
            $chunks = (int) ($query['chunks'] ?? 3);
            $delay = (int) ($query['delay_ms'] ?? 0);
            $psr7->getHttpWorker()->respondStream(200, (static function () use ($chunks, $delay) {
                for ($i = 1; $i <= $chunks; $i++) {
                    if ($i > 1 && $delay > 0) {
                        usleep($delay * 1000);
                    }
                    yield "chunk-$i\n";
                }
            })(), ['Content-Type' => ['text/plain']]);
        } elseif ($path === '/sleep') {
            $ms = (int) ($query['ms'] ?? 0);
            usleep($ms * 1000);
            $psr7->respond($text(200, "slept $ms ms"));
        } elseif ($path === '/leak') {
            $leaked[] = str_repeat("\x5A", (int) ($query['kb'] ?? 0) * 1024);
            $psr7->respond($text(200, (string) $rss()));
        } elseif ($path === '/error') {
            throw new \RuntimeException('boom from /error');
        } elseif ($path === '/upload') {
            $psr7->respond($json(array_map(static function (array $u): array {
                $stream = $u['file']->getStream();
                $tmp = $stream->getMetadata('uri');

                return [
                    'field' => $u['field'],
                    'name' => $u['file']->getClientFilename(),
                    'size' => $u['file']->getSize(),
                    'error' => $u['file']->getError(),
                    'tmp_exists' => is_string($tmp) && is_file($tmp),
                    'tmp_uid' => is_string($tmp) ? @fileowner($tmp) : false,
                    'tmp_gid' => is_string($tmp) ? @filegroup($tmp) : false,
                    'sha256' => hash('sha256', (string) $stream),
                ];
            }, $flatten($request->getUploadedFiles()))));
        } elseif ($path === '/bad-header') {
            // Bypasses PSR-7's header validation on purpose: the server must not let it through.
            $psr7->getHttpWorker()->respond(200, 'bad header', ['X-Bad' => ["evil\r\nInjected: yes"]]);
        } elseif ($path === '/trace') {
            $ctx = \Pacer\Trace\TraceContext::fromHeaders($request->getHeaders());
            $psr7->respond($factory->createResponse(200)
                ->withHeader('Content-Type', 'application/json')
                ->withBody($factory->createStream(json_encode($ctx === null ? null : [
                    'traceId' => $ctx->traceId,
                    'spanId' => $ctx->spanId,
                    'sampled' => $ctx->sampled,
                    'traceState' => $ctx->traceState,
                    'child' => $ctx->child()->traceparent(),
                ], JSON_THROW_ON_ERROR))));
        } elseif ($path === '/pid') {
            $psr7->respond($text(200, (string) getmypid()));
        } elseif ($path === '/fork') {
            $secs = (string) (int) ($query['secs'] ?? 60);
            $child = pcntl_fork();
            if ($child === 0) {
                // Inherits this worker's pipes, as a careless `exec()` would.
                pcntl_exec('/bin/sh', ['-c', "sleep $secs & exec sleep $secs"]);
                exit(127);
            }
            usleep((int) ($query['sleep_ms'] ?? 0) * 1000);
            $psr7->respond($json(['parent' => getmypid(), 'child' => $child]));
        } elseif ($path === '/orphan') {
            for ($i = 0, $n = (int) ($query['n'] ?? 1); $i < $n; $i++) {
                // `sh -c '… &'` exits at once; its background child is orphaned.
                shell_exec('sleep 0.2 >/dev/null 2>&1 &');
            }
            $psr7->respond($text(200, 'orphaned'));
        } else {
            $psr7->respond($text(404, 'not found'));
        }
    } catch (\Throwable $e) {
        $worker->error($e::class . ': ' . $e->getMessage());
    }
}
