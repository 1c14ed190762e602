//! Prometheus text format in assertions: promtool's lint of an exposition, and a parser of
//! its samples (labels unescaped) with look-ups by name and a subset of labels.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

/// `promtool check metrics` on `text`: Prometheus' own lint of an exposition. promtool
/// comes with Debian's `prometheus` package (`make deps`); without it the check fails.
pub fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package, make deps)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- exposition ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One sample line: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the sample lines of an exposition (label values unescaped).
pub fn samples(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let i = line
            .find(['{', ' '])
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let mut labels = BTreeMap::new();
        let mut rest = &line[i..];
        if let Some(r) = rest.strip_prefix('{') {
            rest = &r[parse_labels(r, &mut labels)..];
        }
        let value = match rest.trim() {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value in {line:?}")),
        };
        out.push(Sample {
            name: line[..i].to_string(),
            labels,
            value,
        });
    }
    out
}

/// Parses `k="v",k2="v2"}` into `labels`; returns the index just past `}`.
fn parse_labels(s: &str, labels: &mut BTreeMap<String, String>) -> usize {
    let mut i = 0;
    loop {
        let eq = s[i..].find('=').unwrap() + i;
        assert_eq!(&s[eq + 1..eq + 2], "\"", "{s}");
        let mut value = String::new();
        let mut it = s[eq + 2..].char_indices();
        let close = loop {
            match it.next().unwrap() {
                (j, '"') => break eq + 2 + j,
                (_, '\\') => match it.next().unwrap().1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        labels.insert(s[i..eq].to_string(), value);
        match &s[close + 1..close + 2] {
            "}" => return close + 2,
            "," => i = close + 2,
            other => panic!("unexpected {other:?} in {s}"),
        }
    }
}

pub fn find<'a>(all: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    all.iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

pub fn value(all: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found = find(all, name, labels);
    assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
    found[0].value
}

/// The one sample named exactly `name_and_labels` as it is written in the exposition,
/// e.g. `pacer_workers{pool="http",state="ready"}`, if present.
pub fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(name_and_labels)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}
