<?php

/**
 * The frame codec of the test workers written only against docs/wire-protocol.md, with
 * no library code (raw-http.php, rr-compat.php, jobs.php): its own frame packing and
 * CRC-32, independent of php/src. The including worker names itself in `WORKER` (the
 * prefix of what it writes to STDERR).
 *
 * Exit codes: 0 EOF between frames, a stop command or an empty request, 2 header CRC
 * mismatch, 3 EOF inside a frame, 4 write failed, 5 an unknown control command.
 */

declare(strict_types=1);

// Flags (byte 1, docs/wire-protocol.md §1.2).
const CONTROL = 0x01;
const CODEC_RAW = 0x04;
const CODEC_JSON = 0x08;
const ERROR = 0x40;
// The stream byte (byte 10, §1.3): what pacer tells a streaming worker.
const STOP = 0x02;
const PONG = 0x08;

/** Tells why on STDERR and ends the worker with `$code`. */
function frame_fail(string $why, int $code): never
{
    fwrite(STDERR, WORKER . ": $why\n");
    exit($code);
}

/** Reads exactly $n bytes; a clean EOF before a frame starts ends the worker. */
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
                frame_fail('EOF inside a frame', 3);
            }
            continue;
        }
        $data .= $chunk;
    }

    return $data;
}

/** @return array{flags: int, byte10: int, options: list<int>, payload: string} */
function read_frame($in): array
{
    $header = read_exactly($in, 12, true);
    $h = unpack('Cvhl/Cflags/Vlength/Vcrc/Cbyte10/Cbyte11', $header);
    if (crc32(substr($header, 0, 6)) !== $h['crc']) {
        frame_fail('header CRC mismatch: ' . bin2hex($header), 2);
    }
    $words = $h['vhl'] & 0x0F;
    $rest = read_exactly($in, ($words - 3) * 4 + $h['length']);
    $options = $words > 3 ? array_values(unpack('V*', substr($rest, 0, ($words - 3) * 4))) : [];

    return [
        'flags' => $h['flags'],
        'byte10' => $h['byte10'],
        'options' => $options,
        'payload' => (string) substr($rest, ($words - 3) * 4),
    ];
}

/** @param list<int> $options */
function write_frame($out, int $flags, string $payload, array $options = [], int $byte10 = 0): void
{
    $head = pack('CCV', 0x10 | (3 + count($options)), $flags, strlen($payload));
    $frame = $head . pack('VCC', crc32($head), $byte10, 0);
    foreach ($options as $option) {
        $frame .= pack('V', $option);
    }
    $frame .= $payload;
    for ($written = 0; $written < strlen($frame); $written += $n) {
        $n = fwrite($out, $written === 0 ? $frame : substr($frame, $written));
        if ($n === false || $n === 0) {
            frame_fail('write failed', 4);
        }
    }
}

/**
 * Answers a control frame from pacer: `{"pid":true}` with the PID handshake, while
 * `{"stop":true}` ends the worker. False for any other command.
 */
function answer_control($out, string $payload): bool
{
    $command = json_decode($payload, true);
    if (!empty($command['stop'])) {
        exit(0);
    }
    if (!empty($command['pid'])) {
        write_frame($out, CONTROL, json_encode(['pid' => getmypid()]));

        return true;
    }

    return false;
}

/**
 * The next request of an HTTP worker, as its context (JSON) and body: control frames are
 * answered and what pacer tells a streaming worker (stop, pong) is skipped on the way; an
 * empty request ends the worker, and an unknown control command fails it (exit code 5).
 *
 * @return array{0: string, 1: string}
 */
function next_request($in, $out): array
{
    while (true) {
        $frame = read_frame($in);
        if ($frame['flags'] & CONTROL) {
            if (answer_control($out, $frame['payload'])) {
                continue;
            }
            frame_fail('unknown control frame ' . $frame['payload'], 5);
        }
        if ($frame['byte10'] & (STOP | PONG)) {
            continue;
        }
        $contextLength = $frame['options'][0] ?? 0;
        $context = substr($frame['payload'], 0, $contextLength);
        $body = (string) substr($frame['payload'], $contextLength);
        if ($context === '' && $body === '') {
            exit(0);
        }

        return [$context, $body];
    }
}
