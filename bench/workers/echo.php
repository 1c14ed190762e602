<?php
// The smallest worker our library allows: echo every payload back. Used by the relay
// round-trip benchmark for both drivers (pacer and the bare driver).
declare(strict_types=1);

require __DIR__ . '/../../php/autoload.php';

$worker = Pacer\Worker::create();
while ($payload = $worker->waitPayload()) {
    $worker->respond($payload);
}
