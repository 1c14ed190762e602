<?php

namespace App\Http\Controllers;

use App\Models\Post;
use Illuminate\Http\Request;

class PostController extends Controller
{
    /** The benchmark page: a route, a controller, a Blade view and one database read. */
    public function show(int $id)
    {
        return view('post', ['post' => Post::findOrFail($id)]);
    }

    public function store(Request $request)
    {
        $data = $request->validate([
            'title' => 'required|string|max:50',
            'body' => 'required|string',
        ]);

        return response()->json(Post::create($data), 201);
    }
}
