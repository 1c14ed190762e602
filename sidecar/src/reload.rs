//! Hot reload (`reload` section): when PHP files change, the pool is reset — rolling, so
//! no request fails. Changes are collected for `interval` after the first one, so saving
//! twenty files costs one reset.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::pool::Pool;

/// What to watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReloadSettings {
    /// Quiet time after a change before the reset.
    pub interval: Duration,
    pub dirs: Vec<PathBuf>,
    pub recursive: bool,
    /// Paths (or path prefixes, relative to a watched dir or absolute) never considered.
    pub ignore: Vec<PathBuf>,
    /// File suffixes that count, e.g. `.php`; empty = every file.
    pub patterns: Vec<String>,
}

impl ReloadSettings {
    /// Whether a change to `path` should trigger a reload.
    pub fn matters(&self, path: &Path) -> bool {
        let ignored = self.ignore.iter().any(|ignore| {
            if ignore.is_absolute() {
                path.starts_with(ignore)
            } else {
                self.dirs.iter().any(|d| path.starts_with(d.join(ignore)))
                    || path
                        .components()
                        .any(|c| Path::new(c.as_os_str()) == ignore.as_path())
            }
        });
        if ignored {
            return false;
        }
        let name = path.to_string_lossy();
        self.patterns.is_empty() || self.patterns.iter().any(|p| name.ends_with(p.as_str()))
    }
}

/// Watches the directories and resets `pool` after changes, until `cancel` fires.
pub async fn run(
    pool: Pool,
    settings: ReloadSettings,
    cancel: CancellationToken,
) -> Result<(), notify::Error> {
    let (tx, mut rx) = mpsc::channel::<PathBuf>(256);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !matches!(event.kind, notify::EventKind::Access(_))
        {
            for path in event.paths {
                // A full channel already holds a pending change: dropping more is fine.
                let _ = tx.try_send(path);
            }
        }
    })?;
    let mode = if settings.recursive {
        RecursiveMode::Recursive
    } else {
        RecursiveMode::NonRecursive
    };
    for dir in &settings.dirs {
        watcher.watch(dir, mode)?;
    }
    tracing::info!(dirs = ?settings.dirs, patterns = ?settings.patterns, "watching for file changes");
    loop {
        let first = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            p = rx.recv() => match p { Some(p) => p, None => return Ok(()) },
        };
        if !settings.matters(&first) {
            continue;
        }
        // Let a burst of saves settle.
        let quiet = tokio::time::sleep(settings.interval);
        tokio::pin!(quiet);
        loop {
            tokio::select! {
                _ = &mut quiet => break,
                _ = cancel.cancelled() => return Ok(()),
                more = rx.recv() => if more.is_none() { break },
            }
        }
        tracing::info!(changed = %first.display(), "files changed; resetting workers");
        if let Err(error) = pool.reset().await {
            tracing::warn!(%error, "reload reset did not complete");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_and_ignores() {
        let s = ReloadSettings {
            interval: Duration::from_millis(100),
            dirs: vec!["/app".into()],
            recursive: true,
            ignore: vec!["vendor".into(), "/app/var/cache".into()],
            patterns: vec![".php".into()],
        };
        assert!(s.matters(Path::new("/app/src/Controller.php")));
        assert!(!s.matters(Path::new("/app/src/style.css")));
        assert!(!s.matters(Path::new("/app/vendor/lib/A.php")));
        assert!(!s.matters(Path::new("/app/var/cache/x.php")));
        let all = ReloadSettings {
            patterns: vec![],
            ignore: vec![],
            ..s
        };
        assert!(all.matters(Path::new("/app/anything.txt")));
    }
}
