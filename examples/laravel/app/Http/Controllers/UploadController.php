<?php

namespace App\Http\Controllers;

use Illuminate\Http\Request;

class UploadController extends Controller
{
    /** Validates and stores the upload, then answers with what was stored. */
    public function store(Request $request)
    {
        $request->validate(['doc' => 'required|file|max:10240']);
        $file = $request->file('doc');
        $path = $file->store('uploads');

        return response()->json([
            'name' => $file->getClientOriginalName(),
            'size' => $file->getSize(),
            'valid' => $file->isValid(),
            'stored' => $path,
            'sha256' => hash_file('sha256', storage_path('app/' . $path)),
            'note' => $request->input('note'),
        ]);
    }
}
