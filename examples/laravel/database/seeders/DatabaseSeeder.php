<?php

namespace Database\Seeders;

use App\Models\Post;
use App\Models\User;
use Illuminate\Database\Seeder;
use Illuminate\Support\Facades\Hash;

class DatabaseSeeder extends Seeder
{
    public function run()
    {
        User::create(['name' => 'Alice', 'email' => 'alice@example.org', 'password' => Hash::make('alice-secret')]);
        User::create(['name' => 'Bob', 'email' => 'bob@example.org', 'password' => Hash::make('bob-secret')]);
        foreach (range(1, 20) as $i) {
            Post::create(['title' => "Post number $i", 'body' => str_repeat("The body of post $i. ", 20)]);
        }
    }
}
