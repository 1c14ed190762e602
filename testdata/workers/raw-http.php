<?php

/**
 * An HTTP worker written only against docs/wire-protocol.md, with no library code: its
 * own frame packing, CRC-32 and JSON context handling. It pins the wire contract
 * independently of php/src, so a bug shared by the server and our library cannot hide.
 *
 * Every request is answered with status 200, `Content-Type: application/json`, flags 0
 * (like roadrunner-http <= 3.4), and a body echoing what arrived:
 * {"remoteAddr","protocol","method","uri","headers","cookies","rawQuery","parsed",
 *  "uploads","attributes","body","bodyLength","bodySha256"}
 * (`body` with invalid UTF-8 replaced; `bodyLength`/`bodySha256` are exact).
 *
 * Relay from RR_RELAY: pipes (default), tcp://host:port or unix://path.
 */

declare(strict_types=1);

const CONTROL = 0x01;
const STOP = 0x02;
const PONG = 0x08;

$relay = getenv('RR_RELAY') ?: 'pipes';
if ($relay === 'pipes') {
    [$in, $out] = [STDIN, STDOUT];
} else {
    $socket = stream_socket_client($relay, $errno, $errstr, 10);
    if ($socket === false) {
        fwrite(STDERR, "raw-http: cannot connect to $relay: $errstr\n");
        exit(1);
    }
    [$in, $out] = [$socket, $socket];
}
stream_set_read_buffer($in, 0);

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
                fwrite(STDERR, "raw-http: EOF inside a frame\n");
                exit(3);
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
        fwrite(STDERR, 'raw-http: header CRC mismatch: ' . bin2hex($header) . "\n");
        exit(2);
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
            fwrite(STDERR, "raw-http: write failed\n");
            exit(4);
        }
    }
}

$json = JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE;

while (true) {
    $frame = read_frame($in);

    if ($frame['flags'] & CONTROL) {
        $command = json_decode($frame['payload'], true);
        if (!empty($command['stop'])) {
            exit(0);
        }
        if (!empty($command['pid'])) {
            write_frame($out, CONTROL, json_encode(['pid' => getmypid()]));
            continue;
        }
        fwrite(STDERR, 'raw-http: unknown control frame ' . $frame['payload'] . "\n");
        exit(5);
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
    $request = json_decode($context, true, 512, JSON_THROW_ON_ERROR);

    $echo = json_encode([
        'remoteAddr' => $request['remoteAddr'],
        'protocol' => $request['protocol'],
        'method' => $request['method'],
        'uri' => $request['uri'],
        'headers' => (object) ($request['headers'] ?? []),
        'cookies' => (object) ($request['cookies'] ?? []),
        'rawQuery' => $request['rawQuery'],
        'parsed' => $request['parsed'],
        'uploads' => $request['uploads'] ?? null,
        'attributes' => (object) ($request['attributes'] ?? []),
        'body' => $body,
        'bodyLength' => strlen($body),
        'bodySha256' => hash('sha256', $body),
    ], $json);
    $responseContext = '{"status":200,"headers":{"Content-Type":["application/json"]}}';
    write_frame($out, 0, $responseContext . $echo, [strlen($responseContext)]);
}
