//! `.rr.yaml` text → typed `Config` (`config::parse_str`): YAML syntax, version and
//! `include` handling, `${VAR}` expansion, RoadRunner's weak typing and every
//! section's conversion.
//!
//! Properties: nothing panics; the result is a config or a typed `ConfigError` whose
//! message (and each of its parts) is non-empty; a config that loads can be written
//! back (`effective_yaml`, `to_json`) and compares equal to itself in `diff_live`.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pacer::config::{LoadOptions, diff_live, effective_yaml, parse_str, to_json};

/// A config directory with a file that `include: [base.yaml]` can pull in.
fn options() -> &'static LoadOptions {
    static OPTIONS: OnceLock<(tempfile::TempDir, LoadOptions)> = OnceLock::new();
    &OPTIONS
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("temp dir");
            std::fs::write(
                dir.path().join("base.yaml"),
                "version: \"3\"\nhttp:\n  address: 127.0.0.1:8080\n  pool:\n    num_workers: 2\n",
            )
            .expect("write base.yaml");
            std::fs::create_dir(dir.path().join("public")).expect("mkdir public");
            let opts = LoadOptions {
                path: dir.path().join(".rr.yaml"),
                ..LoadOptions::default()
            };
            (dir, opts)
        })
        .1
}

fuzz_target!(|data: &[u8]| {
    let Ok(yaml) = std::str::from_utf8(data) else {
        return;
    };
    match parse_str(yaml, options()) {
        Ok(loaded) => {
            let _ = to_json(&loaded.config);
            assert!(!effective_yaml(&loaded.config).is_empty());
            assert!(diff_live(&loaded.config, &loaded.config).is_empty());
            for w in &loaded.warnings {
                assert!(!w.trim().is_empty(), "empty warning");
            }
        }
        Err(e) => {
            assert!(!e.to_string().trim().is_empty(), "empty error for {yaml:?}");
            for part in e.errors() {
                assert!(!part.to_string().trim().is_empty(), "empty part of {e}");
            }
        }
    }
});
