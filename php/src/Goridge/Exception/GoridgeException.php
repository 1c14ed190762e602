<?php

declare(strict_types=1);

namespace Pacer\Goridge\Exception;

/** Base class of every error raised by the Goridge layer (frames and relays). */
class GoridgeException extends \RuntimeException
{
}
