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

const CONTROL = 0x01;
const CODEC_RAW = 0x04;
const CODEC_JSON = 0x08;
const ERROR = 0x40;

[$in, $out] = [STDIN, STDOUT];
stream_set_read_buffer($in, 0);
$log = getenv('JOBS_LOG') ?: null;

function read_exactly($in, int $n, bool $frameStart = false): string
{
    $data = '';
    while (strlen($data) < $n) {
        $chunk = fread($in, $n - strlen($data));
        if ($chunk === false || $chunk === '') {
            if (feof($in)) {
                if ($frameStart && $data === '') {
                    exit(0);
                }
                fwrite(STDERR, "jobs.php: EOF inside a frame\n");
                exit(3);
            }
            continue;
        }
        $data .= $chunk;
    }

    return $data;
}

/** @return array{flags: int, options: list<int>, payload: string} */
function read_frame($in): array
{
    $header = read_exactly($in, 12, true);
    $h = unpack('Cvhl/Cflags/Vlength/Vcrc/Cbyte10/Cbyte11', $header);
    if (crc32(substr($header, 0, 6)) !== $h['crc']) {
        fwrite(STDERR, 'jobs.php: header CRC mismatch: ' . bin2hex($header) . "\n");
        exit(2);
    }
    $words = $h['vhl'] & 0x0F;
    $rest = read_exactly($in, ($words - 3) * 4 + $h['length']);
    $options = $words > 3 ? array_values(unpack('V*', substr($rest, 0, ($words - 3) * 4))) : [];

    return ['flags' => $h['flags'], 'options' => $options, 'payload' => (string) substr($rest, ($words - 3) * 4)];
}

/** @param list<int> $options */
function write_frame($out, int $flags, string $payload, array $options = []): void
{
    $head = pack('CCV', 0x10 | (3 + count($options)), $flags, strlen($payload));
    $frame = $head . pack('VCC', crc32($head), 0, 0);
    foreach ($options as $option) {
        $frame .= pack('V', $option);
    }
    $frame .= $payload;
    for ($written = 0; $written < strlen($frame); $written += $n) {
        $n = fwrite($out, $written === 0 ? $frame : substr($frame, $written));
        if ($n === false || $n === 0) {
            exit(4);
        }
    }
}

/** A reply to a job: empty context, the body after it (option 0 = context length 0). */
function reply($out, string $body): void
{
    write_frame($out, CODEC_RAW, $body, [0]);
}

while (true) {
    $frame = read_frame($in);
    if ($frame['flags'] & CONTROL) {
        $command = json_decode($frame['payload'], true);
        if (!empty($command['stop'])) {
            exit(0);
        }
        if (!empty($command['pid'])) {
            write_frame($out, CONTROL, json_encode(['pid' => getmypid()]));
        }
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
