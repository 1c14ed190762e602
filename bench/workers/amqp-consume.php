<?php

// The plain PHP consumer loop the jobs benchmark compares pacer with: one process on
// php-amqp's AMQPQueue::consume(), as a Laravel-style queue worker runs: decode, note the
// queue wait, ack. Exits on a {"stop":true} message, writing its CPU time (µs, getrusage) to
// RUSAGE.<pid> when given. Usage: php amqp-consume.php URL QUEUE PREFETCH WAITS [RUSAGE]
declare(strict_types=1);

[, $url, $queueName, $prefetch, $out] = $argv;
$rusage = $argv[5] ?? null;
$p = parse_url($url);
$conn = new AMQPConnection(['host' => $p['host'], 'port' => $p['port'], 'login' => $p['user'], 'password' => $p['pass'], 'vhost' => '/']);
$conn->connect();
$channel = new AMQPChannel($conn);
$channel->setPrefetchCount((int) $prefetch);
$queue = new AMQPQueue($channel);
$queue->setName($queueName);
$waits = [];
$queue->consume(static function (AMQPEnvelope $m, AMQPQueue $q) use (&$waits, $out, $rusage): bool {
    $job = json_decode($m->getBody(), true);
    if (!empty($job['stop'])) {
        $q->ack($m->getDeliveryTag());
        file_put_contents($out . '.' . getmypid(), $waits ? implode("\n", $waits) . "\n" : '', FILE_APPEND);
        if ($rusage !== null) {
            $r = getrusage();
            $us = ($r['ru_utime.tv_sec'] + $r['ru_stime.tv_sec']) * 1e6 + $r['ru_utime.tv_usec'] + $r['ru_stime.tv_usec'];
            file_put_contents($rusage . '.' . getmypid(), $us . "\n", FILE_APPEND);
        }

        return false;
    }
    $waits[] = microtime(true) - (float) ($job['t'] ?? 0);
    $q->ack($m->getDeliveryTag());
    if (count($waits) >= 500) {
        file_put_contents($out . '.' . getmypid(), implode("\n", $waits) . "\n", FILE_APPEND);
        $waits = [];
    }

    return true;
});
