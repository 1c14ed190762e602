<?php

/**
 * The consumer of examples/jobs: a jobs worker (`jobs.pool`) on Pacer's PHP library. It
 * "sends" each welcome mail by logging it; a payload without `to` is rejected (nack) and
 * goes through the pipeline's retry policy to the `failed` pipeline.
 *
 * The same loop works with RoadRunner's spiral/roadrunner-jobs (`Consumer::waitTask()`,
 * `$task->ack()` / `nack()` / `requeue()`), unchanged.
 */

declare(strict_types=1);

use Pacer\Jobs\Consumer;

require __DIR__ . '/../../php/autoload.php';

$consumer = new Consumer();
while ($task = $consumer->waitTask()) {
    $mail = json_decode($task->getPayload(), true);
    if (!is_array($mail) || !isset($mail['to'])) {
        $task->nack('no recipient');
        continue;
    }
    // Goes to pacer's log (stderr), with the worker's pid.
    fwrite(STDERR, sprintf("%s: welcome mail to %s (attempt %d)\n", $task->getName(), $mail['to'], $task->getAttempts() + 1));
    $task->ack();
}
