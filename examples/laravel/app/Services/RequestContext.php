<?php

namespace App\Services;

/**
 * A singleton built from the current request — the kind of service that serves the
 * wrong request when a worker keeps it.
 */
class RequestContext
{
    public function __construct(public readonly string $path, public readonly int $builtAt)
    {
    }
}
