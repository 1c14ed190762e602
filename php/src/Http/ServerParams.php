<?php

declare(strict_types=1);

namespace Pacer\Http;

/**
 * CGI-style server parameters (`$_SERVER`) for one request, as php-fpm behind a web server
 * would see them: `REQUEST_URI`, `REQUEST_METHOD`, `QUERY_STRING`, `REMOTE_ADDR`,
 * `SERVER_NAME`/`SERVER_PORT`/`HTTPS` from the URL, `CONTENT_TYPE`/`CONTENT_LENGTH`, and
 * `HTTP_*` for every header. Shared by the PSR-7 worker and the HttpFoundation bridges.
 */
final class ServerParams
{
    /**
     * @param array<array-key, mixed> $base what every request starts from (usually the
     *                                      worker's own `$_SERVER`)
     * @return array<array-key, mixed>
     */
    public static function build(Request $request, array $base, ?float $now = null): array
    {
        $server = $base;
        $now ??= \microtime(true);
        $server['REQUEST_URI'] = $request->getPathAndQuery();
        $server['REQUEST_METHOD'] = $request->method;
        $server['REQUEST_TIME'] = (int) $now;
        $server['REQUEST_TIME_FLOAT'] = $now;
        $server['REMOTE_ADDR'] = $request->getRemoteAddr();
        $server['SERVER_PROTOCOL'] = $request->protocol;
        $server['QUERY_STRING'] = $request->rawQuery;
        $server['HTTP_USER_AGENT'] = '';

        $parts = \parse_url($request->uri);
        if (\is_array($parts)) {
            $https = ($parts['scheme'] ?? '') === 'https';
            if (isset($parts['host'])) {
                $server['SERVER_NAME'] = $parts['host'];
                $server['HTTP_HOST'] = $parts['host'] . (isset($parts['port']) ? ':' . $parts['port'] : '');
            }
            if (isset($parts['port'])) {
                $server['SERVER_PORT'] = $parts['port'];
            } else {
                $server['SERVER_PORT'] = $https ? 443 : 80;
            }
            if ($https) {
                $server['HTTPS'] = 'on';
            } else {
                unset($server['HTTPS']);
            }
        }

        foreach ($request->headers as $name => $values) {
            $key = \strtoupper(\str_replace('-', '_', $name));
            if ($key === 'CONTENT_TYPE' || $key === 'CONTENT_LENGTH') {
                $server[$key] = \implode(', ', $values);
            } else {
                $server['HTTP_' . $key] = \implode(', ', $values);
            }
        }

        return $server;
    }
}
