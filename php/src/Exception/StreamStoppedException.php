<?php

declare(strict_types=1);

namespace Pacer\Exception;

/**
 * Thrown into a response generator when the server cancelled the stream (the HTTP client
 * went away), so that `finally` blocks in the generator run.
 */
final class StreamStoppedException extends \RuntimeException
{
    public function __construct()
    {
        parent::__construct('The server stopped the response stream.');
    }
}
