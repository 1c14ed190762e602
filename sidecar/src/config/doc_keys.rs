//! The docs against the code: every key the parser accepts (read from the serde
//! structures of `raw.rs` themselves, so a new key cannot be missed) is documented in
//! `docs/configuration.md`, every key that page documents is one the parser accepts, and
//! every metric family pacer exports is in `docs/operations.md`.
//!
//! The keys are found by deserializing [`RootRaw`] from a tracer: a `Deserializer` that
//! walks every struct field serde asks for and records the dotted path of each leaf
//! (a YAML value). Maps (`metrics.collect.<name>`, `logs.channels.<name>`) are walked
//! with one placeholder entry.

use std::cell::RefCell;
use std::collections::BTreeSet;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};

use super::raw::RootRaw;

#[derive(Debug)]
struct Stop(String);

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Stop(msg.to_string())
    }
}

struct Tracer<'a> {
    path: String,
    keys: &'a RefCell<BTreeSet<String>>,
}

impl<'a> Tracer<'a> {
    fn child(&self, key: &str) -> Tracer<'a> {
        let path = if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        };
        Tracer {
            path,
            keys: self.keys,
        }
    }
}

impl<'de> Deserializer<'de> for Tracer<'_> {
    type Error = Stop;

    /// A leaf: every leaf of `raw.rs` is a `serde_yaml::Value`, which accepts unit.
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        self.keys.borrow_mut().insert(self.path.clone());
        visitor.visit_unit()
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_some(self)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        let keys: Vec<String> = fields.iter().map(|f| (*f).to_string()).collect();
        visitor.visit_map(Entries {
            parent: self,
            keys,
            next: 0,
        })
    }

    /// A map of named entries: one entry stands for all. `reload.services` is only
    /// meaningful for `http` (pacer's one pool), so the docs name that one.
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        let name = if self.path == "reload.services" {
            "http"
        } else {
            "<name>"
        };
        visitor.visit_map(Entries {
            parent: self,
            keys: vec![name.to_string()],
            next: 0,
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct newtype_struct seq tuple
        tuple_struct enum identifier ignored_any
    }
}

struct Entries<'a> {
    parent: Tracer<'a>,
    keys: Vec<String>,
    next: usize,
}

impl<'de> MapAccess<'de> for Entries<'_> {
    type Error = Stop;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Stop> {
        match self.keys.get(self.next) {
            None => Ok(None),
            Some(k) => seed
                .deserialize(de::value::StringDeserializer::<Stop>::new(k.clone()))
                .map(Some),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Stop> {
        let key = self.keys[self.next].clone();
        self.next += 1;
        seed.deserialize(self.parent.child(&key))
    }
}

/// Every dotted key the parser accepts.
fn accepted_keys() -> BTreeSet<String> {
    let keys = RefCell::new(BTreeSet::new());
    RootRaw::deserialize(Tracer {
        path: String::new(),
        keys: &keys,
    })
    .expect("the tracer satisfies every raw structure");
    keys.into_inner()
}

fn read_doc(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `code spans` of a Markdown text.
fn code_spans(text: &str) -> BTreeSet<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[test]
fn the_tracer_finds_known_keys_of_every_depth() {
    let keys = accepted_keys();
    for k in [
        "version",
        "server.command",
        "http.static.dir",
        "http.pool.supervisor.exec_ttl",
        "http.headers.cors.max_age",
        "metrics.collect.<name>.type",
        "logs.channels.<name>.level",
        "reload.services.http.dirs",
        "pacer.readiness.queue_high",
    ] {
        assert!(keys.contains(k), "{k} not traced; traced: {keys:?}");
    }
    assert!(keys.len() > 100, "only {} keys traced", keys.len());
}

#[test]
fn every_accepted_config_key_is_documented() {
    let doc = code_spans(&read_doc("configuration.md"));
    let missing: Vec<String> = accepted_keys()
        .into_iter()
        .filter(|k| !doc.contains(k))
        .collect();
    assert!(
        missing.is_empty(),
        "config keys the parser accepts (sidecar/src/config/raw.rs) but docs/configuration.md \
         does not document as `key`: {missing:?}"
    );
}

#[test]
fn every_documented_config_key_is_accepted() {
    let keys = accepted_keys();
    let sections = [
        "server.", "http.", "rpc.", "status.", "metrics.", "logs.", "reload.", "endure.", "otel.",
        // Not `service.`/`amqp.`: otel's `service.name` and the `amqp.default` exchange
        // are values, not keys.
        "jobs.", "pacer.",
    ];
    let unknown: Vec<String> = code_spans(&read_doc("configuration.md"))
        .into_iter()
        .filter(|span| {
            sections.iter().any(|s| span.starts_with(s))
                && span
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._<>".contains(c))
        })
        // A key, or a section that holds keys (`http.pool`).
        .filter(|span| {
            !keys
                .iter()
                .any(|k| k == span || k.starts_with(&format!("{span}.")))
        })
        .collect();
    assert!(
        unknown.is_empty(),
        "docs/configuration.md documents keys the parser does not accept: {unknown:?}"
    );
}

#[test]
fn every_metric_family_is_documented() {
    let doc = code_spans(&read_doc("operations.md"));
    let missing: Vec<&str> = crate::metrics::FAMILIES
        .iter()
        .copied()
        .filter(|f| !doc.contains(*f))
        .collect();
    assert!(
        missing.is_empty(),
        "metric families pacer exports (sidecar/src/metrics.rs FAMILIES) missing from \
         docs/operations.md: {missing:?}"
    );
}
