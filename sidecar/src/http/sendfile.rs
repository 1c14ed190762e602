//! The `sendfile` middleware: a PHP response carrying `X-Sendfile: /path/to/file` is
//! answered with that file, streamed from disk by pacer in 64 KiB reads — neither PHP
//! nor pacer ever holds it in memory (RoadRunner's `sendfile` middleware).
//!
//! Unlike RoadRunner's, which opens any path PHP names, a file is served only from under
//! one of `http.sendfile.roots`: the path is resolved (`..`, symlinks) before the check,
//! so neither traversal nor a symlink out of a root gets anything else. A relative path
//! is taken from the first root. A path outside every root is 403, a missing file or a
//! directory 404; both are logged, since they are the app's mistakes.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use futures_util::TryStreamExt;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::BodyExt;

use super::body::{Body, full};

/// The response header PHP names the file in.
pub const X_SENDFILE: &str = "x-sendfile";

/// The allowed roots, resolved once at start-up.
#[derive(Clone, Debug)]
pub struct Sendfile {
    roots: Vec<PathBuf>,
}

/// Why an `X-Sendfile` response could not be served.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SendfileError {
    #[error("X-Sendfile names {0:?}, which is outside http.sendfile.roots")]
    Outside(PathBuf),
    #[error("X-Sendfile names {0:?}, which does not exist or is not a regular file")]
    NotFound(PathBuf),
}

impl SendfileError {
    pub fn status(&self) -> StatusCode {
        match self {
            SendfileError::Outside(_) => StatusCode::FORBIDDEN,
            SendfileError::NotFound(_) => StatusCode::NOT_FOUND,
        }
    }
}

impl Sendfile {
    /// Resolves `roots`; a root that does not exist is an error (it would never serve).
    pub fn new(roots: &[PathBuf]) -> std::io::Result<Sendfile> {
        let roots = roots
            .iter()
            .map(|r| {
                std::fs::canonicalize(r).map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!("http.sendfile.roots: {}: {e}", r.display()),
                    )
                })
            })
            .collect::<std::io::Result<_>>()?;
        Ok(Sendfile { roots })
    }

    /// The file `value` names, if it is a regular file under a root.
    pub async fn resolve(&self, value: &HeaderValue) -> Result<PathBuf, SendfileError> {
        let named = Path::new(OsStr::from_bytes(value.as_bytes()));
        let wanted = match self.roots.first() {
            Some(first) if named.is_relative() => first.join(named),
            _ => named.to_path_buf(),
        };
        let real = tokio::fs::canonicalize(&wanted)
            .await
            .map_err(|_| SendfileError::NotFound(wanted.clone()))?;
        if !self.roots.iter().any(|root| real.starts_with(root)) {
            return Err(SendfileError::Outside(wanted));
        }
        match tokio::fs::metadata(&real).await {
            Ok(m) if m.is_file() => Ok(real),
            _ => Err(SendfileError::NotFound(wanted)),
        }
    }

    /// The response for a reply with `X-Sendfile` (already removed from `response`):
    /// PHP's status and headers, the file as the body.
    pub async fn serve(&self, value: &HeaderValue, mut response: Response<Body>) -> Response<Body> {
        let opened = match self.resolve(value).await {
            Ok(path) => tokio::fs::File::open(&path)
                .await
                .map_err(|_| SendfileError::NotFound(path)),
            Err(e) => Err(e),
        };
        let file = match opened {
            Ok(file) => file,
            Err(error) => return refused(error),
        };
        let len = match file.metadata().await {
            Ok(m) => m.len(),
            Err(_) => {
                return refused(SendfileError::NotFound(PathBuf::from(OsStr::from_bytes(
                    value.as_bytes(),
                ))));
            }
        };
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024)
            .map_ok(http_body::Frame::data)
            .map_err(|e| Box::new(e) as super::body::BoxError);
        *response.body_mut() = http_body_util::StreamBody::new(stream).boxed_unsync();
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        response
    }
}

fn refused(error: SendfileError) -> Response<Body> {
    tracing::warn!(%error, "X-Sendfile refused");
    let status = error.status();
    let mut r = Response::new(full(format!(
        "{}\n",
        status.canonical_reason().unwrap_or("")
    )));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Sendfile) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("exports");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("report.csv"), "a,b\n").unwrap();
        std::fs::write(root.join("sub/deep.txt"), "deep").unwrap();
        std::fs::write(dir.path().join("secret.txt"), "secret").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("link-out")).unwrap();
        std::os::unix::fs::symlink(root.join("report.csv"), root.join("link-in")).unwrap();
        let sf = Sendfile::new(&[root]).unwrap();
        (dir, sf)
    }

    fn v(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    #[tokio::test]
    async fn files_under_a_root_resolve_absolute_or_relative() {
        let (dir, sf) = setup();
        let root = std::fs::canonicalize(dir.path().join("exports")).unwrap();
        let abs = root.join("report.csv");
        assert_eq!(sf.resolve(&v(abs.to_str().unwrap())).await, Ok(abs.clone()));
        assert_eq!(sf.resolve(&v("report.csv")).await, Ok(abs.clone()));
        assert_eq!(sf.resolve(&v("sub/../report.csv")).await, Ok(abs.clone()));
        assert_eq!(
            sf.resolve(&v("sub/deep.txt")).await,
            Ok(root.join("sub/deep.txt"))
        );
        // A symlink inside the root to a file inside it is fine.
        assert_eq!(sf.resolve(&v("link-in")).await, Ok(abs));
    }

    #[tokio::test]
    async fn traversal_and_symlinks_out_of_the_roots_are_refused() {
        let (dir, sf) = setup();
        let secret = dir.path().join("secret.txt");
        for path in [
            "../secret.txt".to_string(),
            "sub/../../secret.txt".to_string(),
            "./../secret.txt".to_string(),
            secret.display().to_string(),
            format!("{}/exports/../secret.txt", dir.path().display()),
            "link-out".to_string(),
            "/etc/passwd".to_string(),
        ] {
            let err = sf.resolve(&v(&path)).await.unwrap_err();
            assert!(matches!(err, SendfileError::Outside(_)), "{path}: {err:?}");
            assert_eq!(err.status(), StatusCode::FORBIDDEN);
        }
        // A sibling directory whose name starts like the root is not under it.
        std::fs::create_dir(dir.path().join("exports-old")).unwrap();
        std::fs::write(dir.path().join("exports-old/x"), "x").unwrap();
        let sibling = format!("{}/exports-old/x", dir.path().display());
        assert!(matches!(
            sf.resolve(&v(&sibling)).await,
            Err(SendfileError::Outside(_))
        ));
    }

    #[tokio::test]
    async fn missing_files_and_directories_are_not_found() {
        let (_dir, sf) = setup();
        for path in ["nope.csv", "sub", "", "../nope"] {
            let err = sf.resolve(&v(path)).await.unwrap_err();
            assert_eq!(err.status(), StatusCode::NOT_FOUND, "{path}: {err:?}");
        }
    }

    #[test]
    fn a_missing_root_is_an_error_at_start() {
        let err = Sendfile::new(&[PathBuf::from("/no/such/root")]).unwrap_err();
        assert!(err.to_string().contains("http.sendfile.roots"), "{err}");
    }
}
