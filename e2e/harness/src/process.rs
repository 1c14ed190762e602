//! Server processes that never outlive the test process.
//!
//! Each server runs in its own process group, so one `killpg` reaches anything it
//! forked and a Ctrl-C aimed at the test runner does not race our own shutdown.
//!
//! A [`Watchdog`] covers the case where no `Drop` runs: the shared instance lives in a
//! `static`, and a test process can also be killed outright. The watchdog is a tiny
//! `sh` script reading a pipe whose only writer is the test process; when that process
//! exits in any way the kernel closes the pipe, the script reads EOF, kills the
//! process groups it was told about and removes the temp dir.
//!
//! Why not `PR_SET_PDEATHSIG`? It needs an `unsafe` `pre_exec` hook, and the workspace
//! forbids `unsafe_code` (a `forbid` cannot be relaxed for one module). It also fires
//! when the spawning *thread* exits, not the process: a shared instance started from
//! one test's thread would be killed under the other tests when that test finished.

use std::fs::File;
use std::io::{BufRead, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// Reads one process-group id per line until EOF (`-ID` forgets a group that ended, so
/// that a recycled id is never killed), then kills those groups, waits (bounded) until
/// they are gone so nothing writes into the directory, and removes it.
const WATCHDOG_SCRIPT: &str = r#"
trap '' INT HUP
dir=$1
groups=
while read -r g; do
  case $g in
    -*) kept=; for x in $groups; do [ "$x" = "${g#-}" ] || kept="$kept $x"; done; groups=$kept ;;
    *) groups="$groups $g" ;;
  esac
done
for g in $groups; do kill -s KILL -- "-$g" 2>/dev/null; done
for g in $groups; do
  n=0
  while kill -0 -- "-$g" 2>/dev/null && [ $n -lt 100 ]; do sleep 0.05; n=$((n+1)); done
done
rm -rf -- "$dir"
"#;

/// [`WATCHDOG_SCRIPT`]'s loop, then a cleanup command (its arguments) instead of removing
/// a directory. Run under `flock`, so the lock is held until the cleanup is done; "locked"
/// on stdout says the lock is taken.
const LOCKED_WATCHDOG_SCRIPT: &str = r#"
trap '' INT HUP
echo locked
groups=
while read -r g; do
  case $g in
    -*) kept=; for x in $groups; do [ "$x" = "${g#-}" ] || kept="$kept $x"; done; groups=$kept ;;
    *) groups="$groups $g" ;;
  esac
done
for g in $groups; do kill -s KILL -- "-$g" 2>/dev/null; done
"$@"
"#;

/// Kills the registered process groups and removes a directory when the test process
/// exits without calling [`Watchdog::disarm`].
#[derive(Debug)]
pub struct Watchdog {
    child: Child,
    pipe: ChildStdin,
}

impl Watchdog {
    /// Starts the watchdog for `dir` (removed when it fires).
    pub fn spawn(dir: &Path) -> Result<Self> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .arg("pacer-e2e-watchdog")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group, so a signal to the test runner's group does not end it
            // before it has done its job.
            .process_group(0)
            .spawn()
            .context("spawning the watchdog (sh)")?;
        let pipe = child
            .stdin
            .take()
            .context("the watchdog's stdin is not piped")?;
        Ok(Self { child, pipe })
    }

    /// Takes the machine-wide lock file `lock` (waiting while another process holds it, up
    /// to `wait`), then watches like [`Watchdog::spawn`]; when it fires it runs `cleanup`
    /// (a command and its arguments) and only then releases the lock, so that the next
    /// holder never meets a half-removed predecessor. Blocks while waiting.
    pub fn spawn_locked(lock: &Path, cleanup: &[String], wait: Duration) -> Result<Self> {
        let mut child = Command::new("flock")
            .arg(lock)
            .arg("sh")
            .arg("-c")
            .arg(LOCKED_WATCHDOG_SCRIPT)
            .arg("pacer-e2e-watchdog")
            .args(cleanup)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .context("spawning the locked watchdog (flock, sh)")?;
        let pipe = child
            .stdin
            .take()
            .context("the watchdog's stdin is not piped")?;
        let stdout = child
            .stdout
            .take()
            .context("the watchdog's stdout is not piped")?;
        let mut watchdog = Self { child, pipe };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let deadline = Instant::now() + wait;
        loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) if line.trim() == "locked" => return Ok(watchdog),
                Ok(line) => {
                    let _ = watchdog.child.kill();
                    bail!("the watchdog did not take {}: {line:?}", lock.display());
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    let status = watchdog.child.wait();
                    bail!("the watchdog (flock {}) ended: {status:?}", lock.display());
                }
                Err(_) if Instant::now() < deadline => eprintln!(
                    "waiting for {} (another end-to-end run on this machine holds it)",
                    lock.display()
                ),
                Err(_) => {
                    let _ = watchdog.child.kill();
                    let _ = watchdog.child.wait();
                    bail!("{} was not free within {wait:?}", lock.display());
                }
            }
        }
    }

    /// Puts process group `pgid` under the watchdog.
    pub fn guard(&mut self, pgid: u32) -> Result<()> {
        writeln!(self.pipe, "{pgid}").context("writing to the watchdog")
    }

    /// Takes process group `pgid` off the watchdog's list: call it once the group's
    /// leader is reaped, so that the id, once the kernel reuses it, is never killed.
    pub fn release(&mut self, pgid: u32) -> Result<()> {
        writeln!(self.pipe, "-{pgid}").context("writing to the watchdog")
    }

    /// Stops the watchdog without letting it fire: the caller cleans up itself.
    pub fn disarm(mut self) {
        // SIGKILL, not EOF: EOF is what makes it fire.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server process (in its own process group) with its output in a log file.
#[derive(Debug)]
pub struct Server {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Server {
    /// Spawns `program args…` with stdout and stderr appended to `log`, and puts its
    /// process group under the watchdog.
    pub fn spawn(
        name: &'static str,
        program: &Path,
        args: &[String],
        log: PathBuf,
        watchdog: &mut Watchdog,
    ) -> Result<Self> {
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .with_context(|| format!("spawning {}", program.display()))?;
        // Built before registering, so that the process is killed (on drop) even if
        // registering fails.
        let server = Self { name, child, log };
        watchdog.guard(server.pid())?;
        Ok(server)
    }

    /// Like [`Server::spawn`], for a command the caller prepared (a wrapper such as
    /// `e2e/node/run-in.sh` in front of the program, environment variables).
    pub fn spawn_command(
        name: &'static str,
        mut command: Command,
        log: PathBuf,
        watchdog: &mut Watchdog,
    ) -> Result<Self> {
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .with_context(|| format!("spawning {name}"))?;
        let server = Self { name, child, log };
        watchdog.guard(server.pid())?;
        Ok(server)
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Result<Option<ExitStatus>> {
        self.child
            .try_wait()
            .with_context(|| format!("waiting for {}", self.name))
    }

    /// The last `n` lines of the server's log, headed by its name, for error messages.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(n)..].join("\n");
        format!("--- last {n} lines of {} ---\n{tail}", self.log.display())
    }

    /// Kills the whole process group and reaps the process.
    pub fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            if let Ok(pgid) = i32::try_from(self.child.id()) {
                let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
            }
            let _ = self.child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
