//! Static files (`http.static`): served straight from disk when a file exists, is allowed,
//! and lies inside the directory; everything else falls through to PHP (the usual
//! front-controller layout, like RoadRunner's `static` middleware).
//!
//! Safety: the request path is percent-decoded once, `..`, `.` and NUL segments are
//! refused, and the final path is canonicalised (following symlinks) and must still lie
//! under the canonical root — so no encoding trick or symlink can escape the directory.
//! `.php` files are never served, whatever the lists say. Extensions are those of Go's
//! `filepath.Ext`, as in RoadRunner: from the last dot of the name, so `forbid:
//! [".env", ".htaccess"]` covers the dotfiles `.env` and `.htaccess` (which
//! [`Path::extension`] says have no extension). The file a symlink points at obeys the
//! same rules as the name requested.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;
use tower_http::services::ServeFile;

use super::body::{Body, empty};

/// Static file settings, resolved at start-up.
#[derive(Clone, Debug)]
pub struct StaticFiles {
    root: PathBuf,
    /// Lower-cased extensions with a leading dot that are never served.
    forbid: Vec<String>,
    /// When non-empty, only these extensions are served.
    allow: Vec<String>,
    etag: bool,
    weak: bool,
}

impl StaticFiles {
    /// `dir` must exist; it is canonicalised once.
    pub fn new(
        dir: &Path,
        forbid: &[String],
        allow: &[String],
        etag: bool,
        weak: bool,
    ) -> std::io::Result<Self> {
        let norm = |v: &[String]| -> Vec<String> {
            v.iter()
                .map(|e| {
                    let e = e.trim().to_ascii_lowercase();
                    if e.starts_with('.') {
                        e
                    } else {
                        format!(".{e}")
                    }
                })
                .collect()
        };
        Ok(StaticFiles {
            root: dir.canonicalize()?,
            forbid: norm(forbid),
            allow: norm(allow),
            etag,
            weak,
        })
    }

    /// The file a request path maps to, if it should be served from disk.
    pub fn resolve(&self, uri_path: &str) -> Option<PathBuf> {
        let decoded = percent_decode(uri_path)?;
        let mut path = self.root.clone();
        for segment in decoded.split('/') {
            match segment {
                "" => continue,
                "." | ".." => return None,
                s if s.contains('\0') || s.contains('\\') => return None,
                s => path.push(s),
            }
        }
        if !self.servable(&path) {
            return None;
        }
        let real = path.canonicalize().ok()?;
        // The symlink target must obey the same extension rules.
        if !real.starts_with(&self.root) || !real.is_file() || !self.servable(&real) {
            return None;
        }
        Some(real)
    }

    /// Whether the extension of `path`'s name allows serving it.
    fn servable(&self, path: &Path) -> bool {
        let ext = extension(path);
        ext != ".php"
            && !self.forbid.contains(&ext)
            && (self.allow.is_empty() || self.allow.contains(&ext))
    }

    /// Serves `path` for a GET or HEAD request (ranges, If-Modified-Since and the
    /// content type come from tower-http; the ETag from here).
    pub async fn serve<B>(&self, req: &Request<B>, path: PathBuf) -> Response<Body> {
        let etag = if self.etag {
            etag_for(&path, self.weak)
        } else {
            None
        };
        if let (Some(tag), Some(inm)) = (&etag, req.headers().get(header::IF_NONE_MATCH))
            && etag_matches(inm.as_bytes(), tag)
        {
            let mut r = Response::new(empty());
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            if let Ok(v) = HeaderValue::from_str(tag) {
                r.headers_mut().insert(header::ETAG, v);
            }
            return r;
        }
        let mut file_req = Request::new(());
        *file_req.method_mut() = req.method().clone();
        *file_req.uri_mut() = req.uri().clone();
        *file_req.headers_mut() = req.headers().clone();
        let response = match ServeFile::new(&path).oneshot(file_req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let (mut parts, body) = response.into_parts();
        if let Some(tag) = etag
            && parts.status.is_success()
            && let Ok(v) = HeaderValue::from_str(&tag)
        {
            parts.headers.insert(header::ETAG, v);
        }
        Response::from_parts(parts, body.map_err(Into::into).boxed_unsync())
    }

    /// Whether the request is one static files can answer at all.
    pub fn applies_to(method: &Method) -> bool {
        method == Method::GET || method == Method::HEAD
    }
}

/// Go's `filepath.Ext`, lower-cased: the name from its last dot (`.env` for `.env`,
/// `.gz` for `a.tar.gz`), or empty. Read from the name's bytes, so a symlink target
/// whose name is not UTF-8 still shows a `.php` extension.
fn extension(path: &Path) -> String {
    let name = path.file_name().map_or(&[][..], |n| n.as_encoded_bytes());
    match name.iter().rposition(|&b| b == b'.') {
        Some(i) => String::from_utf8_lossy(&name[i..]).to_ascii_lowercase(),
        None => String::new(),
    }
}

/// A validator from size and modification time: cheap, and changes whenever the file
/// is replaced or rewritten.
fn etag_for(path: &Path, weak: bool) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    let mtime = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
    let tag = format!("\"{:x}-{:x}\"", meta.len(), mtime.as_nanos());
    Some(if weak { format!("W/{tag}") } else { tag })
}

/// `If-None-Match` comparison (weak comparison, as RFC 9110 asks for GET).
fn etag_matches(header: &[u8], tag: &str) -> bool {
    let strip = |t: &str| t.trim().trim_start_matches("W/").to_string();
    let want = strip(tag);
    String::from_utf8_lossy(header)
        .split(',')
        .any(|t| t.trim() == "*" || strip(t) == want)
}

/// Percent-decodes a path once; `None` for malformed escapes or non-UTF-8 results.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> (tempfile::TempDir, StaticFiles) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("public");
        std::fs::create_dir_all(root.join("css")).unwrap();
        std::fs::write(root.join("css/app.css"), "body{}").unwrap();
        std::fs::write(root.join("index.php"), "<?php echo 1;").unwrap();
        std::fs::write(root.join("secret.env"), "KEY=1").unwrap();
        std::fs::write(dir.path().join("outside.txt"), "outside").unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside.txt"), root.join("escape.txt"))
            .unwrap();
        std::os::unix::fs::symlink(root.join("index.php"), root.join("alias.txt")).unwrap();
        std::os::unix::fs::symlink(root.join("css/app.css"), root.join("inside.css")).unwrap();
        std::os::unix::fs::symlink(root.join("secret.env"), root.join("notes.txt")).unwrap();
        let files = StaticFiles::new(&root, &[".env".into()], &[], true, false).unwrap();
        (dir, files)
    }

    #[test]
    fn traversal_variants_never_escape() {
        let (_dir, files) = site();
        for attack in [
            "/../outside.txt",
            "/css/../../outside.txt",
            "/%2e%2e/outside.txt",
            "/%2E%2E/outside.txt",
            "/css/%2e%2e%2f%2e%2e%2foutside.txt",
            "/..%2foutside.txt",
            "/.%2e/outside.txt",
            "/escape.txt",
            "/alias.txt",
            "/notes.txt",
            "/index.php",
            "/INDEX.PHP",
            "/secret.env",
            "/css/app.css%00.txt",
            "/css\\..\\..\\outside.txt",
            "/%c0%ae%c0%ae/outside.txt",
            "/%",
            "/css/",
        ] {
            assert_eq!(files.resolve(attack), None, "{attack}");
        }
    }

    /// Found by the `static_path` fuzz target (fuzz/regressions/static_path): a dotfile
    /// has no extension for `Path::extension`, so `forbid: [".env"]` did not cover
    /// `/.env`, and a symlink's target was only checked for `.php`.
    #[test]
    fn forbidden_dotfiles_and_symlinks_to_forbidden_files_are_not_served() {
        let (dir, _) = site();
        let root = dir.path().join("public");
        std::fs::write(root.join(".env"), "KEY=1").unwrap();
        std::fs::write(root.join(".htaccess"), "Deny from all").unwrap();
        std::fs::write(root.join(".php"), "<?php").unwrap();
        std::os::unix::fs::symlink(root.join(".env"), root.join("env.txt")).unwrap();
        std::os::unix::fs::symlink(root.join("secret.env"), root.join("secret.txt")).unwrap();
        let files = StaticFiles::new(
            &root,
            &[".env".into(), "htaccess".into()],
            &[],
            false,
            false,
        )
        .unwrap();
        for path in [
            "/.env",
            "/.ENV",
            "/.htaccess",
            "/.php",
            "/env.txt",
            "/secret.txt",
        ] {
            assert_eq!(files.resolve(path), None, "{path}");
        }
        let allow = StaticFiles::new(&root, &[], &[".txt".into()], false, false).unwrap();
        assert_eq!(
            allow.resolve("/env.txt"),
            None,
            "the target's extension is not allowed"
        );
    }

    #[test]
    fn extensions_like_go() {
        use std::os::unix::ffi::OsStrExt;
        for (name, ext) in [
            ("a.css", ".css"),
            ("A.PHP", ".php"),
            ("a.tar.gz", ".gz"),
            (".env", ".env"),
            ("dir/.htaccess", ".htaccess"),
            ("noext", ""),
            ("trailing.", "."),
        ] {
            assert_eq!(extension(Path::new(name)), ext, "{name}");
        }
        let not_utf8 = std::ffi::OsStr::from_bytes(b"\xff.PHP");
        assert_eq!(extension(Path::new(not_utf8)), ".php");
    }

    #[test]
    fn allowed_files_resolve_including_symlinks_inside() {
        let (_dir, files) = site();
        assert!(
            files
                .resolve("/css/app.css")
                .unwrap()
                .ends_with("css/app.css")
        );
        assert!(files.resolve("//css//app.css").is_some());
        assert!(files.resolve("/css/%61pp.css").is_some());
        assert!(files.resolve("/inside.css").is_some());
        assert_eq!(files.resolve("/missing.css"), None);
    }

    #[test]
    fn allow_list_restricts_extensions() {
        let (dir, _) = site();
        let files = StaticFiles::new(
            &dir.path().join("public"),
            &[],
            &["css".into()],
            false,
            false,
        )
        .unwrap();
        assert!(files.resolve("/css/app.css").is_some());
        assert_eq!(files.resolve("/secret.env"), None);
    }

    #[test]
    fn etags_compare_weakly() {
        assert!(etag_matches(b"\"a-1\"", "\"a-1\""));
        assert!(etag_matches(b"W/\"a-1\", \"b\"", "\"a-1\""));
        assert!(etag_matches(b"*", "\"a-1\""));
        assert!(!etag_matches(b"\"a-2\"", "\"a-1\""));
    }

    #[tokio::test]
    async fn serves_with_etag_and_answers_304() {
        let (_dir, files) = site();
        let path = files.resolve("/css/app.css").unwrap();
        let req = Request::get("/css/app.css").body(()).unwrap();
        let resp = files.serve(&req, path.clone()).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/css");
        let tag = resp.headers()[header::ETAG].to_str().unwrap().to_string();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"body{}");
        let req = Request::get("/css/app.css")
            .header(header::IF_NONE_MATCH, &tag)
            .body(())
            .unwrap();
        assert_eq!(files.serve(&req, path).await.status(), 304);
    }
}
