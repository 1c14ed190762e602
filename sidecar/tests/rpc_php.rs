//! The RPC server against real PHP workers, driven by our PHP RPC client (`php/src`, in
//! a `php` subprocess) and by a raw Goridge client written here with hand-built frames;
//! plus the `pacer workers` / `pacer reset` command logic.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use pacer::metrics::{AppMetrics, Metrics};
use pacer::pool::Pool;
use pacer::relay::RelayAddr;
use pacer::rpc::cli::{CliError, cli_reset, cli_workers};
use pacer::rpc::{self, RpcAddr, RpcContext, RpcLimits, RpcListener};
use pacer::stats::HttpStats;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const CONFIG: &str =
    r#"{"version":"3","rpc":{"listen":"tcp://127.0.0.1:6001"},"server":{"command":"php ops.php"}}"#;

struct Server {
    addr: String,
    pool: Pool,
    app: Arc<AppMetrics>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Server {
    async fn start(workers: usize) -> Server {
        Server::start_with(workers, RpcLimits::default(), "tcp://127.0.0.1:0").await
    }

    async fn start_with(workers: usize, limits: RpcLimits, listen: &str) -> Server {
        let pool = ops_pool(settings(workers), RelayAddr::Pipes, &[]).await;
        let app = Arc::new(AppMetrics::new());
        let ctx = RpcContext::new(
            vec![pool.clone()],
            serde_json::from_str(CONFIG).unwrap(),
            "2025.1.15",
            app.clone(),
        )
        .with_limits(limits);
        let listener = RpcListener::bind(&listen.parse::<RpcAddr>().unwrap())
            .await
            .unwrap();
        let addr = listener.dsn().to_string();
        let stop = CancellationToken::new();
        let task = tokio::spawn(rpc::serve(listener, Arc::new(ctx), stop.clone()));
        Server {
            addr,
            pool,
            app,
            stop,
            task,
        }
    }

    fn pids(&self) -> HashSet<u32> {
        self.pool.snapshot().workers.iter().map(|w| w.pid).collect()
    }

    async fn shutdown(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("rpc::serve returns after stop")
            .unwrap();
        self.pool.shutdown().await;
    }
}

/// Runs `body` as PHP with `$rpc` (an `RPC` client of `addr`), `$out` (printed as JSON at
/// the end) and `$try` (runs a closure, returns `['ok'=>result]` or `['error'=>message]`).
async fn php(addr: &str, body: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("client.php");
    let autoload = repo_root().join("php/autoload.php");
    std::fs::write(
        &script,
        format!(
            r#"<?php
declare(strict_types=1);
require {autoload:?};
use Pacer\Informer;
use Pacer\Metrics\Collector;
use Pacer\Metrics\Metrics;
use Pacer\RPC\Codec\RawCodec;
use Pacer\RPC\RPC;
$rpc = RPC::create($argv[1]);
$out = [];
$try = static function (callable $f): array {{
    try {{ return ['ok' => $f()]; }} catch (\Throwable $e) {{ return ['error' => get_class($e) . ': ' . $e->getMessage()]; }}
}};
{body}
echo json_encode($out, JSON_PRESERVE_ZERO_FRACTION), "\n";
"#,
            autoload = autoload.display().to_string()
        ),
    )
    .unwrap();
    let run = tokio::process::Command::new(common::php())
        .arg(&script)
        .arg(addr)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the PHP client finished")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "php failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("PHP printed no JSON ({e}): {stdout}"))
}

// ---------- a raw Goridge client: frames built by hand ----------

/// Encodes a frame byte by byte (docs/wire-protocol.md §1.1), independent of pacer's encoder.
fn frame(flags: u8, options: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x10 | (3 + options.len() as u8), flags];
    f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    let crc = crc32fast::hash(&f[..6]);
    f.extend_from_slice(&crc.to_le_bytes());
    f.extend_from_slice(&[0, 0]);
    for o in options {
        f.extend_from_slice(&o.to_le_bytes());
    }
    f.extend_from_slice(payload);
    f
}

fn request(flags: u8, seq: u32, method: &str, body: &[u8]) -> Vec<u8> {
    let mut payload = method.as_bytes().to_vec();
    payload.extend_from_slice(body);
    frame(flags, &[seq, method.len() as u32], &payload)
}

#[derive(Debug)]
struct Reply {
    flags: u8,
    seq: u32,
    method: String,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        assert_eq!(self.flags, 0x08, "a JSON success reply: {self:?}");
        serde_json::from_slice(&self.body).unwrap()
    }

    fn error(&self) -> String {
        assert_eq!(self.flags & 0x40, 0x40, "an error reply: {self:?}");
        String::from_utf8(self.body.clone()).unwrap()
    }
}

async fn read_reply(s: &mut (impl AsyncReadExt + Unpin)) -> Reply {
    let mut head = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(60), s.read_exact(&mut head))
        .await
        .expect("a reply in time")
        .unwrap();
    assert_eq!(head[0], 0x15, "version 1, two options");
    assert_eq!(
        u32::from_le_bytes(head[6..10].try_into().unwrap()),
        crc32fast::hash(&head[..6]),
        "header CRC"
    );
    let len = u32::from_le_bytes(head[2..6].try_into().unwrap()) as usize;
    let mut rest = vec![0u8; 8 + len];
    s.read_exact(&mut rest).await.unwrap();
    let seq = u32::from_le_bytes(rest[0..4].try_into().unwrap());
    let mlen = u32::from_le_bytes(rest[4..8].try_into().unwrap()) as usize;
    Reply {
        flags: head[1],
        seq,
        method: String::from_utf8(rest[8..8 + mlen].to_vec()).unwrap(),
        body: rest[8 + mlen..].to_vec(),
    }
}

async fn connect(addr: &str) -> TcpStream {
    TcpStream::connect(addr.strip_prefix("tcp://").unwrap())
        .await
        .unwrap()
}

async fn raw_call(s: &mut TcpStream, flags: u8, seq: u32, method: &str, body: &[u8]) -> Reply {
    s.write_all(&request(flags, seq, method, body))
        .await
        .unwrap();
    let r = read_reply(s).await;
    assert_eq!(r.seq, seq);
    assert_eq!(r.method, method);
    r
}

/// Whether the server closed `s` (EOF or reset) within a few seconds.
async fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) | Err(_) => false,
    }
}

// ---------- through our PHP RPC client ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php_client_informer_resetter_and_rpc_methods() {
    let server = Server::start(2).await;
    let out = php(
        &server.addr,
        r#"
$informer = new Informer($rpc);
$out['plugins'] = $informer->plugins();
$out['workers'] = array_map(static fn ($w) => (array) $w, $informer->workers('http'));
$out['raw'] = $rpc->call('informer.Workers', 'http');
$out['unknown'] = $informer->workers('grpc');
$out['unknown_raw'] = $rpc->call('informer.Workers', 'grpc');
$out['resettable'] = $rpc->call('resetter.List', true);
$out['version'] = $rpc->call('rpc.Version', true);
$out['config'] = json_decode($rpc->withCodec(new RawCodec())->call('rpc.Config', ''), true);
$out['config_json'] = $rpc->call('rpc.Config', true);
$out['unknown_method'] = $try(static fn () => $rpc->call('informer.Nope', 'http'));
$out['unknown_service'] = $try(static fn () => $rpc->call('jobs.Push', 'x'));
$out['after_errors'] = $rpc->call('informer.List', true);
"#,
    )
    .await;

    assert_eq!(out["plugins"], json!(["http"]));
    let pids = server.pids();
    let workers = out["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    for w in workers {
        assert!(pids.contains(&(w["pid"].as_u64().unwrap() as u32)), "{w}");
        assert_eq!(w["status"], 1);
        assert_eq!(w["statusStr"], "ready");
        assert!(w["memoryUsage"].as_u64().unwrap() > 1 << 20, "{w}");
        let created = w["created"].as_i64().unwrap();
        assert!(created <= now && created > now - 120_000_000_000, "{w}");
        assert!(w["command"].as_str().unwrap().contains("ops.php"), "{w}");
        assert!(w["cpuPercent"].as_f64().unwrap() >= 0.0);
    }
    // RoadRunner's field names, plus pacer's slot.
    let raw = &out["raw"]["workers"][0];
    for key in [
        "pid",
        "status",
        "numExecs",
        "created",
        "memoryUsage",
        "CPUPercent",
        "command",
        "statusStr",
        "slot",
    ] {
        assert!(raw.get(key).is_some(), "{key} in {raw}");
    }
    assert_eq!(out["unknown"], json!([]));
    assert_eq!(out["unknown_raw"], json!({"workers": null}));
    assert_eq!(out["resettable"], json!(["http"]));
    assert_eq!(out["version"], "2025.1.15");
    assert_eq!(
        out["config"],
        serde_json::from_str::<Value>(CONFIG).unwrap()
    );
    assert!(out["config_json"].is_string(), "JSON codec: base64 like Go");
    assert_eq!(
        out["unknown_method"]["error"],
        format!(
            "Pacer\\RPC\\Exception\\ServiceException: Error 'rpc: can't find method informer.Nope' on {}",
            server.addr
        )
    );
    assert!(
        out["unknown_service"]["error"]
            .as_str()
            .unwrap()
            .contains("rpc: can't find service jobs.Push"),
        "{out}"
    );
    assert_eq!(out["after_errors"], json!(["http"]));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php_client_add_and_remove_worker_change_the_live_count() {
    let server = Server::start(2).await;
    let out = php(
        &server.addr,
        r#"
$informer = new Informer($rpc);
$out['add'] = $rpc->call('informer.AddWorker', 'http');
$out['after_add'] = count($informer->workers('http'));
$rpc->call('informer.RemoveWorker', 'http');
$rpc->call('informer.RemoveWorker', 'http');
$out['after_remove'] = count($informer->workers('http'));
$out['remove_last'] = $try(static fn () => $rpc->call('informer.RemoveWorker', 'http'));
$out['add_unknown'] = $try(static fn () => $rpc->call('informer.AddWorker', 'grpc'));
"#,
    )
    .await;
    assert_eq!(out["add"], true);
    assert_eq!(out["after_add"], 3);
    assert_eq!(out["after_remove"], 1);
    assert!(
        out["remove_last"]["error"]
            .as_str()
            .unwrap()
            .contains("cannot remove the last worker of pool http"),
        "{out}"
    );
    assert!(
        out["add_unknown"]["error"]
            .as_str()
            .unwrap()
            .contains("plugin grpc does not support workers management"),
        "{out}"
    );
    assert_eq!(server.pool.target(), 1);
    assert_eq!(server.pool.snapshot().workers.len(), 1);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php_client_reset_replaces_every_worker() {
    let server = Server::start(2).await;
    let before = server.pids();
    let out = php(
        &server.addr,
        r#"
$informer = new Informer($rpc);
$out['reset'] = $informer->reset('http');
$out['pids'] = array_map(static fn ($w) => $w->pid, $informer->workers('http'));
$out['reset_unknown'] = $try(static fn () => $informer->reset('grpc'));
"#,
    )
    .await;
    assert_eq!(out["reset"], true);
    let after: HashSet<u32> = out["pids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap() as u32)
        .collect();
    assert_eq!(after.len(), 2, "{out}");
    assert!(after.is_disjoint(&before), "{before:?} -> {after:?}");
    assert!(
        out["reset_unknown"]["error"]
            .as_str()
            .unwrap()
            .contains("no such plugin: grpc")
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php_metrics_round_trip_shows_in_the_exposition() {
    let server = Server::start(1).await;
    let out = php(
        &server.addr,
        r#"
$m = new Metrics($rpc);
$m->declare('orders_total', Collector::counter()->withNamespace('shop')->withHelp('Orders placed')->withLabels('channel'));
$m->declare('orders_total', Collector::counter()->withNamespace('shop')->withHelp('Orders placed')->withLabels('channel'));
$m->declare('queue_size', Collector::gauge()->withHelp('Jobs queued'));
$m->declare('latency_seconds', Collector::histogram(0.1, 0.5, 1.0)->withHelp('Latency')->withLabels('method'));
$m->declare('payload_bytes', Collector::summary(['0.5' => 0.05, '0.9' => 0.01])->withSubsystem('io')->withHelp('Sizes'));
$m->declare('gone', Collector::gauge()->withHelp('x'));
$m->add('orders_total', 2, ['web']);
$m->add('orders_total', 1, ['web']);
$m->add('orders_total', 5, ['app']);
$m->set('queue_size', 7);
$m->sub('queue_size', 2.5);
$m->observe('latency_seconds', 0.25, ['GET']);
$m->observe('latency_seconds', 2, ['GET']);
foreach ([100, 200, 300, 400, 500, 600, 700, 800, 900, 1000] as $v) {
    $m->observe('payload_bytes', $v);
}
$m->unregister('gone');
$out['missing'] = $try(static fn () => $m->add('missing', 1));
$out['no_labels'] = $try(static fn () => $m->add('orders_total', 1));
$out['too_many_labels'] = $try(static fn () => $m->add('orders_total', 1, ['a', 'b']));
$out['wrong_type'] = $try(static fn () => $m->observe('queue_size', 1));
$out['counter_down'] = $try(static fn () => $m->add('orders_total', -1, ['web']));
$out['conflict'] = $try(static fn () => $rpc->call('metrics.Declare', ['name' => 'queue_size', 'collector' => ['type' => 'counter']]));
$out['unregister_again'] = $try(static fn () => $m->unregister('gone'));
"#,
    )
    .await;
    for (key, text) in [
        (
            "missing",
            "undefined collector missing, try first Declare the desired collector",
        ),
        ("no_labels", "required labels for collector `orders_total`"),
        ("too_many_labels", "expected 1 label values but got 2"),
        (
            "wrong_type",
            "collector `queue_size` does not support method `Observe`",
        ),
        ("counter_down", "cannot decrease"),
        ("conflict", "tried to register existing collector"),
        ("unregister_again", "undefined collector gone"),
    ] {
        let error = out[key]["error"].as_str().unwrap_or_default();
        assert!(error.contains(text), "{key}: {error}");
    }
    assert!(
        out["missing"]["error"]
            .as_str()
            .unwrap()
            .starts_with("Pacer\\Metrics\\MetricsException"),
        "{out}"
    );

    let metrics = Metrics::new(
        vec![server.pool.clone()],
        Arc::new(HttpStats::default()),
        server.app.clone(),
    );
    let text = metrics.render();
    for line in [
        "# HELP shop_orders_total Orders placed",
        "# TYPE shop_orders_total counter",
        "shop_orders_total{channel=\"app\"} 5",
        "shop_orders_total{channel=\"web\"} 3",
        "# TYPE queue_size gauge",
        "queue_size 4.5",
        "# TYPE latency_seconds histogram",
        "latency_seconds_bucket{method=\"GET\",le=\"0.1\"} 0",
        "latency_seconds_bucket{method=\"GET\",le=\"0.5\"} 1",
        "latency_seconds_bucket{method=\"GET\",le=\"1\"} 1",
        "latency_seconds_bucket{method=\"GET\",le=\"+Inf\"} 2",
        "latency_seconds_sum{method=\"GET\"} 2.25",
        "latency_seconds_count{method=\"GET\"} 2",
        "# TYPE io_payload_bytes summary",
        "io_payload_bytes{quantile=\"0.5\"} 500",
        "io_payload_bytes{quantile=\"0.9\"} 900",
        "io_payload_bytes_sum 5500",
        "io_payload_bytes_count 10",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing line {line:?} in:\n{text}"
        );
    }
    assert!(!text.contains("gone"), "unregistered metric is gone");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php_client_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("rpc.sock");
    // A stale socket file from an earlier run is replaced.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let server = Server::start_with(
        1,
        RpcLimits::default(),
        &format!("unix://{}", sock.display()),
    )
    .await;
    assert_eq!(server.addr, format!("unix://{}", sock.display()));
    let out = php(
        &server.addr,
        r#"$out['plugins'] = (new Informer($rpc))->plugins();"#,
    )
    .await;
    assert_eq!(out["plugins"], json!(["http"]));
    server.shutdown().await;
    assert!(!sock.exists(), "the socket file is removed on shutdown");
}

// ---------- through a raw Goridge client ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_reset_bytes() {
    let server = Server::start(1).await;
    let before = server.pids();
    let mut s = connect(&server.addr).await;
    // docs/wire-protocol.md §1.5(h), byte for byte.
    let mut req = vec![
        0x15, 0x08, 0x14, 0x00, 0x00, 0x00, 0x82, 0xB9, 0xD2, 0x0D, 0x00, 0x00, 0x01, 0x00, 0x00,
        0x00, 0x0E, 0x00, 0x00, 0x00,
    ];
    req.extend_from_slice(b"resetter.Reset\"http\"");
    assert_eq!(req, request(0x08, 1, "resetter.Reset", b"\"http\""));
    s.write_all(&req).await.unwrap();
    let mut want = vec![
        0x15, 0x08, 0x12, 0x00, 0x00, 0x00, 0x5E, 0xE6, 0xB9, 0x28, 0x00, 0x00, 0x01, 0x00, 0x00,
        0x00, 0x0E, 0x00, 0x00, 0x00,
    ];
    want.extend_from_slice(b"resetter.Resettrue");
    let mut got = vec![0u8; want.len()];
    tokio::time::timeout(Duration::from_secs(60), s.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, want);
    assert!(server.pids().is_disjoint(&before));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_client_every_method() {
    let server = Server::start(2).await;
    let mut s = connect(&server.addr).await;
    let mut seq = 0;
    let mut call = async |flags: u8, method: &str, body: &str| {
        seq += 1;
        raw_call(&mut s, flags, seq, method, body.as_bytes()).await
    };

    assert_eq!(
        call(8, "informer.List", "true").await.json(),
        json!(["http"])
    );
    let workers = call(8, "informer.Workers", "\"http\"").await.json();
    let workers = workers["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2);
    let slots: HashSet<u64> = workers
        .iter()
        .map(|w| w["slot"].as_u64().unwrap())
        .collect();
    assert_eq!(slots, HashSet::from([0, 1]));
    assert_eq!(
        call(8, "informer.Workers", "\"nope\"").await.json(),
        json!({"workers": null})
    );
    assert_eq!(
        call(8, "resetter.List", "true").await.json(),
        json!(["http"])
    );
    assert_eq!(call(8, "rpc.Version", "true").await.json(), "2025.1.15");
    // An empty argument is the zero value, as with Go.
    assert_eq!(call(8, "rpc.Version", "").await.json(), "2025.1.15");

    let config = call(4, "rpc.Config", "").await;
    assert_eq!(config.flags, 0x04, "raw reply");
    assert_eq!(
        serde_json::from_slice::<Value>(&config.body).unwrap(),
        serde_json::from_str::<Value>(CONFIG).unwrap()
    );
    assert!(call(8, "rpc.Config", "true").await.json().is_string());

    assert_eq!(call(8, "informer.AddWorker", "\"http\"").await.json(), true);
    assert_eq!(server.pool.snapshot().workers.len(), 3);
    assert_eq!(
        call(8, "informer.RemoveWorker", "\"http\"").await.json(),
        true
    );
    assert_eq!(server.pool.snapshot().workers.len(), 2);

    let declare =
        r#"{"name":"hits_total","collector":{"type":"counter","help":"Hits","labels":["route"]}}"#;
    assert_eq!(call(8, "metrics.Declare", declare).await.json(), true);
    let g = r#"{"name":"temp","collector":{"type":"gauge","help":"T"}}"#;
    assert_eq!(call(8, "metrics.Declare", g).await.json(), true);
    let h = r#"{"name":"dur_seconds","collector":{"type":"histogram","help":"D","buckets":[1,2]}}"#;
    assert_eq!(call(8, "metrics.Declare", h).await.json(), true);
    let add = r#"{"name":"hits_total","value":4,"labels":["/a"]}"#;
    assert_eq!(call(8, "metrics.Add", add).await.json(), true);
    assert_eq!(
        call(8, "metrics.Set", r#"{"name":"temp","value":10}"#)
            .await
            .json(),
        true
    );
    assert_eq!(
        call(
            8,
            "metrics.Sub",
            r#"{"name":"temp","value":3,"labels":null}"#
        )
        .await
        .json(),
        true
    );
    assert_eq!(
        call(
            8,
            "metrics.Observe",
            r#"{"name":"dur_seconds","value":1.5}"#
        )
        .await
        .json(),
        true
    );
    assert_eq!(call(8, "metrics.Unregister", "\"temp\"").await.json(), true);
    let text = Metrics::new(vec![], Arc::new(HttpStats::default()), server.app.clone()).render();
    assert!(text.contains("\nhits_total{route=\"/a\"} 4\n"), "{text}");
    assert!(
        text.contains("\ndur_seconds_bucket{le=\"2\"} 1\n"),
        "{text}"
    );
    assert!(!text.contains("temp"), "{text}");

    // Errors: codec flag | ERROR, the method echoed, a readable text.
    let r = call(8, "metrics.Add", r#"{"name":"nope","value":1}"#).await;
    assert_eq!(r.flags, 0x48);
    assert!(r.error().starts_with("undefined collector nope"));
    let r = call(0x20, "informer.List", "").await;
    assert_eq!(r.flags, 0x60, "gob | ERROR");
    assert!(r.error().contains("does not speak the gob codec"), "{r:?}");
    let r = call(0x04, "informer.List", "").await;
    assert_eq!(r.flags, 0x44, "raw | ERROR");
    assert!(r.error().contains("rpc.Config only"), "{r:?}");
    let r = call(8, "informer.Workers", "{not json").await;
    assert!(
        r.error()
            .starts_with("cannot decode the argument of informer.Workers")
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_method_is_an_error_reply_and_the_connection_stays_usable() {
    let server = Server::start(1).await;
    let mut s = connect(&server.addr).await;
    let r = raw_call(&mut s, 8, 41, "informer.Nope", b"\"http\"").await;
    assert_eq!(r.flags, 0x48);
    assert_eq!(r.error(), "rpc: can't find method informer.Nope");
    let r = raw_call(&mut s, 8, 42, "kv.Set", b"{}").await;
    assert_eq!(r.error(), "rpc: can't find service kv.Set");
    let r = raw_call(&mut s, 8, 43, "Version", b"").await;
    assert_eq!(r.error(), "rpc: service/method request ill-formed: Version");
    let r = raw_call(&mut s, 8, 44, "informer.List", b"true").await;
    assert_eq!(r.json(), json!(["http"]));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_on_one_connection_are_answered_concurrently() {
    let server = Server::start(2).await;
    let mut s = connect(&server.addr).await;
    // A rolling reset first (slow: it starts new PHP processes), then quick calls, all
    // written before any reply is read.
    let mut burst = request(8, 100, "resetter.Reset", b"\"http\"");
    for seq in 101..=110 {
        burst.extend(request(8, seq, "informer.List", b"true"));
    }
    s.write_all(&burst).await.unwrap();
    let mut order = Vec::new();
    for _ in 0..11 {
        let r = read_reply(&mut s).await;
        if r.seq == 100 {
            assert_eq!(r.method, "resetter.Reset");
            assert_eq!(r.body, b"true");
        } else {
            assert_eq!(r.json(), json!(["http"]));
        }
        order.push(r.seq);
    }
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(sorted, (100..=110).collect::<Vec<_>>());
    assert_eq!(
        order.last(),
        Some(&100),
        "the quick calls did not wait for the reset: {order:?}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_runs_to_the_end_when_its_client_hangs_up() {
    // No grace at all: only a shutdown may cut calls short, not a client leaving.
    let limits = RpcLimits {
        shutdown_grace: Duration::ZERO,
        ..RpcLimits::default()
    };
    let server = Server::start_with(2, limits, "tcp://127.0.0.1:0").await;
    let before = server.pids();
    let mut s = connect(&server.addr).await;
    s.write_all(&request(8, 1, "resetter.Reset", b"\"http\""))
        .await
        .unwrap();
    drop(s);
    assert!(
        eventually(30, || {
            let now = server.pids();
            now.len() == 2 && now.is_disjoint(&before)
        })
        .await,
        "every worker was replaced"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_clients() {
    let server = Server::start(2).await;
    server
        .app
        .declare(
            "calls_total",
            serde_json::from_value(json!({"type":"counter","help":"Calls"})).unwrap(),
        )
        .unwrap();
    let clients: Vec<_> = (0..20)
        .map(|c| {
            let addr = server.addr.clone();
            tokio::spawn(async move {
                let mut s = connect(&addr).await;
                for i in 0..20u32 {
                    let seq = c * 1000 + i;
                    let r = raw_call(&mut s, 8, seq, "informer.Workers", b"\"http\"").await;
                    assert_eq!(r.json()["workers"].as_array().unwrap().len(), 2);
                    let r = raw_call(
                        &mut s,
                        8,
                        seq + 500,
                        "metrics.Add",
                        br#"{"name":"calls_total","value":1}"#,
                    )
                    .await;
                    assert_eq!(r.json(), true);
                }
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
    let text = Metrics::new(vec![], Arc::new(HttpStats::default()), server.app.clone()).render();
    assert!(text.contains("\ncalls_total 400\n"), "{text}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_disconnects_only_that_client() {
    let server = Server::start(1).await;
    let mut good = connect(&server.addr).await;
    assert_eq!(
        raw_call(&mut good, 8, 1, "informer.List", b"true")
            .await
            .json(),
        json!(["http"])
    );

    let mut bad_crc = request(8, 1, "informer.List", b"true");
    bad_crc[6] ^= 0xFF;
    let one_option = frame(8, &[1], b"informer.List");
    let three_options = frame(8, &[1, 13, 0], b"informer.List");
    let method_too_long = frame(8, &[1, 200], b"informer.List");
    // Announces 64 MiB, above the 4 MiB cap: refused from the header alone.
    let mut oversized = frame(8, &[1, 13], b"");
    oversized[2..6].copy_from_slice(&(64u32 << 20).to_le_bytes());
    let crc = crc32fast::hash(&oversized[..6]);
    oversized[6..10].copy_from_slice(&crc.to_le_bytes());
    let http = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();

    for (what, bytes) in [
        ("bad crc", bad_crc),
        ("one option", one_option),
        ("three options", three_options),
        ("method length beyond the payload", method_too_long),
        ("oversized frame", oversized),
        ("HTTP", http),
    ] {
        let mut bad = connect(&server.addr).await;
        // A valid call first: the garbage comes mid-conversation.
        assert_eq!(
            raw_call(&mut bad, 8, 1, "rpc.Version", b"").await.json(),
            "2025.1.15"
        );
        bad.write_all(&bytes).await.unwrap();
        assert!(closed_by_server(&mut bad).await, "{what}: disconnected");
        let r = raw_call(&mut good, 8, 2, "informer.List", b"true").await;
        assert_eq!(r.json(), json!(["http"]), "{what}: others unaffected");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_closed() {
    let limits = RpcLimits {
        max_connections: 2,
        ..RpcLimits::default()
    };
    let server = Server::start_with(1, limits, "tcp://127.0.0.1:0").await;
    let mut a = connect(&server.addr).await;
    let mut b = connect(&server.addr).await;
    raw_call(&mut a, 8, 1, "rpc.Version", b"").await;
    raw_call(&mut b, 8, 1, "rpc.Version", b"").await;
    let mut c = connect(&server.addr).await;
    assert!(closed_by_server(&mut c).await);
    drop(a);
    // Once a slot is free, new clients are served again.
    let mut served = false;
    for _ in 0..50 {
        let mut d = connect(&server.addr).await;
        d.write_all(&request(8, 1, "rpc.Version", b""))
            .await
            .unwrap();
        let mut head = [0u8; 12];
        if let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_secs(2), d.read_exact(&mut head)).await
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served);
    raw_call(&mut b, 8, 2, "rpc.Version", b"").await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_closes_the_listener_and_open_connections() {
    let server = Server::start(1).await;
    let mut s = connect(&server.addr).await;
    raw_call(&mut s, 8, 1, "rpc.Version", b"").await;
    let addr = server.addr.clone();
    server.shutdown().await;
    assert!(closed_by_server(&mut s).await);
    assert!(
        TcpStream::connect(addr.strip_prefix("tcp://").unwrap())
            .await
            .is_err()
    );
}

// ---------- pacer workers / pacer reset ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_workers_prints_a_table_and_json() {
    let server = Server::start(2).await;
    // One worker busy for a while, so its current job time shows.
    let busy_pool = server.pool.clone();
    let busy = tokio::spawn(async move {
        call(&busy_pool, r#"{"op":"sleep","ms":1500}"#, b"zz")
            .await
            .unwrap();
    });
    assert!(
        eventually(10, || server
            .pool
            .snapshot()
            .workers
            .iter()
            .any(|w| w.busy_for(tokio::time::Instant::now()).is_some()))
        .await
    );

    let mut out = Vec::new();
    cli_workers(&server.addr, None, false, None, &mut out)
        .await
        .unwrap();
    let table = String::from_utf8(out).unwrap();
    assert!(table.starts_with("Workers of [http]:\n"), "{table}");
    for h in [
        "PID",
        "STATUS",
        "EXECS",
        "MEMORY",
        "CPU%",
        "CREATED",
        "CURRENT JOB",
    ] {
        assert!(table.contains(h), "{h} in {table}");
    }
    for pid in server.pids() {
        assert!(table.contains(&format!("| {pid} |")), "{pid} in\n{table}");
    }
    assert!(table.contains(" working "), "{table}");
    assert!(table.contains(" MiB |"), "{table}");

    let mut out = Vec::new();
    cli_workers(&server.addr, Some("http"), true, None, &mut out)
        .await
        .unwrap();
    let doc: Value = serde_json::from_slice(&out).unwrap();
    let workers = doc["http"].as_array().unwrap();
    assert_eq!(workers.len(), 2);
    let working: Vec<_> = workers
        .iter()
        .filter(|w| w["statusStr"] == "working")
        .collect();
    assert_eq!(working.len(), 1, "{doc}");
    assert!(working[0]["currentJobNanos"].as_u64().unwrap() > 0);

    let err = cli_workers(&server.addr, Some("grpc"), false, None, &mut Vec::new())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "no pool named \"grpc\"; pacer has: http");
    assert_eq!(err.exit_code(), 64);

    // --interval refreshes until the caller stops it.
    let mut out = Vec::new();
    let refreshing = cli_workers(
        &server.addr,
        None,
        false,
        Some(Duration::from_millis(100)),
        &mut out,
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(1000), refreshing)
            .await
            .is_err()
    );
    let refreshes = String::from_utf8(out)
        .unwrap()
        .matches("Workers of [http]")
        .count();
    assert!(refreshes >= 2, "{refreshes}");

    busy.await.unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_reset_replaces_the_workers() {
    let server = Server::start(2).await;
    let before = server.pids();
    let mut out = Vec::new();
    cli_reset(&server.addr, Some("http"), &mut out)
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "Resetting http workers... done\n"
    );
    let after = server.pids();
    assert_eq!(after.len(), 2);
    assert!(after.is_disjoint(&before));

    // Without a pool: every resettable pool.
    let mut out = Vec::new();
    cli_reset(&server.addr, None, &mut out).await.unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "Resetting http workers... done\n"
    );
    assert!(server.pids().is_disjoint(&after));

    let err = cli_reset(&server.addr, Some("jobs"), &mut Vec::new())
        .await
        .unwrap_err();
    assert!(matches!(err, CliError::UnknownPool { .. }), "{err}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_says_when_rpc_is_not_reachable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("tcp://127.0.0.1:{port}");
    let err = cli_workers(&addr, None, false, None, &mut Vec::new())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("RPC not reachable at {addr}: connection refused")
    );
    assert_eq!(err.exit_code(), 69);
    let err = cli_reset(&addr, None, &mut Vec::new()).await.unwrap_err();
    assert_eq!(err.exit_code(), 69);
    let err = cli_reset("127.0.0.1:6001", None, &mut Vec::new())
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), 64, "{err}");
}
