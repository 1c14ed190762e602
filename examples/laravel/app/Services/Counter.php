<?php

namespace App\Services;

/** Bound as a scoped instance: one per request. */
class Counter
{
    public int $count = 0;
}
