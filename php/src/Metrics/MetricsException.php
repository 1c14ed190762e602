<?php

declare(strict_types=1);

namespace Pacer\Metrics;

/** The server refused a metrics call (unknown metric, wrong labels, ...). */
final class MetricsException extends \RuntimeException
{
}
