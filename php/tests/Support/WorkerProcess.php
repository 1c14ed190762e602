<?php

declare(strict_types=1);

namespace Pacer\Tests\Support;

use Pacer\Goridge\Frame;
use Pacer\Goridge\StreamRelay;
use PHPUnit\Framework\Assert;

/**
 * The server side of the worker protocol, for tests: starts a real PHP worker process on a
 * pipes, TCP or unix socket relay and speaks frames to it. Every wait is bounded, so a
 * worker that hangs fails the test instead of hanging it.
 */
final class WorkerProcess
{
    public const WORKERS = __DIR__ . '/../../../testdata/workers';
    private const TIMEOUT = 10.0;

    /** @var resource */
    private $proc;
    private int $pid;
    private ?int $exitCode = null;
    private string $stderrFile;
    private string $stdoutFile;
    /** @var resource|null */
    private $server = null;
    private ?string $socketPath = null;

    private function __construct(public StreamRelay $relay)
    {
    }

    /**
     * @param array<string, string> $env
     */
    public static function pipes(string $script, array $env = []): self
    {
        [$stderr, $stdout] = [self::tempFile('stderr'), self::tempFile('stdout')];
        $proc = proc_open(
            [PHP_BINARY, '-d', 'display_errors=stderr', $script],
            [0 => ['pipe', 'r'], 1 => ['pipe', 'w'], 2 => ['file', $stderr, 'w']],
            $pipes,
            null,
            self::environment($env + ['RR_RELAY' => 'pipes']),
        );
        Assert::assertIsResource($proc, "start $script");
        $self = new self(new StreamRelay($pipes[1], $pipes[0]));
        $self->proc = $proc;
        $self->pid = proc_get_status($proc)['pid'];
        $self->stderrFile = $stderr;
        $self->stdoutFile = $stdout;

        return $self;
    }

    /**
     * Listens on a TCP port (chosen by the kernel) or a unix socket, starts the worker with
     * RR_RELAY pointing there and accepts its connection.
     *
     * @param 'tcp'|'unix' $kind
     * @param array<string, string> $env
     * @param list<string> $phpArgs extra arguments for php before the script, e.g. ['-d', 'x=y']
     */
    public static function socket(string $script, string $kind, array $env = [], array $phpArgs = []): self
    {
        $path = null;
        if ($kind === 'unix') {
            $path = sys_get_temp_dir() . '/pacer-test-' . bin2hex(random_bytes(6)) . '.sock';
            $listen = 'unix://' . $path;
        } else {
            $listen = 'tcp://127.0.0.1:0';
        }
        $server = stream_socket_server($listen, $errno, $errstr);
        Assert::assertIsResource($server, "listen on $listen: $errstr");
        $dsn = $kind === 'unix' ? $listen : 'tcp://' . stream_socket_get_name($server, false);

        [$stderr, $stdout] = [self::tempFile('stderr'), self::tempFile('stdout')];
        $proc = proc_open(
            [PHP_BINARY, '-d', 'display_errors=stderr', ...$phpArgs, $script],
            [0 => ['file', '/dev/null', 'r'], 1 => ['file', $stdout, 'w'], 2 => ['file', $stderr, 'w']],
            $pipes,
            null,
            self::environment($env + ['RR_RELAY' => $dsn]),
        );
        Assert::assertIsResource($proc, "start $script");
        $conn = @stream_socket_accept($server, self::TIMEOUT);
        if ($conn === false) {
            proc_terminate($proc, 9);
            Assert::fail("the worker did not connect to $dsn: " . file_get_contents($stderr));
        }
        $self = new self(new StreamRelay($conn, $conn));
        $self->proc = $proc;
        $self->pid = proc_get_status($proc)['pid'];
        $self->stderrFile = $stderr;
        $self->stdoutFile = $stdout;
        $self->server = $server;
        $self->socketPath = $path;

        return $self;
    }

    public function pid(): int
    {
        return $this->pid;
    }

    public function send(Frame $frame): void
    {
        $this->relay->send($frame);
    }

    /** A data frame as the server sends it: one option = context length. */
    public function sendRequest(string $context, string $body = '', int $flags = Frame::CODEC_JSON): void
    {
        $this->send(new Frame($context . $body, [strlen($context)], $flags));
    }

    public function receive(float $timeout = self::TIMEOUT): Frame
    {
        if (!$this->relay->hasFrame($timeout)) {
            Assert::fail(sprintf('no frame from the worker within %.1f s; stderr: %s', $timeout, $this->stderr()));
        }

        return $this->relay->waitFrame();
    }

    /** Whether the worker sent nothing (not even EOF) for $seconds. */
    public function isSilentFor(float $seconds): bool
    {
        return !$this->relay->hasFrame($seconds);
    }

    /** Runs the PID handshake and checks the reply like the server does. */
    public function handshake(): void
    {
        $this->send(new Frame(json_encode(['pid' => getmypid()]), [], Frame::CONTROL | Frame::CODEC_JSON));
        $reply = $this->receive();
        Assert::assertSame(Frame::CONTROL, $reply->flags, 'PID reply flags are CONTROL only');
        Assert::assertSame([], $reply->options, 'PID reply has no options');
        Assert::assertSame(0, $reply->byte10);
        Assert::assertSame(['pid' => $this->pid], json_decode($reply->payload, true), 'PID reply names the process');
    }

    /** Sends the stop command and waits for the process to exit; returns its exit code. */
    public function stop(): int
    {
        $this->send(new Frame('{"stop":true}', [], Frame::CONTROL | Frame::CODEC_JSON));

        return $this->waitExit();
    }

    public function waitExit(float $timeout = self::TIMEOUT): int
    {
        $deadline = microtime(true) + $timeout;
        while ($this->isRunning()) {
            if (microtime(true) > $deadline) {
                Assert::fail(sprintf('worker %d did not exit within %.1f s; stderr: %s', $this->pid, $timeout, $this->stderr()));
            }
            usleep(5_000);
        }

        return (int) $this->exitCode;
    }

    public function isRunning(): bool
    {
        if ($this->exitCode !== null) {
            return false;
        }
        $status = proc_get_status($this->proc);
        if ($status['running']) {
            return true;
        }
        $this->exitCode = $status['exitcode'];

        return false;
    }

    public function stderr(): string
    {
        return (string) @file_get_contents($this->stderrFile);
    }

    /** What the worker wrote to its real STDOUT (socket relays only; on pipes that is the relay). */
    public function stdout(): string
    {
        return (string) @file_get_contents($this->stdoutFile);
    }

    public function kill(): void
    {
        if ($this->isRunning()) {
            proc_terminate($this->proc, 9);
            $this->waitExit();
        }
    }

    public function __destruct()
    {
        $this->kill();
        $this->relay->close();
        if (is_resource($this->proc)) {
            proc_close($this->proc);
        }
        if (is_resource($this->server)) {
            fclose($this->server);
        }
        if ($this->socketPath !== null) {
            @unlink($this->socketPath);
        }
        @unlink($this->stderrFile);
        @unlink($this->stdoutFile);
    }

    /**
     * @param array<string, string> $overrides
     * @return array<string, string>
     */
    private static function environment(array $overrides): array
    {
        $env = [];
        foreach (getenv() as $name => $value) {
            if (!str_starts_with($name, 'OPS_') && !str_starts_with($name, 'RR_')) {
                $env[$name] = $value;
            }
        }

        return $overrides + $env;
    }

    private static function tempFile(string $what): string
    {
        $file = tempnam(sys_get_temp_dir(), "pacer-$what-");
        Assert::assertIsString($file);

        return $file;
    }
}
