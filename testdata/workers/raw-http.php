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

const WORKER = 'raw-http';
require __DIR__ . '/frames.php';

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

$json = JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE;

while (true) {
    [$context, $body] = next_request($in, $out);
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
