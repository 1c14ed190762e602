<?php

// The messages of the rules this app uses (a full app has Laravel's whole file).
return [
    'email' => 'The :attribute must be a valid email address.',
    'file' => 'The :attribute must be a file.',
    'max' => [
        'file' => 'The :attribute must not be greater than :max kilobytes.',
        'string' => 'The :attribute must not be greater than :max characters.',
    ],
    'required' => 'The :attribute field is required.',
    'string' => 'The :attribute must be a string.',
    'uploaded' => 'The :attribute failed to upload.',
];
