<?php

declare(strict_types=1);

namespace Pacer\HttpFoundation;

use Pacer\Worker;

/**
 * Leaves the pool by the protocol, for a worker whose state can no longer be trusted
 * after it answered its last request: every request pacer still sends it is handed back
 * with {@see Worker::stop()} (pacer runs it on another worker) until pacer sends the stop
 * command. Unlike a plain exit, no request can land on a process that is going away.
 *
 * @internal
 */
final class Retire
{
    public static function worker(Worker $worker): void
    {
        while ($worker->waitPayload() !== null) {
            $worker->stop();
        }
    }
}
