//! OpenTelemetry end to end: the real `pacer` binary and real PHP workers export their
//! spans over OTLP/HTTP and OTLP/gRPC to a real OpenTelemetry Collector receiver (`e2e/otelcol`, built
//! from the collector's Go modules and cached), which writes what it received as OTLP
//! JSON. Checked: the W3C context PHP receives, and the spans' names, kinds, parent/child
//! links, times and HTTP semantic-convention attributes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use serde_json::Value;
use tokio::io::AsyncBufReadExt;

use common::binary::{PacerBin, Ports, script};
use common::serve::{eventually_async, h1, send};

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_PARENT: &str = "00f067aa0ba902b7";

/// The collector, killed when dropped.
struct Collector {
    _child: tokio::process::Child,
    http: String,
    grpc: String,
    out: PathBuf,
}

/// Builds (once, cached) and starts the test collector. Fails without Go: the test is
/// meant to run for real.
async fn collector(dir: &Path) -> Collector {
    let build = common::repo_root().join("e2e/otelcol/build.sh");
    let output = std::process::Command::new("bash")
        .arg(&build)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{} failed (is Go installed? make deps)",
        build.display()
    );
    let bin = String::from_utf8(output.stdout).unwrap();
    let bin = bin.lines().last().unwrap().trim().to_string();
    let out = dir.join("spans.jsonl");
    let mut child = tokio::process::Command::new(&bin)
        .arg("-out")
        .arg(&out)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the collector did not start in 30 s")
        .unwrap()
        .expect("the collector exited");
    let field = |name: &str| {
        first
            .split_whitespace()
            .find_map(|f| f.strip_prefix(name))
            .unwrap_or_else(|| panic!("collector said {first:?}"))
            .to_string()
    };
    Collector {
        _child: child,
        http: field("http="),
        grpc: field("grpc="),
        out,
    }
}

/// One span as received, flattened.
#[derive(Clone, Debug)]
struct Span {
    name: String,
    kind: i64,
    trace: String,
    id: String,
    parent: String,
    start: u128,
    end: u128,
    attrs: HashMap<String, String>,
    status_code: i64,
    service: String,
}

fn read_spans(path: &Path) -> Vec<Span> {
    spans_of(&std::fs::read_to_string(path).unwrap_or_default())
}

/// The spans in lines of OTLP JSON (`ExportTraceServiceRequest`s); other lines skipped.
fn spans_of(text: &str) -> Vec<Span> {
    let mut spans = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("{\"resourceSpans\"")) {
        let doc: Value = serde_json::from_str(line).unwrap();
        for rs in doc["resourceSpans"].as_array().unwrap() {
            let resource = attrs(&rs["resource"]["attributes"]);
            for ss in rs["scopeSpans"].as_array().unwrap() {
                for s in ss["spans"].as_array().unwrap() {
                    let nanos = |k: &str| s[k].as_str().unwrap().parse::<u128>().unwrap();
                    spans.push(Span {
                        name: s["name"].as_str().unwrap().to_string(),
                        kind: s["kind"].as_i64().unwrap_or(0),
                        trace: s["traceId"].as_str().unwrap().to_string(),
                        id: s["spanId"].as_str().unwrap().to_string(),
                        parent: s["parentSpanId"].as_str().unwrap_or("").to_string(),
                        start: nanos("startTimeUnixNano"),
                        end: nanos("endTimeUnixNano"),
                        attrs: attrs(&s["attributes"]),
                        status_code: s["status"]["code"].as_i64().unwrap_or(0),
                        service: resource.get("service.name").cloned().unwrap_or_default(),
                    });
                }
            }
        }
    }
    spans
}

/// OTLP JSON attributes → strings (`intValue` is a string in OTLP JSON).
fn attrs(list: &Value) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for a in list.as_array().into_iter().flatten() {
        let v = &a["value"];
        let v = v["stringValue"]
            .as_str()
            .map(str::to_string)
            .or_else(|| v["intValue"].as_str().map(str::to_string))
            .or_else(|| v["intValue"].as_i64().map(|i| i.to_string()))
            .or_else(|| v["boolValue"].as_bool().map(|b| b.to_string()))
            .unwrap_or_else(|| v.to_string());
        out.insert(a["key"].as_str().unwrap().to_string(), v);
    }
    out
}

/// GET `url` with extra headers; the echoed request's headers (PHP's view).
async fn echo(url: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut req = Request::get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let reply = send(&h1(), req.body(Full::<Bytes>::default()).unwrap()).await;
    let status = reply.status.as_u16();
    let body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    (status, body["headers"].clone())
}

/// `traceparent` as PHP saw it: (trace id, parent id, flags).
fn php_context(headers: &Value) -> (String, String, String) {
    let tp = headers["Traceparent"][0]
        .as_str()
        .unwrap_or_else(|| panic!("no traceparent reached PHP: {headers}"));
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts.len(), 4, "{tp}");
    assert_eq!(parts[0], "00", "{tp}");
    (parts[1].into(), parts[2].into(), parts[3].into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_a_real_collector_with_links_and_attributes() {
    let php = common::php();
    let dir = tempfile::tempdir().unwrap();
    let col = collector(dir.path()).await;
    let public = dir.path().join("public");
    std::fs::create_dir(&public).unwrap();
    std::fs::write(public.join("hello.txt"), "static hello\n").unwrap();
    let ports = Ports::pick();
    let yaml = format!(
        r#"version: "3"
server:
  command: "{php} {worker}"
  relay: pipes
http:
  address: {http}
  middleware: [static, otel]
  static: {{dir: {public}}}
  pool: {{num_workers: 1}}
status:
  address: {status}
otel:
  exporter: otlp
  client: http
  insecure: true
  endpoint: {endpoint}
  resource: {{service_name: shop, service_namespace: test}}
"#,
        worker = script("http.php"),
        http = ports.http,
        status = ports.status,
        public = common::binary::yaml_path(&public),
        endpoint = col.http,
    );
    let pacer = PacerBin::spawn(tempfile::tempdir().unwrap(), ports, &yaml);
    pacer.wait_ready(1).await;

    // 1. A client that sends its context: the trace continues, PHP gets a child.
    let client_tp = format!("00-{CLIENT_TRACE}-{CLIENT_PARENT}-01");
    let (status, seen) = echo(
        &pacer.url("/echo?item=7"),
        &[
            ("traceparent", &client_tp),
            ("tracestate", "rojo=00f067aa0ba902b7"),
            ("user-agent", "otel-test"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    let (trace1, php_parent1, flags1) = php_context(&seen);
    assert_eq!(trace1, CLIENT_TRACE);
    assert_ne!(
        php_parent1, CLIENT_PARENT,
        "PHP must get pacer's span as parent"
    );
    assert_eq!(flags1, "01");
    assert_eq!(seen["Tracestate"][0], "rojo=00f067aa0ba902b7");

    // 1b. Our PHP library reads the same context (and makes a child of pacer's span).
    let mut req = Request::get(pacer.url("/trace"));
    req = req
        .header("traceparent", &client_tp)
        .header("tracestate", "rojo=1");
    let reply = send(&h1(), req.body(Full::<Bytes>::default()).unwrap()).await;
    let php_view: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(php_view["traceId"], CLIENT_TRACE);
    assert_eq!(php_view["sampled"], true);
    assert_eq!(php_view["traceState"], "rojo=1");
    let php_span_of_trace_route = php_view["spanId"].as_str().unwrap().to_string();
    let child = php_view["child"].as_str().unwrap();
    assert!(
        child.starts_with(&format!("00-{CLIENT_TRACE}-")) && child.ends_with("-01"),
        "{child}"
    );
    assert!(!child.contains(&php_span_of_trace_route), "{child}");

    // 2. No context: a new trace, PHP still gets one.
    let (_, seen) = echo(&pacer.url("/echo"), &[]).await;
    let (trace2, php_parent2, _) = php_context(&seen);
    assert_ne!(trace2, CLIENT_TRACE);

    // 3. An invalid context is not trusted (and neither is its tracestate).
    let (_, seen) = echo(
        &pacer.url("/echo"),
        &[
            (
                "traceparent",
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            ),
            ("tracestate", "a=b"),
        ],
    )
    .await;
    let (trace3, _, _) = php_context(&seen);
    assert_ne!(trace3.to_lowercase(), CLIENT_TRACE);
    assert!(seen.get("Tracestate").is_none_or(Value::is_null), "{seen}");

    // 4. A static file: no PHP, a pacer.static span. 5. A PHP error: a 5xx span.
    let reply = common::serve::fetch(&pacer.url("/hello.txt")).await;
    assert_eq!(reply.status, 200);
    let reply = common::serve::fetch(&pacer.url("/error")).await;
    assert!(reply.status.is_server_error());

    // The batch processor exports every 5 s; wait for all of it.
    let want = |spans: &[Span]| {
        spans.iter().filter(|s| s.kind == 2).count() >= 6
            && spans.iter().filter(|s| s.name == "php").count() >= 5
    };
    let arrived = eventually_async(60, || async { want(&read_spans(&col.out)) }).await;
    let spans = read_spans(&col.out);
    assert!(
        arrived,
        "spans missing: {spans:#?}\npacer: {}",
        pacer.stderr()
    );

    let in_trace = |t: &str| {
        spans
            .iter()
            .filter(|s| s.trace == t)
            .cloned()
            .collect::<Vec<_>>()
    };
    let one = |list: &[Span], name: &str| {
        let found: Vec<&Span> = list.iter().filter(|s| s.name == name).collect();
        assert_eq!(found.len(), 1, "{name}: {list:#?}");
        found[0].clone()
    };

    // Trace 1: client → GET (SERVER) → pacer.queue (INTERNAL), php (CLIENT) → PHP.
    let both = in_trace(CLIENT_TRACE);
    // The /trace request is in the client's trace too; its php span is PHP's parent.
    let trace_route = both
        .iter()
        .find(|s| s.attrs.get("url.path").is_some_and(|p| p == "/trace"))
        .unwrap_or_else(|| panic!("{both:#?}"))
        .id
        .clone();
    assert!(
        both.iter()
            .any(|s| s.name == "php" && s.id == php_span_of_trace_route && s.parent == trace_route)
    );
    let t1: Vec<Span> = both
        .iter()
        .filter(|s| s.id != trace_route && s.parent != trace_route)
        .cloned()
        .collect();
    assert_eq!(t1.len(), 3, "{t1:#?}");
    let server = one(&t1, "GET");
    let queue = one(&t1, "pacer.queue");
    let php_span = one(&t1, "php");
    assert_eq!(server.kind, 2); // SPAN_KIND_SERVER
    assert_eq!(server.parent, CLIENT_PARENT);
    assert_eq!((queue.kind, queue.parent.as_str()), (1, server.id.as_str())); // INTERNAL
    assert_eq!(
        (php_span.kind, php_span.parent.as_str()),
        (3, server.id.as_str())
    ); // CLIENT
    assert_eq!(php_span.id, php_parent1, "PHP's parent is the php span");
    assert!(server.start <= queue.start && queue.end <= php_span.start + 1_000);
    assert!(php_span.end <= server.end, "{server:?} {php_span:?}");
    assert!(
        php_span
            .attrs
            .get("process.pid")
            .is_some_and(|p| p.parse::<u32>().is_ok())
    );
    for (k, v) in [
        ("http.request.method", "GET"),
        ("url.path", "/echo"),
        ("url.query", "item=7"),
        ("url.scheme", "http"),
        ("network.protocol.version", "1.1"),
        ("server.address", "127.0.0.1"),
        ("client.address", "127.0.0.1"),
        ("user_agent.original", "otel-test"),
        ("http.response.status_code", "200"),
    ] {
        assert_eq!(
            server.attrs.get(k).map(String::as_str),
            Some(v),
            "{k}: {server:#?}"
        );
    }
    assert_eq!(
        server.attrs["server.port"],
        pacer.ports.http.port().to_string()
    );
    assert_eq!(server.service, "shop");
    assert_eq!(server.status_code, 0);

    // Trace 2: a root SERVER span; PHP's parent is its php span.
    let t2 = in_trace(&trace2);
    let root = one(&t2, "GET");
    assert_eq!(root.parent, "");
    assert_eq!(one(&t2, "php").id, php_parent2);

    // Trace 3: the invalid header started a new root.
    assert_eq!(one(&in_trace(&trace3), "GET").parent, "");

    // The static file: SERVER + pacer.static, nothing from PHP.
    let statik = spans
        .iter()
        .find(|s| s.kind == 2 && s.attrs.get("url.path").is_some_and(|p| p == "/hello.txt"))
        .unwrap_or_else(|| panic!("{spans:#?}"));
    let t4 = in_trace(&statik.trace);
    assert_eq!(t4.len(), 2, "{t4:#?}");
    assert_eq!(one(&t4, "pacer.static").parent, statik.id);

    // The PHP error: 5xx → error.type and an error status on the SERVER span.
    let failed = spans
        .iter()
        .find(|s| s.kind == 2 && s.attrs.get("url.path").is_some_and(|p| p == "/error"))
        .unwrap();
    assert_eq!(failed.attrs["http.response.status_code"], "500");
    assert_eq!(failed.attrs["error.type"], "500");
    assert_eq!(failed.status_code, 2); // STATUS_CODE_ERROR

    // Print the tree of the client's trace (for the record).
    for s in [&server, &queue, &php_span] {
        eprintln!(
            "{}{} [{}] {} parent={} {:.3} ms",
            if s.name == "GET" { "" } else { "  " },
            s.name,
            s.kind,
            s.id,
            s.parent,
            (s.end - s.start) as f64 / 1e6
        );
    }
    pacer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_collector_never_fails_a_request() {
    let ports = Ports::pick();
    // Nobody listens on the endpoint: exports fail in the background.
    let dead = common::binary::free_port();
    let yaml = otel_config(
        &ports,
        &format!(r#"{{insecure: true, endpoint: "127.0.0.1:{dead}"}}"#),
    );
    let pacer = PacerBin::spawn(tempfile::tempdir().unwrap(), ports, &yaml);
    pacer.wait_ready(1).await;
    let client = h1();
    for i in 0..200 {
        let reply = send(&client, common::serve::get(&pacer.url("/"))).await;
        assert_eq!(reply.status, 200, "request {i}");
    }
    // Shutdown flushes (and gives up on) the queued spans within its timeout.
    let started = std::time::Instant::now();
    pacer.stop().await;
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// pacer serving http.php with one worker through the `otel` middleware, its `otel`
/// section as given (YAML).
fn otel_config(ports: &Ports, otel: &str) -> String {
    format!(
        r#"version: "3"
server:
  command: "{php} {worker}"
  relay: pipes
http:
  address: {http}
  middleware: [otel]
  pool: {{num_workers: 1}}
status:
  address: {status}
otel: {otel}
"#,
        php = common::php(),
        worker = script("http.php"),
        http = ports.http,
        status = ports.status,
    )
}

/// The php span's links in one request's trace, as pacer exported them.
fn assert_request_trace(spans: &[Span], trace: &str, php_parent: &str) {
    let t: Vec<&Span> = spans.iter().filter(|s| s.trace == trace).collect();
    assert_eq!(t.len(), 3, "{t:#?}");
    let named = |n: &str| {
        *t.iter()
            .find(|s| s.name == n)
            .unwrap_or_else(|| panic!("{n}: {t:#?}"))
    };
    let (server, queue, php) = (named("GET"), named("pacer.queue"), named("php"));
    assert_eq!((server.kind, server.parent.as_str()), (2, ""));
    assert_eq!((queue.kind, queue.parent.as_str()), (1, server.id.as_str()));
    assert_eq!((php.kind, php.parent.as_str()), (3, server.id.as_str()));
    assert_eq!(php.id, php_parent, "PHP's parent is the php span");
    assert_eq!(server.attrs["http.response.status_code"], "200");
    assert!(server.start <= php.start && php.end <= server.end, "{t:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_a_real_collector_over_grpc_plain_and_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let col = collector(dir.path()).await;
    for compress in [false, true] {
        let ports = Ports::pick();
        let service = format!("grpc-{compress}");
        let yaml = otel_config(
            &ports,
            &format!(
                "{{client: grpc, insecure: true, compress: {compress}, endpoint: {endpoint}, \
                 headers: {{x-tenant: t1}}, resource: {{service_name: {service}}}}}",
                endpoint = col.grpc,
            ),
        );
        let pacer = PacerBin::spawn(tempfile::tempdir().unwrap(), ports, &yaml);
        pacer.wait_ready(1).await;
        let mut sent = Vec::new();
        for _ in 0..3 {
            let (status, seen) = echo(&pacer.url("/echo"), &[]).await;
            assert_eq!(status, 200);
            let (trace, parent, _) = php_context(&seen);
            sent.push((trace, parent));
        }
        // Shutdown flushes the batch: every span is at the collector when pacer exits.
        let stderr = pacer.stop().await;
        let arrived = eventually_async(30, || async {
            read_spans(&col.out)
                .iter()
                .filter(|s| s.service == service)
                .count()
                >= 9
        })
        .await;
        let spans: Vec<Span> = read_spans(&col.out)
            .into_iter()
            .filter(|s| s.service == service)
            .collect();
        assert!(
            arrived,
            "gRPC (compress {compress}): {spans:#?}\npacer: {stderr}"
        );
        for (trace, parent) in &sent {
            assert_request_trace(&spans, trace, parent);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stderr_exporter_writes_otlp_json_lines() {
    let ports = Ports::pick();
    let yaml = otel_config(
        &ports,
        "{exporter: stderr, resource: {service_name: lines}}",
    );
    let pacer = PacerBin::spawn(tempfile::tempdir().unwrap(), ports, &yaml);
    pacer.wait_ready(1).await;
    let (status, seen) = echo(&pacer.url("/echo"), &[]).await;
    assert_eq!(status, 200);
    let (trace, parent, _) = php_context(&seen);
    let stderr = pacer.stop().await;
    let spans = spans_of(&stderr);
    assert!(spans.iter().all(|s| s.service == "lines"), "{spans:#?}");
    assert_request_trace(&spans, &trace, &parent);
}

#[test]
fn unsupported_exporters_exit_64_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (section, key) in [
        ("{exporter: zipkin}", "otel.exporter"),
        ("{exporter: jaeger}", "otel.exporter"),
        ("{client: thrift}", "otel.client"),
    ] {
        let yaml = format!(
            "version: '3'\nserver: {{command: 'php w.php'}}\nhttp: {{address: '127.0.0.1:0', middleware: [otel]}}\notel: {section}\n"
        );
        std::fs::write(dir.path().join(".rr.yaml"), yaml).unwrap();
        let out = std::process::Command::new(common::binary::PACER)
            .args(["serve", "-c"])
            .arg(dir.path().join(".rr.yaml"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{section}: {stderr}");
        assert!(stderr.contains(key), "{section}: {stderr}");
    }
}
