//! pacer as PID 1 (the usual case in a container): orphans re-parented to it are reaped,
//! its own workers keep their exit statuses, and SIGTERM still shuts it down cleanly.
//! Runs the real binary in a new PID namespace (`unshare --pid --fork`), as root.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

use pacer_ports::free_port;

fn get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// Children of `parent` (host pids) in state Z.
fn zombie_children(parent: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let rest = stat.rsplit_once(')').map(|r| r.1).unwrap_or("");
            let mut f = rest.split_whitespace();
            f.next() == Some("Z") && f.next().and_then(|p| p.parse::<u32>().ok()) == Some(parent)
        })
        .collect()
}

/// The host pid of the process inside the namespace: the child of `unshare`.
fn child_of(pid: u32) -> Option<u32> {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

#[test]
fn as_pid1_pacer_reaps_orphans_and_still_shuts_down_cleanly() {
    let unshare_ok = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !unshare_ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "unshare --pid is needed (run as root)"
        );
        eprintln!("SKIPPED: cannot create a PID namespace here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (http, status) = (free_port(), free_port());
    let config = dir.path().join("rr.yaml");
    std::fs::write(
        &config,
        format!(
            "version: \"3\"\nserver:\n  command: \"php {}\"\nhttp:\n  address: 127.0.0.1:{http}\n  pool:\n    num_workers: 2\nstatus:\n  address: 127.0.0.1:{status}\n",
            repo().join("testdata/workers/http.php").display()
        ),
    )
    .unwrap();
    let mut unshare = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "--kill-child"])
        .arg(env!("CARGO_BIN_EXE_pacer"))
        .args(["serve", "-c"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while get(status, "/ready").is_none_or(|r| !r.starts_with("HTTP/1.1 200")) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "pacer did not become ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let pacer = child_of(unshare.id()).expect("pacer runs under unshare");

    let reply = get(http, "/orphan?n=5").unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    // The orphans exit after 0.2 s; as PID 1, pacer must reap them.
    std::thread::sleep(Duration::from_millis(600));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !zombie_children(pacer).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        zombie_children(pacer),
        Vec::<u32>::new(),
        "orphans left as zombies"
    );
    // Its own workers are untouched: the pool still serves.
    assert!(get(http, "/pid").unwrap().starts_with("HTTP/1.1 200"));

    // SIGTERM reaches PID 1 (it has handlers) and it exits 0 after stopping the workers.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pacer as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(s) = unshare.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "pacer did not stop");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(exit.success(), "{exit:?}");
}
