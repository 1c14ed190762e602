<?php

/**
 * The jobs scenario's consumer (a jobs worker on Pacer's PHP library): each job takes
 * `ms` milliseconds of its JSON payload, then its id is appended to $JOBS_LOG and the job
 * is acknowledged — so the scenario counts every job acked, across pods that come and go.
 */

declare(strict_types=1);

use Pacer\Jobs\Consumer;

require __DIR__ . '/../../../php/autoload.php';

$log = (string) getenv('JOBS_LOG');
$consumer = new Consumer();
while ($task = $consumer->waitTask()) {
    $job = json_decode($task->getPayload(), true);
    usleep((int) (($job['ms'] ?? 0) * 1000));
    // Logged before the ack: a worker killed in between is the at-least-once duplicate.
    file_put_contents($log, $task->getId() . "\n", FILE_APPEND | LOCK_EX);
    $task->ack();
}
