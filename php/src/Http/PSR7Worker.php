<?php

declare(strict_types=1);

namespace Pacer\Http;

use Pacer\Worker;
use Psr\Http\Message\ResponseInterface;
use Psr\Http\Message\ServerRequestFactoryInterface;
use Psr\Http\Message\ServerRequestInterface;
use Psr\Http\Message\StreamFactoryInterface;
use Psr\Http\Message\StreamInterface;
use Psr\Http\Message\UploadedFileFactoryInterface;
use Psr\Http\Message\UploadedFileInterface;

/**
 * PSR-7 requests and responses over {@see HttpWorker}, with any PSR-17 factories:
 *
 * ```php
 * $factory = new \Nyholm\Psr7\Factory\Psr17Factory();
 * $psr7 = new PSR7Worker(Worker::create(), $factory, $factory, $factory);
 * while ($request = $psr7->waitRequest()) {
 *     $psr7->respond($factory->createResponse(200)->withBody($factory->createStream('Hello')));
 * }
 * ```
 *
 * Like RoadRunner's PSR7Worker it also rewrites `$_SERVER` for each request, for code that
 * reads it directly.
 */
class PSR7Worker
{
    /** When > 0, response bodies are streamed to the server in chunks of this many bytes. */
    public int $chunkSize = 0;

    private readonly HttpWorker $httpWorker;
    /** @var array<array-key, mixed> */
    private readonly array $originalServer;

    public function __construct(
        Worker $worker,
        private readonly ServerRequestFactoryInterface $requestFactory,
        private readonly StreamFactoryInterface $streamFactory,
        private readonly UploadedFileFactoryInterface $uploadsFactory,
        ?HttpWorker $httpWorker = null,
    ) {
        $this->httpWorker = $httpWorker ?? new HttpWorker($worker);
        $this->originalServer = $_SERVER;
    }

    public function getWorker(): Worker
    {
        return $this->httpWorker->getWorker();
    }

    public function getHttpWorker(): HttpWorker
    {
        return $this->httpWorker;
    }

    /** The next request, or null when the worker should stop. */
    public function waitRequest(): ?ServerRequestInterface
    {
        $request = $this->httpWorker->waitRequest();
        if ($request === null) {
            return null;
        }
        $_SERVER = $this->configureServer($request);

        return $this->mapRequest($request, $_SERVER);
    }

    /**
     * Sends a PSR-7 response: every header with all its values (several Set-Cookie stay
     * separate), the body in one frame, or streamed in {@see $chunkSize} pieces.
     */
    public function respond(ResponseInterface $response): void
    {
        $status = $response->getStatusCode();
        $headers = $response->getHeaders();
        $body = $response->getBody();

        if ($this->chunkSize > 0) {
            $this->httpWorker->respondStream($status, $this->chunks($body, $this->chunkSize), $headers);

            return;
        }
        $this->httpWorker->respond($status, (string) $body, $headers);
    }

    /**
     * CGI-style server parameters for the request, on top of the `$_SERVER` the worker
     * started with.
     *
     * @return array<array-key, mixed>
     */
    protected function configureServer(Request $request): array
    {
        return ServerParams::build($request, $this->originalServer);
    }

    /** @param array<array-key, mixed> $server */
    protected function mapRequest(Request $request, array $server): ServerRequestInterface
    {
        $psr = $this->requestFactory->createServerRequest($request->method, $request->uri, $server)
            ->withProtocolVersion(self::protocolVersion($request->protocol))
            ->withCookieParams($request->cookies)
            ->withQueryParams($request->query)
            ->withUploadedFiles($this->wrapUploads($request->uploads));

        foreach ($request->attributes as $name => $value) {
            $psr = $psr->withAttribute((string) $name, $value);
        }
        foreach ($request->headers as $name => $values) {
            if ($values !== []) {
                $psr = $psr->withHeader($name, $values);
            }
        }
        if ($request->parsed) {
            $psr = $psr->withParsedBody($request->getParsedBody());
        }
        if ($request->body !== '') {
            $psr = $psr->withBody($this->streamFactory->createStream($request->body));
        }

        return $psr;
    }

    /**
     * Turns the uploads tree into the same tree of {@see UploadedFileInterface}: a leaf is
     * an object with `name`, `size`, `error` and `tmpName`; anything else is a branch.
     *
     * @param array<array-key, mixed> $files
     * @return array<array-key, mixed>
     */
    protected function wrapUploads(array $files): array
    {
        $result = [];
        foreach ($files as $key => $file) {
            if (!\is_array($file)) {
                continue;
            }
            $result[$key] = self::isUploadLeaf($file) ? $this->wrapUpload($file) : $this->wrapUploads($file);
        }

        return $result;
    }

    /** @param array<string, mixed> $file */
    private function wrapUpload(array $file): UploadedFileInterface
    {
        $error = (int) $file['error'];
        $tmpName = (string) ($file['tmpName'] ?? '');
        $stream = null;
        if ($error === \UPLOAD_ERR_OK) {
            try {
                $stream = $this->streamFactory->createStreamFromFile($tmpName, 'rb');
            } catch (\Throwable) {
                // The server's temp file is gone or unreadable: report it as missing.
                $error = \UPLOAD_ERR_NO_FILE;
            }
        }

        return $this->uploadsFactory->createUploadedFile(
            $stream ?? $this->streamFactory->createStream(''),
            isset($file['size']) ? (int) $file['size'] : null,
            $error,
            isset($file['name']) ? (string) $file['name'] : null,
            isset($file['mime']) ? (string) $file['mime'] : null,
        );
    }

    /** @param array<array-key, mixed> $node */
    private static function isUploadLeaf(array $node): bool
    {
        return \array_key_exists('tmpName', $node)
            && \array_key_exists('error', $node)
            && !\is_array($node['error'])
            && !\is_array($node['tmpName']);
    }

    /** @return \Generator<int, string, mixed, void> */
    private function chunks(StreamInterface $body, int $size): \Generator
    {
        if ($body->isSeekable()) {
            $body->rewind();
        }
        while (!$body->eof()) {
            $chunk = $body->read($size);
            if ($chunk === '') {
                break;
            }
            yield $chunk;
        }
    }

    /** `HTTP/1.1` -> `1.1`, `HTTP/2.0` -> `2`; anything unusual -> `1.1`. */
    private static function protocolVersion(string $protocol): string
    {
        $version = \str_starts_with($protocol, 'HTTP/') ? \substr($protocol, 5) : '';

        return match ($version) {
            '1.0', '1.1' => $version,
            '2', '2.0' => '2',
            '3', '3.0' => '3',
            default => '1.1',
        };
    }
}
