<?php

declare(strict_types=1);

namespace Pacer\RPC\Exception;

/** A value could not be encoded or a reply decoded with the chosen codec. */
class CodecException extends RPCException
{
}
