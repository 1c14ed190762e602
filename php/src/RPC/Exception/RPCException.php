<?php

declare(strict_types=1);

namespace Pacer\RPC\Exception;

use Pacer\Goridge\Exception\GoridgeException;

/** The RPC exchange itself failed (bad reply frame, sequence mismatch). */
class RPCException extends GoridgeException
{
}
