<?php

/**
 * A jobs consumer on our PHP library (Pacer\Jobs\Consumer): the same payload commands and
 * job log as jobs.php ({"do": "ack"|"nack"|"requeue"|"fail"|"complete", "delay": N,
 * "times": N, "requeue": bool, "ms": N}), through the library's task API.
 */

declare(strict_types=1);

require __DIR__ . '/autoload.php';

use Pacer\Jobs\Consumer;

$log = getenv('JOBS_LOG') ?: null;
$consumer = new Consumer();
while ($task = $consumer->waitTask()) {
    if ($log !== null) {
        file_put_contents($log, json_encode([
            'pid' => getmypid(),
            'id' => $task->getId(),
            'job' => $task->getName(),
            'pipeline' => $task->getPipeline(),
            'driver' => $task->getDriver(),
            'queue' => $task->getQueue(),
            'headers' => $task->getHeaders() ?: null,
            'payload' => $task->getPayload(),
            't' => microtime(true),
        ]) . "\n", FILE_APPEND | LOCK_EX);
    }
    $cmd = json_decode($task->getPayload(), true) ?: ['do' => 'ack'];
    if (!empty($cmd['ms'])) {
        usleep((int) $cmd['ms'] * 1000);
    }
    match ($cmd['do'] ?? 'ack') {
        'nack' => $task->withDelay((int) ($cmd['delay'] ?? 0))->nack('nacked', (bool) ($cmd['requeue'] ?? false)),
        'requeue' => ($seen = (int) $task->getHeaderLine('requeued')) >= (int) ($cmd['times'] ?? 1)
            ? $task->ack()
            : $task->withHeader('requeued', (string) ($seen + 1))->withDelay((int) ($cmd['delay'] ?? 0))->requeue('again'),
        'fail' => $task->fail('failed on purpose', (bool) ($cmd['requeue'] ?? false)),
        'complete' => $task->complete(),
        default => $task->ack(),
    };
}
