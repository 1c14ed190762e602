<?php

/**
 * A worker that keeps RoadRunner's PHP library semantics (roadrunner-php/http 3.4 and
 * 2.2, which pacer must serve unchanged), written from their documented behaviour with
 * its own framing:
 *
 *  - the request context is decoded with JSON_THROW_ON_ERROR, and so is the body of a
 *    parsed request (`Request::getParsedBody()`): an empty parsed body throws, and the
 *    worker loop answers with an error frame, as `$worker->error((string) $e)` does;
 *  - `uploads` is `(array) ($context['uploads'] ?? [])`;
 *  - the response context is `{"status":N,"headers":H}` with `H` an object.
 *
 * Routes (path):
 *   /crash           exits in the middle of the request
 *   /garbage         answers a frame whose context is not JSON
 *   /no-type         200 with no Content-Type header
 *   /not-modified    304 with Content-Type, Content-Length, ETag and Cache-Control
 *   /sendfile?path=P 200 with `X-Sendfile: P` and a body that must not be sent
 *   /print           writes "printed by mistake" to STDOUT outside any frame, then 200
 *   anything else    200 JSON: {"parsed","parsedBody","uploads","headerCount","method"}
 *
 * RR_COMPAT_BOOT_ECHO=text prints text to STDOUT before the PID handshake.
 * Relay: pipes only.
 */

declare(strict_types=1);

const WORKER = 'rr-compat';
require __DIR__ . '/frames.php';

[$in, $out] = [STDIN, STDOUT];
stream_set_read_buffer($in, 0);
if (($boot = getenv('RR_COMPAT_BOOT_ECHO')) !== false && $boot !== '') {
    fwrite($out, $boot);
}

function respond($out, int $status, array $headers, string $body): void
{
    $context = json_encode(['status' => $status, 'headers' => $headers ?: (object) []], JSON_THROW_ON_ERROR);
    write_frame($out, 0, $context . $body, [strlen($context)]);
}

while (true) {
    [$header, $body] = next_request($in, $out);
    try {
        $context = json_decode($header, true, 512, JSON_THROW_ON_ERROR);
        $path = (string) parse_url($context['uri'], PHP_URL_PATH);
        $parsed = (bool) $context['parsed'];
        $uploads = (array) ($context['uploads'] ?? []);
        switch ($path) {
            case '/crash':
                exit(1);
            case '/garbage':
                write_frame($out, 0, 'not json at all', [15]);
                continue 2;
            case '/sendfile':
                parse_str((string) parse_url($context['uri'], PHP_URL_QUERY), $q);
                respond($out, 200, [
                    'Content-Type' => ['text/csv'],
                    'X-Sendfile' => [(string) ($q['path'] ?? '')],
                    'Content-Disposition' => ['attachment; filename="export.csv"'],
                ], 'php body, never sent');
                continue 2;
            case '/print':
                fwrite($out, "printed by mistake\n");
                respond($out, 200, ['Content-Type' => ['text/plain']], 'printed');
                continue 2;
            case '/no-type':
                respond($out, 200, [], '<p>no type</p>');
                continue 2;
            case '/not-modified':
                respond($out, 304, [
                    'Content-Type' => ['application/json'],
                    'Content-Length' => ['10'],
                    'ETag' => ['"v1"'],
                    'Cache-Control' => ['max-age=60'],
                ], '');
                continue 2;
        }
        // Request::getParsedBody() of roadrunner-php/http.
        $parsedBody = $parsed ? json_decode($body, true, 512, JSON_THROW_ON_ERROR) : null;
        respond($out, 200, ['Content-Type' => ['application/json']], json_encode([
            'method' => $context['method'],
            'parsed' => $parsed,
            'parsedBody' => $parsedBody,
            'uploads' => $uploads,
            'headerCount' => count((array) ($context['headers'] ?? [])),
        ], JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES));
    } catch (\Throwable $e) {
        // The usual worker loop: `$worker->error((string) $e)`.
        write_frame($out, ERROR, get_class($e) . ': ' . $e->getMessage());
    }
}
