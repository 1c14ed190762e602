<?php

declare(strict_types=1);

namespace Pacer\Exception;

/** The server sent something the worker protocol does not allow. */
class WorkerException extends \RuntimeException
{
}
