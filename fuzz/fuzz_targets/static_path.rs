//! `StaticFiles::resolve` against arbitrary request paths, on a small tree with
//! symlinks that point outside the root, at PHP files and at forbidden files.
//!
//! Properties, whatever the input: a resolved path is a regular file inside the
//! (canonical) root and nowhere under the directory outside it, its name does not end
//! in `.php` (any case), and its extension is neither forbidden nor (with an allow
//! list) missing from the allow list. Extensions are compared the way RoadRunner's Go
//! does (`filepath.Ext`: from the last dot of the name, so `.env` has the extension
//! `.env`).
//!
//! Input layout: byte 0 even: the rest is the request path as is; byte 0 odd: the rest
//! is read with `arbitrary` as a list of segments drawn from the tree's names, dot
//! segments and their encodings, joined with `/`, `//` or `%2f`.
#![no_main]

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use pacer::http::static_files::StaticFiles;

struct Site {
    _dir: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
    open: StaticFiles,
    allow: StaticFiles,
}

const FORBID: [&str; 2] = [".env", ".htaccess"];
const ALLOW: [&str; 2] = [".css", ".txt"];

fn site() -> &'static Site {
    static SITE: OnceLock<Site> = OnceLock::new();
    SITE.get_or_init(|| build().expect("build the static tree"))
}

fn build() -> std::io::Result<Site> {
    let dir = tempfile::tempdir()?;
    let base = dir.path().canonicalize()?;
    let root = base.join("public");
    let outside = base.join("outside");
    for d in [&root, &outside, &root.join("css"), &root.join("sub/deep")] {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(outside.join("secret.txt"), "secret")?;
    std::fs::write(outside.join("evil.php"), "<?php")?;
    for file in [
        "index.php",
        "UPPER.PHP",
        "mixed.PhP",
        "app.css",
        ".env",
        ".htaccess",
        ".php",
        "notes.txt",
        "x.php.txt",
        "a b.txt",
        "per%cent.txt",
        "ü.txt",
        "noext",
        "css/site.css",
        "sub/deep/x.js",
        "sub/.env",
    ] {
        std::fs::write(root.join(file), file)?;
    }
    let links: [(&str, &Path); 9] = [
        ("escape.txt", &outside.join("secret.txt")),
        ("escape_dir", &outside),
        ("evil.txt", &outside.join("evil.php")),
        ("alias.txt", Path::new("index.php")),
        ("inside.css", Path::new("css/site.css")),
        ("env.txt", Path::new(".env")),
        ("up", Path::new("..")),
        ("self", Path::new(".")),
        ("loop", Path::new("loop")),
    ];
    for (link, target) in links {
        symlink(target, root.join(link))?;
    }
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let open = StaticFiles::new(&root, &strings(&FORBID), &[], false, false)?;
    let allow = StaticFiles::new(&root, &strings(&FORBID), &strings(&ALLOW), false, false)?;
    Ok(Site {
        _dir: dir,
        root,
        outside,
        open,
        allow,
    })
}

/// Go's `filepath.Ext`, lower-cased.
fn go_ext(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    match name.rfind('.') {
        Some(i) => name[i..].to_ascii_lowercase(),
        None => String::new(),
    }
}

fn check(site: &Site, files: &StaticFiles, request: &str, allow: &[&str]) {
    let Some(path) = files.resolve(request) else {
        return;
    };
    assert!(
        path.starts_with(&site.root),
        "{request:?} escaped to {path:?}"
    );
    assert!(!path.starts_with(&site.outside), "{request:?} → {path:?}");
    assert!(path.is_file(), "{request:?} → {path:?} is not a file");
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase());
    assert!(
        !name.is_some_and(|n| n.ends_with(".php")),
        "{request:?} serves PHP source {path:?}"
    );
    let ext = go_ext(&path);
    assert!(
        !FORBID.contains(&ext.as_str()),
        "{request:?} serves the forbidden {path:?}"
    );
    assert!(
        allow.is_empty() || allow.contains(&ext.as_str()),
        "{request:?} serves {path:?}, not in the allow list"
    );
}

/// Names in the tree, and the spellings a traversal attempt uses.
const NAMES: [&str; 40] = [
    "index.php",
    "UPPER.PHP",
    "mixed.PhP",
    "app.css",
    ".env",
    ".htaccess",
    ".php",
    "notes.txt",
    "x.php.txt",
    "a b.txt",
    "a%20b.txt",
    "per%25cent.txt",
    "%C3%BC.txt",
    "noext",
    "css",
    "site.css",
    "sub",
    "deep",
    "x.js",
    "escape.txt",
    "escape_dir",
    "secret.txt",
    "evil.txt",
    "evil.php",
    "alias.txt",
    "inside.css",
    "env.txt",
    "up",
    "self",
    "loop",
    "public",
    "outside",
    "..",
    ".",
    "%2e%2e",
    "%2E.",
    "..%5c",
    "%00",
    "%2f",
    "index.php%00.txt",
];

#[derive(Arbitrary, Debug)]
enum Segment<'a> {
    Name(u8),
    Suffix(u8, &'a str),
    Text(&'a str),
}

#[derive(Arbitrary, Debug)]
enum Sep {
    Slash,
    Double,
    Encoded,
    Backslash,
}

fn compose(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    let segments: Vec<(Sep, Segment<'_>)> = u.arbitrary()?;
    let mut out = String::new();
    for (sep, seg) in segments {
        out.push_str(match sep {
            Sep::Slash => "/",
            Sep::Double => "//",
            Sep::Encoded => "%2f",
            Sep::Backslash => "\\",
        });
        match seg {
            Segment::Name(i) => out.push_str(NAMES[i as usize % NAMES.len()]),
            Segment::Suffix(i, s) => {
                out.push_str(NAMES[i as usize % NAMES.len()]);
                out.push_str(s);
            }
            Segment::Text(s) => out.push_str(s),
        }
    }
    Ok(out)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let request = if mode % 2 == 0 {
        match std::str::from_utf8(rest) {
            Ok(s) => s.to_string(),
            Err(_) => return,
        }
    } else {
        match compose(&mut Unstructured::new(rest)) {
            Ok(s) => s,
            Err(_) => return,
        }
    };
    let site = site();
    check(site, &site.open, &request, &[]);
    check(site, &site.allow, &request, &ALLOW);
});
