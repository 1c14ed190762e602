<?php

// Symfony's stock front controller. php-fpm runs it once per request; under pacer
// (APP_RUNTIME=Pacer\Symfony\Runtime) the same file is the worker: the kernel is booted
// once and serves requests in a loop.

use App\Kernel;

require_once dirname(__DIR__) . '/vendor/autoload_runtime.php';

return function (array $context) {
    return new Kernel($context['APP_ENV'], (bool) $context['APP_DEBUG']);
};
