<?php

/**
 * A jobs consumer written only against docs/jobs-protocol.md, with no library code: its
 * own frame packing, CRC-32 and JSON handling. It pins the jobs contract independently of
 * php/src (and of RoadRunner's PHP library, which is run side by side outside CI).
 *
 * Each job's payload is a JSON object saying what to do:
 *   {"do": "ack"}                          acknowledge (type 2)
 *   {"do": "complete"}                     the old success reply (type 0)
 *   {"do": "empty"}                        an empty reply body (an ack for RoadRunner)
 *   {"do": "nack", "requeue": false}       nack (type 3), optionally requeued
 *   {"do": "requeue", "delay": 1}          requeue (type 4) with a delay and a header
 *   {"do": "fail", "requeue": false}       the old error reply (type 1)
 *   {"do": "error"}                        $worker->error(): an ERROR frame
 *   {"do": "die"}                          exit in the middle of the job
 *   {"do": "fail_until", "attempts": N}    fail (type 1) while the attempts header < N
 *   "ms": N                                sleep N ms first (any "do")
 * Every job taken is appended as one JSON line to $JOBS_LOG:
 *   {"pid","id","job","pipeline","driver","queue","headers","payload","t"}
 * (written before the job runs, so a job whose worker is killed is still counted).
 */

declare(strict_types=1);

const WORKER = 'jobs.php';
require __DIR__ . '/frames.php';

[$in, $out] = [STDIN, STDOUT];
stream_set_read_buffer($in, 0);
$log = getenv('JOBS_LOG') ?: null;

/** A reply to a job: empty context, the body after it (option 0 = context length 0). */
function reply($out, string $body): void
{
    write_frame($out, CODEC_RAW, $body, [0]);
}

while (true) {
    $frame = read_frame($in);
    if ($frame['flags'] & CONTROL) {
        answer_control($out, $frame['payload']);
        continue;
    }
    $contextLength = $frame['options'][0] ?? 0;
    $context = json_decode(substr($frame['payload'], 0, $contextLength), true, 512, JSON_THROW_ON_ERROR);
    $payload = (string) substr($frame['payload'], $contextLength);
    $headers = $context['headers'] ?? [];
    if ($log !== null) {
        file_put_contents($log, json_encode([
            'pid' => getmypid(),
            'id' => $context['id'],
            'job' => $context['job'],
            'pipeline' => $context['pipeline'],
            'driver' => $context['driver'] ?? null,
            'queue' => $context['queue'] ?? null,
            'headers' => $headers,
            'payload' => $payload,
            't' => microtime(true),
        ]) . "\n", FILE_APPEND | LOCK_EX);
    }
    $cmd = json_decode($payload, true) ?: ['do' => 'ack'];
    if (!empty($cmd['ms'])) {
        usleep((int) $cmd['ms'] * 1000);
    }
    $attempts = (int) ($headers['attempts'][0] ?? 0);
    switch ($cmd['do'] ?? 'ack') {
        case 'complete':
            reply($out, json_encode(['type' => 0, 'data' => []]));
            break;
        case 'empty':
            reply($out, '');
            break;
        case 'nack':
            reply($out, json_encode(['type' => 3, 'data' => [
                'message' => 'nacked', 'requeue' => (bool) ($cmd['requeue'] ?? false), 'delay_seconds' => (int) ($cmd['delay'] ?? 0),
            ]]));
            break;
        case 'requeue':
            $seen = (int) ($headers['requeued'][0] ?? 0);
            if ($seen >= (int) ($cmd['times'] ?? 1)) {
                reply($out, json_encode(['type' => 2, 'data' => []]));
                break;
            }
            reply($out, json_encode(['type' => 4, 'data' => [
                'message' => 'again', 'delay_seconds' => (int) ($cmd['delay'] ?? 0),
                'headers' => ['requeued' => [(string) ($seen + 1)]],
            ]]));
            break;
        case 'fail':
            reply($out, json_encode(['type' => 1, 'data' => [
                'message' => 'failed on purpose', 'requeue' => (bool) ($cmd['requeue'] ?? false), 'delay_seconds' => 0,
            ]]));
            break;
        case 'fail_until':
            if ($attempts + 1 < (int) $cmd['attempts']) {
                reply($out, json_encode(['type' => 1, 'data' => ['message' => "attempt $attempts", 'requeue' => false, 'delay_seconds' => 0]]));
            } else {
                reply($out, json_encode(['type' => 2, 'data' => []]));
            }
            break;
        case 'error':
            write_frame($out, ERROR, 'worker error on purpose');
            break;
        case 'die':
            exit(9);
        default:
            reply($out, json_encode(['type' => 2, 'data' => []]));
    }
}
