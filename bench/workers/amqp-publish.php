<?php

// Publishes jobs to RabbitMQ in RoadRunner's message format (rr_id, rr_job headers), the
// payload carrying its push time: php amqp-publish.php URL QUEUE N RATE STOPS
// (RATE 0 = as fast as possible; STOPS extra {"stop":true} messages at the end).
declare(strict_types=1);

[, $url, $queueName, $n, $rate, $stops] = $argv;
$p = parse_url($url);
$conn = new AMQPConnection(['host' => $p['host'], 'port' => $p['port'], 'login' => $p['user'], 'password' => $p['pass'], 'vhost' => '/']);
$conn->connect();
$channel = new AMQPChannel($conn);
$exchange = new AMQPExchange($channel);
$exchange->setName('');
$start = microtime(true);
for ($i = 0; $i < (int) $n; $i++) {
    if ((float) $rate > 0) {
        $due = $start + $i / (float) $rate;
        if (($sleep = $due - microtime(true)) > 0) {
            usleep((int) ($sleep * 1e6));
        }
    }
    $exchange->publish(json_encode(['t' => microtime(true), 'i' => $i]), $queueName, AMQP_NOPARAM, [
        'headers' => ['rr_id' => "b$i", 'rr_job' => 'Bench\\Job'],
    ]);
}
for ($i = 0; $i < (int) $stops; $i++) {
    $exchange->publish(json_encode(['stop' => true]), $queueName, AMQP_NOPARAM, ['headers' => ['rr_id' => "stop$i", 'rr_job' => 'Bench\\Stop']]);
}
$conn->disconnect();
