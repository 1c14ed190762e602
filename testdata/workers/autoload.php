<?php

// Loads the Pacer PHP library from this checkout (php/src) without Composer, plus the
// PSR-7/PSR-17 interfaces and Nyholm's PSR-7 (php/vendor if present, else Debian's packages).
declare(strict_types=1);

require_once __DIR__ . '/../../php/autoload.php';
