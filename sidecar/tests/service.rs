//! The `service` section through the `pacer` binary: copies, restarts after a crash and
//! after `exec_timeout`, run-once services, output in pacer's log, SIGTERM then SIGKILL
//! on shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::binary::{PacerBin, Ports};
use common::services::{ServiceFiles, config};
use common::{alive, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_are_supervised_logged_and_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let files = ServiceFiles::new();
    let ports = Ports::pick();
    let svc = |file: &str, mode: &str| serde_json::to_string(&files.command(file, mode)).unwrap();
    let yaml = config(
        &ports,
        &format!(
            r#"logs:
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
"#,
            tick = svc("tick", "loop"),
            once = svc("once", "exit3"),
            capped = svc("capped", "loop"),
            stubborn = svc("stubborn", "ignore-term"),
        ),
    );
    let bin = PacerBin::spawn(dir, ports, &yaml);
    // The services are PHP processes too: wait for the listeners, then for the files.
    bin.wait_listening().await;
    assert!(
        eventually(20, || files.pids("tick", "start ").len() == 2).await,
        "two copies"
    );
    // A copy that dies is started again after restart_sec.
    let victim = files.pids("tick", "start ")[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(
        eventually(20, || files.pids("tick", "start ").len() == 3).await,
        "restarted after the crash: {:?}",
        files.pids("tick", "start ")
    );
    // exec_timeout stops a copy (SIGTERM: it says "term"), remain_after_exit restarts it.
    assert!(
        eventually(20, || files.pids("capped", "start ").len() >= 3).await,
        "capped at 1 s and restarted: {:?}",
        files.pids("capped", "start ")
    );
    assert!(!files.pids("capped", "term ").is_empty());
    // Without remain_after_exit a service runs once.
    assert_eq!(files.pids("once", "start ").len(), 1);
    // Output goes to pacer's log, with the service's name.
    assert!(
        eventually(10, || {
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
        let starts = files.pids("tick", "start ");
        starts.into_iter().filter(|p| alive(*p)).collect()
    };
    assert_eq!(running.len(), 2);
    let stubborn = files.pids("stubborn", "start ")[0];
    bin.stop().await;
    // SIGTERM reached the running copies; the one that ignores it was killed after
    // timeout_stop_sec.
    let termed = files.pids("tick", "term ");
    for pid in &running {
        assert!(termed.contains(pid), "{pid} got no SIGTERM: {termed:?}");
    }
    assert_eq!(files.pids("stubborn", "ignored "), [stubborn]);
    for pid in running.iter().chain([&stubborn]) {
        assert!(eventually(5, || !alive(*pid)).await, "{pid} still alive");
    }
}
