<?php

declare(strict_types=1);

namespace Pacer\Goridge\Exception;

/** The relay could not be opened, read or written (EOF, broken pipe, refused connection). */
class TransportException extends GoridgeException
{
}
