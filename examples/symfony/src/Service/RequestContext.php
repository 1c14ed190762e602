<?php

namespace App\Service;

use Symfony\Contracts\Service\ResetInterface;

/**
 * Request-bound state in a shared service: set by the first request that needs it. The
 * kernel's services_resetter clears it between requests (ResetInterface).
 */
class RequestContext implements ResetInterface
{
    public ?string $path = null;

    public function reset(): void
    {
        $this->path = null;
    }
}
