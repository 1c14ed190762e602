<?php
// php-fpm front controller: boots the Slim app on every request, as php-fpm must.
declare(strict_types=1);

$app = require __DIR__ . '/app.php';
$app->run();
