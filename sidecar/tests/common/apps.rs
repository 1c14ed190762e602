//! The framework example apps (`examples/laravel`, `examples/symfony`) served by the real
//! `pacer` binary: each test copies the app into its own temp dir (so databases, sessions
//! and uploads never meet), prepares it as a user would (migrations, cache warm-up) and
//! talks to it over HTTP with [`Browser`], a client that keeps cookies like a browser.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use super::binary::PacerBin;
use super::serve::{H1, Reply, h1, send};
use super::{php, repo_root};

/// `php/autoload.php` of this repository: the copied apps load pacer/worker from here.
pub fn pacer_autoload() -> PathBuf {
    repo_root().join("php/autoload.php")
}

/// Fails (never skips) when Debian's framework packages are missing.
pub fn require_php_file(file: &str, package: &str) {
    let out = Command::new(php())
        .args([
            "-r",
            &format!("exit(stream_resolve_include_path('{file}') === false ? 1 : 0);"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{file} is not on PHP's include path: install {package} (make deps)"
    );
}

/// Copies `examples/<name>` into `into`, leaving out what the app writes at runtime.
pub fn copy_app(name: &str, into: &Path) -> PathBuf {
    let from = repo_root().join("examples").join(name);
    let to = into.join(name);
    copy_dir(&from, &to, &from);
    to
}

fn copy_dir(from: &Path, to: &Path, root: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .to_string();
        let runtime_state = rel.ends_with(".sqlite")
            || rel.starts_with("var/")
            || (rel.starts_with("storage/")
                && entry.file_type().unwrap().is_file()
                && !rel.ends_with(".gitignore"))
            || (rel.starts_with("bootstrap/cache/") && !rel.ends_with(".gitignore"));
        if runtime_state {
            continue;
        }
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&path, &target, root);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// Runs `php <args>` in `dir` (with pacer/worker's autoloader), failing the test on error.
pub fn php_in(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(php())
        .args(args)
        .current_dir(dir)
        .env("PACER_PHP_AUTOLOAD", pacer_autoload())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "php {args:?} in {} failed: {}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Starts `pacer serve` with the app's own `.rr.yaml` in `app` (its working directory),
/// listening on free ports, with `workers` PHP workers running `command`, plus `extra`
/// overrides. Waits until the workers are up.
pub async fn serve_app(
    dir: tempfile::TempDir,
    app: &Path,
    command: &str,
    workers: usize,
    extra: &[String],
) -> PacerBin {
    let overrides: Vec<String> = [
        format!("server.command={command}"),
        format!(
            "server.env.PACER_PHP_AUTOLOAD={}",
            pacer_autoload().display()
        ),
        format!("http.pool.num_workers={workers}"),
        "logs.level=warn".to_string(),
    ]
    .into_iter()
    .chain(extra.iter().cloned())
    .collect();
    let pacer = PacerBin::serve_config(dir, &app.join(".rr.yaml"), app, &overrides);
    pacer.wait_ready(workers).await;
    pacer
}

/// An HTTP client with a cookie jar, as one browser (one client) of the app.
pub struct Browser {
    client: H1,
    base: String,
    /// name → value, as the server last set them.
    pub cookies: BTreeMap<String, String>,
}

impl Browser {
    pub fn new(pacer: &PacerBin) -> Browser {
        Browser {
            client: h1(),
            base: pacer.url(""),
            cookies: BTreeMap::new(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Reply {
        self.request("GET", path, &[], Bytes::new()).await
    }

    /// POST of an urlencoded form.
    pub async fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.request(
            "POST",
            path,
            &[("content-type", "application/x-www-form-urlencoded")],
            Bytes::from(body),
        )
        .await
    }

    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if !self.cookies.is_empty() {
            let cookie = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            req = req.header("cookie", cookie);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let reply = send(&self.client, req.body(Full::new(body)).unwrap()).await;
        for line in reply.header_all("set-cookie") {
            let pair = line.split(';').next().unwrap_or_default();
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let expired = line.to_ascii_lowercase().contains("max-age=0")
                || value.is_empty()
                || value == "deleted";
            if expired {
                self.cookies.remove(name.trim());
            } else {
                self.cookies
                    .insert(name.trim().to_string(), value.trim().to_string());
            }
        }
        reply
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of `<input ... name="NAME" value="...">` in an HTML page.
pub fn input_value(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no input {name} in {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

/// A multipart body with one file part and some plain fields.
pub fn multipart(
    field: &str,
    filename: &str,
    data: &[u8],
    fields: &[(&str, &str)],
) -> (String, Bytes) {
    let boundary = "pacerframeworkboundary";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n\
             Content-Type: text/plain\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(data);
    body.extend_from_slice(b"\r\n");
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (
        format!("multipart/form-data; boundary={boundary}"),
        Bytes::from(body),
    )
}

/// `GET /posts/7` as both example apps render it (a route, a controller, a template
/// with a layout and the banner shared at boot, one database read); returns the reply.
pub async fn post_page(browser: &mut Browser) -> Reply {
    let post = browser.get("/posts/7").await;
    let page = post.text();
    assert_eq!(post.status, 200, "{page}");
    assert!(page.contains("<h1>Post number 7</h1>"), "{page}");
    assert!(
        page.contains("Welcome to Pacer"),
        "the banner shared at boot"
    );
    assert_eq!(
        post.header("content-type"),
        Some("text/html; charset=UTF-8")
    );
    post
}

/// The worker pid the example apps put in `X-Served-By: <framework>/<pid>`.
pub fn served_by(reply: &Reply) -> u32 {
    reply
        .header("x-served-by")
        .and_then(|v| v.rsplit('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no X-Served-By in {:?}", reply.headers))
}

/// GETs `path` and reads the body as it arrives: the whole body, and how long passed
/// between its first and its last piece (near zero when the server buffered it all).
pub async fn streamed(pacer: &PacerBin, path: &str) -> (String, std::time::Duration) {
    use http_body_util::BodyExt;
    let response = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        h1().request(super::serve::get(&pacer.url(path))),
    )
    .await
    .unwrap()
    .unwrap();
    let mut body = response.into_body();
    let mut text = Vec::new();
    let mut first = None;
    let mut last = std::time::Instant::now();
    while let Some(frame) = tokio::time::timeout(std::time::Duration::from_secs(60), body.frame())
        .await
        .unwrap()
    {
        if let Ok(data) = frame.unwrap().into_data()
            && !data.is_empty()
        {
            last = std::time::Instant::now();
            first.get_or_insert(last);
            text.extend_from_slice(&data);
        }
    }
    let spread = first.map_or_else(Default::default, |f| last.duration_since(f));
    (String::from_utf8(text).unwrap(), spread)
}

/// Logs in through the app's form at `/login`: the CSRF token the form carries in its
/// `token_field` input, posted with `fields`; the app must redirect to `/dashboard`.
pub async fn log_in(browser: &mut Browser, token_field: &str, fields: &[(&str, &str)]) {
    let form = browser.get("/login").await;
    assert_eq!(form.status, 200, "{}", form.text());
    let token = input_value(&form.text(), token_field);
    let mut posted = vec![(token_field, token.as_str())];
    posted.extend_from_slice(fields);
    let login = browser.post_form("/login", &posted).await;
    assert_eq!(login.status, 302, "{}", login.text());
    assert!(
        login
            .header("location")
            .is_some_and(|l| l.ends_with("/dashboard")),
        "{:?}",
        login.headers
    );
}

/// The user `/me` reports for this client (null for a guest).
pub async fn me(browser: &mut Browser) -> serde_json::Value {
    let reply = browser.get("/me").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["user"].clone()
}

/// Uploads a text file (field `doc`, with a plain field `note`) to `/upload` and checks
/// what the app read of it: name, size, SHA-256 and the note. Returns the app's answer.
pub async fn upload(browser: &mut Browser) -> serde_json::Value {
    use sha2::{Digest, Sha256};
    let data = b"uploaded through pacer\n".repeat(500);
    let (content_type, body) = multipart("doc", "notes.txt", &data, &[("note", "hi")]);
    let upload = browser
        .request("POST", "/upload", &[("content-type", &content_type)], body)
        .await;
    assert_eq!(upload.status, 200, "{}", upload.text());
    let got = upload.json();
    assert_eq!(got["name"], "notes.txt");
    assert_eq!(got["size"], data.len());
    assert_eq!(got["sha256"], format!("{:x}", Sha256::digest(&data)));
    assert_eq!(got["note"], "hi");
    got
}

/// What both example apps serve alike: a streamed response (streamed for real: 10 lines
/// 50 ms apart arrive over at least 400 ms, not at once), a file download, and output a
/// controller printed before what it returned (first, as under php-fpm). Returns the
/// reply of `/stream?n=4`.
pub async fn stream_download_and_echo(browser: &mut Browser, pacer: &PacerBin) -> Reply {
    let stream = browser.get("/stream?n=4").await;
    assert_eq!(stream.text(), "line 1\nline 2\nline 3\nline 4\n");
    let (text, spread) = streamed(pacer, "/stream?n=10").await;
    assert_eq!(text.lines().count(), 10, "{text}");
    assert!(
        spread >= std::time::Duration::from_millis(400),
        "all lines came within {spread:?}"
    );
    let download = browser.get("/download").await;
    assert_eq!(download.text(), "hello from public/\n");
    assert_eq!(
        download.header("content-disposition"),
        Some("attachment; filename=robots.txt")
    );
    let echo = browser.get("/echo").await;
    assert_eq!(
        echo.text(),
        "printed by the controller; returned by the controller"
    );
    stream
}
