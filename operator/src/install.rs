//! `pacer-operator install`: what the generated pods' init container runs to copy the
//! static `pacer` binary from the Pacer image into the shared emptyDir.
//!
//! The Pacer image has no shell and no `cp` (it is `FROM scratch`), so the copy is done by
//! a binary that is already in it. The copy is atomic (temp file, fsync, rename) and
//! executable, so the app container never sees a half-written binary.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Copies `from` to `to` atomically with mode 0755.
///
/// # Errors
/// Any I/O failure, with the path in the message.
pub fn install(from: &Path, to: &Path) -> io::Result<()> {
    let with_path = |what: &str, path: &Path, e: io::Error| {
        io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
    };
    let dir = to.parent().unwrap_or_else(|| Path::new("."));
    let file_name = to.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "destination has no file name")
    })?;
    let temp = dir.join(format!(".{}.partial", file_name.to_string_lossy()));
    fs::copy(from, &temp).map_err(|e| with_path("copying", from, e))?;
    fs::set_permissions(&temp, fs::Permissions::from_mode(0o755))
        .map_err(|e| with_path("chmod", &temp, e))?;
    fs::File::open(&temp)
        .and_then(|f| f.sync_all())
        .map_err(|e| with_path("syncing", &temp, e))?;
    fs::rename(&temp, to).map_err(|e| with_path("renaming to", to, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_atomically_and_executable() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("pacer");
        fs::write(&from, b"\x7fELF binary").unwrap();
        let dest_dir = dir.path().join("dest");
        fs::create_dir(&dest_dir).unwrap();
        let to = dest_dir.join("pacer");
        install(&from, &to).unwrap();
        assert_eq!(fs::read(&to).unwrap(), b"\x7fELF binary");
        assert_eq!(
            fs::metadata(&to).unwrap().permissions().mode() & 0o777,
            0o755
        );
        let left: Vec<_> = fs::read_dir(&dest_dir).unwrap().collect();
        assert_eq!(left.len(), 1, "no temp file left behind");
    }

    #[test]
    fn a_missing_source_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let err = install(&dir.path().join("nope"), &dir.path().join("x")).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
