//! The floor of a pipe-relay HTTP server on this machine: the least work a server can do
//! per request when it relays HTTP/1.1 to PHP workers over Goridge frames on pipes, as
//! pacer does. `bench/run.sh` (`BENCH_ONLY=floor`) measures it beside pacer and nginx.
//!
//! ```text
//! pacer-floor ADDR WORKERS -- COMMAND [ARGS...]
//! pacer-floor 127.0.0.1:8080 2 -- php -d opcache.enable_cli=1 bench/workers/hello.php
//! ```
//!
//! One thread, one `mio` poll (epoll, edge-triggered), no runtime, no timers. Per request:
//! one `recvfrom` of the request, a fixed HTTP/1.1 head parse (request line, headers,
//! `Content-Length`), the request context JSON the PHP library needs (the fields pacer
//! sends, no cookie parsing, no trusted-proxy lookup), one `write` of the frame to an idle
//! worker, one `read` of the reply frame, a status + headers scan of the reply context,
//! and one `write` of the HTTP response. What it leaves out on purpose (so it is a floor,
//! not a server): timeouts, limits beyond a head and body cap, chunked bodies (refused),
//! worker replacement (a worker that exits ends the program), streamed responses,
//! graceful shutdown.

use std::collections::VecDeque;
use std::error::Error;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use mio::net::{TcpListener, TcpStream};
use mio::unix::pipe::{Receiver, Sender};
use mio::{Events, Interest, Poll, Token};

const LISTENER: Token = Token(0);
/// Worker `i`'s stdout is token `1 + 2i`, its stdin `2 + 2i`.
const WORKER_BASE: usize = 1;
/// Connection slot `i` is token `CONN_BASE + i`.
const CONN_BASE: usize = 1 << 20;
const READ_CHUNK: usize = 16 * 1024;
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 8 << 20;
/// Goridge: the fixed header, one option word (the context length).
const FRAME_HEAD: usize = 12;
const FLAG_CONTROL: u8 = 0x01;
const FLAG_JSON: u8 = 0x08;
const STREAM_BIT: u8 = 0x01;

type Res<T> = Result<T, Box<dyn Error>>;

struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    generation: u64,
    rbuf: InBuf,
    wbuf: Vec<u8>,
    wpos: usize,
    /// A request of this connection is queued or in a worker.
    busy: bool,
    close_after_write: bool,
}

struct Worker {
    stdin: Sender,
    stdout: Receiver,
    _child: Child,
    rbuf: InBuf,
    wbuf: Vec<u8>,
    wpos: usize,
    stdin_registered: bool,
    /// (connection slot, generation) of the request in this worker.
    job: Option<(usize, u64)>,
}

struct Job {
    conn: (usize, u64),
    frame: Vec<u8>,
}

struct Server {
    poll: Poll,
    listener: TcpListener,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    next_generation: u64,
    workers: Vec<Worker>,
    queue: VecDeque<Job>,
    date: String,
    date_secs: u64,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("pacer-floor: {e}");
        std::process::exit(1);
    }
}

fn run() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: pacer-floor ADDR WORKERS -- COMMAND [ARGS...]";
    if args.len() < 5 || args[3] != "--" {
        return Err(usage.into());
    }
    let addr: SocketAddr = args[1].parse()?;
    let workers: usize = args[2].parse()?;
    if workers == 0 {
        return Err(usage.into());
    }
    let poll = Poll::new()?;
    let mut listener = TcpListener::bind(addr)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut server = Server {
        poll,
        listener,
        conns: Vec::new(),
        free: Vec::new(),
        next_generation: 0,
        workers: Vec::with_capacity(workers),
        queue: VecDeque::new(),
        date: String::new(),
        date_secs: 0,
    };
    for i in 0..workers {
        let worker = spawn_worker(&args[4], &args[5..])?;
        server.workers.push(worker);
        let w = &mut server.workers[i];
        server.poll.registry().register(
            &mut w.stdout,
            Token(WORKER_BASE + 2 * i),
            Interest::READABLE,
        )?;
    }
    eprintln!("pacer-floor: listening on {addr}, {workers} workers");
    server.serve()
}

fn spawn_worker(cmd: &str, args: &[String]) -> Res<Worker> {
    let mut child = Command::new(cmd)
        .args(args)
        .env("RR_RELAY", "pipes")
        .env("RR_MODE", "http")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdin = child.stdin.take().ok_or("no stdin")?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let stdin = Sender::from(stdin);
    let stdout = Receiver::from(stdout);
    stdin.set_nonblocking(true)?;
    stdout.set_nonblocking(true)?;
    Ok(Worker {
        stdin,
        stdout,
        _child: child,
        rbuf: InBuf::default(),
        wbuf: Vec::new(),
        wpos: 0,
        stdin_registered: false,
        job: None,
    })
}

/// A read buffer whose bytes past `len` stay initialised, so that a read does not zero
/// its space first (a `Vec` resized per read memsets 16 KiB per request).
#[derive(Default)]
struct InBuf {
    data: Vec<u8>,
    len: usize,
}

impl InBuf {
    fn filled(&self) -> &[u8] {
        &self.data[..self.len]
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Drops the first `n` bytes (a pipelined rest moves to the front).
    fn consume(&mut self, n: usize) {
        if n < self.len {
            self.data.copy_within(n..self.len, 0);
        }
        self.len -= n.min(self.len);
    }
}

/// Reads until the source is drained into `buf`. A short read means the kernel buffer was
/// empty at that moment; data arriving later makes a new edge, so no extra read for
/// `EAGAIN` is needed (tokio does the same). Returns false on end of file.
fn read_into(src: &mut impl Read, buf: &mut InBuf) -> io::Result<bool> {
    loop {
        if buf.data.len() < buf.len + READ_CHUNK {
            buf.data.resize(buf.len + READ_CHUNK, 0);
        }
        let space = buf.data.len() - buf.len;
        match src.read(&mut buf.data[buf.len..]) {
            Ok(0) => return Ok(false),
            Ok(n) => {
                buf.len += n;
                if n < space {
                    return Ok(true);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Writes `buf[*pos..]`; true when all of it is written.
fn write_from(dst: &mut impl Write, buf: &[u8], pos: &mut usize) -> io::Result<bool> {
    while *pos < buf.len() {
        match dst.write(&buf[*pos..]) {
            Ok(n) => *pos += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

impl Server {
    fn serve(&mut self) -> Res<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            match self.poll.poll(&mut events, None) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
            self.refresh_date();
            for ev in events.iter() {
                let t = ev.token().0;
                if t == LISTENER.0 {
                    self.accept()?;
                } else if t >= CONN_BASE {
                    self.conn_event(t - CONN_BASE, ev.is_readable() || ev.is_read_closed());
                } else if (t - WORKER_BASE).is_multiple_of(2) {
                    self.worker_readable((t - WORKER_BASE) / 2)?;
                } else {
                    self.worker_writable((t - WORKER_BASE) / 2)?;
                }
            }
        }
    }

    /// The `Date` header, rebuilt once a second (one clock read per poll round).
    fn refresh_date(&mut self) {
        let now = SystemTime::now();
        let secs = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if secs != self.date_secs {
            self.date_secs = secs;
            self.date = httpdate::fmt_http_date(now);
        }
    }

    fn accept(&mut self) -> Res<()> {
        loop {
            let (mut stream, peer) = match self.listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // EMFILE and friends: the connection stays in the backlog; try later.
                Err(e) => {
                    eprintln!("pacer-floor: accept: {e}");
                    return Ok(());
                }
            };
            stream.set_nodelay(true)?;
            let slot = match self.free.pop() {
                Some(s) => s,
                None => {
                    self.conns.push(None);
                    self.conns.len() - 1
                }
            };
            self.poll.registry().register(
                &mut stream,
                Token(CONN_BASE + slot),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            self.next_generation += 1;
            self.conns[slot] = Some(Conn {
                stream,
                peer,
                generation: self.next_generation,
                rbuf: InBuf::default(),
                wbuf: Vec::with_capacity(256),
                wpos: 0,
                busy: false,
                close_after_write: false,
            });
        }
    }

    fn close(&mut self, slot: usize) {
        if let Some(mut c) = self.conns[slot].take() {
            let _ = self.poll.registry().deregister(&mut c.stream);
            self.free.push(slot);
        }
    }

    fn conn_event(&mut self, slot: usize, readable: bool) {
        let Some(c) = self.conns.get_mut(slot).and_then(|c| c.as_mut()) else {
            return;
        };
        if c.wpos < c.wbuf.len() {
            match write_from(&mut c.stream, &c.wbuf, &mut c.wpos) {
                Ok(true) => {
                    c.wbuf.clear();
                    c.wpos = 0;
                    if c.close_after_write {
                        return self.close(slot);
                    }
                }
                Ok(false) => {}
                Err(_) => return self.close(slot),
            }
        }
        if readable {
            match read_into(&mut c.stream, &mut c.rbuf) {
                Ok(true) => {}
                Ok(false) | Err(_) => {
                    // A reply still owed is dropped by its generation check.
                    return self.close(slot);
                }
            }
        }
        self.dispatch(slot);
    }

    /// Starts the next request of a connection when it has a whole one and none in flight.
    fn dispatch(&mut self, slot: usize) {
        let Some(c) = self.conns.get_mut(slot).and_then(|c| c.as_mut()) else {
            return;
        };
        if c.busy || c.wpos < c.wbuf.len() || c.close_after_write {
            return;
        }
        match parse_request(c.rbuf.filled(), c.peer) {
            Parsed::Partial => {}
            Parsed::Bad(status) => {
                c.wbuf.clear();
                c.wpos = 0;
                c.close_after_write = true;
                let reason = if status == 501 {
                    "Not Implemented"
                } else {
                    "Bad Request"
                };
                c.wbuf.extend_from_slice(
                    format!("HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .as_bytes(),
                );
                match write_from(&mut c.stream, &c.wbuf, &mut c.wpos) {
                    Ok(false) => {}
                    Ok(true) | Err(_) => self.close(slot),
                }
            }
            Parsed::Request {
                consumed,
                frame,
                close,
            } => {
                c.rbuf.consume(consumed);
                c.busy = true;
                c.close_after_write = close;
                let job = Job {
                    conn: (slot, c.generation),
                    frame,
                };
                match self.workers.iter().position(|w| w.job.is_none()) {
                    Some(w) => self.send(w, job),
                    None => self.queue.push_back(job),
                }
            }
        }
    }

    fn send(&mut self, w: usize, job: Job) {
        let worker = &mut self.workers[w];
        worker.job = Some(job.conn);
        worker.wbuf = job.frame;
        worker.wpos = 0;
        match write_from(&mut worker.stdin, &worker.wbuf, &mut worker.wpos) {
            Ok(true) => {}
            Ok(false) => {
                if !worker.stdin_registered {
                    worker.stdin_registered = true;
                    if let Err(e) = self.poll.registry().register(
                        &mut worker.stdin,
                        Token(WORKER_BASE + 2 * w + 1),
                        Interest::WRITABLE,
                    ) {
                        eprintln!("pacer-floor: worker {w}: {e}");
                        std::process::exit(1);
                    }
                }
            }
            Err(e) => {
                eprintln!("pacer-floor: worker {w}: write: {e}");
                std::process::exit(1);
            }
        }
    }

    fn worker_writable(&mut self, w: usize) -> Res<()> {
        let worker = &mut self.workers[w];
        if worker.job.is_some() && worker.wpos < worker.wbuf.len() {
            write_from(&mut worker.stdin, &worker.wbuf, &mut worker.wpos)?;
        }
        Ok(())
    }

    fn worker_readable(&mut self, w: usize) -> Res<()> {
        let worker = &mut self.workers[w];
        if !read_into(&mut worker.stdout, &mut worker.rbuf)? {
            return Err(format!("worker {w} exited").into());
        }
        loop {
            let worker = &mut self.workers[w];
            let Some((total, head_len, flags, byte10)) = frame_len(worker.rbuf.filled())? else {
                break;
            };
            if flags & FLAG_CONTROL != 0 {
                worker.rbuf.consume(total);
                continue;
            }
            if byte10 & STREAM_BIT != 0 {
                return Err("streamed responses are not supported by the floor".into());
            }
            let ctx_len = if head_len > FRAME_HEAD {
                let b = worker.rbuf.filled();
                u32::from_le_bytes([b[12], b[13], b[14], b[15]]) as usize
            } else {
                0
            };
            let payload = &worker.rbuf.filled()[head_len..total];
            if ctx_len > payload.len() {
                return Err(format!("worker {w}: context longer than the payload").into());
            }
            let (ctx, body) = payload.split_at(ctx_len);
            let job = worker.job.take();
            if let Some((slot, generation)) = job
                && let Some(c) = self.conns.get_mut(slot).and_then(|c| c.as_mut())
                && c.generation == generation
            {
                c.wbuf.clear();
                c.wpos = 0;
                write_response(ctx, body, &self.date, c.close_after_write, &mut c.wbuf)?;
                c.busy = false;
                match write_from(&mut c.stream, &c.wbuf, &mut c.wpos) {
                    Ok(true) => {
                        c.wbuf.clear();
                        c.wpos = 0;
                        if c.close_after_write {
                            self.close(slot);
                        } else if !c.rbuf.is_empty() {
                            self.dispatch(slot);
                        }
                    }
                    Ok(false) => {}
                    Err(_) => self.close(slot),
                }
            }
            let worker = &mut self.workers[w];
            worker.rbuf.consume(total);
            if let Some(job) = self.queue.pop_front() {
                self.send(w, job);
            }
        }
        Ok(())
    }
}

/// The next whole frame in `buf`: (total length, header length with options, flags,
/// stream byte); `None` when more bytes are needed.
fn frame_len(buf: &[u8]) -> Res<Option<(usize, usize, u8, u8)>> {
    if buf.len() < FRAME_HEAD {
        return Ok(None);
    }
    let hl = (buf[0] & 0x0f) as usize;
    if buf[0] >> 4 != 1 || !(3..=13).contains(&hl) {
        return Err("not a Goridge v1 frame from the worker".into());
    }
    let crc = u32::from_le_bytes([buf[6], buf[7], buf[8], buf[9]]);
    if crc32fast::hash(&buf[..6]) != crc {
        return Err("bad frame CRC from the worker".into());
    }
    let len = u32::from_le_bytes([buf[2], buf[3], buf[4], buf[5]]) as usize;
    let total = 4 * hl + len;
    if buf.len() < total {
        return Ok(None);
    }
    Ok(Some((total, 4 * hl, buf[1], buf[10])))
}

enum Parsed {
    Partial,
    Bad(u16),
    Request {
        consumed: usize,
        frame: Vec<u8>,
        close: bool,
    },
}

/// One HTTP/1.1 request from the front of `buf`, encoded as a whole Goridge frame
/// (header, context length option, context JSON, body).
fn parse_request(buf: &[u8], peer: SocketAddr) -> Parsed {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() > MAX_HEAD {
            Parsed::Bad(431)
        } else {
            Parsed::Partial
        };
    };
    let Ok(head) = std::str::from_utf8(&buf[..end]) else {
        return Parsed::Bad(400);
    };
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or("").split(' ');
    let (Some(method), Some(target), Some(version), None) = (
        request_line.next(),
        request_line.next(),
        request_line.next(),
        request_line.next(),
    ) else {
        return Parsed::Bad(400);
    };
    if !target.starts_with('/') || !(version == "HTTP/1.1" || version == "HTTP/1.0") {
        return Parsed::Bad(400);
    }
    let mut headers: [(&str, &str); 64] = [("", ""); 64];
    let mut n = 0;
    let mut host = "";
    let mut body_len = 0usize;
    let mut close = version == "HTTP/1.0";
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Parsed::Bad(400);
        };
        let value = value.trim_matches([' ', '\t']);
        if name.eq_ignore_ascii_case("host") {
            host = value;
            continue;
        }
        if name.eq_ignore_ascii_case("content-length") {
            match value.parse() {
                Ok(v) if v <= MAX_BODY => body_len = v,
                _ => return Parsed::Bad(400),
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Parsed::Bad(501);
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
        if n == headers.len() {
            return Parsed::Bad(431);
        }
        headers[n] = (name, value);
        n += 1;
    }
    let body_start = end + 4;
    if buf.len() < body_start + body_len {
        return Parsed::Partial;
    }
    let query = target.split_once('?').map_or("", |(_, q)| q);

    let mut frame = Vec::with_capacity(256 + head.len() + body_len);
    frame.resize(FRAME_HEAD + 4, 0);
    frame.extend_from_slice(b"{\"remoteAddr\":\"");
    frame.extend_from_slice(peer.ip().to_canonical().to_string().as_bytes());
    frame.extend_from_slice(b"\",\"protocol\":\"");
    frame.extend_from_slice(version.as_bytes());
    frame.extend_from_slice(b"\",\"method\":");
    json_str(&mut frame, method);
    frame.extend_from_slice(b",\"uri\":\"http://");
    json_inner(&mut frame, host);
    json_inner(&mut frame, target);
    frame.extend_from_slice(b"\",\"headers\":{");
    let headers = &headers[..n];
    let mut first = true;
    for (i, (name, value)) in headers.iter().enumerate() {
        if headers[..i]
            .iter()
            .any(|(m, _)| m.eq_ignore_ascii_case(name))
        {
            continue; // already written with its first occurrence
        }
        if !first {
            frame.push(b',');
        }
        first = false;
        frame.push(b'"');
        canonical_name(&mut frame, name);
        frame.extend_from_slice(b"\":[");
        json_str(&mut frame, value);
        for (m, v) in &headers[i + 1..] {
            if m.eq_ignore_ascii_case(name) {
                frame.push(b',');
                json_str(&mut frame, v);
            }
        }
        frame.push(b']');
    }
    frame.extend_from_slice(b"},\"cookies\":{},\"rawQuery\":");
    json_str(&mut frame, query);
    frame.extend_from_slice(b",\"parsed\":false,\"uploads\":null,\"attributes\":{}}");
    let ctx_len = frame.len() - FRAME_HEAD - 4;
    frame.extend_from_slice(&buf[body_start..body_start + body_len]);
    let payload_len = (frame.len() - FRAME_HEAD - 4) as u32;
    frame[0] = 0x14; // version 1, header of 4 words (one option)
    frame[1] = FLAG_JSON;
    frame[2..6].copy_from_slice(&payload_len.to_le_bytes());
    let crc = crc32fast::hash(&frame[..6]);
    frame[6..10].copy_from_slice(&crc.to_le_bytes());
    frame[12..16].copy_from_slice(&(ctx_len as u32).to_le_bytes());
    Parsed::Request {
        consumed: body_start + body_len,
        frame,
        close,
    }
}

/// `content-type` → `Content-Type`, as pacer (and RoadRunner) name headers for PHP.
fn canonical_name(out: &mut Vec<u8>, name: &str) {
    let mut upper = true;
    for b in name.bytes() {
        let b = if b == b'"' || b == b'\\' || b < 0x20 {
            b'_'
        } else {
            b
        };
        out.push(if upper {
            b.to_ascii_uppercase()
        } else {
            b.to_ascii_lowercase()
        });
        upper = b == b'-';
    }
}

fn json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    json_inner(out, s);
    out.push(b'"');
}

fn json_inner(out: &mut Vec<u8>, s: &str) {
    if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    for b in s.bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b if b < 0x20 => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            b => out.push(b),
        }
    }
}

/// The HTTP response for a reply frame: the status and headers of the reply context
/// (`{"status":N,"headers":{"Name":["v",...],...}}`) and the body.
fn write_response(ctx: &[u8], body: &[u8], date: &str, close: bool, out: &mut Vec<u8>) -> Res<()> {
    let start = out.len();
    if scan_reply(ctx, out).is_none() {
        out.truncate(start);
        reply_slow(ctx, out)?;
    }
    out.extend_from_slice(b"content-length: ");
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\ndate: ");
    out.extend_from_slice(date.as_bytes());
    if close {
        out.extend_from_slice(b"\r\nconnection: close");
    }
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
    Ok(())
}

fn status_line(out: &mut Vec<u8>, status: u16) {
    let reason = match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "",
    };
    out.extend_from_slice(format!("HTTP/1.1 {status} {reason}\r\n").as_bytes());
}

fn header_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    let skip: [&[u8]; 3] = [b"content-length", b"transfer-encoding", b"connection"];
    if skip.iter().any(|s| s.eq_ignore_ascii_case(name)) {
        return;
    }
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The PHP library's own encoding, without escapes, scanned in one pass; `None` for
/// anything else (then serde_json decodes it).
fn scan_reply(ctx: &[u8], out: &mut Vec<u8>) -> Option<()> {
    if ctx.is_empty() {
        status_line(out, 200);
        return Some(());
    }
    if ctx.contains(&b'\\') {
        return None;
    }
    let rest = ctx.strip_prefix(b"{\"status\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let status: u16 = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    status_line(out, status);
    let mut rest = rest[digits..].strip_prefix(b",\"headers\":{")?;
    loop {
        if let Some(r) = rest.strip_prefix(b"}}") {
            return r.is_empty().then_some(());
        }
        rest = rest.strip_prefix(b",").unwrap_or(rest);
        let (name, r) = quoted(rest)?;
        rest = r.strip_prefix(b":[")?;
        loop {
            let (value, r) = quoted(rest)?;
            header_line(out, name, value);
            if let Some(r) = r.strip_prefix(b",") {
                rest = r;
            } else {
                rest = r.strip_prefix(b"]")?;
                break;
            }
        }
    }
}

fn quoted(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let s = s.strip_prefix(b"\"")?;
    let end = s.iter().position(|&b| b == b'"')?;
    Some((&s[..end], &s[end + 1..]))
}

fn reply_slow(ctx: &[u8], out: &mut Vec<u8>) -> Res<()> {
    let v: serde_json::Value = serde_json::from_slice(ctx)?;
    let status = v
        .get("status")
        .and_then(|s| s.as_u64())
        .and_then(|s| u16::try_from(s).ok())
        .unwrap_or(200);
    status_line(out, status);
    if let Some(headers) = v.get("headers").and_then(|h| h.as_object()) {
        for (name, values) in headers {
            for value in values.as_array().into_iter().flatten() {
                if let Some(value) = value.as_str() {
                    header_line(out, name.as_bytes(), value.as_bytes());
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hello_request_becomes_one_frame_with_the_context_php_needs() {
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap_or_else(|_| unreachable!());
        let req = b"GET /hello?a=1 HTTP/1.1\r\nHost: h:1\r\nx-a: 1\r\nX-A: 2\r\n\r\nrest";
        let Parsed::Request {
            consumed,
            frame,
            close,
        } = parse_request(req, peer)
        else {
            unreachable!("not parsed")
        };
        assert_eq!(consumed, req.len() - 4);
        assert!(!close);
        let Ok(Some((total, head, flags, _))) = frame_len(&frame) else {
            unreachable!("bad frame")
        };
        assert_eq!((total, head, flags), (frame.len(), 16, FLAG_JSON));
        let ctx: serde_json::Value =
            serde_json::from_slice(&frame[16..]).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(ctx["uri"], "http://h:1/hello?a=1");
        assert_eq!(ctx["rawQuery"], "a=1");
        assert_eq!(ctx["remoteAddr"], "127.0.0.1");
        assert_eq!(ctx["headers"]["X-A"], serde_json::json!(["1", "2"]));
        assert_eq!(ctx["parsed"], false);
    }

    #[test]
    fn a_partial_or_chunked_request_waits_or_is_refused() {
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap_or_else(|_| unreachable!());
        assert!(matches!(
            parse_request(b"GET / HTTP/1.1\r\n", peer),
            Parsed::Partial
        ));
        let post = b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab";
        assert!(matches!(parse_request(post, peer), Parsed::Partial));
        let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(parse_request(chunked, peer), Parsed::Bad(501)));
    }

    #[test]
    fn the_reply_context_gives_status_and_headers_fast_or_slow() {
        let mut out = Vec::new();
        let ctx = br#"{"status":404,"headers":{"Content-Type":["text/plain"],"X-B":["1","2"]}}"#;
        write_response(ctx, b"nope", "D", false, &mut out).unwrap_or_else(|e| unreachable!("{e}"));
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with(
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nX-B: 1\r\nX-B: 2\r\n"
        ));
        assert!(text.ends_with("content-length: 4\r\ndate: D\r\n\r\nnope"));
        let mut slow = Vec::new();
        let ctx = br#"{"headers":{"X-Q":["a\"b"]},"status":201}"#;
        write_response(ctx, b"", "D", true, &mut slow).unwrap_or_else(|e| unreachable!("{e}"));
        let text = String::from_utf8_lossy(&slow);
        assert!(
            text.starts_with("HTTP/1.1 201 Created\r\nX-Q: a\"b\r\n"),
            "{text}"
        );
        assert!(text.contains("connection: close"));
    }
}
