//! Real brokers for the jobs tests, from Debian's packages, started by the tests on
//! loopback with their own data directories: RabbitMQ (with its own `epmd`, every
//! listener on 127.0.0.1, no plugins), beanstalkd (with its binlog) and nats-server
//! (JetStream on disk). One instance of each per test binary ([`rabbitmq`],
//! [`beanstalkd`], [`nats`]); tests isolate themselves by queue, tube or stream names. A
//! test that restarts the broker starts its own ([`Rabbit::start`], [`Simple::beanstalkd`],
//! [`Simple::nats`]).
//!
//! Nothing outlives the test process: each server runs in its own process group, and a
//! watchdog (`sh` reading a pipe only the test process writes to) kills those groups and
//! removes the data directory when the test process exits in any way.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

const WATCHDOG: &str = r#"
trap '' INT HUP
dir=$1
groups=
while read -r g; do groups="$groups $g"; done
for g in $groups; do kill -s KILL -- "-$g" 2>/dev/null; done
sleep 0.5
rm -rf -- "$dir"
"#;

struct Watchdog {
    pipe: ChildStdin,
    _child: Child,
}

impl Watchdog {
    fn spawn(dir: &Path) -> Watchdog {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("pacer-jobs-watchdog")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawning the watchdog (sh)");
        let pipe = child.stdin.take().unwrap();
        Watchdog {
            pipe,
            _child: child,
        }
    }

    fn guard(&mut self, pgid: u32) {
        writeln!(self.pipe, "{pgid}").unwrap();
    }
}

use pacer_ports::free_port;

/// Fails (also outside CI: `make deps` installs them) when a broker is not installed.
fn require(program: &str, package: &str) -> PathBuf {
    let path = PathBuf::from(program);
    assert!(
        path.exists(),
        "{program} is missing: install Debian's {package} (make deps) to run the jobs tests"
    );
    path
}

/// A RabbitMQ server on 127.0.0.1.
pub struct Rabbit {
    dir: PathBuf,
    pub port: u16,
    dist_port: u16,
    epmd_port: u16,
    node: String,
    watchdog: Mutex<Watchdog>,
    children: Mutex<Vec<Child>>,
}

impl std::fmt::Debug for Rabbit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Rabbit(127.0.0.1:{})", self.port)
    }
}

/// The test binary's shared RabbitMQ, started on first use.
pub fn rabbitmq() -> &'static Rabbit {
    static SHARED: OnceLock<Rabbit> = OnceLock::new();
    SHARED.get_or_init(Rabbit::start)
}

impl Rabbit {
    /// Starts a private RabbitMQ (its own epmd, ports, data directory) and waits until it
    /// accepts AMQP connections.
    pub fn start() -> Rabbit {
        Self::start_with(None)
    }

    /// [`Rabbit::start`] with RabbitMQ's bundled `rabbitmq_prometheus` plugin exporting
    /// per-queue metrics (`rabbitmq_queue_messages_ready{queue}`) on 127.0.0.1:`port`.
    pub fn start_with_prometheus(port: u16) -> Rabbit {
        Self::start_with(Some(port))
    }

    fn start_with(prometheus: Option<u16>) -> Rabbit {
        let server = require("/usr/lib/rabbitmq/bin/rabbitmq-server", "rabbitmq-server");
        require("/usr/bin/epmd", "erlang-base");
        let _ = server;
        let dir = tempfile::Builder::new()
            .prefix("pacer-jobs-rabbit-")
            .tempdir()
            .unwrap()
            .keep();
        let watchdog = Watchdog::spawn(&dir);
        let rabbit = Rabbit {
            node: format!(
                "pacer-jobs-{}-{}@localhost",
                std::process::id(),
                free_port()
            ),
            port: free_port(),
            dist_port: free_port(),
            epmd_port: free_port(),
            dir,
            watchdog: Mutex::new(watchdog),
            children: Mutex::new(Vec::new()),
        };
        let (plugins, exporter) = match prometheus {
            Some(port) => (
                "[rabbitmq_prometheus].\n",
                format!(
                    "prometheus.tcp.ip = 127.0.0.1\nprometheus.tcp.port = {port}\nprometheus.return_per_object_metrics = true\n"
                ),
            ),
            None => ("[].\n", String::new()),
        };
        std::fs::write(rabbit.dir.join("enabled_plugins"), plugins).unwrap();
        std::fs::write(
            rabbit.dir.join("rabbitmq.conf"),
            format!(
                "listeners.tcp.default = 127.0.0.1:{}\nloopback_users = none\nlog.console = true\nlog.console.level = warning\nlog.file = false\n{exporter}",
                rabbit.port
            ),
        )
        .unwrap();
        // epmd first, in the foreground and in our group: started by RabbitMQ it would
        // daemonize out of reach.
        let epmd = Command::new("/usr/bin/epmd")
            .args([
                "-port",
                &rabbit.epmd_port.to_string(),
                "-address",
                "127.0.0.1",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawning epmd");
        rabbit.watchdog.lock().unwrap().guard(epmd.id());
        rabbit.children.lock().unwrap().push(epmd);
        rabbit.launch();
        rabbit
    }

    /// The AMQP URL of this server.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("rabbit.log")).unwrap_or_default()
    }

    fn launch(&self) {
        let d = &self.dir;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("rabbit.log"))
            .unwrap();
        let started = Instant::now();
        let child = Command::new("/usr/lib/rabbitmq/bin/rabbitmq-server")
            .env("HOME", d)
            .env("RABBITMQ_BASE", d)
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_PID_FILE", d.join("rabbit.pid"))
            .env(
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "-kernel inet_dist_use_interface {127,0,0,1}",
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("spawning rabbitmq-server");
        self.watchdog.lock().unwrap().guard(child.id());
        self.children.lock().unwrap().push(child);
        // RabbitMQ takes 5–25 s to boot here (more on a loaded machine).
        let deadline = started + Duration::from_secs(180);
        loop {
            if amqp_handshake(self.port) {
                eprintln!(
                    "rabbitmq on 127.0.0.1:{} up in {:.1}s",
                    self.port,
                    started.elapsed().as_secs_f64()
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "RabbitMQ did not start in 180 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops the server (SIGTERM to its group, as a broker restart would) and waits until
    /// it is gone; epmd stays.
    pub fn stop(&self) {
        let mut children = self.children.lock().unwrap();
        if let Some(mut rabbit) = children.pop() {
            let group = nix::unistd::Pid::from_raw(rabbit.id() as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(60);
            while rabbit.try_wait().unwrap().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            let _ = rabbit.wait();
        }
    }

    /// Starts it again on the same port and data (durable queues survive).
    pub fn restart_after_stop(&self) {
        self.launch();
    }
}

/// Whether an AMQP server answers the protocol header with its `connection.start`.
fn amqp_handshake(port: u16) -> bool {
    use std::io::Read;
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"AMQP\x00\x00\x09\x01").is_err() {
        return false;
    }
    let mut frame = [0u8; 7];
    // A method frame (type 1) on channel 0: connection.start.
    s.read_exact(&mut frame).is_ok() && frame[0] == 1
}

/// A server process of ours in its own process group, killed by the watchdog at exit.
struct Proc {
    child: Child,
}

impl Proc {
    fn spawn(mut cmd: Command, log: &Path, watchdog: &Mutex<Watchdog>) -> Proc {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
        watchdog.lock().unwrap().guard(child.id());
        Proc { child }
    }

    /// SIGTERM to its group (as a broker restart would), then SIGKILL after 30 s.
    fn stop(mut self) {
        let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Waits (up to 60 s) until `ready` holds, or fails with the server's log.
fn wait_ready(what: &str, log: &Path, ready: impl Fn() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what} did not start in 60 s:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("{what} up in {:.1}s", started.elapsed().as_secs_f64());
}

/// A broker that is a single process with a data directory: beanstalkd (with its
/// binlog) or nats-server (JetStream, file storage).
pub struct Simple {
    kind: SimpleKind,
    dir: PathBuf,
    pub port: u16,
    watchdog: Mutex<Watchdog>,
    proc: Mutex<Option<Proc>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SimpleKind {
    Beanstalkd,
    Nats,
}

impl std::fmt::Debug for Simple {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}(127.0.0.1:{})", self.kind, self.port)
    }
}

/// The test binary's shared beanstalkd, started on first use.
pub fn beanstalkd() -> &'static Simple {
    static SHARED: OnceLock<Simple> = OnceLock::new();
    SHARED.get_or_init(Simple::beanstalkd)
}

/// The test binary's shared nats-server (JetStream), started on first use.
pub fn nats() -> &'static Simple {
    static SHARED: OnceLock<Simple> = OnceLock::new();
    SHARED.get_or_init(Simple::nats)
}

impl Simple {
    /// A private beanstalkd on 127.0.0.1 with a binlog (jobs survive a restart).
    pub fn beanstalkd() -> Simple {
        require("/usr/bin/beanstalkd", "beanstalkd");
        Simple::start(SimpleKind::Beanstalkd, "pacer-jobs-beanstalkd-")
    }

    /// A private nats-server on 127.0.0.1 with JetStream on disk.
    pub fn nats() -> Simple {
        require("/usr/sbin/nats-server", "nats-server");
        Simple::start(SimpleKind::Nats, "pacer-jobs-nats-")
    }

    fn start(kind: SimpleKind, prefix: &str) -> Simple {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .unwrap()
            .keep();
        let s = Simple {
            kind,
            watchdog: Mutex::new(Watchdog::spawn(&dir)),
            dir,
            port: free_port(),
            proc: Mutex::new(None),
        };
        s.launch();
        s
    }

    fn log(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    fn launch(&self) {
        let port = self.port.to_string();
        let cmd = match self.kind {
            SimpleKind::Beanstalkd => {
                let binlog = self.dir.join("binlog");
                std::fs::create_dir_all(&binlog).unwrap();
                let mut c = Command::new("/usr/bin/beanstalkd");
                c.args(["-l", "127.0.0.1", "-p", &port, "-b"]).arg(&binlog);
                c
            }
            SimpleKind::Nats => {
                let store = self.dir.join("js");
                let mut c = Command::new("/usr/sbin/nats-server");
                c.args(["-a", "127.0.0.1", "-p", &port, "-js", "-sd"])
                    .arg(&store);
                c
            }
        };
        let proc = Proc::spawn(cmd, &self.log(), &self.watchdog);
        *self.proc.lock().unwrap() = Some(proc);
        let kind = self.kind;
        wait_ready(
            &format!("{kind:?} on 127.0.0.1:{port}"),
            &self.log(),
            || greets(kind, self.port),
        );
    }

    /// The address pacer's config names (`beanstalk.addr` / `nats.addr`).
    pub fn url(&self) -> String {
        match self.kind {
            SimpleKind::Beanstalkd => format!("tcp://127.0.0.1:{}", self.port),
            SimpleKind::Nats => format!("nats://127.0.0.1:{}", self.port),
        }
    }

    /// Stops the server (SIGTERM) and waits until it is gone.
    pub fn stop(&self) {
        if let Some(p) = self.proc.lock().unwrap().take() {
            p.stop();
        }
    }

    /// Starts it again on the same port and data.
    pub fn restart_after_stop(&self) {
        self.launch();
    }
}

/// Whether the server answers as itself: beanstalkd a `stats` command, NATS its `INFO`.
fn greets(kind: SimpleKind, port: u16) -> bool {
    use std::io::{BufRead, BufReader};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if kind == SimpleKind::Beanstalkd && s.write_all(b"stats\r\n").is_err() {
        return false;
    }
    let mut line = String::new();
    if BufReader::new(s).read_line(&mut line).is_err() {
        return false;
    }
    match kind {
        SimpleKind::Beanstalkd => line.starts_with("OK "),
        SimpleKind::Nats => line.starts_with("INFO "),
    }
}
