//! Worker reply context → HTTP response head (`parse_response`): JSON, protobuf, and
//! whatever a broken or hostile worker writes.
//!
//! Input layout: byte 0 is the frame's codec flags, the rest is the context.
//!
//! Properties: nothing panics; a head that parses has a status in 100..=599, no header
//! value (nor trailer value) with CR, LF or NUL, no hop-by-hop header, and a final
//! (non-1xx) status whenever it carries trailers.
#![no_main]

use http::header;
use libfuzzer_sys::fuzz_target;
use pacer::http::response::{HOP_BY_HOP, parse_response};

fn check_values(map: &http::HeaderMap) {
    for (name, value) in map {
        assert!(
            !value
                .as_bytes()
                .iter()
                .any(|b| matches!(b, b'\r' | b'\n' | 0)),
            "CR/LF/NUL in {name}: {value:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let [codec, context @ ..] = data else {
        return;
    };
    let head = match parse_response(*codec, context) {
        Ok(head) => head,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let status = head.status.as_u16();
    assert!((100..=599).contains(&status), "status {status}");
    assert_eq!(head.informational, head.status.is_informational());
    check_values(&head.headers);
    for name in &HOP_BY_HOP {
        assert!(!head.headers.contains_key(name), "hop-by-hop {name} kept");
    }
    if let Some(trailers) = &head.trailers {
        assert!(!head.informational, "trailers on a 1xx");
        assert!(!trailers.is_empty());
        check_values(trailers);
        assert!(!trailers.contains_key(header::CONTENT_LENGTH));
    }
});
