<?php

use App\Http\Controllers\PostController;
use App\Models\Note;
use Illuminate\Support\Facades\Cookie;
use Illuminate\Support\Facades\DB;
use Illuminate\Support\Facades\Route;

Route::post('/posts', [PostController::class, 'store']);

Route::get('/notes', fn () => response()->json([
    'texts' => Note::orderBy('id')->pluck('text'),
    'transaction_level' => DB::transactionLevel(),
]));
Route::post('/notes', fn () => response()->json(Note::create(['text' => request('text')]), 201));

// Leaves a transaction open, as a request that forgot to commit (or died half-way) would.
Route::post('/probe/transaction', function () {
    DB::beginTransaction();
    Note::create(['text' => request('text')]);

    return response()->json(['transaction_level' => DB::transactionLevel()]);
});
// The api group has no cookie middleware: a queued cookie stays queued.
Route::get('/probe/queue-cookie', function () {
    Cookie::queue('leaked', 'from-another-request', 10);

    return response()->json(['queued' => true]);
});
