<?php

use Monolog\Handler\StreamHandler;

return [
    'default' => env('LOG_CHANNEL', 'stderr'),
    'channels' => [
        // Under pacer, stderr goes to pacer's log with the worker's pid.
        'stderr' => [
            'driver' => 'monolog',
            'level' => env('LOG_LEVEL', 'debug'),
            'handler' => StreamHandler::class,
            'with' => ['stream' => 'php://stderr'],
        ],
        // A file in storage/logs, as Laravel's own `single` channel (examples/kubernetes/laravel.yaml
        // ships it to stdout from a sidecar).
        'single' => [
            'driver' => 'single',
            'level' => env('LOG_LEVEL', 'debug'),
            'path' => storage_path('logs/laravel.log'),
        ],
        'emergency' => ['path' => storage_path('logs/laravel.log')],
    ],
];
