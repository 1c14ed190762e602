//! Security and bad input through the real server: where RPC listens, what reaches the
//! logs, which user the workers run as, headers PHP must not smuggle to the client and
//! headers a client must not be allowed to grow without bound.
//!
//! Raw-socket refusals over HTTP/1.1 (huge or too many headers, smuggling, bad Host) are
//! in `http_bad_input.rs`; header injection in a plain PHP reply in `http_serve.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::time::Duration;

use bytes::Bytes;
use common::binary::*;
use common::serve::*;
use common::{php, worker_script};
use http::Request;
use http_body_util::Full;

// ---------------------------------------------------------------------------------------
// RPC

/// `/proc/net/tcp` entries of the sockets `pid` listens on, as "a.b.c.d:port".
fn listening_v4(pid: u32) -> Vec<String> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let link = std::fs::read_link(e.path()).ok()?;
            let link = link.to_str()?;
            Some(
                link.strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_string(),
            )
        })
        .collect();
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address, state 0A = LISTEN, inode
            if f.len() > 9 && f[3] == "0A" && inodes.iter().any(|i| i == f[9]) {
                let (ip, port) = f[1].split_once(':').unwrap();
                let port = u16::from_str_radix(port, 16).unwrap();
                let ip = if ip.len() == 8 {
                    let n = u32::from_str_radix(ip, 16).unwrap();
                    std::net::Ipv4Addr::from(n.swap_bytes()).to_string()
                } else {
                    format!("[v6 {ip}]")
                };
                out.push(format!("{ip}:{port}"));
            }
        }
    }
    out.sort();
    out
}

fn rpc_yaml(ports: &Ports, rpc: &str) -> String {
    RrYaml::worker("http.php")
        .console()
        .section(rpc)
        .render(ports)
}

#[tokio::test]
async fn rpc_listens_on_loopback_by_default_and_warns_when_exposed() {
    // `rpc: {}` is RoadRunner's tcp://127.0.0.1:6001. Another process may hold that port
    // right now; then pacer names the address it could not bind, which must be loopback.
    let ports = Ports::pick();
    let mut pacer = PacerBin::spawn(
        tempfile::tempdir().unwrap(),
        ports,
        &rpc_yaml(&ports, "rpc: {}"),
    );
    let up = eventually_async(30, || async {
        tokio::net::TcpStream::connect(ports.status).await.is_ok()
    })
    .await;
    if up {
        pacer.wait_ready(1).await;
        let listening = listening_v4(pacer.pid());
        assert!(
            listening.contains(&"127.0.0.1:6001".to_string()),
            "{listening:?}"
        );
        assert!(
            listening.iter().all(|a| a.starts_with("127.0.0.1:")),
            "pacer listens beyond loopback: {listening:?}"
        );
        // Workers are told the same address.
        let worker = children_of(pacer.pid())[0];
        let environ = std::fs::read(format!("/proc/{worker}/environ")).unwrap();
        assert!(
            environ
                .split(|b| *b == 0)
                .any(|kv| kv == b"RR_RPC=tcp://127.0.0.1:6001"),
            "{}",
            String::from_utf8_lossy(&environ)
        );
        let log = pacer.stop().await;
        assert!(!log.contains("no authentication"), "{log}");
    } else {
        let status = pacer.wait_exit(30).await;
        let log = pacer.stderr();
        assert_eq!(status.code(), Some(64), "{log}");
        assert!(log.contains("cannot listen on rpc 127.0.0.1:6001"), "{log}");
    }

    // Anywhere else: a warning in the config check and again when binding. The address
    // is from TEST-NET-1, which no interface here has, so nothing is ever exposed: the
    // bind fails after the warning.
    let ports = Ports::pick();
    let mut pacer = PacerBin::spawn(
        tempfile::tempdir().unwrap(),
        ports,
        &rpc_yaml(&ports, "rpc:\n  listen: tcp://192.0.2.10:6001"),
    );
    let status = pacer.wait_exit(30).await;
    let log = pacer.stderr();
    assert_eq!(status.code(), Some(64), "{log}");
    assert!(
        log.contains(
            "rpc.listen: tcp://192.0.2.10:6001 is reachable from other hosts and RPC has no authentication"
        ),
        "{log}"
    );
    assert!(
        log.contains("RPC listens on a non-loopback address and has no authentication"),
        "{log}"
    );
    assert!(log.contains("cannot listen on rpc"), "{log}");
}

// ---------------------------------------------------------------------------------------
// Logs

fn multipart_body(boundary: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut b = Vec::new();
    for p in parts {
        b.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        b.extend_from_slice(p);
        b.extend_from_slice(b"\r\n");
    }
    b
}

#[tokio::test]
async fn no_body_cookie_authorization_or_query_reaches_the_logs_at_debug_level() {
    let ports = Ports::pick();
    let dir = tempfile::tempdir().unwrap();
    let yaml = RrYaml::worker("http.php")
        .http("access_logs: true\nmax_request_size: 1\nhttp2:\n  h2c: true")
        .level("debug")
        .console()
        .render(&ports);
    let pacer = PacerBin::spawn(dir, ports, &yaml);
    pacer.wait_ready(1).await;

    // Each secret is unique, so a hit names the request that leaked it.
    let secrets = [
        "SECRET-QUERY-h1",
        "SECRET-COOKIE-h1",
        "SECRET-AUTH-h1",
        "SECRET-BODY-json",
        "SECRET-FORM-value",
        "SECRET-FORM-conflict",
        "SECRET-PART-name",
        "SECRET-PART-header",
        "SECRET-PART-value",
        "SECRET-BIG-body",
        "SECRET-QUERY-h2",
        "SECRET-COOKIE-h2",
        "SECRET-AUTH-h2",
        "SECRET-BODY-h2",
        "SECRET-QUERY-bad",
    ];
    let with_secrets = |req: http::request::Builder, tag: &str| {
        req.header("cookie", format!("session=SECRET-COOKIE-{tag}; theme=dark"))
            .header("authorization", format!("Bearer SECRET-AUTH-{tag}"))
    };
    let h1 = h1();
    let mut replies = Vec::new();
    // Query, cookie and Authorization on a request PHP answers.
    replies.push(
        send(
            &h1,
            with_secrets(Request::get(pacer.url("/echo?token=SECRET-QUERY-h1")), "h1")
                .body(Full::default())
                .unwrap(),
        )
        .await,
    );
    // Bodies: JSON, a form, a form PHP never sees because its names conflict.
    for (ct, body) in [
        ("application/json", r#"{"password":"SECRET-BODY-json"}"#),
        ("application/x-www-form-urlencoded", "a=SECRET-FORM-value"),
        (
            "application/x-www-form-urlencoded",
            "SECRET-FORM-conflict=1&SECRET-FORM-conflict[x]=2",
        ),
    ] {
        replies.push(
            send(
                &h1,
                Request::post(pacer.url("/echo"))
                    .header("content-type", ct)
                    .body(Full::new(Bytes::from(body)))
                    .unwrap(),
            )
            .await,
        );
    }
    // Multipart bodies that are refused: a part cut short, a part header name that is
    // not a token, and a good one whose value must not be logged either.
    for parts in [
        vec![
            &b"Content-Disposition: form-data; name=\"SECRET-PART-name\"\r\n\r\nSECRET-PART-value"
                [..],
        ],
        vec![
            &b"SECRET-PART-header\x01: x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv"[..],
        ],
    ] {
        let mut body = multipart_body("XXbound", &parts);
        if parts[0].starts_with(b"SECRET") {
            body.extend_from_slice(b"--XXbound--\r\n");
        }
        replies.push(
            send(
                &h1,
                Request::post(pacer.url("/echo"))
                    .header("content-type", "multipart/form-data; boundary=XXbound")
                    .body(Full::new(Bytes::from(body)))
                    .unwrap(),
            )
            .await,
        );
    }
    // Too big (max_request_size 1 MB), refused before PHP.
    let big = format!("SECRET-BIG-body{}", "x".repeat(2 << 20));
    replies.push(
        send(
            &h1,
            Request::post(pacer.url("/echo"))
                .header("content-type", "text/plain")
                .body(Full::new(Bytes::from(big)))
                .unwrap(),
        )
        .await,
    );
    // The same over h2c, and a query on a request that fails in PHP.
    let h2 = h2c();
    replies.push(
        send(
            &h2,
            with_secrets(Request::post(pacer.url("/echo?q=SECRET-QUERY-h2")), "h2")
                .header("content-type", "text/plain")
                .body(Full::new(Bytes::from_static(b"SECRET-BODY-h2")))
                .unwrap(),
        )
        .await,
    );
    replies.push(send(&h1, get(&pacer.url("/error?why=SECRET-QUERY-bad"))).await);
    let statuses: Vec<u16> = replies.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(statuses, [200, 200, 200, 400, 400, 400, 413, 200, 500]);
    // PHP did get them (so they were there to leak).
    assert!(replies[0].text().contains("SECRET-COOKIE-h1"));
    assert!(replies[7].text().contains("SECRET-BODY-h2"));

    let log = pacer.stop().await;
    // The log is there and at debug level: access lines, request failures, RPC, etc.
    assert!(log.contains("DEBUG"), "{log}");
    assert!(log.contains("path=/echo"), "{log}");
    let leaked: Vec<&str> = secrets
        .iter()
        .copied()
        .filter(|s| log.contains(s))
        .collect();
    assert!(leaked.is_empty(), "{leaked:?} in the log:\n{log}");
}

// ---------------------------------------------------------------------------------------
// Users

/// The `nobody` user and `nogroup` group (Debian's), or a skip reason.
fn unprivileged() -> Result<(u32, u32), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("not root: cannot start workers as another user".into());
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let group = std::fs::read_to_string("/etc/group").unwrap();
    let id = |text: &str, name: &str, field: usize| {
        text.lines()
            .find(|l| l.split(':').next() == Some(name))
            .and_then(|l| l.split(':').nth(field)?.parse::<u32>().ok())
    };
    match (id(&passwd, "nobody", 2), id(&group, "nogroup", 2)) {
        (Some(uid), Some(gid)) => Ok((uid, gid)),
        _ => Err("no nobody/nogroup on this machine".into()),
    }
}

#[tokio::test]
async fn workers_run_as_the_configured_user_and_own_their_upload_files() {
    let (uid, gid) = match unprivileged() {
        Ok(ids) => ids,
        Err(why) if std::env::var("CI").as_deref() == Ok("true") => panic!("{why}"),
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    for relay in ["pipes", "tcp://127.0.0.1:0", "unix"] {
        let builder = Builder::new("http.php").workers(2);
        // The worker (not root) must reach the uploads dir and a unix socket in it.
        for d in [builder.dir().to_path_buf(), builder.dir().join("uploads")] {
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let relay = if relay == "unix" {
            format!("unix://{}", builder.dir().join("relay.sock").display())
        } else {
            relay.to_string()
        };
        let rpc_sock = builder.dir().join("rpc.sock");
        let server = builder
            .set("server.user", "nobody")
            .set("server.group", "nogroup")
            .set("server.relay", &relay)
            .set("rpc.listen", format!("unix://{}", rpc_sock.display()))
            .no_wait()
            .start()
            .await;
        assert!(
            server.pool().wait_ready(2, Duration::from_secs(20)).await,
            "{relay}: workers did not start as nobody: {:?}",
            server.pool().snapshot().backoff
        );
        for pid in server.worker_pids() {
            let (u, g, groups) = ids_of(pid);
            assert_eq!((u, g), (uid, gid), "{relay}: worker {pid}");
            // Root's supplementary groups are dropped too.
            assert!(groups.is_empty(), "{relay}: worker {pid} groups {groups:?}");
        }
        let body = b"--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\nowned\r\n--b--\r\n";
        let r = send(
            &h1(),
            Request::post(server.url("/upload"))
                .header("content-type", "multipart/form-data; boundary=b")
                .body(Full::new(Bytes::from_static(body)))
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 200, "{relay}: {}", r.text());
        let f = &r.json()[0];
        assert_eq!(f["tmp_exists"], true, "{relay}: {f}");
        assert_eq!(f["size"], 5, "{relay}: {f}");
        assert_eq!(f["tmp_uid"], uid, "{relay}: {f}");
        assert_eq!(f["tmp_gid"], gid, "{relay}: {f}");
        let uploads = server.uploads_dir();
        common::poll::emptied(&uploads, 10, "upload temp files left").await;
        // Workers reach RPC (RR_RPC) as their own user too.
        let connect = format!(
            "echo @stream_socket_client('unix://{}') ? 'connected' : 'refused';",
            rpc_sock.display()
        );
        let out = std::process::Command::new(php())
            .args(["-r", &connect])
            .uid(uid)
            .gid(gid)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "connected",
            "{relay}: RPC as nobody: {out:?}"
        );
        server.stop().await;
    }
}

// ---------------------------------------------------------------------------------------
// Headers

/// A worker that sends headers no server may pass on, in every shape the wire allows.
const BAD_HEADERS_WORKER: &str = r#"<?php
require getenv('AUTOLOAD');
$worker = Pacer\Worker::create();
$http = new Pacer\Http\HttpWorker($worker);
while ($req = $http->waitRequest()) {
    switch (parse_url($req->uri, PHP_URL_PATH)) {
        case '/value': $http->respond(200, 'leak', ['X-A' => ["v\r\nInjected: yes"]]); break;
        case '/lf': $http->respond(200, 'leak', ['Set-Cookie' => ["a=1\nInjected: yes"]]); break;
        case '/name': $http->respond(200, 'leak', ["X-A: v\r\nInjected" => ['yes']]); break;
        case '/nul': $http->respond(200, 'leak', ['X-A' => ["v\0Injected: yes"]]); break;
        case '/stream':
            $http->respondStream(200, (function () { yield 'leak'; yield 'more'; })(), ['X-A' => ["v\r\nInjected: yes"]]);
            break;
        default: $http->respond(200, 'fine', []);
    }
}
"#;

#[tokio::test]
async fn header_injection_from_php_never_reaches_the_client_in_any_shape_or_protocol() {
    let builder = Builder::new("http.php").workers(1);
    let script = builder.dir().join("bad-headers.php");
    std::fs::write(&script, BAD_HEADERS_WORKER).unwrap();
    let autoload = worker_script("autoload.php");
    let server = builder
        .command(vec![php(), script.display().to_string()])
        .set("server.env.AUTOLOAD", &autoload)
        .set("http.http2.h2c", true)
        .start()
        .await;
    let pid = server.worker_pids()[0];
    for path in ["/value", "/lf", "/name", "/nul", "/stream"] {
        let (raw, _) = raw_exchange(
            server.addr,
            format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
            20,
        )
        .await;
        assert_eq!(raw_status(&raw), 500, "{path}: {raw}");
        assert!(!raw.contains("Injected"), "{path}: {raw}");
        assert!(!raw.contains("leak"), "{path}: the PHP body leaked: {raw}");
        let r = send(&h2c(), get(&server.url(path))).await;
        assert_eq!(r.status, 500, "h2c {path}: {}", r.text());
        assert!(r.headers.get("injected").is_none(), "h2c {path}");
        assert!(!r.text().contains("leak"), "h2c {path}: {}", r.text());
    }
    // Bad headers are PHP's mistake, not the worker's: it stays and serves on.
    assert_eq!(fetch(&server.url("/")).await.text(), "fine");
    assert_eq!(server.worker_pids(), [pid]);
    server.stop().await;
}

#[tokio::test]
async fn oversized_request_headers_over_h2c_are_refused_before_php() {
    let server = Builder::new("http.php")
        .workers(1)
        .set("http.http2.h2c", true)
        .start()
        .await;
    let before = server.jobs_run();
    let client = h2c();
    for (what, req) in [
        (
            "one 2 MiB header",
            Request::get(server.url("/echo"))
                .header("x-big", "a".repeat(2 << 20))
                .body(Full::default())
                .unwrap(),
        ),
        ("2000 small headers", {
            let mut b = Request::get(server.url("/echo"));
            for i in 0..2000 {
                b = b.header(format!("x-h{i}"), "value");
            }
            b.body(Full::default()).unwrap()
        }),
        ("900 headers of 1.5 KiB (past 1 MiB, under 1000 fields)", {
            let mut b = Request::get(server.url("/echo"));
            for i in 0..900 {
                b = b.header(format!("x-h{i}"), "v".repeat(1536));
            }
            b.body(Full::default()).unwrap()
        }),
    ] {
        // A fresh connection each: h2 may answer with GOAWAY.
        let outcome = tokio::time::timeout(Duration::from_secs(20), h2c().request(req))
            .await
            .unwrap_or_else(|_| panic!("{what}: no answer"));
        match outcome {
            // h2 answers 431, resets the stream or ends the connection (ENHANCE_YOUR_CALM
            // when far too large); never does PHP see it.
            Ok(r) => assert_eq!(r.status(), 431, "{what}"),
            Err(e) => {
                let e = format!("{e:?}");
                assert!(e.contains("Http2"), "{what}: {e}");
            }
        }
    }
    assert_eq!(
        server.jobs_run(),
        before,
        "an oversized request reached PHP"
    );
    // The server is fine, over h2c and HTTP/1.1.
    assert_eq!(send(&client, get(&server.url("/"))).await.status, 200);
    assert_eq!(fetch(&server.url("/")).await.status, 200);
    server.stop().await;
}
