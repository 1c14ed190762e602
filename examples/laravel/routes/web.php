<?php

use App\Http\Controllers\AuthController;
use App\Http\Controllers\PostController;
use App\Http\Controllers\UploadController;
use App\Services\Counter;
use App\Services\RequestContext;
use Illuminate\Support\Facades\App;
use Illuminate\Support\Facades\Auth;
use Illuminate\Support\Facades\Route;
use Illuminate\Support\Facades\View;

Route::get('/', fn () => view('home'));
// A public page (the benchmark's, bench/run.sh): no session, no cookies — a session per
// cookie-less request would measure session files, not the framework.
Route::get('/posts/{id}', [PostController::class, 'show'])->whereNumber('id')->withoutMiddleware([
    \App\Http\Middleware\EncryptCookies::class,
    \Illuminate\Cookie\Middleware\AddQueuedCookiesToResponse::class,
    \Illuminate\Session\Middleware\StartSession::class,
    \Illuminate\View\Middleware\ShareErrorsFromSession::class,
    \App\Http\Middleware\VerifyCsrfToken::class,
]);

Route::get('/login', [AuthController::class, 'form'])->middleware('guest')->name('login');
Route::post('/login', [AuthController::class, 'login']);
Route::post('/logout', [AuthController::class, 'logout']);
Route::get('/me', [AuthController::class, 'me']);
Route::get('/dashboard', fn () => view('dashboard'))->middleware('auth');

Route::get('/session/put', function () {
    session([request('key') => request('value')]);

    return response()->json(['stored' => request('key')]);
});
Route::get('/session/get', fn () => response()->json(['value' => session(request('key'))]));

Route::post('/upload', [UploadController::class, 'store'])->withoutMiddleware(\App\Http\Middleware\VerifyCsrfToken::class);

Route::get('/stream', function () {
    return response()->stream(function () {
        foreach (range(1, (int) request('n', 3)) as $i) {
            echo "line $i\n";
            ob_flush();
            flush();
            usleep(50000);
        }
    }, 200, ['Content-Type' => 'text/plain']);
});
Route::get('/download', fn () => response()->download(base_path('public/robots.txt'), 'robots.txt'));

Route::get('/boom', function () {
    throw new RuntimeException('boom: a bug in a controller');
});
Route::get('/fatal', function () {
    ini_set('memory_limit', '64M');
    $chunks = [];
    while (true) {
        $chunks[] = str_repeat('x', 1 << 20);
    }
});
Route::get('/dd', fn () => dd(['dumped' => 'by dd()']));
Route::get('/echo', function () {
    echo 'printed by the controller; ';

    return 'returned by the controller';
});

// What a worker must not carry from one request into the next (see the tests): each
// probe changes some state, and a later request reads it back.
Route::get('/probe/once/{id}', function (int $id) {
    Auth::onceUsingId($id);

    return response()->json(['user' => Auth::user()->email]);
});
Route::get('/probe/config', function () {
    $before = config('app.probe');
    if (request()->has('set')) {
        config(['app.probe' => request('set')]);
    }

    return response()->json(['before' => $before, 'now' => config('app.probe')]);
});
Route::get('/probe/singleton/{any}', fn () => response()->json(['path' => app(RequestContext::class)->path]));
Route::get('/probe/scoped', function () {
    app(Counter::class)->count++;
    app(Counter::class)->count++;

    return response()->json(['count' => app(Counter::class)->count]);
});
Route::get('/probe/share', function () {
    if (request()->has('banner')) {
        View::share('banner', request('banner'));
    }

    return view('home');
});
Route::get('/probe/locale', function () {
    if (request()->has('set')) {
        App::setLocale(request('set'));
    }

    return response()->json(['locale' => App::getLocale()]);
});
