//! Publishing a mounted ConfigMap as the kubelet does: every version in its own
//! `..<timestamp>` directory, the `..data` symlink swapped to it atomically (a rename),
//! and each key a stable symlink `KEY -> ..data/KEY`.

use std::path::Path;

/// Publishes `files` (key, content) as version `generation` of the ConfigMap mounted at
/// `dir`; the previous version's directory stays, as the kubelet removes it later.
pub fn publish(dir: &Path, generation: u32, files: &[(&str, &str)]) {
    let data = dir.join(format!("..2026_11_29_08_00_{generation:02}.000000001"));
    std::fs::create_dir(&data).unwrap();
    for (key, content) in files {
        std::fs::write(data.join(key), content).unwrap();
    }
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(data.file_name().unwrap(), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for (key, _) in files {
        let link = dir.join(key);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(key), &link).unwrap();
        }
    }
}
