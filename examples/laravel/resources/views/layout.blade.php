<!doctype html>
<html lang="{{ app()->getLocale() }}">
<head><meta charset="utf-8"><title>@yield('title', 'Pacer + Laravel')</title></head>
<body>
<header><p class="banner">{{ $banner }}</p></header>
<main>@yield('content')</main>
</body>
</html>
