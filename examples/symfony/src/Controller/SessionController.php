<?php

namespace App\Controller;

use Symfony\Component\HttpFoundation\JsonResponse;
use Symfony\Component\HttpFoundation\Request;

class SessionController
{
    public function put(Request $request): JsonResponse
    {
        $request->getSession()->set($request->query->get('key'), $request->query->get('value'));

        return new JsonResponse(['stored' => $request->query->get('key')]);
    }

    public function get(Request $request): JsonResponse
    {
        return new JsonResponse(['value' => $request->getSession()->get($request->query->get('key'))]);
    }
}
