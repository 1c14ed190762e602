//! `application/x-www-form-urlencoded` body → the JSON data tree PHP receives
//! (`parse_urlencoded`, `urlencoded_to_json`).
//!
//! Properties: nothing panics; the result is either an empty body (an empty form) or
//! a JSON object that `serde_json` parses, or a typed error with a message; both
//! functions agree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pacer::http::form::{FormBodyError, parse_urlencoded, urlencoded_to_json};
use serde_json::Value;

fuzz_target!(|body: &[u8]| {
    let tree = parse_urlencoded(body);
    match urlencoded_to_json(body) {
        Ok(json) => {
            let tree = tree.expect("parse_urlencoded agrees with urlencoded_to_json");
            if json.is_empty() {
                assert!(tree.is_empty(), "a non-empty form gave an empty body");
                return;
            }
            let value: Value = serde_json::from_slice(&json).unwrap_or_else(|e| {
                panic!("invalid JSON ({e}): {:?}", String::from_utf8_lossy(&json))
            });
            let object = value.as_object().expect("the form tree is a JSON object");
            assert_eq!(object.len(), tree.len(), "top-level keys");
        }
        Err(e) => {
            assert!(!e.to_string().is_empty(), "empty error message");
            match e {
                FormBodyError::Form(form) => assert_eq!(tree, Err(form)),
                FormBodyError::Encode(e) => panic!("encoding a form tree failed: {e}"),
            }
        }
    }
});
