<?php
// A small Slim 3 app (Debian's php-slim), shared by both servers:
//   GET /api/status        a JSON document
//   GET /api/users/{id}    a route with a path parameter, JSON
//   anything else          Slim's own 404 page
// plus one middleware, so a request goes through the whole Slim stack. (Slim binds its
// container to route closures, so they cannot be static.)
declare(strict_types=1);

require_once '/usr/share/php/Slim/autoload.php';

use Psr\Http\Message\ResponseInterface as Response;
use Psr\Http\Message\ServerRequestInterface as Request;

return (static function (): Slim\App {
    $app = new Slim\App(['settings' => ['displayErrorDetails' => false]]);

    $app->add(function (Request $request, Response $response, callable $next): Response {
        return $next($request, $response)->withHeader('X-Powered-By', 'Slim');
    });

    $app->get('/api/status', function (Request $request, Slim\Http\Response $response): Response {
        return $response->withJson([
            'status' => 'ok',
            'service' => 'bench',
            'features' => ['json', 'routing', 'middleware'],
        ]);
    });

    $app->get('/api/users/{id:[0-9]+}', function (Request $request, Slim\Http\Response $response, array $args): Response {
        $id = (int) $args['id'];
        return $response->withJson([
            'id' => $id,
            'name' => 'user ' . $id,
            'email' => 'user' . $id . '@example.org',
            'roles' => ['reader'],
        ]);
    });

    return $app;
})();
