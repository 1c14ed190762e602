<?php

declare(strict_types=1);

namespace Pacer\Tests\Services;

use Pacer\Services\Exception\ServiceException;
use Pacer\Services\Manager;
use Pacer\Tests\Support\PacerProcess;
use Pacer\Tests\Support\WorkerProcess;
use PHPUnit\Framework\TestCase;

/**
 * The services client against a real `pacer serve` (its `service.*` RPC): create, list,
 * statuses, restart, terminate, and the server's refusals as ServiceException. The
 * services are real PHP processes (testdata/workers/service.php) that record their starts
 * and SIGTERMs in a file.
 */
final class ManagerTest extends TestCase
{
    private const WAIT = 30.0;

    public function testCreateListStatusRestartTerminate(): void
    {
        $pacer = new PacerProcess("service:\n  tick:\n    command: \"" . \PHP_BINARY . ' ' . WorkerProcess::WORKERS . "/service.php %DIR%/tick\"\n");
        $services = Manager::fromEnvironment($pacer->rpc);
        $file = $pacer->dir . '/made';
        $command = \PHP_BINARY . ' ' . WorkerProcess::WORKERS . "/service.php $file loop";

        self::assertSame(['tick'], $services->list(), $pacer->log());
        self::assertTrue($services->create('made', $command, processNum: 2, env: ['SVC_MARK' => 'from-php'], restartSec: 1));
        self::assertSame(['made', 'tick'], $services->list());

        $pids = $this->running($services, 'made', 2, $pacer);
        foreach ($services->statuses('made') as $status) {
            self::assertSame($command, $status['command']);
            self::assertGreaterThan(1 << 20, $status['memory_usage'], 'a PHP process has more than 1 MiB resident');
            self::assertGreaterThanOrEqual(0.0, $status['cpu_percent']);
            self::assertNull($status['error']);
        }
        self::assertStringContainsString("SVC_MARK=from-php\0", (string) file_get_contents("/proc/{$pids[0]}/environ"));
        $this->until(fn (): bool => \count($this->lines($file, 'start')) === 2, "both copies ran PHP:\n" . $pacer->log());

        // Restart: the old copies got SIGTERM before it returned, new ones run.
        self::assertTrue($services->restart('made'));
        foreach ($pids as $pid) {
            self::assertContains($pid, $this->lines($file, 'term'), "$pid was stopped with SIGTERM");
        }
        $restarted = $this->running($services, 'made', 2, $pacer);
        self::assertSame([], array_intersect($pids, $restarted), 'new processes after the restart');
        $this->until(fn (): bool => \count($this->lines($file, 'start')) === 4, "the new copies ran PHP:\n" . $pacer->log());

        // Terminate: gone from the list, its processes stopped.
        self::assertTrue($services->terminate('made'));
        self::assertSame(['tick'], $services->list());
        foreach ($restarted as $pid) {
            self::assertContains($pid, $this->lines($file, 'term'), "$pid was stopped with SIGTERM");
        }
        $this->until(fn (): bool => array_filter($restarted, static fn (int $p): bool => is_dir("/proc/$p")) === [], 'the terminated processes are gone');
    }

    public function testTheServersRefusalsAreServiceExceptions(): void
    {
        // As in RoadRunner, the service RPC is there when the config has a `service` section.
        $command = \PHP_BINARY . ' ' . WorkerProcess::WORKERS . '/service.php %DIR%/one';
        $pacer = new PacerProcess("service:\n  tick:\n    command: \"$command\"\n");
        $services = Manager::fromEnvironment($pacer->rpc);
        $command = str_replace('%DIR%', $pacer->dir, $command);

        foreach ([
            'no such service: nope' => static fn () => $services->restart('nope'),
            'no such service: gone' => static fn () => $services->terminate('gone'),
            'no such service: ghost' => static fn () => $services->statuses('ghost'),
            'the service with zero name should have at least 1 process' => static fn () => $services->create('zero', $command, processNum: 0),
        ] as $message => $call) {
            try {
                $call();
                self::fail("no exception, expected: $message");
            } catch (ServiceException $e) {
                self::assertStringContainsString($message, $e->getMessage());
                self::assertStringNotContainsString("\n", $e->getMessage());
            }
        }

        self::assertTrue($services->create('one', $command));
        try {
            $services->create('one', $command);
            self::fail('a second service of the same name was created');
        } catch (ServiceException $e) {
            self::assertStringContainsString('service already exists: one', $e->getMessage());
        }
        // A command that cannot start is the call's error, and leaves nothing behind.
        try {
            $services->create('broken', '/nonexistent/pacer-test-command');
            self::fail('a service with a missing command was created');
        } catch (ServiceException $e) {
            self::assertStringContainsString('cannot start service broken', $e->getMessage());
        }
        self::assertSame(['one', 'tick'], $services->list());
    }

    /**
     * Waits until every copy of $name runs (pid, no error) and returns their pids.
     *
     * @return list<int>
     */
    private function running(Manager $services, string $name, int $n, PacerProcess $pacer): array
    {
        $statuses = [];
        $this->until(static function () use ($services, $name, $n, &$statuses): bool {
            $statuses = $services->statuses($name);

            return \count($statuses) === $n
                && array_filter($statuses, static fn (array $s): bool => $s['error'] !== null || $s['pid'] <= 0) === [];
        }, "$name runs $n copies:\n" . $pacer->log());

        return array_map(static fn (array $s): int => $s['pid'], $statuses);
    }

    /** @return list<int> the pids of the "$what PID" lines of a service's file */
    private function lines(string $file, string $what): array
    {
        $pids = [];
        foreach (file(is_file($file) ? $file : '/dev/null', \FILE_IGNORE_NEW_LINES) ?: [] as $line) {
            if (str_starts_with($line, "$what ")) {
                $pids[] = (int) substr($line, \strlen($what) + 1);
            }
        }

        return $pids;
    }

    private function until(callable $cond, string $what): void
    {
        $deadline = microtime(true) + self::WAIT;
        while (!$cond()) {
            self::assertLessThan($deadline, microtime(true), "timed out: $what");
            usleep(50_000);
        }
        $this->addToAssertionCount(1);
    }
}
