//! `--watch-config`: notices when the config file's content changes and hands the new
//! bytes to the caller (which re-parses and applies what it can live).
//!
//! Kubernetes mounts a ConfigMap as a directory whose `..data` symlink is swapped
//! atomically on update; the file itself never changes in place. So the watch is on the
//! file's directory, any event there leads to a re-read, and only a different content
//! counts. A slow poll backs up inotify (events can be missed, e.g. on some overlay
//! filesystems).

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How often the file is re-read even without an event.
const POLL: Duration = Duration::from_secs(5);
/// Events come in bursts (the symlink swap is several renames): wait for quiet.
const SETTLE: Duration = Duration::from_millis(150);

/// Calls `on_change` with the new content whenever `path`'s content differs from the last
/// content seen (starting with `initial`). Runs until `cancel` fires.
pub async fn watch(
    path: PathBuf,
    initial: Vec<u8>,
    cancel: CancellationToken,
    mut on_change: impl FnMut(&[u8]) + Send,
) -> Result<(), notify::Error> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            let _ = tx.try_send(());
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    tracing::info!(path = %path.display(), "watching the config file");
    let mut last = initial;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = rx.recv() => tokio::time::sleep(SETTLE).await,
            _ = tokio::time::sleep(POLL) => {}
        }
        // Drain events that arrived while settling.
        while rx.try_recv().is_ok() {}
        match tokio::fs::read(&path).await {
            Ok(content) if content != last => {
                on_change(&content);
                last = content;
            }
            Ok(_) => {}
            // Mid-swap the path can be missing for a moment; the next event or poll
            // picks up the new file.
            Err(error) => {
                tracing::debug!(%error, path = %path.display(), "config file not readable right now")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Reproduces the kubelet's ConfigMap update: a new timestamped directory, a new
    /// `..data` symlink renamed over the old one.
    fn publish(dir: &Path, generation: u32, content: &str) {
        let data = dir.join(format!("..2026_11_29_{generation}"));
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("rr.yaml"), content).unwrap();
        let tmp = dir.join("..data_tmp");
        std::os::unix::fs::symlink(data.file_name().unwrap(), &tmp).unwrap();
        std::fs::rename(&tmp, dir.join("..data")).unwrap();
        if !dir.join("rr.yaml").exists() {
            std::os::unix::fs::symlink("..data/rr.yaml", dir.join("rr.yaml")).unwrap();
        }
    }

    #[tokio::test]
    async fn configmap_symlink_swap_is_noticed_once_per_content() {
        let dir = tempfile::tempdir().unwrap();
        publish(dir.path(), 1, "one");
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let cancel = CancellationToken::new();
        let task = {
            let seen = seen.clone();
            let cancel = cancel.clone();
            let path = dir.path().join("rr.yaml");
            tokio::spawn(watch(path, b"one".to_vec(), cancel, move |c| {
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(c).into_owned())
            }))
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        publish(dir.path(), 2, "two");
        for _ in 0..100 {
            if !seen.lock().unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        publish(dir.path(), 3, "two"); // same content: not a change
        tokio::time::sleep(Duration::from_millis(400)).await;
        publish(dir.path(), 4, "three");
        for _ in 0..100 {
            if seen.lock().unwrap().len() >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        cancel.cancel();
        task.await.unwrap().unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            vec!["two".to_string(), "three".to_string()]
        );
    }
}
