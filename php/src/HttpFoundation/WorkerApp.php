<?php

declare(strict_types=1);

namespace Pacer\HttpFoundation;

use Symfony\Component\HttpFoundation\Request;
use Symfony\Component\HttpFoundation\Response;

/**
 * A framework application booted once and kept across requests, as {@see Server} drives
 * it: handle a request, terminate it after the response went out, then reset whatever
 * the request changed so the next one (maybe another client's) starts clean.
 */
interface WorkerApp
{
    /** The request as the framework's own kind (e.g. `Illuminate\Http\Request`). */
    public function createRequest(\Pacer\Http\Request $request): Request;

    /** Must not throw for application errors: those become error responses. */
    public function handle(Request $request): Response;

    /** After the response was sent: terminable middleware, `kernel.terminate` listeners. */
    public function terminate(Request $request, Response $response): void;

    /**
     * Puts the application back into its post-boot state. A throw means the state is
     * unknown: the worker then exits and pacer starts a fresh one.
     */
    public function reset(): void;
}
