<?php

declare(strict_types=1);

namespace Pacer\Trace;

/**
 * The W3C Trace Context pacer hands to PHP with each traced request (`otel` in
 * `http.middleware`): the `traceparent` request header carries the trace id, the id of
 * pacer's `php` span (the parent of whatever PHP records) and the sampling flag;
 * `tracestate` carries the client's vendor state, if any.
 *
 * Continue the trace with any OpenTelemetry API (its W3C propagator reads the same two
 * headers), or with this class alone: {@see child()} makes the context of a PHP span
 * (a new span id under pacer's), whose {@see traceparent()} goes on outgoing calls.
 */
final class TraceContext
{
    public const TRACEPARENT = 'traceparent';
    public const TRACESTATE = 'tracestate';

    private function __construct(
        /** 32 lowercase hex digits. */
        public readonly string $traceId,
        /** 16 lowercase hex digits: the span this context belongs to. */
        public readonly string $spanId,
        /** 16 lowercase hex digits, or null for the context pacer sent (its parent is pacer's span). */
        public readonly ?string $parentSpanId,
        public readonly bool $sampled,
        public readonly string $traceState = '',
    ) {
    }

    /**
     * The context in request headers: a PSR-7 `getHeaders()` array, `$_SERVER` (keys
     * `HTTP_TRACEPARENT`, `HTTP_TRACESTATE`) or any name => value(s) map; names are
     * case-insensitive. Null when there is no valid `traceparent`.
     *
     * @param array<string, string|list<string>> $headers
     */
    public static function fromHeaders(array $headers): ?self
    {
        $find = static function (string $name) use ($headers): ?string {
            foreach ($headers as $key => $value) {
                $key = strtolower((string) $key);
                if ($key === $name || $key === 'http_' . $name) {
                    return is_array($value) ? implode(',', $value) : (string) $value;
                }
            }
            return null;
        };
        $parent = $find(self::TRACEPARENT);
        if ($parent === null) {
            return null;
        }
        return self::fromTraceparent($parent, $find(self::TRACESTATE) ?? '');
    }

    /** Parses a `traceparent` value (version 00; later versions by their 00 prefix). */
    public static function fromTraceparent(string $traceparent, string $traceState = ''): ?self
    {
        $value = trim($traceparent, " \t");
        $ok = preg_match('/^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/D', $value, $m);
        if ($ok !== 1 || $m[1] === 'ff' || ($m[1] === '00' && ($m[5] ?? '') !== '')) {
            return null;
        }
        if ($m[2] === str_repeat('0', 32) || $m[3] === str_repeat('0', 16)) {
            return null;
        }
        return new self($m[2], $m[3], null, (hexdec($m[4]) & 1) === 1, trim($traceState));
    }

    /** A context for a new span under this one (a PHP span, or an outgoing call). */
    public function child(): self
    {
        do {
            $id = bin2hex(random_bytes(8));
        } while ($id === '0000000000000000');
        return new self($this->traceId, $id, $this->spanId, $this->sampled, $this->traceState);
    }

    /** The `traceparent` header value for this context. */
    public function traceparent(): string
    {
        return sprintf('00-%s-%s-%s', $this->traceId, $this->spanId, $this->sampled ? '01' : '00');
    }

    /**
     * Headers to add to an outgoing request so the callee continues this trace.
     *
     * @return array<string, string>
     */
    public function headers(): array
    {
        $headers = [self::TRACEPARENT => $this->traceparent()];
        if ($this->traceState !== '') {
            $headers[self::TRACESTATE] = $this->traceState;
        }
        return $headers;
    }
}
