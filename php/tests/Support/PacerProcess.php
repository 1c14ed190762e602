<?php

declare(strict_types=1);

namespace Pacer\Tests\Support;

use PHPUnit\Framework\Assert;

/**
 * A real `pacer serve` for the library's tests: the binary from `PACER_BIN` (the Makefile's
 * `php-test` builds it and sets it), a config the test writes, its RPC server on a unix
 * socket of its own. Missing binary or a server that never answers fail the test. Stopped
 * with SIGTERM (SIGKILL after a bounded wait) when the object goes away.
 */
final class PacerProcess
{
    private const START_TIMEOUT = 60.0;

    /** @var resource */
    private $proc;
    public readonly string $dir;
    public readonly string $rpc;
    private readonly string $log;

    /** @param string $yaml more config sections (after server, http with one worker, rpc); `%DIR%` is replaced by a fresh directory */
    public function __construct(string $yaml)
    {
        $bin = (string) getenv('PACER_BIN');
        Assert::assertNotSame('', $bin, 'PACER_BIN names the pacer binary (make php-test builds it)');
        Assert::assertTrue(is_executable($bin), "PACER_BIN=$bin is not an executable file");
        $this->dir = sys_get_temp_dir() . '/pacer-php-test-' . bin2hex(random_bytes(6));
        Assert::assertTrue(mkdir($this->dir, 0o700), "mkdir {$this->dir}");
        $socket = $this->dir . '/rpc.sock';
        $this->rpc = 'unix://' . $socket;
        $this->log = $this->dir . '/pacer.log';
        $config = $this->dir . '/.rr.yaml';
        [$php, $http] = [\PHP_BINARY, WorkerProcess::WORKERS . '/http.php'];
        file_put_contents($config, <<<YAML
            version: "3"
            server:
              command: ["$php", "$http"]
            http:
              address: 127.0.0.1:0
              pool: {num_workers: 1}
            rpc:
              listen: "{$this->rpc}"

            YAML . str_replace('%DIR%', $this->dir, $yaml));
        $proc = proc_open(
            [$bin, 'serve', '-c', $config, '-w', $this->dir],
            [0 => ['file', '/dev/null', 'r'], 1 => ['file', $this->log, 'a'], 2 => ['file', $this->log, 'a']],
            $pipes,
        );
        Assert::assertIsResource($proc, "start $bin");
        $this->proc = $proc;

        $deadline = microtime(true) + self::START_TIMEOUT;
        while (true) {
            $conn = @stream_socket_client($this->rpc, $errno, $errstr, 1.0);
            if ($conn !== false) {
                fclose($conn);

                return;
            }
            Assert::assertTrue(proc_get_status($this->proc)['running'], "pacer exited at start:\n" . $this->log());
            Assert::assertLessThan($deadline, microtime(true), "pacer's RPC server at {$this->rpc} did not answer:\n" . $this->log());
            usleep(50_000);
        }
    }

    public function log(): string
    {
        return (string) @file_get_contents($this->log);
    }

    public function __destruct()
    {
        proc_terminate($this->proc, \SIGTERM);
        $deadline = microtime(true) + 20.0;
        while (proc_get_status($this->proc)['running'] && microtime(true) < $deadline) {
            usleep(20_000);
        }
        if (proc_get_status($this->proc)['running']) {
            proc_terminate($this->proc, \SIGKILL);
        }
        proc_close($this->proc);
        foreach (glob($this->dir . '/{,.}[!.]*', \GLOB_BRACE) ?: [] as $file) {
            @unlink($file);
        }
        @rmdir($this->dir);
    }
}
