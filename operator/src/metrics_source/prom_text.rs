//! A parser for the Prometheus text exposition format (version 0.0.4), and the extraction
//! of pacer's own series (docs/design.md §2.6) from it.
//!
//! Written by hand because the operator needs only the sample lines (name, labels, value)
//! and the crates that parse the format drag in their own metric models; this is ~150
//! lines with tests on real pacer output. Comments (`# HELP`, `# TYPE`) are skipped,
//! label values are unescaped (`\\`, `\"`, `\n`), `+Inf`/`-Inf`/`NaN` are values, an
//! optional timestamp is ignored.

use std::collections::BTreeMap;

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Metric name (with `_sum`/`_count`/`_bucket` for histogram parts).
    pub name: String,
    /// Labels, sorted by name.
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
}

impl Sample {
    /// The value of a label, if present.
    #[must_use]
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }
}

/// A line that is not valid exposition text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: &'static str,
}

/// Parses a whole exposition.
///
/// # Errors
/// The first malformed line.
pub fn parse(text: &str) -> Result<Vec<Sample>, ParseError> {
    let mut out = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push(parse_line(line).map_err(|reason| ParseError {
            line: index + 1,
            reason,
        })?);
    }
    Ok(out)
}

fn parse_line(line: &str) -> Result<Sample, &'static str> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("no value")?;
    let name = &line[..name_end];
    if !valid_name(name) {
        return Err("invalid metric name");
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        let (parsed, remaining) = parse_labels(after_brace)?;
        labels = parsed;
        rest = remaining;
    }
    let mut fields = rest.split_whitespace();
    let value = parse_value(fields.next().ok_or("no value")?)?;
    if let Some(ts) = fields.next()
        && ts.parse::<i64>().is_err()
    {
        return Err("invalid timestamp");
    }
    if fields.next().is_some() {
        return Err("trailing text");
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses `a="x",b="y"}` and returns the labels and the text after the closing brace.
fn parse_labels(mut text: &str) -> Result<(BTreeMap<String, String>, &str), &'static str> {
    let mut labels = BTreeMap::new();
    loop {
        text = text.trim_start();
        if let Some(after) = text.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = text.find('=').ok_or("label without value")?;
        let key = text[..eq].trim();
        if !valid_name(key) {
            return Err("invalid label name");
        }
        text = text[eq + 1..].trim_start();
        text = text.strip_prefix('"').ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = text.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value"),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    _ => return Err("invalid escape in label value"),
                },
                Some((_, c)) => value.push(c),
            }
        };
        labels.insert(key.to_owned(), value);
        text = text[end + 1..].trim_start();
        if let Some(after) = text.strip_prefix(',') {
            text = after;
        } else if !text.starts_with('}') {
            return Err("expected , or } after a label");
        }
    }
}

fn parse_value(text: &str) -> Result<f64, &'static str> {
    match text {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => text.parse().map_err(|_| "invalid value"),
    }
}

/// The pool the operator tunes (pacer's HTTP pool).
pub const POOL: &str = "http";

/// Pacer's series of one pool, from one scrape.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct PacerMetrics {
    /// `pacer_workers{state="ready"}`.
    pub ready: f64,
    /// `pacer_workers{state="working"}`.
    pub working: f64,
    /// `pacer_queue_depth`.
    pub queue_depth: f64,
    /// `pacer_pool_target_workers`.
    pub target_workers: Option<f64>,
    /// `pacer_job_duration_seconds_sum`.
    pub job_seconds_sum: f64,
    /// `pacer_job_duration_seconds_count`.
    pub job_count: f64,
    /// `pacer_queue_wait_seconds_sum`.
    pub queue_wait_sum: f64,
    /// `pacer_no_free_workers_total`.
    pub no_free_workers: f64,
    /// Per slot: (`pacer_worker_memory_bytes`, `pacer_worker_jobs`).
    pub slots: BTreeMap<String, (f64, f64)>,
    /// `process_resident_memory_bytes` of pacer.
    pub process_memory: Option<f64>,
    /// `pacer_worker_cpu_seconds_total` (absent from pacers that predate it).
    pub worker_cpu_seconds: Option<f64>,
    /// `pacer_worker_boot_seconds_sum`: seconds the pool's workers spent booting, process
    /// start to the end of the handshake (absent from pacers that predate it).
    pub worker_boot_seconds_sum: Option<f64>,
    /// `pacer_worker_boot_seconds_count`: workers that booted.
    pub worker_boot_count: Option<f64>,
    /// Per `age` band label: (`pacer_worker_age_job_seconds_total`,
    /// `pacer_worker_age_jobs_total`); empty from pacers that predate them.
    pub worker_age: BTreeMap<String, (f64, f64)>,
    /// `pacer_cgroup_memory_working_set_bytes`: the container's cgroup as the kernel counts
    /// it (absent from pacers that predate it, or without a cgroup).
    pub working_set: Option<f64>,
    /// `pacer_cgroup_memory_limit_bytes` (absent when unlimited).
    pub memory_limit: Option<f64>,
    /// `pacer_cgroup_oom_kills_total`.
    pub oom_kills: Option<f64>,
    /// `process_start_time_seconds` of pacer (Unix seconds): pacer is the container's
    /// first process, so this is when the container, and its cgroup's counters, began.
    pub start_time: Option<f64>,
    /// `pacer_cgroup_cpu_periods_total`.
    pub cpu_periods: Option<f64>,
    /// `pacer_cgroup_cpu_throttled_periods_total`.
    pub cpu_throttled_periods: Option<f64>,
    /// The jobs pool's series, when the pod runs one.
    pub jobs: Option<super::jobs::JobsMetrics>,
}

impl PacerMetrics {
    /// Picks pacer's series of [`POOL`] out of a parsed exposition. `None` when the text has
    /// no `pacer_workers` series for the pool (not a pacer, or the pool is missing).
    #[must_use]
    pub fn from_samples(samples: &[Sample]) -> Option<Self> {
        let mut m = Self::default();
        let mut seen_workers = false;
        for s in samples {
            let cgroup = match s.name.as_str() {
                "process_resident_memory_bytes" => Some(&mut m.process_memory),
                "pacer_cgroup_memory_working_set_bytes" => Some(&mut m.working_set),
                "pacer_cgroup_memory_limit_bytes" => Some(&mut m.memory_limit),
                "pacer_cgroup_oom_kills_total" => Some(&mut m.oom_kills),
                "process_start_time_seconds" => Some(&mut m.start_time),
                "pacer_cgroup_cpu_periods_total" => Some(&mut m.cpu_periods),
                "pacer_cgroup_cpu_throttled_periods_total" => Some(&mut m.cpu_throttled_periods),
                _ => None,
            };
            // pacer's own process and its container have no pool label.
            if let Some(field) = cgroup {
                *field = Some(s.value);
                continue;
            }
            if s.label("pool") != Some(POOL) {
                continue;
            }
            match s.name.as_str() {
                "pacer_workers" => {
                    seen_workers = true;
                    match s.label("state") {
                        Some("ready") => m.ready += s.value,
                        Some("working") => m.working += s.value,
                        _ => {}
                    }
                }
                "pacer_queue_depth" => m.queue_depth += s.value,
                "pacer_pool_target_workers" => m.target_workers = Some(s.value),
                "pacer_job_duration_seconds_sum" => m.job_seconds_sum += s.value,
                "pacer_job_duration_seconds_count" => m.job_count += s.value,
                "pacer_queue_wait_seconds_sum" => m.queue_wait_sum += s.value,
                "pacer_no_free_workers_total" => m.no_free_workers += s.value,
                "pacer_worker_cpu_seconds_total" => {
                    *m.worker_cpu_seconds.get_or_insert(0.0) += s.value;
                }
                "pacer_worker_boot_seconds_sum" => {
                    *m.worker_boot_seconds_sum.get_or_insert(0.0) += s.value;
                }
                "pacer_worker_boot_seconds_count" => {
                    *m.worker_boot_count.get_or_insert(0.0) += s.value;
                }
                "pacer_worker_age_job_seconds_total" => {
                    if let Some(age) = s.label("age") {
                        m.worker_age.entry(age.to_owned()).or_default().0 += s.value;
                    }
                }
                "pacer_worker_age_jobs_total" => {
                    if let Some(age) = s.label("age") {
                        m.worker_age.entry(age.to_owned()).or_default().1 += s.value;
                    }
                }
                "pacer_worker_memory_bytes" => {
                    if let Some(slot) = s.label("slot") {
                        m.slots.entry(slot.to_owned()).or_default().0 = s.value;
                    }
                }
                "pacer_worker_jobs" => {
                    if let Some(slot) = s.label("slot") {
                        m.slots.entry(slot.to_owned()).or_default().1 = s.value;
                    }
                }
                _ => {}
            }
        }
        m.jobs = super::jobs::JobsMetrics::from_samples(samples);
        // A jobs-only pod (no HTTP pool) is still a pacer: its HTTP series read 0.
        (seen_workers || m.jobs.is_some()).then_some(m)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// What a pacer with four workers, one busy, after some traffic exposes.
    pub(crate) const PACER_TEXT: &str = r#"# HELP pacer_workers Workers of the pool by state.
# TYPE pacer_workers gauge
pacer_workers{pool="http",state="ready"} 3
pacer_workers{pool="http",state="working"} 1
pacer_workers{pool="http",state="spawning"} 0
pacer_workers{pool="http",state="stopping"} 0
# HELP pacer_pool_target_workers Target size of the pool.
# TYPE pacer_pool_target_workers gauge
pacer_pool_target_workers{pool="http"} 4
# HELP pacer_queue_depth Requests waiting for a worker.
# TYPE pacer_queue_depth gauge
pacer_queue_depth{pool="http"} 0
# HELP pacer_worker_memory_bytes Resident memory of the worker in a slot.
# TYPE pacer_worker_memory_bytes gauge
pacer_worker_memory_bytes{pool="http",slot="0"} 2.4117248e+07
pacer_worker_memory_bytes{pool="http",slot="1"} 23592960
pacer_worker_memory_bytes{pool="http",slot="2"} 23068672
pacer_worker_memory_bytes{pool="http",slot="3"} 23068672
# HELP pacer_worker_jobs Jobs done by the worker in a slot.
# TYPE pacer_worker_jobs gauge
pacer_worker_jobs{pool="http",slot="0"} 120
pacer_worker_jobs{pool="http",slot="1"} 98
pacer_worker_jobs{pool="http",slot="2"} 77
pacer_worker_jobs{pool="http",slot="3"} 75
# HELP pacer_jobs_total Jobs by outcome.
# TYPE pacer_jobs_total counter
pacer_jobs_total{pool="http",outcome="ok"} 367
pacer_jobs_total{pool="http",outcome="error"} 3
pacer_jobs_total{pool="http",outcome="timeout"} 0
pacer_jobs_total{pool="http",outcome="worker_died"} 0
pacer_jobs_total{pool="http",outcome="no_worker"} 2
# HELP pacer_worker_restarts_total Worker replacements by reason.
# TYPE pacer_worker_restarts_total counter
pacer_worker_restarts_total{pool="http",reason="max_jobs"} 1
pacer_worker_restarts_total{pool="http",reason="memory"} 0
# HELP pacer_no_free_workers_total Requests that found no free worker in time.
# TYPE pacer_no_free_workers_total counter
pacer_no_free_workers_total{pool="http"} 2
# HELP pacer_http_requests_total HTTP requests by status code.
# TYPE pacer_http_requests_total counter
pacer_http_requests_total{code="200"} 367
pacer_http_requests_total{code="503"} 2
# HELP pacer_worker_cpu_seconds_total CPU time the pool's workers used.
# TYPE pacer_worker_cpu_seconds_total counter
pacer_worker_cpu_seconds_total{pool="http"} 1.87
# HELP pacer_job_duration_seconds Time a worker spent on a job.
# TYPE pacer_job_duration_seconds histogram
pacer_job_duration_seconds_bucket{pool="http",le="0.005"} 100
pacer_job_duration_seconds_bucket{pool="http",le="0.01"} 300
pacer_job_duration_seconds_bucket{pool="http",le="+Inf"} 370
pacer_job_duration_seconds_sum{pool="http"} 3.7
pacer_job_duration_seconds_count{pool="http"} 370
# HELP pacer_queue_wait_seconds Time a request waited for a worker.
# TYPE pacer_queue_wait_seconds histogram
pacer_queue_wait_seconds_bucket{pool="http",le="+Inf"} 370
pacer_queue_wait_seconds_sum{pool="http"} 0.25
pacer_queue_wait_seconds_count{pool="http"} 370
# HELP pacer_worker_boot_seconds Time a worker took to boot.
# TYPE pacer_worker_boot_seconds histogram
pacer_worker_boot_seconds_bucket{pool="http",le="1"} 1
pacer_worker_boot_seconds_bucket{pool="http",le="2"} 4
pacer_worker_boot_seconds_bucket{pool="http",le="+Inf"} 5
pacer_worker_boot_seconds_sum{pool="http"} 7.25
pacer_worker_boot_seconds_count{pool="http"} 5
# HELP pacer_build_info Build information.
# TYPE pacer_build_info gauge
pacer_build_info{version="0.1.0",rustc="1.95.0"} 1
# HELP pacer_cgroup_memory_working_set_bytes Memory of the container's cgroup minus inactive file pages.
# TYPE pacer_cgroup_memory_working_set_bytes gauge
pacer_cgroup_memory_working_set_bytes 1.5e+08
# HELP pacer_cgroup_memory_limit_bytes Memory limit of the container's cgroup.
# TYPE pacer_cgroup_memory_limit_bytes gauge
pacer_cgroup_memory_limit_bytes 268435456
# HELP pacer_cgroup_oom_kills_total Processes the OOM killer killed.
# TYPE pacer_cgroup_oom_kills_total counter
pacer_cgroup_oom_kills_total 1
# HELP pacer_cgroup_cpu_periods_total CPU quota periods.
# TYPE pacer_cgroup_cpu_periods_total counter
pacer_cgroup_cpu_periods_total 1000
# HELP pacer_cgroup_cpu_throttled_periods_total Throttled CPU quota periods.
# TYPE pacer_cgroup_cpu_throttled_periods_total counter
pacer_cgroup_cpu_throttled_periods_total 250
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 1.2345344e+07
process_start_time_seconds 1.7e9
"#;

    #[test]
    fn parses_pacer_output() {
        let samples = parse(PACER_TEXT).unwrap();
        assert_eq!(samples.len(), 46);
        let m = PacerMetrics::from_samples(&samples).unwrap();
        assert_eq!(m.ready, 3.0);
        assert_eq!(m.working, 1.0);
        assert_eq!(m.target_workers, Some(4.0));
        assert_eq!(m.job_seconds_sum, 3.7);
        assert_eq!(m.job_count, 370.0);
        assert_eq!(m.queue_wait_sum, 0.25);
        assert_eq!(m.no_free_workers, 2.0);
        assert_eq!(m.slots.len(), 4);
        assert_eq!(m.slots["0"], (24_117_248.0, 120.0));
        assert_eq!(m.process_memory, Some(12_345_344.0));
        assert_eq!(m.worker_cpu_seconds, Some(1.87));
        assert_eq!(m.worker_boot_seconds_sum, Some(7.25));
        assert_eq!(m.worker_boot_count, Some(5.0));
        assert_eq!(m.working_set, Some(1.5e8));
        assert_eq!(m.memory_limit, Some(268_435_456.0));
        assert_eq!(m.oom_kills, Some(1.0));
        assert_eq!(m.start_time, Some(1.7e9));
        assert_eq!(m.cpu_periods, Some(1000.0));
        assert_eq!(m.cpu_throttled_periods, Some(250.0));
    }

    #[test]
    fn other_pools_and_foreign_text_are_ignored() {
        let text = "pacer_workers{pool=\"other\",state=\"working\"} 9\nup 1\n";
        assert_eq!(PacerMetrics::from_samples(&parse(text).unwrap()), None);
    }

    #[test]
    fn the_jobs_pool_is_kept_apart_from_the_http_pool() {
        let text = format!(
            "{PACER_TEXT}pacer_workers{{pool=\"jobs\",state=\"working\"}} 9\n\
             pacer_worker_memory_bytes{{pool=\"jobs\",slot=\"0\"}} 3e7\n\
             pacer_worker_memory_bytes{{pool=\"jobs\",slot=\"1\"}} 2e7\n"
        );
        let m = PacerMetrics::from_samples(&parse(&text).unwrap()).unwrap();
        assert_eq!(m.working, 1.0, "jobs workers are not HTTP workers");
        assert_eq!(m.slots.len(), 4);
        assert_eq!(m.jobs.unwrap().working, 9.0);
        // A jobs-only pod.
        let jobs_only = "pacer_workers{pool=\"jobs\",state=\"ready\"} 2\n";
        let m = PacerMetrics::from_samples(&parse(jobs_only).unwrap()).unwrap();
        assert_eq!((m.ready, m.working), (0.0, 0.0));
        assert!(m.jobs.is_some());
    }

    /// A pacer that predates the boot histogram reports no boots, not zero boots; another
    /// pool's boots are not the HTTP pool's.
    #[test]
    fn boots_are_absent_from_older_pacers_and_kept_per_pool() {
        let old = "pacer_workers{pool=\"http\",state=\"ready\"} 2\n";
        let m = PacerMetrics::from_samples(&parse(old).unwrap()).unwrap();
        assert_eq!(
            (m.worker_boot_seconds_sum, m.worker_boot_count),
            (None, None)
        );
        let text = format!(
            "{PACER_TEXT}pacer_worker_boot_seconds_sum{{pool=\"jobs\"}} 90\n\
             pacer_worker_boot_seconds_count{{pool=\"jobs\"}} 3\n"
        );
        let m = PacerMetrics::from_samples(&parse(&text).unwrap()).unwrap();
        assert_eq!(m.worker_boot_seconds_sum, Some(7.25));
        assert_eq!(m.worker_boot_count, Some(5.0));
    }

    /// Job time by worker age: both counters per `age` band of the HTTP pool; none from
    /// a pacer that predates them.
    #[test]
    fn worker_age_bands_are_read_per_band_of_the_http_pool() {
        let m = PacerMetrics::from_samples(&parse(PACER_TEXT).unwrap()).unwrap();
        assert!(m.worker_age.is_empty());
        let text = format!(
            "{PACER_TEXT}pacer_worker_age_job_seconds_total{{pool=\"http\",age=\"0-9\"}} 1.5\n\
             pacer_worker_age_jobs_total{{pool=\"http\",age=\"0-9\"}} 10\n\
             pacer_worker_age_job_seconds_total{{pool=\"http\",age=\"3000+\"}} 2.25\n\
             pacer_worker_age_jobs_total{{pool=\"http\",age=\"3000+\"}} 45\n\
             pacer_worker_age_jobs_total{{pool=\"jobs\",age=\"0-9\"}} 99\n"
        );
        let m = PacerMetrics::from_samples(&parse(&text).unwrap()).unwrap();
        assert_eq!(m.worker_age.len(), 2);
        assert_eq!(m.worker_age["0-9"], (1.5, 10.0));
        assert_eq!(m.worker_age["3000+"], (2.25, 45.0));
    }

    #[test]
    fn label_values_are_unescaped() {
        let s = parse(r#"m{a="x\"y",b="back\\slash",c="line\nbreak",} 1 1700000000000"#).unwrap();
        assert_eq!(s[0].label("a"), Some("x\"y"));
        assert_eq!(s[0].label("b"), Some("back\\slash"));
        assert_eq!(s[0].label("c"), Some("line\nbreak"));
        assert_eq!(s[0].value, 1.0);
    }

    #[test]
    fn special_values() {
        let s = parse("a +Inf\nb -Inf\nc NaN\nd 1e-3\n").unwrap();
        assert_eq!(s[0].value, f64::INFINITY);
        assert_eq!(s[1].value, f64::NEG_INFINITY);
        assert!(s[2].value.is_nan());
        assert_eq!(s[3].value, 0.001);
    }

    #[test]
    fn malformed_lines_are_reported_with_their_number() {
        let cases = [
            ("ok 1\nbad{a=\"x\" 1\n", 2),
            ("m{a=x} 1", 1),
            ("m 1 2 3", 1),
            ("m{a=\"x\"}", 1),
            ("9m 1", 1),
            ("m one", 1),
            ("m{a=\"\\q\"} 1", 1),
        ];
        for (text, line) in cases {
            let err = parse(text).unwrap_err();
            assert_eq!(err.line, line, "{text:?}: {err}");
        }
    }
}
