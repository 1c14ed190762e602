//! The custom binary end to end: a PHP worker calls the greeter plugin's RPC method, the
//! plugin's section is read (and not warned about), a bad section exits 64.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_custom-pacer");
const DIR: &str = env!("CARGO_MANIFEST_DIR");

use pacer_ports::free_port;

fn get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn spawn(extra: &[&str]) -> (Child, u16) {
    let http = free_port();
    let mut args = vec![
        "serve".to_string(),
        "-c".into(),
        format!("{DIR}/.rr.yaml"),
        "-w".into(),
        DIR.into(),
        "-o".into(),
        format!("http.address=127.0.0.1:{http}"),
        "-o".into(),
        format!("rpc.listen=tcp://127.0.0.1:{}", free_port()),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let child = Command::new(BIN)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, http)
}

#[test]
fn a_php_worker_calls_the_plugins_rpc_method() {
    let (mut child, http) = spawn(&["-o", "greeter.greeting=Howdy"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let reply = loop {
        if let Some(r) = get(http, "/?name=pacer").filter(|r| r.starts_with("HTTP/1.1 200")) {
            break r;
        }
        assert!(Instant::now() < deadline, "custom-pacer did not answer");
        std::thread::sleep(Duration::from_millis(200));
    };
    let body = reply.split("\r\n\r\n").nth(1).unwrap();
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["text"], "Howdy, pacer!");
    let again = get(http, "/?name=again").unwrap();
    assert!(again.contains("Howdy, again!"), "{again}");
    nix_term(&child);
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{stderr}");
    assert!(!stderr.contains("unknown section greeter"), "{stderr}");
    assert!(stderr.contains("greeter stopped"), "{stderr}");
}

#[test]
fn a_bad_plugin_section_exits_64() {
    let (mut child, _) = spawn(&["-o", "greeter.greeting=''"]);
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("greeter.greeting: must not be empty"),
        "{stderr}"
    );
}

fn nix_term(child: &Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
}
