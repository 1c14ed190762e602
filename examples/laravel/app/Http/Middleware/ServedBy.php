<?php

namespace App\Http\Middleware;

use Closure;
use Illuminate\Http\Request;

/** Says which process answered: the tests use it to tell workers apart. */
class ServedBy
{
    public function handle(Request $request, Closure $next)
    {
        $response = $next($request);
        $response->headers->set('X-Served-By', 'laravel/' . getmypid());

        return $response;
    }
}
