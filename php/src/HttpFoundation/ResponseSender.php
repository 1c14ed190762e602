<?php

declare(strict_types=1);

namespace Pacer\HttpFoundation;

use Pacer\Goridge\Frame;
use Pacer\Http\HttpWorker;
use Pacer\Payload;
use Pacer\Worker;
use Symfony\Component\HttpFoundation\BinaryFileResponse;
use Symfony\Component\HttpFoundation\Response;
use Symfony\Component\HttpFoundation\StreamedResponse;

/**
 * Sends a Symfony HttpFoundation response (Laravel's too) to pacer: the status, every
 * header with all its values, each cookie as its own `Set-Cookie`, and the body — in one
 * frame, or streamed for a {@see StreamedResponse} or {@see BinaryFileResponse}. Without a
 * `Content-Type` the response gets PHP's default (`default_mimetype`, `default_charset`),
 * as under php-fpm.
 *
 * A streamed body is whatever its callback prints: it runs inside an output buffer that
 * sends a frame every {@see $chunkSize} bytes and on every `ob_flush()`, like php-fpm with
 * `output_buffering = 4096` (so `ob_flush(); flush();` in the callback sends at once). When
 * the client goes away pacer stops the stream; the rest of the callback's output is then
 * discarded and the callback runs to its end (PHP cannot interrupt it from outside).
 */
final class ResponseSender
{
    /** Output bytes that make one stream frame (php-fpm's default output_buffering). */
    public int $chunkSize = 4096;

    public function __construct(private readonly Worker $worker)
    {
    }

    /**
     * @param string $prefix output the app printed while building the response (echo,
     *                       var_dump): sent before the body, as php-fpm would
     */
    public function send(Response $response, string $prefix = ''): void
    {
        $context = HttpWorker::encodeResponseContext($response->getStatusCode(), self::headers($response));
        if ($response instanceof StreamedResponse || $response instanceof BinaryFileResponse) {
            $this->stream($response, $context, $prefix);

            return;
        }
        $content = $response->getContent();
        $this->worker->respond(new Payload($prefix . ($content === false ? '' : $content), $context), Frame::CODEC_JSON);
    }

    /**
     * Every header with all its values; cookies as `Set-Cookie` lines.
     *
     * @return array<string, list<string>>
     */
    public static function headers(Response $response): array
    {
        $headers = [];
        foreach ($response->headers->allPreserveCaseWithoutCookies() as $name => $values) {
            $list = [];
            foreach ($values as $value) {
                if ($value !== null) {
                    $list[] = (string) $value;
                }
            }
            if ($list !== []) {
                $headers[(string) $name] = $list;
            }
        }
        if (!$response->headers->has('Content-Type')) {
            // What PHP's SAPIs (php-fpm) send when the app set none.
            $type = (string) \ini_get('default_mimetype');
            $charset = (string) \ini_get('default_charset');
            if ($type !== '') {
                $headers['Content-Type'] = [$charset !== '' && \str_starts_with($type, 'text/') ? "$type; charset=$charset" : $type];
            }
        }
        $cookies = [];
        foreach ($response->headers->getCookies() as $cookie) {
            $cookies[] = (string) $cookie;
        }
        if ($cookies !== []) {
            $headers['Set-Cookie'] = $cookies;
        }

        return $headers;
    }

    private function stream(Response $response, string $context, string $prefix): void
    {
        $state = new StreamState($this->worker, $context);
        if ($prefix !== '') {
            $state->write($prefix);
        }
        $level = \ob_get_level();
        \ob_start(static function (string $chunk) use ($state): string {
            $state->write($chunk);

            return '';
        }, \max(1, $this->chunkSize));
        try {
            $response->sendContent();
        } finally {
            // The callback may have left buffers of its own open; close them into ours.
            while (\ob_get_level() > $level) {
                \ob_end_flush();
            }
        }
        $state->finish();
    }
}
