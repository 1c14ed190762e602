//! Polling with a deadline: tests wait for a condition, never sleep and hope, and the
//! bounds are generous because the machine may be loaded.

use std::time::Duration;

/// Polls `cond` every 20 ms for up to `secs` seconds; true as soon as it holds.
pub async fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

/// Polls an async condition every 50 ms for up to `secs` seconds.
pub async fn eventually_async<F, Fut>(secs: u64, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if cond().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits up to `secs` seconds for `dir` to be empty (temp files removed); else fails
/// with `what` and the files left.
pub async fn emptied(dir: &std::path::Path, secs: u64, what: &str) {
    let left = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    };
    assert!(
        eventually(secs, || left().is_empty()).await,
        "{what}: {:?}",
        left()
    );
}
