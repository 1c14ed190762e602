<?php

namespace App\Controller;

use Symfony\Component\HttpFoundation\BinaryFileResponse;
use Symfony\Component\HttpFoundation\JsonResponse;
use Symfony\Component\HttpFoundation\Request;
use Symfony\Component\HttpFoundation\ResponseHeaderBag;
use Symfony\Component\HttpFoundation\StreamedResponse;

class FileController
{
    public function __construct(private readonly string $projectDir)
    {
    }

    /** Moves the upload into var/uploads and answers with what was stored. */
    public function upload(Request $request): JsonResponse
    {
        $file = $request->files->get('doc');
        if ($file === null || !$file->isValid()) {
            return new JsonResponse(['errors' => ['doc' => 'A file is required.']], 422);
        }
        $name = $file->getClientOriginalName();
        $size = $file->getSize();
        $moved = $file->move($this->projectDir . '/var/uploads', bin2hex(random_bytes(8)) . '.upload');

        return new JsonResponse([
            'name' => $name,
            'size' => $size,
            'sha256' => hash_file('sha256', $moved->getPathname()),
            'note' => $request->request->get('note'),
        ]);
    }

    public function stream(Request $request): StreamedResponse
    {
        $n = $request->query->getInt('n', 3);

        return new StreamedResponse(static function () use ($n): void {
            foreach (range(1, $n) as $i) {
                echo "line $i\n";
                ob_flush();
                flush();
                usleep(50000);
            }
        }, 200, ['Content-Type' => 'text/plain']);
    }

    public function download(): BinaryFileResponse
    {
        $response = new BinaryFileResponse($this->projectDir . '/public/robots.txt');
        $response->setContentDisposition(ResponseHeaderBag::DISPOSITION_ATTACHMENT, 'robots.txt');

        return $response;
    }
}
