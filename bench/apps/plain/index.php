<?php
// The php-fpm side of the hello-world / JSON-echo / overload benchmarks: the same routes
// as workers/hello.php, as a plain front controller.
declare(strict_types=1);

switch (parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH)) {
    case '/hello':
        header('Content-Type: text/plain');
        echo 'Hello, world!';
        break;
    case '/echo':
        header('Content-Type: application/json');
        echo file_get_contents('php://input');
        break;
    case '/work':
        usleep(max(0, min(60_000, (int) ($_GET['ms'] ?? 20))) * 1000);
        header('Content-Type: text/plain');
        echo 'done';
        break;
    default:
        http_response_code(404);
        header('Content-Type: text/plain');
        echo 'Not found';
}
