//! [`Windows`]: the scrapes of each pod over the aggregation window, per app. Pure.
//!
//! [`super::Direct`] scrapes, then hands the answers to [`Windows::record`], which appends
//! them, drops what fell out of the window, pods that are gone and apps nobody asked about
//! for [`FORGET_AFTER`], and aggregates each pod ([`super::aggregate`]). The simulator
//! (`sim/`) feeds the same struct with modelled scrapes, so both see the same windows.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::aggregate::{Scrape, aggregate};
use super::prom_text::PacerMetrics;
use crate::sample::PodSample;

/// Scrapes kept per pod, whatever the window (bounds memory for tiny intervals).
pub const MAX_SCRAPES_PER_POD: usize = 64;
/// An app not sampled for this long is forgotten (it was deleted, or its tuning turned
/// off); the controller never sees deleted objects, so this is where they are dropped.
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

/// (namespace, app) → pod → scrapes, oldest first.
#[derive(Clone, Debug, Default)]
pub struct Windows {
    apps: HashMap<(String, String), BTreeMap<String, Vec<Scrape>>>,
}

impl Windows {
    /// Nothing recorded yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one round of scrapes of an app and returns the aggregates of every pod that
    /// has a window. `pods` are the app's pods now (others are forgotten); `fresh` the
    /// scrapes that succeeded at `now`.
    pub fn record(
        &mut self,
        app: (&str, &str),
        pods: &[&str],
        fresh: Vec<(String, PacerMetrics)>,
        now: Timestamp,
        window: Duration,
    ) -> Vec<PodSample> {
        let oldest = before(now, window + Duration::from_secs(1));
        let since = before(now, window);
        let stale = before(now, FORGET_AFTER);
        self.apps.retain(|_, pods| {
            pods.values()
                .flat_map(|scrapes| scrapes.last())
                .any(|s| s.at >= stale)
        });
        let history = self
            .apps
            .entry((app.0.to_owned(), app.1.to_owned()))
            .or_default();
        history.retain(|pod, _| pods.contains(&pod.as_str()));
        for (name, metrics) in fresh {
            history
                .entry(name)
                .or_default()
                .push(Scrape { at: now, metrics });
        }
        let mut out = Vec::new();
        for (name, scrapes) in history.iter_mut() {
            scrapes.retain(|s| s.at >= oldest && s.at <= now);
            if scrapes.len() > MAX_SCRAPES_PER_POD {
                let excess = scrapes.len() - MAX_SCRAPES_PER_POD;
                scrapes.drain(..excess);
            }
            if let Some(sample) = aggregate(name, scrapes, since) {
                out.push(sample);
            }
        }
        out
    }

    /// Forgets an app.
    pub fn forget(&mut self, namespace: &str, app: &str) {
        self.apps.remove(&(namespace.to_owned(), app.to_owned()));
    }

    /// Pods of an app with scrapes kept (for tests).
    #[must_use]
    pub fn pods_of(&self, namespace: &str, app: &str) -> Option<usize> {
        self.apps
            .get(&(namespace.to_owned(), app.to_owned()))
            .map(BTreeMap::len)
    }
}

fn before(now: Timestamp, d: Duration) -> Timestamp {
    now.checked_sub(SignedDuration::try_from(d).unwrap_or_default())
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn metrics(jobs: f64) -> PacerMetrics {
        PacerMetrics {
            ready: 2.0,
            working: 2.0,
            job_count: jobs,
            job_seconds_sum: jobs / 100.0,
            ..PacerMetrics::default()
        }
    }

    #[test]
    fn windows_slide_and_forget() {
        let mut w = Windows::new();
        let win = Duration::from_secs(60);
        let first = w.record(
            ("ns", "app"),
            &["a"],
            vec![("a".into(), metrics(0.0))],
            at(0),
            win,
        );
        assert!(first.is_empty(), "one scrape is not a window");
        let second = w.record(
            ("ns", "app"),
            &["a"],
            vec![("a".into(), metrics(300.0))],
            at(30),
            win,
        );
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].jobs_per_second, 10.0);
        // A failed scrape keeps the window of what is left.
        let failed = w.record(("ns", "app"), &["a"], vec![], at(60), win);
        assert_eq!(failed.len(), 1);
        // Gone pods are dropped.
        w.record(("ns", "app"), &[], vec![], at(70), win);
        assert_eq!(w.pods_of("ns", "app"), Some(0));
        // Apps nobody asked about for FORGET_AFTER are dropped by the next call.
        w.record(
            ("ns", "app"),
            &["a"],
            vec![("a".into(), metrics(0.0))],
            at(80),
            win,
        );
        w.record(("ns", "other"), &[], vec![], at(80 + 16 * 60), win);
        assert_eq!(w.pods_of("ns", "app"), None);
        w.forget("ns", "other");
        assert_eq!(w.pods_of("ns", "other"), None);
    }

    fn killed(kills: f64, started: i64) -> PacerMetrics {
        PacerMetrics {
            oom_kills: Some(kills),
            start_time: Some(at(started).as_second() as f64),
            ..metrics(0.0)
        }
    }

    /// The window's start decides whether a container's kills before its first scrape are
    /// in the window: a pod started 20 s ago and first scraped now has them all, one of
    /// 10 minutes ago (an operator restart) none.
    #[test]
    fn kills_before_the_first_scrape_count_for_a_pod_started_in_the_window() {
        let mut w = Windows::new();
        let win = Duration::from_secs(60);
        let round = |w: &mut Windows, t: i64| {
            let fresh = vec![
                ("young".to_owned(), killed(7.0, -20)),
                ("old".to_owned(), killed(7.0, -600)),
            ];
            w.record(("ns", "app"), &["young", "old"], fresh, at(t), win)
        };
        assert!(round(&mut w, 0).is_empty());
        let kills = |samples: &[PodSample], pod: &str| {
            samples
                .iter()
                .find(|s| s.pod == pod)
                .and_then(|s| s.oom_kills)
        };
        let second = round(&mut w, 5);
        assert_eq!(kills(&second, "young"), Some(7.0));
        assert_eq!(kills(&second, "old"), Some(0.0));
        let later = round(&mut w, 35);
        assert_eq!(kills(&later, "young"), Some(7.0));
        // Once the young pod's start has left the window, its kills are a baseline.
        let gone = round(&mut w, 45);
        assert_eq!(kills(&gone, "young"), Some(0.0));
    }
}
