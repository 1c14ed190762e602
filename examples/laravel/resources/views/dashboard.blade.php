@extends('layout')

@section('title', 'Dashboard')

@section('content')
<p>Hello, <span class="user">{{ auth()->user()->name }}</span>.</p>
@endsection
