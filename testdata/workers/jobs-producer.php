<?php

/**
 * A producer on our PHP library (Pacer\Jobs\Jobs), run by the Rust tests against a real
 * pacer: `php jobs-producer.php RPC_ADDRESS PIPELINE N`. Declares a memory pipeline
 * `<PIPELINE>-declared`, pushes N jobs one by one and N in a batch (with headers), one
 * delayed job, pauses and resumes PIPELINE, and prints what the server answered as JSON.
 */

declare(strict_types=1);

require __DIR__ . '/autoload.php';

use Pacer\Jobs\Jobs;
use Pacer\Jobs\JobsException;

[, $address, $pipeline, $n] = $argv;
$jobs = Jobs::fromEnvironment($address);
$declared = $pipeline . '-declared';
$jobs->declare(['name' => $declared, 'driver' => 'memory', 'priority' => 3, 'prefetch' => 10]);
$ids = [];
for ($i = 0; $i < (int) $n; $i++) {
    $ids[] = $jobs->push($pipeline, 'App\\One', json_encode(['do' => 'ack']), headers: ['i' => (string) $i, 'tags' => ['a', 'b']]);
}
$batch = [];
for ($i = 0; $i < (int) $n; $i++) {
    $batch[] = ['pipeline' => $pipeline, 'name' => 'App\\Batch', 'payload' => json_encode(['do' => 'ack']), 'headers' => ['b' => (string) $i]];
}
$ids = array_merge($ids, $jobs->pushBatch($batch));
$ids[] = $jobs->push($declared, 'App\\Later', json_encode(['do' => 'ack']), delay: 1, id: 'delayed-1');
$jobs->pause($pipeline);
$paused = $jobs->stat()[$pipeline]->ready;
$jobs->resume($pipeline);
$error = null;
try {
    $jobs->push('no-such-pipeline', 'X', '');
} catch (JobsException $e) {
    $error = $e->getMessage();
}
echo json_encode([
    'ids' => $ids,
    'list' => $jobs->list(),
    'paused_ready' => $paused,
    'stat' => array_map(static fn ($s) => (array) $s, $jobs->stat()),
    'error' => $error,
]), "\n";
