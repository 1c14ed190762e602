<?php

// The jobs benchmark's consumer under pacer (Pacer\Jobs\Consumer): for each job, its
// queue wait (now - the payload's push time) is kept, the job acked; the waits go to
// $BENCH_WAITS.<pid> when the worker stops.
declare(strict_types=1);

require __DIR__ . '/../../php/autoload.php';

$out = getenv('BENCH_WAITS') ?: '/dev/null';
$waits = [];
$consumer = new Pacer\Jobs\Consumer();
while ($task = $consumer->waitTask()) {
    $job = json_decode($task->getPayload(), true);
    $waits[] = microtime(true) - (float) ($job['t'] ?? 0);
    $task->ack();
    if (count($waits) >= 500) {
        file_put_contents($out . '.' . getmypid(), implode("\n", $waits) . "\n", FILE_APPEND);
        $waits = [];
    }
}
file_put_contents($out . '.' . getmypid(), $waits ? implode("\n", $waits) . "\n" : '', FILE_APPEND);
