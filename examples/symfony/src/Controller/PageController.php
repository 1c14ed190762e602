<?php

namespace App\Controller;

use App\Service\Database;
use Symfony\Bundle\FrameworkBundle\Controller\AbstractController;
use Symfony\Component\HttpFoundation\Response;

class PageController extends AbstractController
{
    public function home(): Response
    {
        return $this->render('home.html.twig');
    }

    /** The benchmark page: a route, a controller, a Twig template and one database read. */
    public function post(int $id, Database $db): Response
    {
        $post = $db->post($id);
        if ($post === null) {
            throw $this->createNotFoundException("No post $id");
        }

        return $this->render('post.html.twig', ['post' => $post]);
    }
}
