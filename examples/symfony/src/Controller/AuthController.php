<?php

namespace App\Controller;

use Symfony\Bundle\FrameworkBundle\Controller\AbstractController;
use Symfony\Component\HttpFoundation\JsonResponse;
use Symfony\Component\HttpFoundation\Response;
use Symfony\Component\Security\Http\Authentication\AuthenticationUtils;

class AuthController extends AbstractController
{
    /** The form; the firewall's form_login handles the POST. */
    public function login(AuthenticationUtils $utils): Response
    {
        return $this->render('login.html.twig', [
            'last_username' => $utils->getLastUsername(),
            'error' => $utils->getLastAuthenticationError(),
        ]);
    }

    public function me(): JsonResponse
    {
        $user = $this->getUser();

        return new JsonResponse(['user' => $user?->getUserIdentifier()]);
    }

    public function dashboard(): Response
    {
        return $this->render('dashboard.html.twig');
    }
}
