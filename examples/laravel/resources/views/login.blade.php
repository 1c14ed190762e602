@extends('layout')

@section('title', 'Log in')

@section('content')
<form method="POST" action="/login">
  @csrf
  <input type="email" name="email" value="{{ old('email') }}">
  <input type="password" name="password">
  @error('email')<p class="error">{{ $message }}</p>@enderror
  <button type="submit">Log in</button>
</form>
@endsection
