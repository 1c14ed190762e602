use super::*;
use bytes::Bytes;
use futures_util::stream;
use http_body::Frame;
use http_body_util::{Full, Limited, StreamBody};
use serde_json::json;
use std::convert::Infallible;
use std::os::unix::fs::MetadataExt;

const B: &str = "----pacerBoundary7MA4YWxkTrZu0gW";

enum Part<'a> {
    Value(&'a str, &'a str),
    File(&'a str, &'a str, Option<&'a str>, &'a [u8]),
    Raw(&'a str),
}

fn body(parts: &[Part]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(format!("--{B}\r\n").as_bytes());
        match p {
            Part::Value(name, value) => {
                out.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                        .as_bytes(),
                );
            }
            Part::File(name, file, mime, content) => {
                out.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\n"
                    )
                    .as_bytes(),
                );
                if let Some(m) = mime {
                    out.extend_from_slice(format!("Content-Type: {m}\r\n").as_bytes());
                }
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(content);
                out.extend_from_slice(b"\r\n");
            }
            Part::Raw(headers_and_body) => out.extend_from_slice(headers_and_body.as_bytes()),
        }
    }
    out.extend_from_slice(format!("--{B}--\r\n").as_bytes());
    out
}

/// The body as a real streaming `http_body::Body`, in small chunks.
fn chunked(
    bytes: Vec<u8>,
    chunk: usize,
) -> StreamBody<impl futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>>> {
    let chunks: Vec<Result<Frame<Bytes>, Infallible>> = bytes
        .chunks(chunk)
        .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    StreamBody::new(stream::iter(chunks))
}

fn limits(dir: &Path) -> UploadLimits {
    UploadLimits {
        dir: dir.to_path_buf(),
        ..UploadLimits::default()
    }
}

fn dir_entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

#[tokio::test]
async fn files_and_values_become_trees_and_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let raw = body(&[
        Part::Value("title", "Hello"),
        Part::Value("tags[]", "a"),
        Part::Value("tags[]", "b"),
        Part::Value("user[name]", "Zoë"),
        Part::File("avatar", "me.png", Some("image/png"), b"\x89PNG..."),
        Part::File("docs[]", "a.txt", Some("text/plain"), b"first"),
        Part::File("docs[]", "C:\\fakepath\\b.txt", None, b"second"),
        Part::File(
            "deep[x][y]",
            "big.bin",
            Some("application/octet-stream"),
            &big,
        ),
        Part::File(
            "avatar",
            "second.png",
            Some("image/png"),
            b"ignored: first file wins",
        ),
    ]);
    let form = parse_multipart(chunked(raw, 777), B, &limits(dir.path()))
        .await
        .unwrap();

    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&form.body().unwrap()).unwrap(),
        json!({"title": "Hello", "tags": ["a", "b"], "user": {"name": "Zoë"}})
    );
    let up = form.uploads_json().unwrap();
    assert_eq!(up["avatar"]["name"], "me.png");
    assert_eq!(up["avatar"]["mime"], "image/png");
    assert_eq!(up["avatar"]["size"], 7);
    assert_eq!(up["avatar"]["error"], 0);
    assert_eq!(up["docs"][0]["name"], "a.txt");
    assert_eq!(up["docs"][1]["name"], "b.txt");
    assert_eq!(up["docs"][1]["mime"], "");
    assert_eq!(up["deep"]["x"]["y"]["size"], big.len());
    let keys: Vec<&str> = up.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 3);
    for obj in [&up["avatar"], &up["docs"][0]] {
        let mut ks: Vec<&str> = obj
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        ks.sort();
        assert_eq!(ks, ["error", "mime", "name", "size", "tmpName"]);
    }

    // right content, in `upload*` files inside uploads.dir
    let check = [
        (&up["avatar"], &b"\x89PNG..."[..]),
        (&up["docs"][0], &b"first"[..]),
        (&up["docs"][1], &b"second"[..]),
        (&up["deep"]["x"]["y"], &big[..]),
    ];
    for (obj, content) in check {
        let path = PathBuf::from(obj["tmpName"].as_str().unwrap());
        assert!(path.is_absolute());
        assert_eq!(path.parent().unwrap(), dir.path());
        assert!(
            path.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("upload")
        );
        assert_eq!(std::fs::read(&path).unwrap(), content);
    }
    // the ignored second `avatar` was stored too and is owned by the guard
    assert_eq!(form.files.len(), 5);
    assert_eq!(dir_entries(dir.path()).len(), 5);

    // a file PHP moved away is no problem for the guard
    let moved = dir.path().join("moved-by-php");
    std::fs::rename(up["docs"][0]["tmpName"].as_str().unwrap(), &moved).unwrap();

    let (body, uploads, files) = form.into_payload_parts().unwrap();
    assert!(!body.is_empty());
    assert_eq!(uploads, up);
    assert_eq!(files.len(), 5);
    drop(files);
    assert_eq!(dir_entries(dir.path()), vec![moved]);
}

#[tokio::test]
async fn forbidden_and_not_allowed_extensions_get_error_8_and_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = limits(dir.path());
    l.forbid = vec![".php".into(), "EXE".into()];
    let raw = body(&[
        Part::File("a", "shell.PHP", Some("text/x-php"), b"<?php evil();"),
        Part::File("b", "tool.exe", None, b"MZ"),
        Part::File("c", "ok.txt", None, b"fine"),
        Part::File("d", "archive.tar.php", None, b"x"),
        Part::File("e", "noext", None, b"y"),
    ]);
    let form = parse_multipart(chunked(raw, 5), B, &l).await.unwrap();
    let up = form.uploads_json().unwrap();
    for k in ["a", "b", "d"] {
        assert_eq!(up[k]["error"], 8, "{k}");
        assert_eq!(up[k]["tmpName"], "", "{k}");
        assert_eq!(up[k]["size"], 0, "{k}");
    }
    assert_eq!(up["a"]["name"], "shell.PHP");
    assert_eq!(up["c"]["error"], 0);
    assert_eq!(up["e"]["error"], 0);
    assert_eq!(form.files.len(), 2);
    assert_eq!(dir_entries(dir.path()).len(), 2);

    let mut l = limits(dir.path());
    l.allow = vec![".jpg".into(), "png".into()];
    let raw = body(&[
        Part::File("a", "photo.JPG", None, b"j"),
        Part::File("b", "photo.png", None, b"p"),
        Part::File("c", "photo.gif", None, b"g"),
        Part::File("d", "photo", None, b"n"),
    ]);
    let form = parse_multipart(chunked(raw, 64), B, &l).await.unwrap();
    let up = form.uploads_json().unwrap();
    assert_eq!(up["a"]["error"], 0);
    assert_eq!(up["b"]["error"], 0);
    assert_eq!(up["c"]["error"], 8);
    assert_eq!(up["d"]["error"], 8);
}

#[test]
fn extension_rules() {
    let l = UploadLimits {
        forbid: vec![".php".into()],
        ..UploadLimits::default()
    };
    assert!(!l.extension_allowed("a.php"));
    assert!(!l.extension_allowed("a.PhP"));
    assert!(l.extension_allowed("a.php.txt"));
    assert!(l.extension_allowed("php"));
    assert!(l.extension_allowed(".phpx"));
    assert_eq!(extension("a/b.c/d"), "");
    assert_eq!(extension(".htaccess"), ".htaccess");
    assert_eq!(extension("x."), ".");
    assert_eq!(base_name("C:\\fakepath\\a.txt"), "a.txt");
    assert_eq!(base_name("../../etc/passwd"), "passwd");
    assert_eq!(base_name("dir/"), "dir");
    assert_eq!(base_name("plain.txt"), "plain.txt");
}

#[tokio::test]
async fn empty_file_input_is_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let raw = body(&[
        Part::File("avatar", "", Some("application/octet-stream"), b""),
        Part::Value("n", "1"),
    ]);
    let form = parse_multipart(chunked(raw, 16), B, &limits(dir.path()))
        .await
        .unwrap();
    let up = form.uploads_json().unwrap();
    assert_eq!(
        up,
        json!({"avatar": {"name": "", "mime": "application/octet-stream", "size": 0, "error": 4, "tmpName": ""}})
    );
    assert!(dir_entries(dir.path()).is_empty());
}

#[tokio::test]
async fn missing_tmp_dir_is_error_6() {
    let dir = tempfile::tempdir().unwrap();
    let raw = body(&[
        Part::File("f", "a.txt", None, b"data"),
        Part::Value("after", "still parsed"),
    ]);
    let form = parse_multipart(chunked(raw, 3), B, &limits(&dir.path().join("missing")))
        .await
        .unwrap();
    let up = form.uploads_json().unwrap();
    assert_eq!(up["f"]["error"], 6);
    assert_eq!(up["f"]["tmpName"], "");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&form.body().unwrap()).unwrap(),
        json!({"after": "still parsed"})
    );
}

#[tokio::test]
async fn oversize_body_is_refused_and_leaves_no_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = limits(dir.path());
    l.max_request_size = 10_000;
    let raw = body(&[
        Part::File("small", "a.txt", None, b"ok"),
        Part::File("big", "b.bin", None, &[7u8; 20_000]),
    ]);
    let e = parse_multipart(chunked(raw, 1024), B, &l)
        .await
        .unwrap_err();
    assert!(
        matches!(e, UploadError::TooLarge { limit: 10_000 }),
        "{e:?}"
    );
    assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(dir_entries(dir.path()).is_empty());

    // a body the server already bounds with `Limited`
    let raw = body(&[Part::File("big", "b.bin", None, &[7u8; 20_000])]);
    let e = parse_multipart(
        Limited::new(Full::new(Bytes::from(raw)), 5_000),
        B,
        &limits(dir.path()),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, UploadError::TooLarge { .. }), "{e:?}");
    assert!(dir_entries(dir.path()).is_empty());
}

#[tokio::test]
async fn malformed_bodies_are_400() {
    let dir = tempfile::tempdir().unwrap();
    let good = body(&[Part::File("f", "a.txt", None, b"data")]);
    // wrong boundary
    let e = parse_multipart(
        Full::new(Bytes::from(good.clone())),
        "other",
        &limits(dir.path()),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, UploadError::Malformed(_)), "{e:?}");
    assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    assert!(!e.is_too_large());
    // truncated in the middle of a file
    let cut = good[..good.len() - 20].to_vec();
    let e = parse_multipart(chunked(cut, 7), B, &limits(dir.path()))
        .await
        .unwrap_err();
    assert!(matches!(e, UploadError::Malformed(_)), "{e:?}");
    assert!(
        dir_entries(dir.path()).is_empty(),
        "the half-written temp file is gone"
    );
    // garbage
    let e = parse_multipart(
        Full::new(Bytes::from_static(b"not multipart at all")),
        B,
        &limits(dir.path()),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, UploadError::Malformed(_)), "{e:?}");
    // conflicting names
    let raw = body(&[Part::Value("a", "1"), Part::Value("a[b]", "2")]);
    let e = parse_multipart(Full::new(Bytes::from(raw)), B, &limits(dir.path()))
        .await
        .unwrap_err();
    assert!(matches!(e, UploadError::Form(_)), "{e:?}");
    assert_eq!(e.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn body_read_errors_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = body(&[Part::File("f", "a.txt", None, b"data")]);
    raw.truncate(raw.len() / 2);
    let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![
        Ok(Frame::data(Bytes::from(raw))),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "client went away",
        )),
    ];
    let e = parse_multipart(
        StreamBody::new(stream::iter(frames)),
        B,
        &limits(dir.path()),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, UploadError::Body(_)), "{e:?}");
    assert!(dir_entries(dir.path()).is_empty());
}

#[tokio::test]
async fn too_many_parts() {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..=MAX_PARTS).map(|i| format!("f{i}")).collect();
    let parts: Vec<Part> = names.iter().map(|n| Part::Value(n, "v")).collect();
    let e = parse_multipart(Full::new(Bytes::from(body(&parts))), B, &limits(dir.path()))
        .await
        .unwrap_err();
    assert!(matches!(e, UploadError::TooManyParts), "{e:?}");
    let ok: Vec<Part> = names[..MAX_PARTS]
        .iter()
        .map(|n| Part::Value(n, "v"))
        .collect();
    let form = parse_multipart(Full::new(Bytes::from(body(&ok))), B, &limits(dir.path()))
        .await
        .unwrap();
    assert_eq!(form.data.len(), MAX_PARTS);
}

#[tokio::test]
async fn nameless_parts_are_skipped_and_empty_forms_are_empty() {
    let dir = tempfile::tempdir().unwrap();
    let raw = body(&[
        Part::Raw("Content-Disposition: form-data\r\n\r\nno name\r\n"),
        Part::Raw("Content-Disposition: form-data; filename=\"x.txt\"\r\n\r\nno name either\r\n"),
        Part::Value("kept", "1"),
    ]);
    let form = parse_multipart(chunked(raw, 9), B, &limits(dir.path()))
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&form.data).unwrap(),
        json!({"kept": "1"})
    );
    assert!(form.files.is_empty());
    assert!(dir_entries(dir.path()).is_empty());

    let empty = format!("--{B}--\r\n");
    let form = parse_multipart(Full::new(Bytes::from(empty)), B, &limits(dir.path()))
        .await
        .unwrap();
    assert_eq!(
        form.body().unwrap(),
        "{}",
        "RoadRunner sends {{}} for an empty form"
    );
    assert_eq!(form.uploads_json().unwrap(), json!({}));
}

#[tokio::test]
async fn files_are_streamed_not_buffered() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
    let body = StreamBody::new(tokio_stream_from(rx));
    let l = limits(dir.path());
    let task = tokio::spawn(async move { parse_multipart(body, B, &l).await });

    let head = format!(
        "--{B}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"big.bin\"\r\n\r\n"
    );
    tx.send(Ok(Frame::data(Bytes::from(head)))).await.unwrap();
    let chunk = Bytes::from(vec![1u8; 256 * 1024]);
    for _ in 0..8 {
        tx.send(Ok(Frame::data(chunk.clone()))).await.unwrap();
    }
    // The body is still open, yet most of it is already on disk.
    let mut on_disk = 0;
    for _ in 0..500 {
        on_disk = dir_entries(dir.path())
            .first()
            .map_or(0, |p| std::fs::metadata(p).unwrap().len());
        if on_disk >= 6 * 256 * 1024 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        on_disk >= 6 * 256 * 1024,
        "only {on_disk} bytes written while streaming"
    );
    assert!(!task.is_finished());
    tx.send(Ok(Frame::data(Bytes::from(format!("\r\n--{B}--\r\n")))))
        .await
        .unwrap();
    drop(tx);
    let form = task.await.unwrap().unwrap();
    assert_eq!(form.uploads_json().unwrap()["f"]["size"], 8 * 256 * 1024);
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send {
    stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn owner_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = limits(dir.path());
    let meta = std::fs::metadata(dir.path()).unwrap();
    l.owner = Some((meta.uid(), meta.gid()));
    let raw = body(&[Part::File("f", "a.txt", None, b"x")]);
    let form = parse_multipart(chunked(raw, 64), B, &l).await.unwrap();
    let path = form.files.paths().next().unwrap().to_path_buf();
    let m = std::fs::metadata(&path).unwrap();
    assert_eq!((m.uid(), m.gid()), (meta.uid(), meta.gid()));
    assert_eq!(m.mode() & 0o777, 0o600);
}

/// The whole request path of the conversion, on a real hyper connection: a chunked
/// multipart upload → body kind → streamed parse of hyper's `Incoming` → context JSON.
#[tokio::test]
async fn a_real_hyper_request_end_to_end() {
    use crate::http::convert::{Attributes, BodyKind, body_kind, encode_context, request_context};
    use hyper::body::Incoming;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir().unwrap();
    let limits = limits(dir.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen_tx, seen_rx) =
        tokio::sync::oneshot::channel::<(serde_json::Value, Bytes, Vec<u8>, bool)>();
    let seen_tx = std::sync::Mutex::new(Some(seen_tx));
    let server = tokio::spawn(async move {
        let (stream, peer) = listener.accept().await.unwrap();
        let service = service_fn(move |req: http::Request<Incoming>| {
            let limits = limits.clone();
            let tx = seen_tx.lock().unwrap().take();
            async move {
                let (parts, body) = req.into_parts();
                let BodyKind::Multipart { boundary } =
                    body_kind(&parts.method, &parts.headers, false).unwrap()
                else {
                    panic!("not multipart");
                };
                let form = parse_multipart(body, &boundary, &limits).await.unwrap();
                let (data, uploads, files) = form.into_payload_parts().unwrap();
                let attrs = Attributes::new();
                let ctx = request_context(&parts, peer.ip(), false, true, Some(uploads), &attrs);
                let json: serde_json::Value =
                    serde_json::from_slice(&encode_context(&ctx).unwrap()).unwrap();
                let tmp = json["uploads"]["doc"]["tmpName"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                let content = std::fs::read(&tmp).unwrap();
                drop(files);
                let gone = !Path::new(&tmp).exists();
                if let Some(tx) = tx {
                    tx.send((json, data, content, gone)).unwrap();
                }
                Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(b"ok"))))
            }
        });
        hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .await
            .unwrap();
    });

    let payload = body(&[
        Part::Value("meta[title]", "Report"),
        Part::File("doc", "r.pdf", Some("application/pdf"), b"%PDF-1.7 ..."),
    ]);
    let mut request = format!(
        "POST /upload?draft=1 HTTP/1.1\r\nHost: files.test\r\nContent-Type: multipart/form-data; boundary={B}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in payload.chunks(50) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    client.write_all(&request).await.unwrap();
    let mut response = Vec::new();
    client.read_to_end(&mut response).await.unwrap();
    assert!(
        response.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&response)
    );
    server.await.unwrap();

    let (json, data, content, gone) = seen_rx.await.unwrap();
    assert_eq!(json["uri"], "http://files.test/upload?draft=1");
    assert_eq!(json["remoteAddr"], "127.0.0.1");
    assert_eq!(json["rawQuery"], "draft=1");
    assert_eq!(json["parsed"], true);
    assert!(json["headers"].get("Transfer-Encoding").is_none());
    assert_eq!(json["uploads"]["doc"]["name"], "r.pdf");
    assert_eq!(json["uploads"]["doc"]["mime"], "application/pdf");
    assert_eq!(json["uploads"]["doc"]["size"], 12);
    assert_eq!(&data[..], br#"{"meta":{"title":"Report"}}"#);
    assert_eq!(content, b"%PDF-1.7 ...");
    assert!(gone, "the temp file is deleted with its guard");
}
