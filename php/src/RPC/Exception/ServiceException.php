<?php

declare(strict_types=1);

namespace Pacer\RPC\Exception;

/** The server answered with an error (ERROR flag); the message is the server's text. */
class ServiceException extends RPCException
{
}
