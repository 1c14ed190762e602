//! `multipart/form-data` bodies (docs/wire-protocol.md §3.4–3.5): non-file fields become
//! the JSON data tree sent as the body, every file part is streamed into its own temp
//! file in `http.uploads.dir` (never held in memory) and described in the `uploads`
//! tree by `{"name","mime","size","error","tmpName"}` with PHP's `UPLOAD_ERR_*` codes.
//!
//! The temp files belong to a [`TempFiles`] guard that deletes them when dropped; the
//! server keeps it until the request *and* its response are done (PHP must move or
//! read the files during the request, as with RoadRunner).
//!
//! Parsing is [`multer`]'s; this module adds RoadRunner's rules: parts without a name
//! are skipped, a part with a `filename` is a file, names are mounted with the bracket
//! rules of [`super::form`] (a plain file key keeps the first file), and extensions
//! are checked against `forbid`/`allow` before anything is written.

use std::error::Error as StdError;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::BodyDataStream;
use serde::Serialize;
use tokio::io::AsyncWriteExt;

use super::form::{FormError, Leaf, Pick, Tree, TreeBuilder};

/// PHP's `UPLOAD_ERR_*` codes that RoadRunner uses.
pub mod upload_error {
    /// The file arrived whole.
    pub const OK: u8 = 0;
    /// No file was sent (a file input left empty: `filename=""`).
    pub const NO_FILE: u8 = 4;
    /// The temp file could not be created (missing or unwritable `uploads.dir`).
    pub const NO_TMP_DIR: u8 = 6;
    /// Writing the temp file failed.
    pub const CANT_WRITE: u8 = 7;
    /// The extension is in `forbid`, or `allow` is set and does not list it.
    pub const EXTENSION: u8 = 8;
}

/// Go's multipart reader accepts at most 1000 parts (`multipartmaxparts`); RoadRunner
/// inherits that, and so do we.
pub const MAX_PARTS: usize = 1000;

/// Non-file values are held in memory; Go caps them at 32 MiB + 10 MiB
/// (`ParseMultipartForm(32 << 20)`), and so do we.
pub const MAX_VALUE_BYTES: u64 = 42 << 20;

/// Upload settings (`http.uploads` and `http.max_request_size`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadLimits {
    /// Where temp files go (`uploads.dir`; default: the system temp dir, like Go's
    /// `os.CreateTemp("")`).
    pub dir: PathBuf,
    /// Extensions refused with error 8 (`uploads.forbid`). Compared lower-cased, with
    /// a leading dot (`.php`); entries are normalised the same way.
    pub forbid: Vec<String>,
    /// When not empty, only these extensions are accepted (`uploads.allow`).
    pub allow: Vec<String>,
    /// Bound on the whole body in bytes (`http.max_request_size`, given in MiB in the
    /// config; RoadRunner's default is 1000 MiB).
    pub max_request_size: u64,
    /// `uid`/`gid` given the temp files when workers run as another user
    /// (`server.user`/`group`), as RoadRunner does; `None` keeps the server's.
    pub owner: Option<(u32, u32)>,
}

impl Default for UploadLimits {
    fn default() -> Self {
        UploadLimits {
            dir: std::env::temp_dir(),
            forbid: Vec::new(),
            allow: Vec::new(),
            max_request_size: 1000 << 20,
            owner: None,
        }
    }
}

impl UploadLimits {
    /// The `UPLOAD_ERR_EXTENSION` rule of RoadRunner's `FileUpload.Open`.
    pub fn extension_allowed(&self, file_name: &str) -> bool {
        let ext = extension(file_name).to_ascii_lowercase();
        let listed = |list: &[String]| list.iter().any(|e| normalise_ext(e) == ext);
        if listed(&self.forbid) {
            return false;
        }
        self.allow.is_empty() || listed(&self.allow)
    }
}

/// Go's `path.Ext`: from the last dot of the last path element, or empty.
fn extension(name: &str) -> &str {
    let base = name.rsplit('/').next().unwrap_or(name);
    base.rfind('.').map_or("", |i| &base[i..])
}

fn normalise_ext(e: &str) -> String {
    let e = e.trim().to_ascii_lowercase();
    if e.is_empty() || e.starts_with('.') {
        e
    } else {
        format!(".{e}")
    }
}

/// The client's file name without any directory part. Go keeps `filepath.Base` (only
/// `/`); PHP also strips Windows paths (`C:\fakepath\a.txt` → `a.txt`), which is what
/// PHP code expects in `getClientFilename()`.
fn base_name(name: &str) -> &str {
    let trimmed = name.trim_end_matches(['/', '\\']);
    trimmed.rsplit(['/', '\\']).next().unwrap_or(trimmed)
}

/// One file of the uploads tree, exactly as PHP's `PSR7Worker` reads it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileUpload {
    /// The client's file name.
    pub name: String,
    /// The part's `Content-Type`, verbatim (empty if none).
    pub mime: String,
    /// Bytes written to the temp file.
    pub size: u64,
    /// An [`upload_error`] code.
    pub error: u8,
    /// Absolute path of the temp file, or empty when nothing was stored.
    #[serde(rename = "tmpName")]
    pub tmp_name: String,
}

impl Leaf for FileUpload {}

/// Owns the temp files of one request and deletes them when dropped. A file PHP moved
/// away is simply gone; that is not an error.
#[derive(Debug, Default)]
pub struct TempFiles {
    paths: Vec<tempfile::TempPath>,
}

impl TempFiles {
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.paths.iter().map(|p| p.as_ref())
    }
}

/// A parsed multipart body.
#[derive(Debug)]
pub struct MultipartForm {
    /// The non-file fields.
    pub data: Tree<String>,
    /// The files.
    pub uploads: Tree<FileUpload>,
    /// Keep alive until the response is done.
    pub files: TempFiles,
}

impl MultipartForm {
    /// The body sent to PHP: the data tree as JSON, or empty.
    pub fn body(&self) -> Result<Bytes, serde_json::Error> {
        self.data.to_body()
    }

    /// The `uploads` value of the request context (`{}` when there are no files, as
    /// RoadRunner sends for every multipart request).
    pub fn uploads_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::to_value(&self.uploads)
    }

    /// What the request path needs: the body for PHP, the `uploads` context value and
    /// the guard to keep until the response is done.
    pub fn into_payload_parts(
        self,
    ) -> Result<(Bytes, serde_json::Value, TempFiles), serde_json::Error> {
        let body = self.body()?;
        let uploads = self.uploads_json()?;
        Ok((body, uploads, self.files))
    }
}

/// Why a multipart body was refused.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The body is larger than `max_request_size`: 413.
    #[error("request body larger than {limit} bytes")]
    TooLarge { limit: u64 },
    /// More than [`MAX_PARTS`] parts: 413.
    #[error("multipart body with more than {MAX_PARTS} parts")]
    TooManyParts,
    /// Not a well-formed multipart body (wrong boundary, truncated, bad part headers):
    /// 400.
    #[error("malformed multipart body: {0}")]
    Malformed(#[source] multer::Error),
    /// The field names do not form a tree (see [`FormError`]): 400.
    #[error(transparent)]
    Form(#[from] FormError),
    /// Reading the body failed (the client went away): 400, if anyone is listening.
    #[error("reading the request body: {0}")]
    Body(#[source] Box<dyn StdError + Send + Sync>),
}

impl UploadError {
    /// The status the server answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            UploadError::TooLarge { .. } | UploadError::TooManyParts => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            UploadError::Malformed(_) | UploadError::Form(_) | UploadError::Body(_) => {
                StatusCode::BAD_REQUEST
            }
        }
    }

    /// The body was too big (413) rather than malformed (400).
    pub fn is_too_large(&self) -> bool {
        self.status() == StatusCode::PAYLOAD_TOO_LARGE
    }

    fn from_multer(e: multer::Error, limit: u64) -> Self {
        match e {
            multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
                UploadError::TooLarge { limit }
            }
            // The server may bound the body itself (http_body_util::Limited).
            multer::Error::StreamReadFailed(src)
                if src.is::<http_body_util::LengthLimitError>() =>
            {
                UploadError::TooLarge { limit }
            }
            multer::Error::StreamReadFailed(src) => UploadError::Body(src),
            other => UploadError::Malformed(other),
        }
    }
}

/// Reads a multipart body: values into the data tree, files into temp files.
///
/// On error every temp file created so far is deleted before returning.
pub async fn parse_multipart<B>(
    body: B,
    boundary: &str,
    limits: &UploadLimits,
) -> Result<MultipartForm, UploadError>
where
    B: http_body::Body + Send + 'static,
    B::Data: Into<Bytes>,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let limit = limits.max_request_size;
    let constraints =
        multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(limit));
    let mut multipart =
        multer::Multipart::with_constraints(BodyDataStream::new(body), boundary, constraints);
    let err = |e| UploadError::from_multer(e, limit);

    let mut data = TreeBuilder::new(Pick::Last);
    let mut uploads = TreeBuilder::new(Pick::First);
    let mut files = TempFiles::default();
    let mut parts = 0usize;
    let mut value_bytes = 0u64;

    while let Some(mut field) = multipart.next_field().await.map_err(err)? {
        parts += 1;
        if parts > MAX_PARTS {
            return Err(UploadError::TooManyParts);
        }
        let name = match field.name() {
            Some(n) if !n.is_empty() => n.to_owned(),
            // Go's multipart form skips parts without a name.
            _ => {
                while field.chunk().await.map_err(err)?.is_some() {}
                continue;
            }
        };
        match field.file_name().map(|f| base_name(f).to_owned()) {
            None => {
                let mut value = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(err)? {
                    value_bytes += chunk.len() as u64;
                    if value_bytes > MAX_VALUE_BYTES {
                        return Err(UploadError::TooLarge {
                            limit: MAX_VALUE_BYTES,
                        });
                    }
                    value.extend_from_slice(&chunk);
                }
                let value = match String::from_utf8(value) {
                    Ok(s) => s,
                    Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
                };
                data.push(name, value);
            }
            Some(file_name) => {
                let mime = field
                    .headers()
                    .get(http::header::CONTENT_TYPE)
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .unwrap_or_default();
                let upload = store_file(&mut field, file_name, mime, limits, &mut files)
                    .await
                    .map_err(err)?;
                uploads.push(name, upload);
            }
        }
    }

    Ok(MultipartForm {
        data: data.build()?,
        uploads: uploads.build()?,
        files,
    })
}

/// Streams one file part into a new temp file. Only errors of the multipart stream
/// itself fail the request; a file that cannot be stored gets its error code and the
/// rest of the part is drained.
async fn store_file(
    field: &mut multer::Field<'_>,
    name: String,
    mime: String,
    limits: &UploadLimits,
    files: &mut TempFiles,
) -> Result<FileUpload, multer::Error> {
    let mut upload = FileUpload {
        name,
        mime,
        size: 0,
        error: upload_error::OK,
        tmp_name: String::new(),
    };
    let refuse = if upload.name.is_empty() {
        Some(upload_error::NO_FILE)
    } else if !limits.extension_allowed(&upload.name) {
        Some(upload_error::EXTENSION)
    } else {
        None
    };
    if let Some(code) = refuse {
        upload.error = code;
        while field.chunk().await?.is_some() {}
        return Ok(upload);
    }

    let created = tempfile::Builder::new()
        .prefix("upload")
        .tempfile_in(&limits.dir)
        .and_then(|t| {
            if let Some((uid, gid)) = limits.owner {
                std::os::unix::fs::fchown(t.as_file(), Some(uid), Some(gid))?;
            }
            Ok(t)
        });
    let (file, path) = match created {
        Ok(t) => t.into_parts(),
        Err(e) => {
            tracing::warn!(error = %e, dir = %limits.dir.display(), "cannot create upload temp file");
            upload.error = upload_error::NO_TMP_DIR;
            while field.chunk().await?.is_some() {}
            return Ok(upload);
        }
    };
    upload.tmp_name = path.display().to_string();
    files.paths.push(path);

    let mut file = tokio::fs::File::from_std(file);
    let mut write_failed = false;
    while let Some(chunk) = field.chunk().await? {
        if write_failed {
            continue;
        }
        match file.write_all(&chunk).await {
            Ok(()) => upload.size += chunk.len() as u64,
            Err(e) => {
                tracing::warn!(error = %e, "cannot write upload temp file");
                write_failed = true;
            }
        }
    }
    if !write_failed && let Err(e) = file.flush().await {
        tracing::warn!(error = %e, "cannot write upload temp file");
        write_failed = true;
    }
    if write_failed {
        upload.error = upload_error::CANT_WRITE;
    }
    Ok(upload)
}

#[cfg(test)]
mod tests;
