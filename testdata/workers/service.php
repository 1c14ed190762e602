<?php

/**
 * A side process for the `service` tests: `php service.php FILE [MODE]`. Appends
 * "start PID" to FILE, prints "service says hello PID" to stdout and "to stderr PID" to
 * stderr, then by MODE: `loop` (default) ticks until SIGTERM ("term PID" is appended),
 * `exit3` exits at once with code 3, `ignore-term` ignores SIGTERM.
 */

declare(strict_types=1);

[, $file] = $argv;
$mode = $argv[2] ?? 'loop';
$pid = getmypid();
pcntl_async_signals(true);
pcntl_signal(SIGTERM, static function () use ($file, $pid, $mode): void {
    if ($mode === 'ignore-term') {
        file_put_contents($file, "ignored $pid\n", FILE_APPEND | LOCK_EX);

        return;
    }
    file_put_contents($file, "term $pid\n", FILE_APPEND | LOCK_EX);
    exit(0);
});
// "start" is written once SIGTERM is handled, so a test that saw it can count on "term".
file_put_contents($file, "start $pid\n", FILE_APPEND | LOCK_EX);
fwrite(STDOUT, "service says hello $pid\n");
fwrite(STDERR, "to stderr $pid\n");
if ($mode === 'exit3') {
    exit(3);
}
while (true) {
    usleep(100_000);
}
