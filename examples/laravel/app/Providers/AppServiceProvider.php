<?php

namespace App\Providers;

use App\Services\Counter;
use App\Services\RequestContext;
use Illuminate\Support\Facades\View;
use Illuminate\Support\ServiceProvider;

class AppServiceProvider extends ServiceProvider
{
    public function register()
    {
        $this->app->singleton(RequestContext::class, function ($app) {
            return new RequestContext('/' . ltrim($app['request']->path(), '/'), hrtime(true));
        });
        $this->app->scoped(Counter::class);
    }

    public function boot()
    {
        View::share('banner', 'Welcome to Pacer');
    }
}
