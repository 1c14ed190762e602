//! The traces: what happens to the cluster and its traffic, second by second. Pure.
//!
//! Every trace rides on a daily cycle (traffic lowest at 04:00, highest at 16:00, weekends
//! at 60 %), because every production trace has one and because "memory-hours against a
//! static configuration sized for the peak" only means something when there is a trough.
//! On top of it each trace injects the event it is named for.

use serde_json::{Value, json};

use crate::app::{AppProfile, Leak, MIB};

/// Seconds in an hour and a day.
pub const HOUR: f64 = 3600.0;
/// Seconds in a day.
pub const DAY: f64 = 24.0 * HOUR;

/// Traffic: a daily cycle with slow noise.
#[derive(Clone, Debug, PartialEq)]
pub struct Load {
    /// Requests per second at the weekday peak (16:00).
    pub peak: f64,
    /// The 04:00 trough as a share of the peak.
    pub trough: f64,
    /// Saturdays and Sundays as a share of a weekday.
    pub weekend: f64,
    /// Size of the slow multiplicative noise (a random walk, re-drawn every minute).
    pub noise: f64,
}

impl Load {
    /// Requests per second at `t` seconds after Monday 00:00, before noise and bursts.
    #[must_use]
    pub fn rate(&self, t: f64) -> f64 {
        let day = (t / DAY).floor();
        let hour = (t - day * DAY) / HOUR;
        // 0 at 04:00, 1 at 16:00, smooth.
        let phase = (1.0 - (std::f64::consts::TAU * (hour - 4.0) / 24.0).cos()) / 2.0;
        let shape = self.trough + (1.0 - self.trough) * phase.powf(1.5);
        self.peak * shape * self.week(t)
    }

    /// The weekday factor (1, or `weekend` on Saturdays and Sundays), averaged over four
    /// hours around `t`, so that traffic does not jump at midnight.
    fn week(&self, t: f64) -> f64 {
        const HALF: f64 = 2.0 * HOUR;
        let of_day = |day: f64| {
            if day.rem_euclid(7.0) >= 5.0 {
                self.weekend
            } else {
                1.0
            }
        };
        let (from, to) = (t - HALF, t + HALF);
        let mut day = (from / DAY).floor();
        let mut sum = 0.0;
        while day * DAY < to {
            let overlap = (to.min((day + 1.0) * DAY) - from.max(day * DAY)).max(0.0);
            sum += overlap * of_day(day);
            day += 1.0;
        }
        sum / (2.0 * HALF)
    }
}

/// A burst: traffic × `factor` for `seconds`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Burst {
    /// Start, seconds.
    pub at: f64,
    /// Length, seconds.
    pub seconds: f64,
    /// Traffic multiplier.
    pub factor: f64,
}

/// The dependency (database) slows down: its latency × `factor` for `seconds`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Slowdown {
    /// Start, seconds.
    pub at: f64,
    /// Length, seconds.
    pub seconds: f64,
    /// Latency multiplier.
    pub factor: f64,
}

/// A deploy: a new application version rolls out.
#[derive(Clone, Debug, PartialEq)]
pub struct Deploy {
    /// When the rollout starts, seconds.
    pub at: f64,
    /// The new version's leak.
    pub leak: Leak,
}

/// How the kernel answers a cgroup at its memory limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OomMode {
    /// cgroup v2 with `memory.oom.group` (the kubelet's default): the whole container is
    /// killed and restarted; the pod's status says OOMKilled.
    Group,
    /// cgroup v1 (and v2 without the group setting): the kernel kills the largest process,
    /// a PHP worker; pacer replaces it and the container lives on, so no pod status shows
    /// it — only the cgroup's `oom_kill` counter.
    Process,
}

/// One scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    /// Short name (file names, table rows).
    pub name: &'static str,
    /// What it is about.
    pub title: &'static str,
    /// Length, seconds.
    pub duration: f64,
    /// Seed of the run.
    pub seed: u64,
    /// The `PhpAppServer` spec the operator reads.
    pub spec: Value,
    /// The application at the start.
    pub app: AppProfile,
    /// Traffic.
    pub load: Load,
    /// Bursts.
    pub bursts: Vec<Burst>,
    /// Dependency slowdowns.
    pub slowdowns: Vec<Slowdown>,
    /// Deploys.
    pub deploys: Vec<Deploy>,
    /// When a node stops, its pods with it (the node that runs most of the app's pods).
    pub node_failures: Vec<f64>,
    /// When the operator restarts (its in-memory scrape windows are lost).
    pub operator_restarts: Vec<f64>,
    /// Share of scrapes that fail at random.
    pub scrape_failures: f64,
    /// Allocatable memory of each node for this app, bytes.
    pub nodes: Vec<f64>,
    /// What an OOM kill does.
    pub oom: OomMode,
    /// Calls the database runs at once without queueing (its cores and disks); beyond
    /// them calls queue at the database and contention slows it further.
    pub db_slots: f64,
    /// The latency objective: 99 % of requests wait at most this long for a worker,
    /// seconds, in every minute.
    pub slo_wait: f64,
}

impl Trace {
    /// Traffic at `t` before noise: the daily cycle times any burst.
    #[must_use]
    pub fn rate(&self, t: f64) -> f64 {
        let burst: f64 = self
            .bursts
            .iter()
            .filter(|b| t >= b.at && t < b.at + b.seconds)
            .map(|b| b.factor)
            .product();
        self.load.rate(t) * burst
    }

    /// The dependency's latency factor at `t` (1 when healthy).
    #[must_use]
    pub fn slowdown(&self, t: f64) -> f64 {
        self.slowdowns
            .iter()
            .filter(|s| t >= s.at && t < s.at + s.seconds)
            .map(|s| s.factor)
            .product()
    }

    /// The application of each version: the trace's own, then one per deploy (its leak).
    #[must_use]
    pub fn versions(&self) -> Vec<AppProfile> {
        std::iter::once(self.app.clone())
            .chain(self.deploys.iter().map(|d| AppProfile {
                leak: d.leak,
                ..self.app.clone()
            }))
            .collect()
    }

    /// The highest traffic of the trace (sampled each minute), requests per second.
    #[must_use]
    pub fn peak_rate(&self) -> f64 {
        let mut peak: f64 = 0.0;
        let mut t = 0.0;
        while t < self.duration {
            peak = peak.max(self.rate(t));
            t += 60.0;
        }
        for b in &self.bursts {
            peak = peak.max(self.rate(b.at));
        }
        peak
    }
}

fn base_spec(extra: &Value) -> Value {
    let mut spec = json!({
        "image": "shop:1",
        "command": ["php", "worker.php"],
        "replicas": {"min": 1, "max": 10},
        "pool": {"workers": {"min": 2, "max": 16, "initial": 4}},
        "resources": {"memory": {"limit": "auto", "min": "256Mi", "max": "2Gi"}},
        "tuning": {"mode": "Auto", "interval": "30s", "stabilizationWindow": "5m",
                   "targetUtilization": 0.7},
    });
    merge(&mut spec, extra);
    spec
}

fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p.clone(),
    }
}

fn base(name: &'static str, title: &'static str, days: f64, seed: u64) -> Trace {
    Trace {
        name,
        title,
        duration: days * DAY,
        seed,
        spec: base_spec(&json!({})),
        app: AppProfile::shop(),
        load: Load {
            peak: 450.0,
            trough: 0.12,
            weekend: 0.6,
            noise: 0.05,
        },
        bursts: Vec::new(),
        slowdowns: Vec::new(),
        deploys: Vec::new(),
        node_failures: Vec::new(),
        operator_restarts: Vec::new(),
        scrape_failures: 0.01,
        nodes: vec![3.0 * 1024.0 * MIB; 4],
        oom: OomMode::Group,
        db_slots: 1000.0,
        slo_wait: 0.25,
    }
}

/// Every trace, in the order of the score table.
#[must_use]
pub fn all() -> Vec<Trace> {
    vec![
        daily_week(),
        bursts(),
        slowdown(),
        leak(),
        node_loss(),
        cpu_limit(),
    ]
}

/// A week of the daily cycle (Monday to Sunday), the operator restarted every night, 1 %
/// of scrapes failing, and cgroup v1 semantics: an OOM kill takes one worker, not the pod.
#[must_use]
pub fn daily_week() -> Trace {
    let mut t = base(
        "daily-week",
        "7 days of the daily cycle, operator restarts at 03:00, cgroup v1 OOM kills",
        7.0,
        1,
    );
    t.operator_restarts = (0..7).map(|d| f64::from(d) * DAY + 3.0 * HOUR).collect();
    t.oom = OomMode::Process;
    t
}

/// Two days with four bursts of 5× traffic for 2 minutes (night, morning, peak, evening).
#[must_use]
pub fn bursts() -> Trace {
    let mut t = base(
        "bursts",
        "2 days of the daily cycle with 5× bursts of 2 minutes",
        2.0,
        2,
    );
    t.bursts = [2.0, 10.0, 16.0 + 24.0, 21.0 + 24.0]
        .iter()
        .map(|h| Burst {
            at: h * HOUR + 7.0 * 60.0,
            seconds: 120.0,
            factor: 5.0,
        })
        .collect();
    t
}

/// Two days; on the second, at 14:00, the database answers 5× slower for 30 minutes.
#[must_use]
pub fn slowdown() -> Trace {
    let mut t = base(
        "slowdown",
        "2 days; the database 5× slower for 30 minutes at 14:00 on day 2",
        2.0,
        3,
    );
    // A database with some headroom: 30 calls at once (the healthy peak needs ~16).
    // Slowed down, it completes at most 30 ÷ 0.175 s ≈ 171 calls/s, fewer the more
    // connections fight over it; at 14:00 the traffic is ~410 requests/s and the pool
    // already holds more than 30 connections, so more workers cannot help.
    t.db_slots = 30.0;
    t.slowdowns = vec![Slowdown {
        at: DAY + 14.0 * HOUR,
        seconds: 30.0 * 60.0,
        factor: 5.0,
    }];
    t
}

/// Two days; a deploy on day 1 at 10:00 introduces a linear leak (64 KiB per job), one on
/// day 2 at 10:00 replaces it with a step leak (8 MiB every 150 jobs).
#[must_use]
pub fn leak() -> Trace {
    let mut t = base(
        "leak",
        "2 days; a deploy brings a 64 KiB/job leak, the next a step leak of 8 MiB per 150 jobs",
        2.0,
        4,
    );
    t.deploys = vec![
        Deploy {
            at: 10.0 * HOUR,
            leak: Leak {
                per_job: 64.0 * 1024.0,
                ..Leak::default()
            },
        },
        Deploy {
            at: DAY + 10.0 * HOUR,
            leak: Leak {
                per_job: 0.0,
                step_jobs: 150.0,
                step: 8.0 * MIB,
            },
        },
    ];
    t
}

/// One day; at 14:00 a node stops with its pods.
#[must_use]
pub fn node_loss() -> Trace {
    let mut t = base(
        "node-loss",
        "1 day; a node stops at 14:00 with its pods",
        1.0,
        5,
    );
    t.node_failures = vec![14.0 * HOUR];
    t
}

/// Two days with a CPU limit of 4 cores per pod: the pods are CPU-bound at ~10 busy
/// workers, before they run out of workers (16).
#[must_use]
pub fn cpu_limit() -> Trace {
    let mut t = base(
        "cpu-limit",
        "2 days with a CPU limit of 4 cores per pod",
        2.0,
        6,
    );
    t.spec = base_spec(&json!({
        "resources": {"cpu": {"request": "2", "limit": "4"}},
        "replicas": {"min": 1, "max": 12},
    }));
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daily_cycle_peaks_in_the_afternoon_and_rests_at_weekends() {
        let l = base("x", "x", 7.0, 0).load;
        assert!((l.rate(16.0 * HOUR) - l.peak).abs() < 1e-9);
        assert!((l.rate(4.0 * HOUR) - l.peak * l.trough).abs() < 1e-9);
        assert!((l.rate(5.0 * DAY + 16.0 * HOUR) - l.peak * l.weekend).abs() < 1e-9);
        // No jump at midnight: halfway between Sunday and Monday.
        let monday = l.week(7.0 * DAY);
        assert!((monday - (1.0 + l.weekend) / 2.0).abs() < 1e-9, "{monday}");
    }

    #[test]
    fn bursts_and_slowdowns_apply_inside_their_windows() {
        let b = bursts();
        let at = b.bursts[0].at;
        assert!((b.rate(at + 1.0) / b.load.rate(at + 1.0) - 5.0).abs() < 1e-9);
        assert!((b.rate(at + 121.0) / b.load.rate(at + 121.0) - 1.0).abs() < 1e-9);
        assert!(b.peak_rate() >= 5.0 * b.load.rate(b.bursts[2].at) - 1e-6);
        let s = slowdown();
        assert_eq!(s.slowdown(s.slowdowns[0].at + 10.0), 5.0);
        assert_eq!(s.slowdown(0.0), 1.0);
    }

    #[test]
    fn every_spec_parses_as_the_operator_reads_it() {
        for t in all() {
            let spec: pacer_crds::PhpAppServerSpec =
                serde_json::from_value(t.spec.clone()).unwrap();
            pacer_operator::app_config::AppConfig::from_spec(&spec).unwrap();
        }
    }
}
