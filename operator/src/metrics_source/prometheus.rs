//! [`Prometheus`]: the same window aggregates as [`super::Direct`], computed by PromQL
//! instant queries against the user's Prometheus (`/api/v1/query`).
//!
//! Series are selected by `namespace` and `pod` labels (what Kubernetes service discovery
//! and the chart's ServiceMonitor attach) with the exact pod names the controller found,
//! plus `pool="http"`. Busy workers and waiting requests use Little's law on the `_sum`
//! counters, exactly as the direct source does; memory growth per job is the ratio of each
//! slot's memory and job-count deltas over the window, only for slots whose job count did
//! not reset in it (the same worker).
//!
//! OOM kills are the counter's `increase()` over the window, or, for a container that
//! started inside the window (pacer's `process_start_time_seconds`), its whole count if
//! larger: the counter began at 0 with the container's cgroup, so kills before
//! Prometheus' first scrape of it are in the window too, which `increase()` alone never
//! sees (a series' first sample is its baseline). Older containers count `increase()`
//! only, so a first look at them (a new operator, a new Prometheus) counts no old kills.
//!
//! Worker boots are the `increase()` of the boot histogram's `_sum` over that of its
//! `_count`: the mean boot of the workers that booted in the window. The first workers of
//! a pod boot before Prometheus' first scrape of it and are its baseline, so they are not
//! counted; replacements (recycling, a resize, a crash) are.

use std::collections::BTreeMap;

use futures_util::future::{BoxFuture, try_join_all};
use serde::Deserialize;

use super::aggregate::{SlotGrowth, past_warm_up};
use super::http::HttpClient;
use super::prom_text::POOL;
use super::{Error, MetricsSource, Target};
use crate::sample::{AgeBand, AppSample, PodSample};

/// Queries PromQL.
#[derive(Debug, Clone)]
pub struct Prometheus {
    http: HttpClient,
}

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<Data>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    result_type: String,
    result: Vec<VectorItem>,
}

#[derive(Deserialize)]
struct VectorItem {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

/// One series of an instant vector: its labels and value.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
}

/// Parses an `/api/v1/query` answer holding an instant vector.
///
/// # Errors
/// [`Error::Parse`] when the answer is not a successful vector.
pub fn parse_vector(url: &str, body: &[u8]) -> Result<Vec<Series>, Error> {
    let fail = |reason: String| Error::Parse {
        url: url.to_owned(),
        reason,
    };
    let answer: Answer = serde_json::from_slice(body).map_err(|e| fail(e.to_string()))?;
    // What the server says is not repeated (see `Error::Status`).
    if answer.status != "success" {
        return Err(fail("the answer is not a success".into()));
    }
    let data = answer.data.ok_or_else(|| fail("no data".into()))?;
    if data.result_type != "vector" {
        return Err(fail("the answer is not an instant vector".into()));
    }
    data.result
        .into_iter()
        .map(|item| {
            let value = match item.value.1.as_str() {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                "NaN" => f64::NAN,
                v => v
                    .parse()
                    .map_err(|_| fail(format!("bad sample value {v:?}")))?,
            };
            Ok(Series {
                labels: item.metric,
                value,
            })
        })
        .collect()
}

/// Escapes a literal for use inside a PromQL regex string (`pod=~"a|b"`).
fn regex_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push_str("\\\\");
        }
        if c == '"' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The PromQL queries for one target, by what they measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queries {
    /// Mean busy workers by pod (Little's law).
    pub busy: String,
    /// Mean `working` gauge by pod.
    pub working: String,
    /// Mean live workers by pod.
    pub live: String,
    /// Mean waiting requests by pod (Little's law).
    pub queue_wait: String,
    /// Mean queue gauge by pod.
    pub queue_depth: String,
    /// Completed jobs per second by pod.
    pub jobs: String,
    /// Refused requests per second by pod.
    pub rejected: String,
    /// Worker memory by pod and slot.
    pub worker_memory: String,
    /// Jobs done by the worker in each slot.
    pub worker_jobs: String,
    /// Memory growth per job by pod and slot (same worker over the window only).
    pub growth: String,
    /// pacer's own memory by pod.
    pub server_memory: String,
    /// Peak pod memory by pod.
    pub pod_peak: String,
    /// CPU cores the workers used by pod.
    pub cpu: String,
    /// Highest cgroup working set by pod.
    pub working_set: String,
    /// cgroup memory limit by pod.
    pub memory_limit: String,
    /// OOM kills in the window by pod.
    pub oom_kills: String,
    /// OOM kills since the container started, by pod, for containers started inside the
    /// window only.
    pub oom_kills_since_start: String,
    /// Share of throttled CPU periods by pod.
    pub cpu_throttled: String,
    /// The pool size each pod's pacer is configured for, now.
    pub target_workers: String,
    /// Workers booted in the window by pod.
    pub boots: String,
    /// Seconds those workers spent booting by pod.
    pub boot_seconds: String,
    /// Job seconds in the window by pod and worker-age band.
    pub age_seconds: String,
    /// Jobs in the window by pod and worker-age band.
    pub age_jobs: String,
}

/// Builds the queries for a target.
#[must_use]
pub fn queries(target: &Target) -> Queries {
    let pods: Vec<String> = target.pods.iter().map(|p| regex_literal(&p.name)).collect();
    let base = format!(
        "namespace=\"{}\",pod=~\"{}\"",
        target.namespace.replace('"', ""),
        pods.join("|")
    );
    let sel = format!("{{{base},pool=\"{POOL}\"}}");
    let w = format!("{}s", target.window.as_secs().max(1));
    let state = |s: &str| format!("{{{base},pool=\"{POOL}\",state=~\"{s}\"}}");
    Queries {
        busy: format!("sum by (pod) (rate(pacer_job_duration_seconds_sum{sel}[{w}]))"),
        working: format!(
            "sum by (pod) (avg_over_time(pacer_workers{}[{w}]))",
            state("working")
        ),
        live: format!(
            "sum by (pod) (avg_over_time(pacer_workers{}[{w}]))",
            state("ready|working")
        ),
        queue_wait: format!("sum by (pod) (rate(pacer_queue_wait_seconds_sum{sel}[{w}]))"),
        queue_depth: format!("sum by (pod) (avg_over_time(pacer_queue_depth{sel}[{w}]))"),
        jobs: format!("sum by (pod) (rate(pacer_job_duration_seconds_count{sel}[{w}]))"),
        rejected: format!("sum by (pod) (rate(pacer_no_free_workers_total{sel}[{w}]))"),
        worker_memory: format!("max by (pod, slot) (pacer_worker_memory_bytes{sel})"),
        worker_jobs: format!("max by (pod, slot) (pacer_worker_jobs{sel})"),
        // `delta` over the window, not `x - x offset w`: a worker recycled more often than
        // the window (a leaky one, just what this measures) lives in a slot series younger
        // than the window, which has no value `offset w` ago; `delta` uses the samples the
        // range has. Both deltas come from the same scrapes, so their extrapolation cancels
        // out in the ratio. A slot reused by a new worker shows as a reset and is left out,
        // and so is one with an unmeasured (0 bytes) sample: from 0 every later sample
        // looks like growth.
        growth: format!(
            "max by (pod, slot) (\
             delta(pacer_worker_memory_bytes{sel}[{w}]) \
             / (delta(pacer_worker_jobs{sel}[{w}]) >= 20) \
             and on (namespace, pod, slot) (resets(pacer_worker_jobs{sel}[{w}]) == 0) \
             and on (namespace, pod, slot) (min_over_time(pacer_worker_memory_bytes{sel}[{w}]) > 0))"
        ),
        server_memory: format!("max by (pod) (process_resident_memory_bytes{{{base}}})"),
        pod_peak: format!(
            "max by (pod) (max_over_time(process_resident_memory_bytes{{{base}}}[{w}])) \
             + sum by (pod) (max_over_time(pacer_worker_memory_bytes{sel}[{w}]))"
        ),
        cpu: format!("sum by (pod) (rate(pacer_worker_cpu_seconds_total{sel}[{w}]))"),
        working_set: format!(
            "max by (pod) (max_over_time(pacer_cgroup_memory_working_set_bytes{{{base}}}[{w}]))"
        ),
        memory_limit: format!("max by (pod) (pacer_cgroup_memory_limit_bytes{{{base}}})"),
        oom_kills: format!("sum by (pod) (increase(pacer_cgroup_oom_kills_total{{{base}}}[{w}]))"),
        // Matched on every label: the counter and the start time come from the same pacer
        // (the same target), not from another container of the pod.
        oom_kills_since_start: format!(
            "sum by (pod) (pacer_cgroup_oom_kills_total{{{base}}} \
             and (process_start_time_seconds{{{base}}} >= time() - {}))",
            target.window.as_secs().max(1)
        ),
        cpu_throttled: format!(
            "sum by (pod) (increase(pacer_cgroup_cpu_throttled_periods_total{{{base}}}[{w}])) \
             / (sum by (pod) (increase(pacer_cgroup_cpu_periods_total{{{base}}}[{w}])) > 0)"
        ),
        target_workers: format!("max by (pod) (pacer_pool_target_workers{sel})"),
        boots: format!("sum by (pod) (increase(pacer_worker_boot_seconds_count{sel}[{w}]))"),
        boot_seconds: format!("sum by (pod) (increase(pacer_worker_boot_seconds_sum{sel}[{w}]))"),
        age_seconds: format!(
            "sum by (pod, age) (increase(pacer_worker_age_job_seconds_total{sel}[{w}]))"
        ),
        age_jobs: format!("sum by (pod, age) (increase(pacer_worker_age_jobs_total{sel}[{w}]))"),
    }
}

fn by_pod(series: &[Series]) -> BTreeMap<String, f64> {
    series
        .iter()
        .filter(|s| s.value.is_finite())
        .filter_map(|s| s.labels.get("pod").map(|p| (p.clone(), s.value)))
        .collect()
}

fn by_pod_slot(series: &[Series]) -> BTreeMap<String, BTreeMap<String, f64>> {
    by_pod_and(series, "slot")
}

/// Values by pod, then by the value of `label`.
fn by_pod_and(series: &[Series], label: &str) -> BTreeMap<String, BTreeMap<String, f64>> {
    let mut out: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for s in series.iter().filter(|s| s.value.is_finite()) {
        if let (Some(pod), Some(slot)) = (s.labels.get("pod"), s.labels.get(label)) {
            out.entry(pod.clone())
                .or_default()
                .insert(slot.clone(), s.value);
        }
    }
    out
}

/// The answers of every query, in the order of [`Queries`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answers {
    /// See [`Queries::busy`].
    pub busy: Vec<Series>,
    /// See [`Queries::working`].
    pub working: Vec<Series>,
    /// See [`Queries::live`].
    pub live: Vec<Series>,
    /// See [`Queries::queue_wait`].
    pub queue_wait: Vec<Series>,
    /// See [`Queries::queue_depth`].
    pub queue_depth: Vec<Series>,
    /// See [`Queries::jobs`].
    pub jobs: Vec<Series>,
    /// See [`Queries::rejected`].
    pub rejected: Vec<Series>,
    /// See [`Queries::worker_memory`].
    pub worker_memory: Vec<Series>,
    /// See [`Queries::worker_jobs`].
    pub worker_jobs: Vec<Series>,
    /// See [`Queries::growth`].
    pub growth: Vec<Series>,
    /// See [`Queries::server_memory`].
    pub server_memory: Vec<Series>,
    /// See [`Queries::pod_peak`].
    pub pod_peak: Vec<Series>,
    /// See [`Queries::cpu`].
    pub cpu: Vec<Series>,
    /// See [`Queries::target_workers`].
    pub target_workers: Vec<Series>,
    /// See [`Queries::working_set`].
    pub working_set: Vec<Series>,
    /// See [`Queries::memory_limit`].
    pub memory_limit: Vec<Series>,
    /// See [`Queries::oom_kills`].
    pub oom_kills: Vec<Series>,
    /// See [`Queries::oom_kills_since_start`].
    pub oom_kills_since_start: Vec<Series>,
    /// See [`Queries::cpu_throttled`].
    pub cpu_throttled: Vec<Series>,
    /// See [`Queries::boots`].
    pub boots: Vec<Series>,
    /// See [`Queries::boot_seconds`].
    pub boot_seconds: Vec<Series>,
    /// See [`Queries::age_seconds`].
    pub age_seconds: Vec<Series>,
    /// See [`Queries::age_jobs`].
    pub age_jobs: Vec<Series>,
}

/// Combines the answers into per-pod samples (pure). Pods without a live-worker series
/// have no data and are left out.
#[must_use]
pub fn combine(target: &Target, answers: &Answers) -> AppSample {
    let live = by_pod(&answers.live);
    let busy = by_pod(&answers.busy);
    let working = by_pod(&answers.working);
    let queue_wait = by_pod(&answers.queue_wait);
    let queue_depth = by_pod(&answers.queue_depth);
    let jobs = by_pod(&answers.jobs);
    let rejected = by_pod(&answers.rejected);
    let memory = by_pod_slot(&answers.worker_memory);
    let worker_jobs = by_pod_slot(&answers.worker_jobs);
    let growth = by_pod_slot(&answers.growth);
    let server = by_pod(&answers.server_memory);
    let peak = by_pod(&answers.pod_peak);
    let cpu = by_pod(&answers.cpu);
    let target_workers = by_pod(&answers.target_workers);
    let working_set = by_pod(&answers.working_set);
    let memory_limit = by_pod(&answers.memory_limit);
    let oom_kills = by_pod(&answers.oom_kills);
    let oom_kills_since_start = by_pod(&answers.oom_kills_since_start);
    let cpu_throttled = by_pod(&answers.cpu_throttled);
    let boots = by_pod(&answers.boots);
    let boot_seconds = by_pod(&answers.boot_seconds);
    let age_seconds = by_pod_and(&answers.age_seconds, "age");
    let age_jobs = by_pod_and(&answers.age_jobs, "age");
    let get = |m: &BTreeMap<String, f64>, pod: &str| m.get(pod).copied().unwrap_or(0.0);

    let pods = target
        .pods
        .iter()
        .filter_map(|p| {
            let pod = p.name.as_str();
            let live_workers = *live.get(pod)?;
            let busy_sum = get(&busy, pod);
            let jobs_per_second = get(&jobs, pod);
            let slots = memory.get(pod).cloned().unwrap_or_default();
            let mut measured = Vec::new();
            if let Some(slot_growth) = growth.get(pod) {
                for (slot, slope) in slot_growth {
                    let mem = slots.get(slot).copied();
                    let done = worker_jobs.get(pod).and_then(|j| j.get(slot)).copied();
                    if let (Some(mem), Some(done)) = (mem, done) {
                        measured.push(SlotGrowth {
                            jobs: done,
                            slope: *slope,
                            warm: (mem - slope * done).clamp(mem * 0.5, mem),
                        });
                    }
                }
            }
            let past = past_warm_up(measured);
            // Both increases are extrapolated over the same window: their ratio is the mean.
            let booted = boots.get(pod).copied().filter(|n| *n > 0.0);
            let worker_boot_seconds = booted
                .zip(boot_seconds.get(pod))
                .map(|(n, seconds)| (seconds / n).max(0.0));
            // A band with both counters; youngest first.
            let mut worker_age: Vec<AgeBand> = age_jobs
                .get(pod)
                .into_iter()
                .flatten()
                .filter_map(|(age, jobs)| {
                    let seconds = age_seconds.get(pod)?.get(age)?;
                    AgeBand::of(age, seconds.max(0.0), jobs.max(0.0))
                })
                .collect();
            worker_age.sort_by(|a, b| a.first.total_cmp(&b.first));
            Some(PodSample {
                pod: pod.to_owned(),
                live_workers,
                busy_workers: busy_sum.max(get(&working, pod)),
                queue_depth: get(&queue_wait, pod).max(get(&queue_depth, pod)),
                jobs_per_second,
                rejected_per_second: get(&rejected, pod),
                mean_job_seconds: (jobs_per_second > 0.0).then(|| busy_sum / jobs_per_second),
                worker_memory: slots.values().map(|m| *m as u64).collect(),
                worker_jobs: worker_jobs
                    .get(pod)
                    .map(|j| j.values().map(|d| d.max(0.0) as u64).collect())
                    .unwrap_or_default(),
                memory_growth_per_job: past.growth,
                warm_worker_memory: past.warm,
                growth_jobs: past.jobs,
                server_memory: server.get(pod).map(|m| *m as u64),
                pod_memory_peak: peak.get(pod).map(|m| *m as u64),
                worker_cpu_cores: cpu.get(pod).copied(),
                worker_boot_seconds,
                worker_boots: booted.unwrap_or(0.0),
                worker_age,
                target_workers: target_workers
                    .get(pod)
                    .filter(|w| **w >= 0.0)
                    .map(|w| w.round() as u32),
                memory_working_set: working_set
                    .get(pod)
                    .filter(|b| **b >= 0.0)
                    .map(|b| *b as u64),
                memory_limit: memory_limit
                    .get(pod)
                    .filter(|b| **b > 0.0)
                    .map(|b| *b as u64),
                oom_kills: match (oom_kills.get(pod), oom_kills_since_start.get(pod)) {
                    (Some(a), Some(b)) => Some(a.max(*b).max(0.0)),
                    (Some(n), None) | (None, Some(n)) => Some(n.max(0.0)),
                    (None, None) => None,
                },
                cpu_throttled: cpu_throttled.get(pod).map(|s| s.clamp(0.0, 1.0)),
                jobs: None,
            })
        })
        .collect();
    AppSample {
        window: target.window,
        pods,
    }
}

impl Prometheus {
    /// A Prometheus source.
    #[must_use]
    pub fn new(http: HttpClient) -> Self {
        Self { http }
    }

    async fn query(
        &self,
        base: &str,
        token: Option<&str>,
        query: &str,
        time: i64,
    ) -> Result<Vec<Series>, Error> {
        let encoded: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("query", query)
            .append_pair("time", &time.to_string())
            .finish();
        let url = format!("{}/api/v1/query?{encoded}", base.trim_end_matches('/'));
        let body = self.http.get_with_token(&url, token).await?;
        parse_vector(&url, &body)
    }

    async fn sample_inner(&self, target: &Target) -> Result<AppSample, Error> {
        let base = target
            .prometheus_url
            .as_deref()
            .ok_or_else(|| Error::Config("tuning.metrics.prometheusUrl is not set".into()))?;
        if target.pods.is_empty() {
            return Ok(AppSample {
                window: target.window,
                pods: Vec::new(),
            });
        }
        let q = queries(target);
        let time = target.now.as_second();
        let list = [
            &q.busy,
            &q.working,
            &q.live,
            &q.queue_wait,
            &q.queue_depth,
            &q.jobs,
            &q.rejected,
            &q.worker_memory,
            &q.worker_jobs,
            &q.growth,
            &q.server_memory,
            &q.pod_peak,
            &q.cpu,
            &q.target_workers,
            &q.working_set,
            &q.memory_limit,
            &q.oom_kills,
            &q.oom_kills_since_start,
            &q.cpu_throttled,
            &q.boots,
            &q.boot_seconds,
            &q.age_seconds,
            &q.age_jobs,
        ];
        let token = target.bearer_token.as_deref();
        let mut results = try_join_all(
            list.iter()
                .map(|query| self.query(base, token, query, time)),
        )
        .await?
        .into_iter();
        let mut next = || results.next().unwrap_or_default();
        let answers = Answers {
            busy: next(),
            working: next(),
            live: next(),
            queue_wait: next(),
            queue_depth: next(),
            jobs: next(),
            rejected: next(),
            worker_memory: next(),
            worker_jobs: next(),
            growth: next(),
            server_memory: next(),
            pod_peak: next(),
            cpu: next(),
            target_workers: next(),
            working_set: next(),
            memory_limit: next(),
            oom_kills: next(),
            oom_kills_since_start: next(),
            cpu_throttled: next(),
            boots: next(),
            boot_seconds: next(),
            age_seconds: next(),
            age_jobs: next(),
        };
        Ok(combine(target, &answers))
    }
}

impl MetricsSource for Prometheus {
    fn sample<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Result<AppSample, Error>> {
        Box::pin(self.sample_inner(target))
    }

    fn query_sum<'a>(
        &'a self,
        url: &'a str,
        token: Option<&'a str>,
        query: &'a str,
        now: jiff::Timestamp,
    ) -> BoxFuture<'a, Result<f64, Error>> {
        Box::pin(async move {
            let series = self.query(url, token, query, now.as_second()).await?;
            Ok(series
                .iter()
                .map(|s| s.value)
                .filter(|v| v.is_finite())
                .sum())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics_source::PodTarget;
    use jiff::Timestamp;
    use pacer_crds::MetricsSourceKind;
    use std::time::Duration;

    fn target() -> Target {
        Target {
            namespace: "shop".into(),
            app: "web".into(),
            pods: vec![
                PodTarget {
                    name: "web-5d8f-a1".into(),
                    ip: None,
                    ..PodTarget::default()
                },
                PodTarget {
                    name: "web-5d8f-b2".into(),
                    ip: None,
                    ..PodTarget::default()
                },
            ],
            source: MetricsSourceKind::Prometheus,
            prometheus_url: Some("http://prometheus:9090".into()),
            bearer_token: None,
            window: Duration::from_secs(60),
            now: Timestamp::from_second(1_700_000_000).unwrap(),
        }
    }

    /// A real `/api/v1/query` answer as Prometheus writes it.
    const VECTOR: &str = r#"{"status":"success","data":{"resultType":"vector","result":[
        {"metric":{"pod":"web-5d8f-a1"},"value":[1700000000,"2.5"]},
        {"metric":{"pod":"web-5d8f-b2"},"value":[1700000000,"NaN"]}]}}"#;

    #[test]
    fn parses_vectors() {
        let v = parse_vector("u", VECTOR.as_bytes()).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].labels["pod"], "web-5d8f-a1");
        assert_eq!(v[0].value, 2.5);
        assert!(v[1].value.is_nan());
    }

    #[test]
    fn errors_and_other_result_types_are_refused() {
        let err = r#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#;
        let e = parse_vector("u", err.as_bytes()).unwrap_err();
        // Refused, without repeating what the server said (it goes to the status).
        assert!(!e.to_string().contains("parse error at char 5"), "{e}");
        assert!(e.to_string().contains("not a success"), "{e}");
        let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(parse_vector("u", matrix.as_bytes()).is_err());
        assert!(parse_vector("u", b"<html>").is_err());
    }

    #[test]
    fn queries_select_the_pods_by_name() {
        let q = queries(&target());
        assert_eq!(
            q.busy,
            "sum by (pod) (rate(pacer_job_duration_seconds_sum{namespace=\"shop\",\
             pod=~\"web-5d8f-a1|web-5d8f-b2\",pool=\"http\"}[60s]))"
        );
        assert!(q.live.contains("state=~\"ready|working\""));
        assert!(q.growth.contains("resets(pacer_worker_jobs"));
        assert!(q.growth.contains("delta(pacer_worker_jobs"));
        assert!(q.growth.contains("min_over_time(pacer_worker_memory_bytes"));
        assert!(
            !q.growth.contains("offset"),
            "a young slot series has no past value"
        );
        assert!(
            q.cpu
                .starts_with("sum by (pod) (rate(pacer_worker_cpu_seconds_total{")
        );
        assert!(
            !q.server_memory.contains("pool="),
            "process metrics have no pool label"
        );
    }

    #[test]
    fn oom_kills_count_a_young_containers_first_value() {
        let q = queries(&target());
        assert!(
            q.oom_kills
                .starts_with("sum by (pod) (increase(pacer_cgroup_oom_kills_total{"),
            "{}",
            q.oom_kills
        );
        assert!(
            q.oom_kills_since_start.ends_with(
                " and (process_start_time_seconds{namespace=\"shop\",\
                 pod=~\"web-5d8f-a1|web-5d8f-b2\"} >= time() - 60))"
            ),
            "{}",
            q.oom_kills_since_start
        );
        // a1 started inside the window with 7 kills before Prometheus' first scrape of
        // it (increase 0); b2 is older (no since-start series): its increase only.
        let answers = Answers {
            live: vec![
                series("web-5d8f-a1", None, 2.0),
                series("web-5d8f-b2", None, 2.0),
            ],
            oom_kills: vec![
                series("web-5d8f-a1", None, 0.0),
                series("web-5d8f-b2", None, 1.0),
            ],
            oom_kills_since_start: vec![series("web-5d8f-a1", None, 7.0)],
            ..Answers::default()
        };
        let kills: Vec<_> = combine(&target(), &answers)
            .pods
            .iter()
            .map(|p| p.oom_kills)
            .collect();
        assert_eq!(kills, vec![Some(7.0), Some(1.0)]);
        // A young container with kills after its first scrape too: the larger count.
        let answers = Answers {
            live: vec![series("web-5d8f-a1", None, 2.0)],
            oom_kills: vec![series("web-5d8f-a1", None, 9.3)],
            oom_kills_since_start: vec![series("web-5d8f-a1", None, 9.0)],
            ..Answers::default()
        };
        assert_eq!(combine(&target(), &answers).pods[0].oom_kills, Some(9.3));
    }

    #[test]
    fn regex_metacharacters_are_escaped() {
        assert_eq!(regex_literal("a.b"), "a\\\\.b");
        assert_eq!(regex_literal("plain-name"), "plain-name");
    }

    fn series(pod: &str, slot: Option<&str>, value: f64) -> Series {
        let mut labels = BTreeMap::from([("pod".to_owned(), pod.to_owned())]);
        if let Some(slot) = slot {
            labels.insert("slot".into(), slot.into());
        }
        Series { labels, value }
    }

    #[test]
    fn answers_combine_into_pod_samples() {
        const MI: f64 = 1024.0 * 1024.0;
        let answers = Answers {
            busy: vec![series("web-5d8f-a1", None, 2.0)],
            working: vec![series("web-5d8f-a1", None, 2.5)],
            live: vec![series("web-5d8f-a1", None, 4.0)],
            queue_wait: vec![series("web-5d8f-a1", None, 0.5)],
            jobs: vec![series("web-5d8f-a1", None, 20.0)],
            worker_memory: vec![
                series("web-5d8f-a1", Some("0"), 40.0 * MI),
                series("web-5d8f-a1", Some("1"), 30.0 * MI),
            ],
            worker_jobs: vec![series("web-5d8f-a1", Some("0"), 200.0)],
            growth: vec![series("web-5d8f-a1", Some("0"), 51_200.0)],
            server_memory: vec![series("web-5d8f-a1", None, 12.0 * MI)],
            pod_peak: vec![series("web-5d8f-a1", None, 90.0 * MI)],
            cpu: vec![series("web-5d8f-a1", None, 1.5)],
            boots: vec![series("web-5d8f-a1", None, 2.0)],
            boot_seconds: vec![series("web-5d8f-a1", None, 5.0)],
            ..Answers::default()
        };
        let sample = combine(&target(), &answers);
        // The second pod has no live-worker series: no data, left out.
        assert_eq!(sample.pods.len(), 1);
        let p = &sample.pods[0];
        assert_eq!(p.busy_workers, 2.5);
        assert_eq!(p.queue_depth, 0.5);
        assert_eq!(p.mean_job_seconds, Some(0.1));
        assert_eq!(
            p.worker_memory,
            vec![(40.0 * MI) as u64, (30.0 * MI) as u64]
        );
        assert_eq!(p.memory_growth_per_job, Some(51_200.0));
        // warm = 40 Mi − 200 jobs × 50 KiB ≈ 30.2 Mi.
        let warm = p.warm_worker_memory.unwrap();
        assert!((warm - (40.0 * MI - 200.0 * 51_200.0)).abs() < 1.0);
        assert_eq!(p.pod_memory_peak, Some((90.0 * MI) as u64));
        assert_eq!(p.worker_cpu_cores, Some(1.5));
        assert_eq!((p.worker_boot_seconds, p.worker_boots), (Some(2.5), 2.0));
    }

    /// No boot in the window (or an older pacer, no series): no boot time, not 0 s.
    #[test]
    fn boot_time_needs_a_boot_in_the_window() {
        let q = queries(&target());
        assert!(
            q.boots
                .starts_with("sum by (pod) (increase(pacer_worker_boot_seconds_count{"),
            "{}",
            q.boots
        );
        assert!(
            q.boot_seconds
                .starts_with("sum by (pod) (increase(pacer_worker_boot_seconds_sum{"),
            "{}",
            q.boot_seconds
        );
        let answers = Answers {
            live: vec![
                series("web-5d8f-a1", None, 2.0),
                series("web-5d8f-b2", None, 2.0),
            ],
            boots: vec![series("web-5d8f-a1", None, 0.0)],
            boot_seconds: vec![series("web-5d8f-a1", None, 0.0)],
            ..Answers::default()
        };
        let pods = combine(&target(), &answers).pods;
        assert_eq!(pods[0].worker_boot_seconds, None);
        assert_eq!(pods[1].worker_boot_seconds, None);
        assert_eq!((pods[0].worker_boots, pods[1].worker_boots), (0.0, 0.0));
    }

    fn aged(pod: &str, age: &str, value: f64) -> Series {
        let mut s = series(pod, None, value);
        s.labels.insert("age".into(), age.into());
        s
    }

    /// Job time by worker age: each band of a pod with both counters, youngest first; a
    /// pod without the series (an older pacer) has none.
    #[test]
    fn worker_age_bands_combine_per_pod() {
        let q = queries(&target());
        assert!(
            q.age_seconds
                .starts_with("sum by (pod, age) (increase(pacer_worker_age_job_seconds_total{"),
            "{}",
            q.age_seconds
        );
        assert!(
            q.age_jobs
                .starts_with("sum by (pod, age) (increase(pacer_worker_age_jobs_total{"),
            "{}",
            q.age_jobs
        );
        let answers = Answers {
            live: vec![
                series("web-5d8f-a1", None, 2.0),
                series("web-5d8f-b2", None, 2.0),
            ],
            age_seconds: vec![
                aged("web-5d8f-a1", "300-999", 3.0),
                aged("web-5d8f-a1", "0-9", 1.0),
                aged("web-5d8f-a1", "3000+", 0.5),
            ],
            age_jobs: vec![
                aged("web-5d8f-a1", "300-999", 60.0),
                aged("web-5d8f-a1", "0-9", 10.0),
            ],
            ..Answers::default()
        };
        let pods = combine(&target(), &answers).pods;
        let bands: Vec<_> = pods[0]
            .worker_age
            .iter()
            .map(|b| (b.first, b.end, b.seconds, b.jobs))
            .collect();
        assert_eq!(
            bands,
            [
                (0.0, Some(10.0), 1.0, 10.0),
                (300.0, Some(1000.0), 3.0, 60.0)
            ]
        );
        assert!(pods[1].worker_age.is_empty());
    }
}
