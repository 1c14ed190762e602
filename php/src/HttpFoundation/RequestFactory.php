<?php

declare(strict_types=1);

namespace Pacer\HttpFoundation;

use Pacer\Http\Request;
use Pacer\Http\ServerParams;
use Symfony\Component\HttpFoundation\File\UploadedFile;
use Symfony\Component\HttpFoundation\Request as SymfonyRequest;

/**
 * Turns a request from pacer into a Symfony HttpFoundation request (or a subclass such as
 * Laravel's `Illuminate\Http\Request`) that looks like the one php-fpm would have built
 * from its globals: query, form fields, cookies, uploaded files, `$_SERVER`, raw body.
 *
 * Uploaded files are pacer's temp files, not files PHP's own upload handling moved, so
 * they are created in HttpFoundation's "test" mode: `isValid()` is true and `move()`
 * renames instead of calling `move_uploaded_file()` (which would refuse them). pacer
 * deletes the temp files when the request ends.
 */
final class RequestFactory
{
    /** @var \Closure(string, string, ?string, int): UploadedFile */
    private readonly \Closure $uploadedFile;

    /**
     * @param class-string<SymfonyRequest> $requestClass
     * @param array<array-key, mixed> $baseServer what `$_SERVER` starts from per request
     * @param (callable(string, string, ?string, int): UploadedFile)|null $uploadedFile makes
     *        one uploaded file from (path, client name, client MIME type, error); the
     *        default is Symfony's `UploadedFile` in test mode
     */
    public function __construct(
        private readonly string $requestClass = SymfonyRequest::class,
        private readonly array $baseServer = [],
        ?callable $uploadedFile = null,
    ) {
        $this->uploadedFile = $uploadedFile !== null
            ? \Closure::fromCallable($uploadedFile)
            : static fn (string $path, string $name, ?string $mime, int $error): UploadedFile
                => new UploadedFile($path, $name, $mime, $error, true);
    }

    /**
     * The server parameters a front controller in `$publicDir` would see: `SCRIPT_NAME` and
     * `PHP_SELF` `/index.php`, as nginx + php-fpm pass them, so that HttpFoundation finds
     * an empty base URL for `/path` and `/index.php` for `/index.php/path`.
     *
     * @param array<array-key, mixed> $server
     * @return array<array-key, mixed>
     */
    public static function frontControllerServer(array $server, string $publicDir): array
    {
        $server['SCRIPT_FILENAME'] = \rtrim($publicDir, '/') . '/index.php';
        $server['SCRIPT_NAME'] = '/index.php';
        $server['PHP_SELF'] = '/index.php';
        $server['DOCUMENT_ROOT'] = \rtrim($publicDir, '/');
        unset($server['argv'], $server['argc'], $server['PATH_INFO'], $server['ORIG_SCRIPT_NAME']);

        return $server;
    }

    public function create(Request $request): SymfonyRequest
    {
        $server = ServerParams::build($request, $this->baseServer);
        $post = $request->parsed ? ($request->getParsedBody() ?? []) : [];
        $content = $request->parsed ? '' : $request->body;

        $class = $this->requestClass;
        $created = new $class(
            $request->query,
            $post,
            [],
            $request->cookies,
            $this->files($request->uploads),
            $server,
            $content,
        );

        return $created;
    }

    /**
     * pacer's uploads tree (leaves `{name, mime, size, error, tmpName}`) as the same tree of
     * uploaded files; a failed upload keeps its error code, like PHP's own `$_FILES`.
     *
     * @param array<array-key, mixed> $uploads
     * @return array<array-key, mixed>
     */
    private function files(array $uploads): array
    {
        $files = [];
        foreach ($uploads as $key => $node) {
            if (!\is_array($node)) {
                continue;
            }
            if (self::isLeaf($node)) {
                $error = (int) $node['error'];
                $path = (string) ($node['tmpName'] ?? '');
                if ($error === \UPLOAD_ERR_OK && !\is_file($path)) {
                    // pacer removed it already or never wrote it: report it as missing.
                    $error = \UPLOAD_ERR_NO_FILE;
                }
                if ($error === \UPLOAD_ERR_NO_FILE) {
                    // No file chosen: absent, as HttpFoundation makes of PHP's own $_FILES.
                    continue;
                }
                $files[$key] = ($this->uploadedFile)(
                    $path,
                    (string) ($node['name'] ?? ''),
                    isset($node['mime']) && $node['mime'] !== '' ? (string) $node['mime'] : null,
                    $error,
                );
            } else {
                $files[$key] = $this->files($node);
            }
        }

        return $files;
    }

    /** @param array<array-key, mixed> $node */
    private static function isLeaf(array $node): bool
    {
        return \array_key_exists('tmpName', $node)
            && \array_key_exists('error', $node)
            && !\is_array($node['error'])
            && !\is_array($node['tmpName']);
    }
}
