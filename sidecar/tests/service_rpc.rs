//! RoadRunner's `service.*` RPC against a real `pacer serve`: a service from the
//! config and services created over RPC are listed, report pid/CPU/memory/command,
//! restart, terminate; protobuf payloads over the real RPC socket, with pacer's own
//! Rust RPC client.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::binary::{PacerBin, Ports, free_port};
use common::services::{ServiceFiles, config};
use common::{alive, eventually};
use pacer::rpc::{ClientError, RpcClient};
use pacer::service::proto;
use prost::Message;

async fn call<M: Message + Default>(
    c: &mut RpcClient,
    method: &str,
    arg: &impl Message,
) -> Result<M, ClientError> {
    let reply = c.call_proto(method, &arg.encode_to_vec()).await?;
    Ok(M::decode(reply).unwrap())
}

fn named(name: &str) -> proto::Service {
    proto::Service { name: name.into() }
}

async fn list(c: &mut RpcClient) -> Vec<String> {
    let l: proto::List = call(c, "service.List", &proto::Service::default())
        .await
        .unwrap();
    l.services
}

async fn statuses(c: &mut RpcClient, name: &str) -> Vec<proto::Status> {
    let s: proto::Statuses = call(c, "service.Statuses", &named(name)).await.unwrap();
    s.status
}

/// Waits until every copy of `name` runs (no error status) and returns their pids.
async fn running(c: &mut RpcClient, name: &str, n: usize) -> Vec<u32> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let st = statuses(c, name).await;
        if st.len() == n && st.iter().all(|s| s.status.is_none() && s.pid > 0) {
            return st.iter().map(|s| s.pid as u32).collect();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} not running: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn environ(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/environ"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', "\n"))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_rpc_lists_reports_restarts_creates_and_terminates() {
    let dir = tempfile::tempdir().unwrap();
    let files = ServiceFiles::new();
    let ports = Ports::pick();
    let rpc = format!("tcp://127.0.0.1:{}", free_port());
    let cmd = |file: &str, mode: &str| files.command(file, mode).join(" ");
    let yaml = config(
        &ports,
        &format!(
            r#"rpc:
  listen: "{rpc}"
service:
  tick:
    command: {tick}
    process_num: 2
    remain_after_exit: true
    restart_sec: 1
"#,
            tick = serde_json::to_string(&cmd("tick", "loop")).unwrap(),
        ),
    );
    let bin = PacerBin::spawn(dir, ports, &yaml);
    bin.wait_listening().await;
    let mut c = RpcClient::connect(&rpc, Duration::from_secs(30))
        .await
        .unwrap();

    // List and Statuses of the configured service.
    assert_eq!(list(&mut c).await, ["tick"]);
    let pids = running(&mut c, "tick", 2).await;
    for s in statuses(&mut c, "tick").await {
        assert_eq!(s.command, cmd("tick", "loop"));
        assert!(s.memory_usage > 1 << 20, "PHP's RSS: {s:?}");
        assert!(s.cpu_percent >= 0.0);
    }
    assert!(pids.iter().all(|p| alive(*p)));
    // Status (deprecated): the last copy.
    let one: proto::Status = call(&mut c, "service.Status", &named("tick"))
        .await
        .unwrap();
    assert!(pids.contains(&(one.pid as u32)), "{one:?} of {pids:?}");

    // Restart: the old copies get SIGTERM, new ones run.
    let r: proto::Response = call(&mut c, "service.Restart", &named("tick"))
        .await
        .unwrap();
    assert!(r.ok);
    for pid in &pids {
        assert!(
            files.pids("tick", "term ").contains(pid),
            "{pid} not stopped"
        );
    }
    let restarted = running(&mut c, "tick", 2).await;
    assert!(restarted.iter().all(|p| !pids.contains(p) && alive(*p)));

    // Create: copies with env, restarted after a crash (remain_after_exit, restart_sec).
    let mut create = proto::Create {
        name: "made".into(),
        command: cmd("made", "loop"),
        process_num: 2,
        remain_after_exit: true,
        restart_sec: 1,
        ..Default::default()
    };
    create.env.insert("SVCRPC_MARK".into(), "from-rpc".into());
    let r: proto::Response = call(&mut c, "service.Create", &create).await.unwrap();
    assert!(r.ok);
    assert_eq!(list(&mut c).await, ["made", "tick"]);
    let made = running(&mut c, "made", 2).await;
    assert!(environ(made[0]).contains("SVCRPC_MARK=from-rpc\n"));
    // Kill a copy once PHP has run (it wrote "start"), so the count is exact.
    assert!(eventually(30, || files.pids("made", "start ").len() == 2).await);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(made[0] as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(
        eventually(30, || files.pids("made", "start ").len() == 3).await,
        "restarted after the crash: {:?}\n{}",
        files.pids("made", "start "),
        bin.stderr()
    );

    // Refusals, with RoadRunner's texts; nothing is left behind.
    let err = call::<proto::Response>(&mut c, "service.Create", &create)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.ends_with("service already exists: made"), "{err}");
    let zero = proto::Create {
        process_num: 0,
        name: "zero".into(),
        ..create.clone()
    };
    let err = call::<proto::Response>(&mut c, "service.Create", &zero)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with("the service with zero name should have at least 1 process"),
        "{err}"
    );
    let missing = proto::Create {
        name: "missing".into(),
        command: "/nonexistent/pacer-svcrpc-binary --x".into(),
        process_num: 1,
        ..Default::default()
    };
    let err = call::<proto::Response>(&mut c, "service.Create", &missing)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot start service missing"), "{err}");
    assert_eq!(list(&mut c).await, ["made", "tick"]);

    // exec_timeout of a created service stops its process (SIGTERM: "term").
    let capped = proto::Create {
        name: "capped".into(),
        command: cmd("capped", "loop"),
        process_num: 1,
        exec_timeout: 1,
        ..Default::default()
    };
    let r: proto::Response = call(&mut c, "service.Create", &capped).await.unwrap();
    assert!(r.ok);
    assert!(
        eventually(30, || !files.pids("capped", "term ").is_empty()).await,
        "capped at 1 s"
    );
    // It ran once: once it has exited (it wrote "term" just before), its state is an
    // error status and Status fails.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let st = loop {
        let st = statuses(&mut c, "capped").await;
        if st.iter().all(|s| s.status.is_some()) || tokio::time::Instant::now() > deadline {
            break st;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].command, cmd("capped", "loop"));
    let error = st[0].status.as_ref().expect("an error status");
    assert!(error.message.contains("does not exist"), "{error:?}");
    assert!(
        call::<proto::Status>(&mut c, "service.Status", &named("capped"))
            .await
            .is_err()
    );

    // Terminate: every copy gets SIGTERM and the service is gone.
    let made = running(&mut c, "made", 2).await;
    let r: proto::Response = call(&mut c, "service.Terminate", &named("made"))
        .await
        .unwrap();
    assert!(r.ok);
    for pid in &made {
        assert!(
            files.pids("made", "term ").contains(pid),
            "{pid} not stopped"
        );
        assert!(eventually(10, || !alive(*pid)).await, "{pid} alive");
    }
    assert_eq!(list(&mut c).await, ["capped", "tick"]);
    for method in ["service.Statuses", "service.Terminate", "service.Restart"] {
        let err = c
            .call_proto(method, &named("made").encode_to_vec())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("no such service: made"), "{method}: {err}");
    }
    // Only protobuf, as RoadRunner.
    let err = c
        .call_json::<_, serde_json::Value>("service.List", &true)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("protobuf codec"), "{err}");

    // Shutdown stops the configured and the created services.
    let tick = running(&mut c, "tick", 2).await;
    drop(c);
    bin.stop().await;
    for pid in &tick {
        assert!(
            eventually(10, || !alive(*pid)).await,
            "{pid} alive after stop"
        );
    }
}
