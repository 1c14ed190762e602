<?php

declare(strict_types=1);

namespace Pacer\Symfony;

use Pacer\HttpFoundation\FatalErrorGuard;
use Pacer\Worker;
use Symfony\Component\HttpKernel\HttpKernelInterface;
use Symfony\Component\Runtime\RunnerInterface;
use Symfony\Component\Runtime\SymfonyRuntime;

/**
 * The Symfony Runtime for pacer: a stock front controller (`public/index.php`) becomes a
 * worker when started by pacer with `APP_RUNTIME=Pacer\Symfony\Runtime`:
 *
 * ```yaml
 * server:
 *   command: "php public/index.php"
 *   env: { APP_RUNTIME: 'Pacer\Symfony\Runtime' }
 * ```
 *
 * An HTTP kernel gets {@see Runner} (boot once, serve in a loop); anything else (a console
 * command, a plain Response) runs as Symfony's own runtime runs it.
 */
class Runtime extends SymfonyRuntime
{
    private ?Worker $worker = null;
    private ?FatalErrorGuard $guard = null;

    /** @param array<string, mixed> $options Symfony's runtime options */
    public function __construct(array $options = [])
    {
        if (self::isWorker()) {
            // Before Symfony registers its error handler: the guard must see a fatal error
            // first (see FatalErrorGuard).
            $this->worker = Worker::create();
            $this->guard = FatalErrorGuard::install($this->worker);
        }
        parent::__construct($options);
        if ($this->worker !== null) {
            // Symfony displays errors on STDOUT in the CLI; a worker's STDOUT is the relay.
            \ini_set('display_errors', 'stderr');
        }
    }

    public function getRunner(?object $application): RunnerInterface
    {
        if ($application instanceof HttpKernelInterface && $this->worker !== null && $this->guard !== null) {
            return new Runner($application, $this->worker, $this->guard);
        }

        return parent::getRunner($application);
    }

    /** Started by pacer (or RoadRunner): it sets RR_MODE for its workers. */
    private static function isWorker(): bool
    {
        $mode = $_SERVER['RR_MODE'] ?? $_ENV['RR_MODE'] ?? \getenv('RR_MODE');

        return \is_string($mode) && $mode !== '';
    }
}
