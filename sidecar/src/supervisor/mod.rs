//! The supervisor: every `watch_tick` it samples each worker's RSS from `/proc` and
//! applies the limits of [`policy`]. Soft verdicts recycle a worker between jobs; the
//! hard one (`exec_ttl`) kills it. RSS samples are kept on the worker for the metrics
//! endpoint, so a scrape never reads `/proc` itself.

pub mod policy;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::pool::Pool;
pub use policy::{Sample, Verdict, judge};

/// Runs until `cancel` fires.
pub async fn run(pool: Pool, cancel: CancellationToken) {
    loop {
        let tick = pool
            .settings()
            .supervisor
            .watch_tick
            .max(std::time::Duration::from_millis(10));
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(tick) => {}
        }
        tick_once(&pool);
    }
}

/// One supervisor pass over every worker.
pub fn tick_once(pool: &Pool) {
    let snapshot = pool.snapshot();
    let limits = &snapshot.settings.supervisor;
    let now = Instant::now();
    for info in &snapshot.workers {
        if let Some(rss) = rss_bytes(info.pid) {
            info.set_rss(rss);
        }
        if let Some(stat) = crate::metrics::process::read_stat(info.pid) {
            pool.stats()
                .worker_cpu_ticks
                .add(info.record_cpu_ticks(stat.cpu_ticks));
        }
        let sample = Sample {
            age: info.age(now),
            idle_for: info.idle_for(now),
            busy_for: info.busy_for(now),
            rss_bytes: info.rss(),
        };
        match judge(&sample, limits) {
            Verdict::Keep => {}
            Verdict::Recycle(reason) => {
                if info.recycle_reason().is_none() {
                    pool.recycle(info.ident.id, reason);
                }
            }
            Verdict::Kill(reason) => pool.kill_worker(info.ident.id, reason),
        }
    }
}

/// Resident set size of a process, from `/proc/<pid>/statm` (pages × page size).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

fn page_size() -> u64 {
    static PAGE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| {
        nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .map_or(4096, |p| p as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_of_this_process_is_plausible() {
        let rss = rss_bytes(std::process::id()).unwrap();
        assert!(rss > 1 << 20 && rss < 1 << 34, "{rss}");
        assert_eq!(rss_bytes(u32::MAX), None);
    }
}
