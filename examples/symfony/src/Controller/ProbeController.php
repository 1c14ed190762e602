<?php

namespace App\Controller;

use App\Service\Database;
use App\Service\RequestContext;
use Symfony\Component\HttpFoundation\JsonResponse;
use Symfony\Component\HttpFoundation\Request;
use Symfony\Component\HttpFoundation\Response;

/** Error paths and the probes of the leak tests (sidecar/tests/symfony.rs). */
class ProbeController
{
    public function boom(): Response
    {
        throw new \RuntimeException('boom: a bug in a controller');
    }

    public function fatal(): Response
    {
        ini_set('memory_limit', '64M');
        $chunks = [];
        while (true) {
            $chunks[] = str_repeat('x', 1 << 20);
        }
    }

    public function echo(): Response
    {
        echo 'printed by the controller; ';

        return new Response('returned by the controller');
    }

    /** Request-bound state in a shared service: the first request to need it sets it. */
    public function context(Request $request, RequestContext $context): JsonResponse
    {
        $context->path ??= $request->getPathInfo();

        return new JsonResponse(['path' => $context->path]);
    }

    /** Leaves a transaction open, as a request that forgot to commit would. */
    public function transaction(Request $request, Database $db): JsonResponse
    {
        $pdo = $db->pdo();
        $pdo->beginTransaction();
        $pdo->prepare('INSERT INTO notes (text) VALUES (?)')->execute([$request->request->get('text')]);

        return new JsonResponse(['in_transaction' => $pdo->inTransaction()]);
    }

    public function notes(Request $request, Database $db): JsonResponse
    {
        $pdo = $db->pdo();
        if ($request->isMethod('POST')) {
            $pdo->prepare('INSERT INTO notes (text) VALUES (?)')->execute([$request->request->get('text')]);
        }

        return new JsonResponse([
            'texts' => $pdo->query('SELECT text FROM notes ORDER BY id')->fetchAll(\PDO::FETCH_COLUMN),
            'in_transaction' => $pdo->inTransaction(),
        ]);
    }
}
