<?php

/**
 * A raw (non-HTTP) worker for the server's integration tests. Each request's context is a
 * JSON object {"op": ...}; the body is the data. Replies are data frames with flags 0
 * (no codec), like RoadRunner's library, and carry the request's context unchanged.
 *
 *   echo     reply with the same context and body
 *   pid      body = getmypid()
 *   error    $worker->error(body): ERROR frame, the worker stays
 *   stop     $worker->stop(): asks to be replaced (context {"stop":true}, empty body)
 *   stop_if_pid  {"op":"stop_if_pid","pid":N}: stop() when this worker's pid is N,
 *            otherwise body = getmypid() (the re-run of a stopped job lands elsewhere)
 *   exit     exit(1) without answering
 *   sleep    {"op":"sleep","ms":N}: sleep N ms, then echo
 *   leak     {"op":"leak","kb":N}: keep N KiB more forever, body = current RSS in bytes
 *   stream   {"op":"stream","chunks":N,"delay_ms":D}: streamed reply of N frames with
 *            bodies chunk-1 .. chunk-N (STREAM bit, PING after every 5), D ms apart, then a
 *            final empty frame; honours STOP (empty end-of-stream frame, then next request)
 *   garbage  write the body (or a default text) straight to STDOUT, bypassing the frame
 *            layer (corrupts a pipes relay; on a socket relay STDOUT is not the relay),
 *            then echo
 *   garbage_after  echo, then write the body (or a default text) straight to STDOUT
 *   fork     leave a child process (`sleep`, {"secs":N}, default 60) in this process group,
 *            still holding this worker's stdin/stdout; body = the child's pid
 *   stderr   write the body as a line to STDERR, then echo
 *   print    `echo` the body (the library must route it to STDERR), then echo
 *   memory   body = memory_get_usage()
 *
 * Boot behaviour from the environment, before the worker object exists:
 *   OPS_BOOT_SLEEP_MS=N   sleep first
 *   OPS_BOOT_ECHO=text    print text to STDOUT (the classic CRC mismatch on pipes)
 *   OPS_BOOT_EXIT=code    exit with that code
 *   OPS_NO_HANDSHAKE=1    read frames but never answer any (not even the PID request)
 *
 * Warm-up, per request:
 *   OPS_COLD_MS=N, OPS_COLD_JOBS=T   before its j-th request (from 0) the worker sleeps
 *            N·e^(−j/T) ms more: a fresh worker's cold caches (default T = 100)
 */

declare(strict_types=1);

use Pacer\Goridge\Relay;
use Pacer\Payload;
use Pacer\Worker;

require __DIR__ . '/autoload.php';

$env = static fn (string $name): ?string => ($v = getenv($name)) === false || $v === '' ? null : $v;

if (($ms = $env('OPS_BOOT_SLEEP_MS')) !== null) {
    usleep((int) $ms * 1000);
}
if (($text = $env('OPS_BOOT_ECHO')) !== null) {
    echo $text;
}
if (($code = $env('OPS_BOOT_EXIT')) !== null) {
    exit((int) $code);
}
if ($env('OPS_NO_HANDSHAKE') !== null) {
    $relay = Relay::create($env('RR_RELAY') ?? 'pipes');
    try {
        while (true) {
            $relay->waitFrame();
        }
    } catch (\Throwable) {
        exit(0);
    }
}

$worker = Worker::create();

/** @var list<string> $leaked */
$leaked = [];

$rss = static function (): int {
    $status = (string) @file_get_contents('/proc/self/status');
    if (preg_match('/^VmRSS:\s+(\d+)\s+kB/m', $status, $m) === 1) {
        return (int) $m[1] * 1024;
    }

    return memory_get_usage(true);
};

$spawnChild = static function (int $secs): int {
    if (function_exists('pcntl_fork') && function_exists('pcntl_exec')) {
        $pid = pcntl_fork();
        if ($pid === 0) {
            // The child becomes `sleep`, keeping the inherited stdin/stdout/stderr.
            pcntl_exec('/bin/sleep', [(string) $secs]);
            exit(127);
        }
        if ($pid > 0) {
            return $pid;
        }
    }
    // Without pcntl: proc_open with an argument list execs directly (no shell), and the
    // child stays in this process group. The handle is kept so PHP does not wait for it.
    static $handles = [];
    $proc = proc_open(['sleep', (string) $secs], [0 => STDIN, 1 => STDOUT, 2 => STDERR], $pipes);
    $handles[] = $proc;

    return (int) proc_get_status($proc)['pid'];
};

$coldMs = (float) ($env('OPS_COLD_MS') ?? 0);
$coldJobs = max(1.0, (float) ($env('OPS_COLD_JOBS') ?? 100));
$served = 0;

while ($payload = $worker->waitPayload()) {
    if ($coldMs > 0) {
        usleep((int) round($coldMs * 1000 * exp(-$served / $coldJobs)));
    }
    $served++;
    $ctx = json_decode($payload->header, true);
    $op = is_array($ctx) ? (string) ($ctx['op'] ?? 'echo') : 'echo';
    $echo = static fn (string $body) => $worker->respond(new Payload($body, $payload->header));

    switch ($op) {
        case 'echo':
            $echo($payload->body);
            break;
        case 'pid':
            $echo((string) getmypid());
            break;
        case 'error':
            $worker->error($payload->body);
            break;
        case 'stop':
            $worker->stop();
            break;
        case 'stop_if_pid':
            if ((int) ($ctx['pid'] ?? 0) === getmypid()) {
                $worker->stop();
            } else {
                $echo((string) getmypid());
            }
            break;
        case 'exit':
            exit(1);
        case 'sleep':
            usleep((int) ($ctx['ms'] ?? 0) * 1000);
            $echo($payload->body);
            break;
        case 'leak':
            $leaked[] = str_repeat("\x5A", (int) ($ctx['kb'] ?? 0) * 1024);
            $echo((string) $rss());
            break;
        case 'stream':
            $chunks = (int) ($ctx['chunks'] ?? 3);
            $delay = (int) ($ctx['delay_ms'] ?? 0);
            $worker->respondStream((static function () use ($chunks, $delay) {
                for ($i = 1; $i <= $chunks; $i++) {
                    if ($i > 1 && $delay > 0) {
                        usleep($delay * 1000);
                    }
                    yield "chunk-$i";
                }
            })(), $payload->header);
            break;
        case 'garbage':
            fwrite(STDOUT, $payload->body !== '' ? $payload->body : "garbage: this is not a goridge frame\n");
            $echo($payload->body);
            break;
        case 'garbage_after':
            $echo($payload->body);
            fwrite(STDOUT, $payload->body !== '' ? $payload->body : "garbage after the reply\n");
            break;
        case 'fork':
            $echo((string) $spawnChild((int) ($ctx['secs'] ?? 60)));
            break;
        case 'stderr':
            fwrite(STDERR, $payload->body . "\n");
            $echo($payload->body);
            break;
        case 'print':
            echo $payload->body;
            $echo($payload->body);
            break;
        case 'memory':
            $echo((string) memory_get_usage());
            break;
        default:
            $worker->error("unknown op: $op");
    }
}
