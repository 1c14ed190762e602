//! RoadRunner's command line as programs that drive `rr` use it — Laravel Octane's
//! RoadRunner driver starts `rr -c .rr.yaml -o key=value … serve`, reloads with
//! `rr reset -o rpc.listen=… -s` and checks `rr --version` (see `tests/octane_contract.rs`
//! for the exact calls). RoadRunner's flags are global (cobra persistent flags), so they
//! may come before the subcommand; pacer's are the subcommand's. [`move_global_flags`]
//! moves them after it, [`version_line`] answers `--version` as `rr` does when pacer is
//! started under another name (a symlink `rr` → `pacer`). Pure: `main.rs` passes argv
//! and the environment in.

use std::ffi::{OsStr, OsString};
use std::path::Path;

/// RoadRunner's global flags that take a value, and pacer's spelling of each.
const VALUE_FLAGS: &[(&str, &str)] = &[
    ("-c", "-c"),
    ("--config", "--config"),
    ("-w", "-w"),
    ("--WorkDir", "--workdir"),
    ("--workdir", "--workdir"),
    ("-o", "-o"),
    ("--override", "--override"),
    ("--dotenv", "--dotenv"),
];

/// RoadRunner's global switches that pacer implements (`-s`: print nothing but errors).
/// The others (`-d`, `-p`, `-e`, `-f`) stay where they are, so clap rejects them by name.
const SWITCHES: &[&str] = &["-s", "--silent"];

/// `rr -c f -o a=b serve x` → `rr serve -c f -o a=b x`. Arguments are returned unchanged
/// when no global flag precedes the subcommand, or when something else does (`--help`,
/// `--version`, an unknown flag: clap then reports it).
pub fn move_global_flags(args: Vec<OsString>) -> Vec<OsString> {
    let mut moved: Vec<OsString> = Vec::new();
    let mut i = 1;
    while i < args.len() {
        let Some(arg) = args[i].to_str() else {
            return args;
        };
        if !arg.starts_with('-') {
            if moved.is_empty() {
                return args;
            }
            let mut out = Vec::with_capacity(args.len());
            out.push(args[0].clone());
            out.push(args[i].clone());
            out.extend(moved);
            out.extend(args[i + 1..].iter().cloned());
            return out;
        }
        if SWITCHES.contains(&arg) {
            moved.push(args[i].clone());
            i += 1;
            continue;
        }
        if let Some((_, ours)) = VALUE_FLAGS.iter().find(|(rr, _)| *rr == arg) {
            let Some(value) = args.get(i + 1) else {
                return args;
            };
            moved.push(OsString::from(*ours));
            moved.push(value.clone());
            i += 2;
            continue;
        }
        // `--config=f`, `-o=a=b`, `-ofoo=bar`: the flag and its value in one argument.
        let attached = VALUE_FLAGS.iter().find_map(|(rr, ours)| {
            let rest = arg.strip_prefix(rr)?;
            let long = rr.starts_with("--");
            if long {
                rest.strip_prefix('=').map(|v| format!("{ours}={v}"))
            } else {
                (!rest.is_empty()).then(|| format!("{ours}{rest}"))
            }
        });
        match attached {
            Some(arg) => {
                moved.push(OsString::from(arg));
                i += 1;
            }
            None => return args,
        }
    }
    args
}

/// The answer to `<name> --version` (or `-v`) when pacer runs under a name other than
/// `pacer`: RoadRunner's line, `rr version 2025.1.15 (pacer 0.1.0), OS: linux, arch:
/// amd64`, whose third word is the RoadRunner version pacer is compatible with —
/// `PACER_RR_VERSION` replaces it for tools that insist on another (Octane 1.x checks
/// for `rr version 2.`). `None`: not a version request, or started as `pacer`.
pub fn version_line(
    args: &[OsString],
    rr_version: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<String> {
    let name = args
        .first()
        .map(Path::new)
        .and_then(Path::file_name)
        .and_then(OsStr::to_str)
        .unwrap_or("pacer");
    if name == "pacer" || args.len() != 2 || !matches!(args[1].to_str(), Some("--version" | "-v")) {
        return None;
    }
    let version = env("PACER_RR_VERSION")
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| rr_version.to_string());
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    Some(format!(
        "{name} version {} (pacer {}), OS: {}, arch: {arch}",
        version.trim(),
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<OsString> {
        s.iter().map(OsString::from).collect()
    }

    #[test]
    fn global_flags_move_after_the_subcommand() {
        // Octane's serve and reset calls, verbatim in shape.
        assert_eq!(
            move_global_flags(args(&[
                "/app/rr",
                "-c",
                "/app/.rr.yaml",
                "-o",
                "version=3",
                "-o",
                "http.address=:8000",
                "serve"
            ])),
            args(&[
                "/app/rr",
                "serve",
                "-c",
                "/app/.rr.yaml",
                "-o",
                "version=3",
                "-o",
                "http.address=:8000"
            ])
        );
        assert_eq!(
            move_global_flags(args(&["rr", "-s", "--WorkDir", "/app", "reset", "http"])),
            args(&["rr", "reset", "-s", "--workdir", "/app", "http"])
        );
        assert_eq!(
            move_global_flags(args(&[
                "rr",
                "--config=/x.yaml",
                "-ohttp.address=:1",
                "workers"
            ])),
            args(&["rr", "workers", "--config=/x.yaml", "-ohttp.address=:1"])
        );
        // Already pacer's order, or nothing to move: unchanged.
        for unchanged in [
            args(&["pacer", "serve", "-c", "x"]),
            args(&["rr", "reset", "-o", "rpc.listen=tcp://127.0.0.1:6001", "-s"]),
            args(&["rr", "--version"]),
            args(&["rr", "-d", "serve"]),
            args(&["rr", "-c"]),
        ] {
            assert_eq!(move_global_flags(unchanged.clone()), unchanged);
        }
    }

    #[test]
    fn version_as_rr_prints_roadrunners_line() {
        let none = |_: &str| None;
        let line = version_line(&args(&["/app/rr", "--version"]), "2025.1.15", &none).unwrap();
        assert!(line.starts_with("rr version 2025.1.15 (pacer "), "{line}");
        assert_eq!(line.split(' ').nth(2), Some("2025.1.15"));
        let old = |k: &str| (k == "PACER_RR_VERSION").then(|| "2.12.3".to_string());
        let line = version_line(&args(&["rr", "-v"]), "2025.1.15", &old).unwrap();
        assert!(line.starts_with("rr version 2.12.3 "), "{line}");
        assert_eq!(
            version_line(&args(&["pacer", "--version"]), "2025.1.15", &none),
            None
        );
        assert_eq!(
            version_line(&args(&["rr", "serve"]), "2025.1.15", &none),
            None
        );
    }
}
