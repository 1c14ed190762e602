<?php

declare(strict_types=1);

namespace Pacer;

/**
 * One message between the server and a worker: a context (RoadRunner calls it the
 * "header"; for HTTP it is the JSON request or response context) and a body.
 * On the wire it is a single frame whose one option is the context length and whose
 * payload is context . body.
 */
final class Payload
{
    public function __construct(
        public readonly string $body = '',
        public readonly string $header = '',
        /** False on every frame of a streamed response but the last. */
        public readonly bool $eos = true,
    ) {
    }

    /** The context (alias of {@see self::$header}). */
    public function context(): string
    {
        return $this->header;
    }
}
