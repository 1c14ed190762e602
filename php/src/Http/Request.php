<?php

declare(strict_types=1);

namespace Pacer\Http;

/**
 * An HTTP request as the server describes it in the JSON request context
 * (docs/wire-protocol.md §3.3), plus the body that follows the context in the frame.
 */
final class Request
{
    /**
     * @param array<string, list<string>> $headers canonical names (Host is only in $uri)
     * @param array<string, string> $cookies
     * @param array<array-key, mixed> $query $rawQuery parsed with parse_str()
     * @param array<array-key, mixed> $uploads tree of {name, mime, size, error, tmpName}
     * @param array<string, mixed> $attributes set by server middleware
     */
    public function __construct(
        public readonly string $remoteAddr,
        public readonly string $protocol,
        public readonly string $method,
        /** The full URL, e.g. http://example.com/path?query. */
        public readonly string $uri,
        public readonly array $headers = [],
        public readonly array $cookies = [],
        public readonly string $rawQuery = '',
        public readonly array $query = [],
        public readonly string $body = '',
        /** True when the body is the JSON tree of a parsed form (urlencoded or multipart). */
        public readonly bool $parsed = false,
        public readonly array $uploads = [],
        public readonly array $attributes = [],
    ) {
    }

    /** The client address; a proxy-aware server may override it with the `ipAddress` attribute. */
    public function getRemoteAddr(): string
    {
        $ip = $this->attributes['ipAddress'] ?? null;
        if (\is_array($ip)) {
            $ip = \reset($ip);
        }

        return \is_string($ip) && $ip !== '' ? $ip : $this->remoteAddr;
    }

    /**
     * The form data tree of a parsed body, or null when the body is raw.
     *
     * @return array<array-key, mixed>|null
     */
    public function getParsedBody(): ?array
    {
        if (!$this->parsed) {
            return null;
        }
        $data = \json_decode($this->body === '' ? '{}' : $this->body, true, 512, \JSON_THROW_ON_ERROR);

        return \is_array($data) ? $data : [];
    }

    /** @return list<string> all values of a header, by case-insensitive name */
    public function getHeader(string $name): array
    {
        foreach ($this->headers as $key => $values) {
            if (\strcasecmp($key, $name) === 0) {
                return $values;
            }
        }

        return [];
    }

    public function getHeaderLine(string $name): string
    {
        return \implode(', ', $this->getHeader($name));
    }

    /** The path and query of $uri, as in CGI's REQUEST_URI. */
    public function getPathAndQuery(): string
    {
        $path = \parse_url($this->uri, \PHP_URL_PATH);
        $path = \is_string($path) && $path !== '' ? $path : '/';

        return $this->rawQuery === '' ? $path : $path . '?' . $this->rawQuery;
    }
}
