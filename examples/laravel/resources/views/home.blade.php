@extends('layout')

@section('content')
<h1>Laravel on Pacer</h1>
<p>Served by a long-lived worker.</p>
@endsection
