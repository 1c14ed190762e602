<?php

declare(strict_types=1);

namespace Pacer\Jobs;

/** A jobs call failed: the server's error, a malformed reply, or a task answered twice. */
class JobsException extends \RuntimeException
{
}
