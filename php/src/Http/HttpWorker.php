<?php

declare(strict_types=1);

namespace Pacer\Http;

use Pacer\Exception\WorkerException;
use Pacer\Goridge\Frame;
use Pacer\Payload;
use Pacer\Worker;

/**
 * HTTP on top of {@see Worker}: decodes the JSON request context into a {@see Request}
 * and writes the JSON response context `{"status":N,"headers":{name:[values]}}`
 * (docs/wire-protocol.md §3.3, §3.6).
 *
 * ```php
 * $http = new HttpWorker(Worker::create());
 * while ($request = $http->waitRequest()) {
 *     $http->respond(200, 'Hello', ['Content-Type' => ['text/plain']]);
 * }
 * ```
 */
class HttpWorker
{
    private const JSON_FLAGS = \JSON_THROW_ON_ERROR | \JSON_UNESCAPED_SLASHES | \JSON_UNESCAPED_UNICODE;
    private const REQUIRED = ['remoteAddr', 'protocol', 'method', 'uri', 'rawQuery', 'parsed'];

    /**
     * @param int|null $codec frame flags of responses: {@see Frame::CODEC_JSON} (default) or
     *                        null for 0, which is what RoadRunner's older libraries send
     */
    public function __construct(
        private readonly Worker $worker,
        private readonly ?int $codec = Frame::CODEC_JSON,
    ) {
    }

    public function getWorker(): Worker
    {
        return $this->worker;
    }

    /**
     * The next request, or null when the worker should stop (a stop command, or a request
     * frame with empty context and empty body).
     *
     * @throws WorkerException when the context is not a JSON HTTP request context
     */
    public function waitRequest(): ?Request
    {
        $payload = $this->worker->waitPayload();
        if ($payload === null || ($payload->header === '' && $payload->body === '')) {
            return null;
        }

        return self::decodeRequest($payload->header, $payload->body);
    }

    /**
     * Sends a response. With $endOfStream false the frame has the STREAM bit and more frames
     * must follow (e.g. a 103 Early Hints before the final response).
     *
     * @param array<string, string|list<string>> $headers
     */
    public function respond(int $status, string $body = '', array $headers = [], bool $endOfStream = true): void
    {
        if ($status >= 100 && $status < 200 && $body !== '') {
            throw new \InvalidArgumentException('A response with an informational (1xx) status cannot have a body.');
        }
        $this->worker->respond(new Payload($body, self::encodeResponseContext($status, $headers), $endOfStream), $this->codec);
    }

    /**
     * Sends a streamed response, one frame per chunk; the status and headers go with the
     * first frame. Returns false when the server stopped the stream (client gone).
     *
     * @param iterable<mixed, string|\Stringable> $chunks
     * @param array<string, string|list<string>> $headers
     */
    public function respondStream(int $status, iterable $chunks, array $headers = []): bool
    {
        return $this->worker->respondStream($chunks, self::encodeResponseContext($status, $headers), $this->codec);
    }

    /**
     * `{"status":N,"headers":{...}}`; `headers` is `{}` when empty. Header names are kept as
     * given; a single string value becomes a one-element list.
     *
     * @param array<array-key, mixed> $headers
     */
    public static function encodeResponseContext(int $status, array $headers): string
    {
        $normalized = [];
        foreach ($headers as $name => $values) {
            $name = (string) $name;
            if ($name === '') {
                continue;
            }
            $list = [];
            foreach (\is_array($values) ? $values : [$values] as $value) {
                if (\is_scalar($value) || $value instanceof \Stringable) {
                    $list[] = \is_bool($value) ? ($value ? '1' : '0') : (string) $value;
                }
            }
            if ($list !== []) {
                $normalized[$name] = $list;
            }
        }

        return \json_encode(['status' => $status, 'headers' => $normalized === [] ? new \stdClass() : $normalized], self::JSON_FLAGS);
    }

    /** Builds a {@see Request} from a JSON request context and the body. */
    public static function decodeRequest(string $context, string $body): Request
    {
        try {
            $ctx = \json_decode($context, true, 512, \JSON_THROW_ON_ERROR);
        } catch (\JsonException $e) {
            throw new WorkerException(\sprintf(
                'The HTTP request context is not JSON (%s). Pacer\'s HttpWorker speaks the JSON context; '
                . 'a RoadRunner >= 2024.1 server sends protobuf. Context starts with: %s',
                $e->getMessage(),
                \var_export(\substr($context, 0, 64), true),
            ));
        }
        if (!\is_array($ctx)) {
            throw new WorkerException('The HTTP request context must be a JSON object, got: ' . \substr($context, 0, 64));
        }
        foreach (self::REQUIRED as $key) {
            if (!\array_key_exists($key, $ctx)) {
                throw new WorkerException(\sprintf('The HTTP request context lacks "%s".', $key));
            }
        }

        $rawQuery = (string) $ctx['rawQuery'];
        \parse_str($rawQuery, $query);
        $parsed = (bool) $ctx['parsed'];

        return new Request(
            remoteAddr: (string) $ctx['remoteAddr'],
            protocol: (string) $ctx['protocol'],
            method: (string) $ctx['method'],
            uri: (string) $ctx['uri'],
            headers: self::filterHeaders((array) ($ctx['headers'] ?? [])),
            cookies: \array_map(static fn ($v) => \is_array($v) ? \implode(',', $v) : (string) $v, (array) ($ctx['cookies'] ?? [])),
            rawQuery: $rawQuery,
            query: $query,
            body: $parsed && $body === '' ? '{}' : $body,
            parsed: $parsed,
            uploads: (array) ($ctx['uploads'] ?? []),
            attributes: (array) ($ctx['attributes'] ?? []),
        );
    }

    /**
     * Keeps string names with a list of string values; drops anything else (like RoadRunner,
     * a malformed entry must not crash the worker).
     *
     * @param array<array-key, mixed> $headers
     * @return array<string, list<string>>
     */
    private static function filterHeaders(array $headers): array
    {
        $result = [];
        foreach ($headers as $name => $values) {
            if (!\is_string($name) || $name === '') {
                continue;
            }
            $list = [];
            foreach (\is_array($values) ? $values : [$values] as $value) {
                if (\is_scalar($value)) {
                    $list[] = (string) $value;
                }
            }
            $result[$name] = $list;
        }

        return $result;
    }
}
