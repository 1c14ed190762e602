<?php

declare(strict_types=1);

namespace Pacer\Services\Exception;

/** A `service.*` call failed: the server's reason (no such service, cannot start, …). */
class ServiceException extends \RuntimeException
{
}
