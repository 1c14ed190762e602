//! The `service` section through the `pacer` binary: copies, restarts after a crash and
//! after `exec_timeout`, run-once services, output in pacer's log, SIGTERM then SIGKILL
//! on shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::binary::{PacerBin, Ports};
use common::{alive, php, worker_script};

fn lines(dir: &std::path::Path, file: &str, prefix: &str) -> Vec<u32> {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix(prefix)?.trim().parse().ok())
        .collect()
}

async fn until(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cond()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_are_supervised_logged_and_stopped() {
    let dir = tempfile::tempdir().unwrap();
    // The services' own files outlive the pacer directory, to be read after the stop.
    let files = tempfile::tempdir().unwrap();
    let f = files.path();
    let ports = Ports::pick();
    let svc = |file: &str, mode: &str| {
        serde_json::to_string(&vec![
            php(),
            worker_script("service.php"),
            files.path().join(file).display().to_string(),
            mode.to_string(),
        ])
        .unwrap()
    };
    let yaml = format!(
        r#"version: "3"
server:
  command: ["{php}", "{http}"]
http:
  address: {http_addr}
  pool: {{num_workers: 1}}
status:
  address: {status}
logs:
  level: info
  encoding: json
service:
  tick:
    command: {tick}
    process_num: 2
    remain_after_exit: true
    restart_sec: 1
  once:
    command: {once}
  capped:
    command: {capped}
    exec_timeout: 1s
    remain_after_exit: true
    restart_sec: 1
  stubborn:
    command: {stubborn}
    timeout_stop_sec: 1
pacer:
  shutdown: {{delay: 0s, grace_period: 5s}}
"#,
        php = php(),
        http = worker_script("http.php"),
        http_addr = ports.http,
        status = ports.status,
        tick = svc("tick", "loop"),
        once = svc("once", "exit3"),
        capped = svc("capped", "loop"),
        stubborn = svc("stubborn", "ignore-term"),
    );
    let bin = PacerBin::spawn(dir, ports, &yaml);
    // The services are PHP processes too: wait for the listeners, then for the files.
    bin.wait_listening().await;
    assert!(
        until(20, || lines(f, "tick", "start ").len() == 2).await,
        "two copies"
    );
    // A copy that dies is started again after restart_sec.
    let victim = lines(f, "tick", "start ")[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(
        until(20, || lines(f, "tick", "start ").len() == 3).await,
        "restarted after the crash: {:?}",
        lines(f, "tick", "start ")
    );
    // exec_timeout stops a copy (SIGTERM: it says "term"), remain_after_exit restarts it.
    assert!(
        until(20, || lines(f, "capped", "start ").len() >= 3).await,
        "capped at 1 s and restarted: {:?}",
        lines(f, "capped", "start ")
    );
    assert!(!lines(f, "capped", "term ").is_empty());
    // Without remain_after_exit a service runs once.
    assert_eq!(lines(f, "once", "start ").len(), 1);
    // Output goes to pacer's log, with the service's name.
    assert!(
        until(10, || {
            let log = bin.stderr();
            log.contains("service says hello")
                && log.contains("to stderr")
                && log.contains("\"service\":\"tick\"")
        })
        .await,
        "{}",
        bin.stderr()
    );
    let running: Vec<u32> = {
        let starts = lines(f, "tick", "start ");
        starts.into_iter().filter(|p| alive(*p)).collect()
    };
    assert_eq!(running.len(), 2);
    let stubborn = lines(f, "stubborn", "start ")[0];
    bin.stop().await;
    // SIGTERM reached the running copies; the one that ignores it was killed after
    // timeout_stop_sec.
    let termed = lines(f, "tick", "term ");
    for pid in &running {
        assert!(termed.contains(pid), "{pid} got no SIGTERM: {termed:?}");
    }
    assert_eq!(lines(f, "stubborn", "ignored "), [stubborn]);
    for pid in running.iter().chain([&stubborn]) {
        assert!(until(5, || !alive(*pid)).await, "{pid} still alive");
    }
}
