<?php

declare(strict_types=1);

namespace Pacer\Symfony;

use Pacer\HttpFoundation\FatalErrorGuard;
use Pacer\HttpFoundation\Server;
use Pacer\Worker;
use Symfony\Component\HttpKernel\HttpKernelInterface;
use Symfony\Component\Runtime\RunnerInterface;

/** Serves an HTTP kernel until pacer stops the worker; see {@see SymfonyApp}. */
final class Runner implements RunnerInterface
{
    public function __construct(
        private readonly HttpKernelInterface $kernel,
        private readonly Worker $worker,
        private readonly FatalErrorGuard $guard,
    ) {
    }

    public function run(): int
    {
        return (new Server($this->worker, new SymfonyApp($this->kernel), $this->guard))->serve();
    }
}
