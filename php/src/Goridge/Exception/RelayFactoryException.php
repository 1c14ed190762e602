<?php

declare(strict_types=1);

namespace Pacer\Goridge\Exception;

/** A relay address (DSN) could not be understood. */
class RelayFactoryException extends GoridgeException
{
}
