@extends('layout')

@section('title', $post->title)

@section('content')
<article>
  <h1>{{ $post->title }}</h1>
  <p>{{ $post->body }}</p>
  <footer>Post #{{ $post->id }}, {{ $post->created_at->toDateString() }}</footer>
</article>
@endsection
