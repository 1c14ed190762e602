<?php

declare(strict_types=1);

namespace Pacer\Symfony;

use Pacer\HttpFoundation\RequestFactory;
use Pacer\HttpFoundation\WorkerApp;
use Symfony\Component\HttpFoundation\Request;
use Symfony\Component\HttpFoundation\Response;
use Symfony\Component\HttpKernel\EventListener\StreamedResponseListener;
use Symfony\Component\HttpKernel\HttpKernelInterface;
use Symfony\Component\HttpKernel\KernelEvents;
use Symfony\Component\HttpKernel\KernelInterface;
use Symfony\Component\HttpKernel\TerminableInterface;

/**
 * A Symfony kernel booted once per worker. Between requests:
 *
 * the kernel resets every service tagged `kernel.reset` (the `services_resetter`: the
 * security token storage, the request stack, the session listener — which also clears PHP's
 * native session id, that Symfony would otherwise give the next client without a session
 * cookie —, Monolog buffers, any service of the app that implements `ResetInterface`).
 * Symfony's own `Kernel::handle()` does it before each request after the first;
 * {@see reset()} does it right after the response, so nothing of a request lingers while
 * the worker waits.
 *
 * Services that keep state and do not implement `ResetInterface` keep it, as in any
 * long-running Symfony runtime.
 *
 * The kernel's `StreamedResponseListener` is removed: it would send a streamed response
 * from inside `handle()`, before pacer has the headers; {@see \Pacer\HttpFoundation\ResponseSender}
 * streams it instead.
 */
final class SymfonyApp implements WorkerApp
{
    private readonly RequestFactory $requests;

    public function __construct(private readonly HttpKernelInterface $kernel)
    {
        $server = $_SERVER;
        if ($kernel instanceof KernelInterface) {
            $kernel->boot();
            $server = RequestFactory::frontControllerServer($server, $kernel->getProjectDir() . '/public');
            self::removeStreamedResponseListener($kernel);
        }
        $this->requests = new RequestFactory(Request::class, $server);
    }

    public function createRequest(\Pacer\Http\Request $request): Request
    {
        return $this->requests->create($request);
    }

    public function handle(Request $request): Response
    {
        return $this->kernel->handle($request);
    }

    public function terminate(Request $request, Response $response): void
    {
        if ($this->kernel instanceof TerminableInterface) {
            $this->kernel->terminate($request, $response);
        }
    }

    public function reset(): void
    {
        if ($this->kernel instanceof KernelInterface) {
            $container = $this->kernel->getContainer();
            if ($container->has('services_resetter')) {
                $container->get('services_resetter')->reset();
            }
        }
    }

    private static function removeStreamedResponseListener(KernelInterface $kernel): void
    {
        $container = $kernel->getContainer();
        if (!$container->has('event_dispatcher')) {
            return;
        }
        $dispatcher = $container->get('event_dispatcher');
        foreach ($dispatcher->getListeners(KernelEvents::RESPONSE) as $listener) {
            if (\is_array($listener) && $listener[0] instanceof StreamedResponseListener) {
                $dispatcher->removeListener(KernelEvents::RESPONSE, $listener);
            }
        }
    }
}
