//! Application metrics: the collectors PHP code declares over RPC (`metrics.Declare`,
//! docs/wire-protocol.md §4.2) or the config's `metrics.collect` lists, with RoadRunner's
//! semantics:
//!
//! * a collector is known by its declared `name`; it is exported as
//!   `namespace_subsystem_name` (empty parts left out), like Prometheus' Go client;
//! * counters and gauges take `Add` (counters never decrease), gauges also `Sub` and
//!   `Set`; histograms and summaries take `Observe`;
//! * a collector declared with labels is a vector: every update names one value per
//!   label, in order. A collector without labels ignores labels sent with an update, as
//!   RoadRunner does;
//! * histograms without buckets get the Go client's default buckets;
//! * declaring an existing name again with the same definition is a no-op (`true`), with
//!   a different one an error whose text RoadRunner's PHP clients recognise.
//!
//! Summaries: quantiles are computed exactly over a sliding window of the most recent
//! [`SUMMARY_WINDOW_SAMPLES`] observations that are at most [`SUMMARY_MAX_AGE`] old (the
//! Go client's default max age). The declared error tolerances are accepted but not
//! needed — the estimate is exact within the window, and the window bounds memory.
//! `_sum` and `_count` cover every observation, as usual.
//!
//! Bounded: at most [`MAX_COLLECTORS`] collectors and [`MAX_SERIES`] label combinations
//! per collector, so a runaway label value cannot grow pacer without limit.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::time::Instant;

use super::text::{Kind, Text, format_value, is_label_name, is_metric_name};

/// The Go client's `prometheus.DefBuckets`.
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// How many recent observations a summary series keeps for its quantiles.
pub const SUMMARY_WINDOW_SAMPLES: usize = 2048;
/// How old an observation may be and still count for a summary's quantiles.
pub const SUMMARY_MAX_AGE: Duration = Duration::from_secs(600);
/// Label combinations one collector may have.
pub const MAX_SERIES: usize = 10_000;
/// Collectors the registry holds.
pub const MAX_COLLECTORS: usize = 1_000;

/// Why a metrics call was refused. The texts follow RoadRunner's where PHP clients
/// look at them (`tried to register existing collector`, `undefined collector`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AppMetricsError {
    #[error("undefined collector {0}, try first Declare the desired collector")]
    Undefined(String),
    #[error(
        "tried to register existing collector with the name `{0}` (declared before with a different definition)"
    )]
    Exists(String),
    #[error("unknown collector type {0:?}; expected counter, gauge, histogram or summary")]
    UnknownType(String),
    #[error("invalid collector `{name}`: {reason}")]
    Invalid { name: String, reason: String },
    #[error("collector `{name}` does not support method `{method}`")]
    Unsupported { name: String, method: &'static str },
    #[error("required labels for collector `{0}`")]
    LabelsRequired(String),
    #[error(
        "inconsistent label cardinality for collector `{name}`: expected {expected} label values but got {got} in {values:?}"
    )]
    Cardinality {
        name: String,
        expected: usize,
        got: usize,
        values: Vec<String>,
    },
    #[error("counter `{name}` cannot decrease in value (got {value})")]
    CounterDecrease { name: String, value: f64 },
    #[error("collector `{name}` has too many label combinations (limit {limit})")]
    TooManySeries { name: String, limit: usize },
    #[error("too many collectors (limit {0})")]
    TooManyCollectors(usize),
}

/// A collector definition as `metrics.Declare` carries it in `collector` (and as
/// `metrics.collect.<name>` holds it in the config). `null`s count as empty.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct CollectorSpec {
    #[serde(default, deserialize_with = "null_default")]
    pub namespace: String,
    #[serde(default, deserialize_with = "null_default")]
    pub subsystem: String,
    /// `counter`, `gauge`, `histogram` or `summary`.
    #[serde(rename = "type", default, deserialize_with = "null_default")]
    pub kind: String,
    #[serde(default, deserialize_with = "null_default")]
    pub help: String,
    #[serde(default, deserialize_with = "null_default")]
    pub labels: Vec<String>,
    /// Histogram bucket upper bounds; empty = [`DEFAULT_BUCKETS`].
    #[serde(default, deserialize_with = "null_default")]
    pub buckets: Vec<f64>,
    /// Summary quantiles (`"0.5"`) → allowed error. Also read from RoadRunner's YAML
    /// shape, a list of one-entry maps with numeric keys (`[{0.5: 0.05}, {0.9: 0.01}]`).
    #[serde(default, deserialize_with = "objectives")]
    pub objectives: BTreeMap<String, f64>,
}

/// Deserializes summary objectives from a map or a list of maps, with string or
/// numeric quantile keys; `null` is none.
fn objectives<'de, D>(d: D) -> Result<BTreeMap<String, f64>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::{Deserialize, MapAccess, SeqAccess, Visitor};

    /// A quantile key: `"0.5"` or `0.5`.
    struct Quantile(String);

    impl<'de> Deserialize<'de> for Quantile {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Key;
            impl Visitor<'_> for Key {
                type Value = Quantile;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a quantile such as 0.5")
                }
                fn visit_str<E>(self, v: &str) -> Result<Quantile, E> {
                    Ok(Quantile(v.to_string()))
                }
                fn visit_f64<E>(self, v: f64) -> Result<Quantile, E> {
                    Ok(Quantile(format_value(v)))
                }
                fn visit_u64<E>(self, v: u64) -> Result<Quantile, E> {
                    Ok(Quantile(v.to_string()))
                }
                fn visit_i64<E>(self, v: i64) -> Result<Quantile, E> {
                    Ok(Quantile(v.to_string()))
                }
            }
            d.deserialize_any(Key)
        }
    }

    struct Objectives;

    impl<'de> Visitor<'de> for Objectives {
        type Value = BTreeMap<String, f64>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a map of quantile to allowed error, or a list of such maps")
        }

        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(BTreeMap::new())
        }

        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(BTreeMap::new())
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((Quantile(q), error)) = map.next_entry::<Quantile, f64>()? {
                out.insert(q, error);
            }
            Ok(out)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            struct One(BTreeMap<String, f64>);
            impl<'de> Deserialize<'de> for One {
                fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                    d.deserialize_any(Objectives).map(One)
                }
            }
            let mut out = BTreeMap::new();
            while let Some(One(part)) = seq.next_element::<One>()? {
                out.extend(part);
            }
            Ok(out)
        }
    }

    d.deserialize_any(Objectives)
}

fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + serde::Deserialize<'de>,
{
    use serde::Deserialize;
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The validated form of a [`CollectorSpec`].
#[derive(Clone, Debug, PartialEq)]
enum Shape {
    Counter,
    Gauge,
    Histogram { bounds: Vec<f64> },
    Summary { quantiles: Vec<f64> },
}

#[derive(Debug)]
struct Collector {
    spec: CollectorSpec,
    full_name: String,
    shape: Shape,
    series: Mutex<BTreeMap<Vec<String>, Series>>,
}

#[derive(Clone, Debug)]
enum Series {
    Value(f64),
    Histogram {
        /// Non-cumulative; the last one is +Inf.
        counts: Vec<u64>,
        sum: f64,
        count: u64,
    },
    Summary {
        window: VecDeque<(Instant, f64)>,
        sum: f64,
        count: u64,
    },
}

impl Series {
    fn new(shape: &Shape) -> Series {
        match shape {
            Shape::Counter | Shape::Gauge => Series::Value(0.0),
            Shape::Histogram { bounds } => Series::Histogram {
                counts: vec![0; bounds.len() + 1],
                sum: 0.0,
                count: 0,
            },
            Shape::Summary { .. } => Series::Summary {
                window: VecDeque::new(),
                sum: 0.0,
                count: 0,
            },
        }
    }
}

/// What an update does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Add,
    Sub,
    Set,
    Observe,
}

impl Op {
    fn method(self) -> &'static str {
        match self {
            Op::Add => "Add",
            Op::Sub => "Sub",
            Op::Set => "Set",
            Op::Observe => "Observe",
        }
    }
}

/// The registry of application metrics. Cheap to share (`Arc`); every call takes a
/// short lock and does no I/O.
#[derive(Debug, Default)]
pub struct AppMetrics {
    collectors: RwLock<BTreeMap<String, Arc<Collector>>>,
    /// Exported names nobody may declare (pacer's own families).
    reserved: Vec<&'static str>,
}

impl AppMetrics {
    /// An empty registry that refuses names of pacer's own metrics (and the `pacer_`
    /// prefix).
    pub fn new() -> AppMetrics {
        AppMetrics {
            collectors: RwLock::new(BTreeMap::new()),
            reserved: super::FAMILIES.to_vec(),
        }
    }

    /// Declares a collector. Returns `Ok(false)` when the same definition existed already.
    pub fn declare(&self, name: &str, spec: CollectorSpec) -> Result<bool, AppMetricsError> {
        let invalid = |reason: String| AppMetricsError::Invalid {
            name: name.to_string(),
            reason,
        };
        let shape = match spec.kind.as_str() {
            "counter" => Shape::Counter,
            "gauge" => Shape::Gauge,
            "histogram" => Shape::Histogram {
                bounds: histogram_bounds(&spec.buckets).map_err(invalid)?,
            },
            "summary" => Shape::Summary {
                quantiles: summary_quantiles(&spec.objectives).map_err(invalid)?,
            },
            other => return Err(AppMetricsError::UnknownType(other.to_string())),
        };
        let full_name = [spec.namespace.as_str(), spec.subsystem.as_str(), name]
            .iter()
            .filter(|p| !p.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("_");
        if !is_metric_name(&full_name) {
            return Err(invalid(format!(
                "{full_name:?} is not a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)"
            )));
        }
        if full_name.starts_with("pacer_") || self.reserved.contains(&full_name.as_str()) {
            return Err(invalid(format!(
                "{full_name} is reserved for pacer's own metrics"
            )));
        }
        for (i, label) in spec.labels.iter().enumerate() {
            if !is_label_name(label) {
                return Err(invalid(format!(
                    "{label:?} is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*, not __-prefixed)"
                )));
            }
            if spec.labels[..i].contains(label) {
                return Err(invalid(format!("label {label:?} is declared twice")));
            }
            let reserved = match shape {
                Shape::Histogram { .. } => "le",
                Shape::Summary { .. } => "quantile",
                _ => "",
            };
            if label == reserved {
                return Err(invalid(format!(
                    "label {label:?} is reserved for {}s",
                    spec.kind
                )));
            }
        }

        let mut collectors = self.collectors.write();
        if let Some(existing) = collectors.get(name) {
            return if existing.spec == spec {
                Ok(false)
            } else {
                Err(AppMetricsError::Exists(name.to_string()))
            };
        }
        if let Some(other) = collectors.values().find(|c| c.full_name == full_name) {
            return Err(invalid(format!(
                "{full_name} is already exported by another collector ({})",
                other.full_name
            )));
        }
        if collectors.len() >= MAX_COLLECTORS {
            return Err(AppMetricsError::TooManyCollectors(MAX_COLLECTORS));
        }
        let mut series = BTreeMap::new();
        if spec.labels.is_empty() {
            // A collector without labels is exported (at zero) from its declaration on.
            series.insert(Vec::new(), Series::new(&shape));
        }
        collectors.insert(
            name.to_string(),
            Arc::new(Collector {
                spec,
                full_name,
                shape,
                series: Mutex::new(series),
            }),
        );
        Ok(true)
    }

    /// `metrics.Add`: counters and gauges.
    pub fn add(&self, name: &str, value: f64, labels: &[String]) -> Result<(), AppMetricsError> {
        self.update(name, Op::Add, value, labels, Instant::now())
    }

    /// `metrics.Sub`: gauges.
    pub fn sub(&self, name: &str, value: f64, labels: &[String]) -> Result<(), AppMetricsError> {
        self.update(name, Op::Sub, value, labels, Instant::now())
    }

    /// `metrics.Set`: gauges.
    pub fn set(&self, name: &str, value: f64, labels: &[String]) -> Result<(), AppMetricsError> {
        self.update(name, Op::Set, value, labels, Instant::now())
    }

    /// `metrics.Observe`: histograms and summaries.
    pub fn observe(
        &self,
        name: &str,
        value: f64,
        labels: &[String],
    ) -> Result<(), AppMetricsError> {
        self.update(name, Op::Observe, value, labels, Instant::now())
    }

    /// `metrics.Unregister`.
    pub fn unregister(&self, name: &str) -> Result<(), AppMetricsError> {
        match self.collectors.write().remove(name) {
            Some(_) => Ok(()),
            None => Err(AppMetricsError::Undefined(name.to_string())),
        }
    }

    /// Declared names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.collectors.read().keys().cloned().collect()
    }

    fn update(
        &self,
        name: &str,
        op: Op,
        value: f64,
        labels: &[String],
        now: Instant,
    ) -> Result<(), AppMetricsError> {
        let collector = self
            .collectors
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| AppMetricsError::Undefined(name.to_string()))?;
        let supported = match collector.shape {
            Shape::Counter => op == Op::Add,
            Shape::Gauge => op != Op::Observe,
            Shape::Histogram { .. } | Shape::Summary { .. } => op == Op::Observe,
        };
        if !supported {
            return Err(AppMetricsError::Unsupported {
                name: name.to_string(),
                method: op.method(),
            });
        }
        if collector.shape == Shape::Counter && value < 0.0 {
            return Err(AppMetricsError::CounterDecrease {
                name: name.to_string(),
                value,
            });
        }
        let expected = collector.spec.labels.len();
        let key: &[String] = if expected == 0 {
            &[]
        } else if labels.is_empty() {
            return Err(AppMetricsError::LabelsRequired(name.to_string()));
        } else if labels.len() != expected {
            return Err(AppMetricsError::Cardinality {
                name: name.to_string(),
                expected,
                got: labels.len(),
                values: labels.to_vec(),
            });
        } else {
            labels
        };

        let mut series = collector.series.lock();
        if !series.contains_key(key) && series.len() >= MAX_SERIES {
            return Err(AppMetricsError::TooManySeries {
                name: name.to_string(),
                limit: MAX_SERIES,
            });
        }
        let s = series
            .entry(key.to_vec())
            .or_insert_with(|| Series::new(&collector.shape));
        match (s, &collector.shape) {
            (Series::Value(v), _) => match op {
                Op::Add => *v += value,
                Op::Sub => *v -= value,
                Op::Set => *v = value,
                Op::Observe => {}
            },
            (Series::Histogram { counts, sum, count }, Shape::Histogram { bounds }) => {
                let i = bounds
                    .iter()
                    .position(|b| value <= *b)
                    .unwrap_or(bounds.len());
                counts[i] += 1;
                *sum += value;
                *count += 1;
            }
            (Series::Summary { window, sum, count }, _) => {
                window.push_back((now, value));
                trim_window(window, now);
                *sum += value;
                *count += 1;
            }
            _ => {}
        }
        Ok(())
    }

    /// Appends every collector with at least one series to `out`.
    pub(crate) fn render(&self, out: &mut Text, now: Instant) {
        let collectors: Vec<Arc<Collector>> = self.collectors.read().values().cloned().collect();
        for c in collectors {
            let mut series = c.series.lock();
            if series.is_empty() {
                continue;
            }
            let kind = match c.shape {
                Shape::Counter => Kind::Counter,
                Shape::Gauge => Kind::Gauge,
                Shape::Histogram { .. } => Kind::Histogram,
                Shape::Summary { .. } => Kind::Summary,
            };
            out.family(&c.full_name, &c.spec.help, kind);
            for (values, s) in series.iter_mut() {
                let labels: Vec<(&str, &str)> = c
                    .spec
                    .labels
                    .iter()
                    .map(String::as_str)
                    .zip(values.iter().map(String::as_str))
                    .collect();
                match (s, &c.shape) {
                    (Series::Value(v), _) => out.sample(&c.full_name, &labels, *v),
                    (Series::Histogram { counts, sum, count }, Shape::Histogram { bounds }) => {
                        let mut cumulative = 0;
                        let buckets = bounds
                            .iter()
                            .copied()
                            .chain([f64::INFINITY])
                            .zip(counts.iter())
                            .map(|(b, n)| {
                                cumulative += n;
                                (b, cumulative)
                            })
                            .collect();
                        out.histogram(
                            &c.full_name,
                            &labels,
                            &crate::stats::HistogramSnapshot {
                                buckets,
                                sum_seconds: *sum,
                                count: *count,
                            },
                        );
                    }
                    (Series::Summary { window, sum, count }, Shape::Summary { quantiles }) => {
                        trim_window(window, now);
                        let mut values: Vec<f64> = window.iter().map(|(_, v)| *v).collect();
                        values.sort_by(f64::total_cmp);
                        for q in quantiles {
                            let qs = format_value(*q);
                            let mut with_q = labels.clone();
                            with_q.push(("quantile", &qs));
                            out.sample(&c.full_name, &with_q, nearest_rank(&values, *q));
                        }
                        out.sample(&format!("{}_sum", c.full_name), &labels, *sum);
                        out.sample_u64(&format!("{}_count", c.full_name), &labels, *count);
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Drops observations beyond the window's size or age.
fn trim_window(window: &mut VecDeque<(Instant, f64)>, now: Instant) {
    while window.len() > SUMMARY_WINDOW_SAMPLES {
        window.pop_front();
    }
    while window
        .front()
        .is_some_and(|(t, _)| now.saturating_duration_since(*t) > SUMMARY_MAX_AGE)
    {
        window.pop_front();
    }
}

/// The `q` quantile of sorted `values` by the nearest-rank method; NaN when empty (as
/// the Go client reports a summary without observations).
fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn histogram_bounds(buckets: &[f64]) -> Result<Vec<f64>, String> {
    let mut bounds: Vec<f64> = if buckets.is_empty() {
        DEFAULT_BUCKETS.to_vec()
    } else {
        buckets.to_vec()
    };
    // +Inf is implicit.
    if bounds.last().is_some_and(|b| *b == f64::INFINITY) {
        bounds.pop();
    }
    if bounds.iter().any(|b| b.is_nan()) {
        return Err("histogram buckets must be numbers".into());
    }
    if bounds.windows(2).any(|w| w[0] >= w[1]) {
        return Err(format!(
            "histogram buckets must be in increasing order, got {buckets:?}"
        ));
    }
    Ok(bounds)
}

fn summary_quantiles(objectives: &BTreeMap<String, f64>) -> Result<Vec<f64>, String> {
    let mut quantiles = Vec::with_capacity(objectives.len());
    for (q, error) in objectives {
        let quantile: f64 = q
            .trim()
            .parse()
            .map_err(|_| format!("summary objective {q:?} is not a number"))?;
        if !(0.0..=1.0).contains(&quantile) {
            return Err(format!("summary objective {q} is outside 0..1"));
        }
        if !(0.0..1.0).contains(error) {
            return Err(format!(
                "summary objective {q} has an allowed error of {error}, outside 0..1"
            ));
        }
        quantiles.push(quantile);
    }
    quantiles.sort_by(f64::total_cmp);
    quantiles.dedup();
    Ok(quantiles)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: &str) -> CollectorSpec {
        CollectorSpec {
            kind: kind.into(),
            help: "h".into(),
            ..Default::default()
        }
    }

    fn labels(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn render(m: &AppMetrics, now: Instant) -> String {
        let mut t = Text::default();
        m.render(&mut t, now);
        t.finish()
    }

    #[test]
    fn spec_parses_roadrunner_declare_payloads_with_nulls() {
        let s: CollectorSpec = serde_json::from_str(
            r#"{"namespace":"shop","subsystem":"","type":"summary","help":"x","labels":null,"buckets":null,"objectives":{"0.5":0.05,"0.99":0.001}}"#,
        )
        .unwrap();
        assert_eq!(s.namespace, "shop");
        assert!(s.labels.is_empty() && s.buckets.is_empty());
        assert_eq!(s.objectives.len(), 2);
    }

    #[test]
    fn objectives_parse_in_roadrunner_yaml_shape_too() {
        let list: CollectorSpec =
            serde_json::from_str(r#"{"type":"summary","objectives":[{"0.5":0.05},{"0.9":0.01}]}"#)
                .unwrap();
        let map: CollectorSpec =
            serde_json::from_str(r#"{"type":"summary","objectives":{"0.5":0.05,"0.9":0.01}}"#)
                .unwrap();
        assert_eq!(list.objectives, map.objectives);
        // Numeric keys, as YAML gives them.
        use serde::de::IntoDeserializer;
        let numeric: serde::de::value::MapDeserializer<'_, _, serde::de::value::Error> =
            serde::de::value::MapDeserializer::new(
                vec![
                    (0.5f64.into_deserializer(), 0.05f64),
                    (0.9f64.into_deserializer(), 0.01),
                ]
                .into_iter(),
            );
        assert_eq!(objectives(numeric).unwrap(), map.objectives);
        assert!(
            serde_json::from_str::<CollectorSpec>(r#"{"objectives":null}"#)
                .unwrap()
                .objectives
                .is_empty()
        );
        assert!(serde_json::from_str::<CollectorSpec>(r#"{"objectives":"x"}"#).is_err());
    }

    #[test]
    fn names_are_prefixed_and_scalar_collectors_start_at_zero() {
        let m = AppMetrics::new();
        let mut s = spec("counter");
        s.namespace = "shop".into();
        s.subsystem = "web".into();
        assert!(m.declare("orders_total", s).unwrap());
        let text = render(&m, Instant::now());
        assert!(
            text.contains("# TYPE shop_web_orders_total counter\n"),
            "{text}"
        );
        assert!(text.contains("\nshop_web_orders_total 0\n"), "{text}");
    }

    #[test]
    fn redeclaring_is_idempotent_but_a_conflict_is_an_error() {
        let m = AppMetrics::new();
        assert!(m.declare("g", spec("gauge")).unwrap());
        assert!(!m.declare("g", spec("gauge")).unwrap());
        let err = m.declare("g", spec("counter")).unwrap_err();
        assert!(
            err.to_string()
                .contains("tried to register existing collector"),
            "{err}"
        );
    }

    #[test]
    fn declarations_are_validated() {
        let m = AppMetrics::new();
        assert!(matches!(
            m.declare("x", spec("meter")),
            Err(AppMetricsError::UnknownType(_))
        ));
        assert!(m.declare("1x", spec("gauge")).is_err());
        assert!(m.declare("pacer_jobs_total", spec("counter")).is_err());
        assert!(m.declare("process_open_fds", spec("gauge")).is_err());
        let mut s = spec("histogram");
        s.labels = labels(&["le"]);
        assert!(m.declare("h", s).is_err());
        let mut s = spec("histogram");
        s.buckets = vec![1.0, 0.5];
        assert!(m.declare("h", s).is_err());
        let mut s = spec("summary");
        s.objectives.insert("1.5".into(), 0.01);
        assert!(m.declare("s", s).is_err());
        let mut s = spec("gauge");
        s.labels = labels(&["a", "a"]);
        assert!(m.declare("g", s).is_err());
        // Same exported name through namespace.
        m.declare("a_b", spec("gauge")).unwrap();
        let mut s = spec("gauge");
        s.namespace = "a".into();
        assert!(m.declare("b", s).is_err());
    }

    #[test]
    fn updates_follow_roadrunner_rules() {
        let m = AppMetrics::new();
        let mut c = spec("counter");
        c.labels = labels(&["channel"]);
        m.declare("orders_total", c).unwrap();
        m.declare("queue", spec("gauge")).unwrap();

        m.add("orders_total", 2.0, &labels(&["web"])).unwrap();
        m.add("orders_total", 1.0, &labels(&["web"])).unwrap();
        assert_eq!(
            m.add("orders_total", 1.0, &[]),
            Err(AppMetricsError::LabelsRequired("orders_total".into()))
        );
        assert!(matches!(
            m.add("orders_total", 1.0, &labels(&["a", "b"])),
            Err(AppMetricsError::Cardinality {
                expected: 1,
                got: 2,
                ..
            })
        ));
        assert!(matches!(
            m.add("orders_total", -1.0, &labels(&["web"])),
            Err(AppMetricsError::CounterDecrease { .. })
        ));
        assert!(matches!(
            m.sub("orders_total", 1.0, &labels(&["web"])),
            Err(AppMetricsError::Unsupported { method: "Sub", .. })
        ));
        assert!(matches!(
            m.observe("queue", 1.0, &[]),
            Err(AppMetricsError::Unsupported {
                method: "Observe",
                ..
            })
        ));
        assert_eq!(
            m.set("nope", 1.0, &[]).unwrap_err().to_string(),
            "undefined collector nope, try first Declare the desired collector"
        );

        m.set("queue", 7.0, &[]).unwrap();
        m.sub("queue", 2.5, &[]).unwrap();
        // Labels on a collector without labels are ignored, like RoadRunner.
        m.add("queue", 1.0, &labels(&["ignored"])).unwrap();
        let text = render(&m, Instant::now());
        assert!(text.contains("orders_total{channel=\"web\"} 3\n"), "{text}");
        assert!(text.contains("\nqueue 5.5\n"), "{text}");

        m.unregister("queue").unwrap();
        assert!(m.unregister("queue").is_err());
        assert!(!render(&m, Instant::now()).contains("queue"));
    }

    #[test]
    fn histograms_are_cumulative_with_default_buckets() {
        let m = AppMetrics::new();
        m.declare("latency_seconds", spec("histogram")).unwrap();
        for v in [0.001, 0.3, 0.3, 100.0] {
            m.observe("latency_seconds", v, &[]).unwrap();
        }
        let text = render(&m, Instant::now());
        assert!(
            text.contains("latency_seconds_bucket{le=\"0.005\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("latency_seconds_bucket{le=\"0.5\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("latency_seconds_bucket{le=\"10\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("latency_seconds_bucket{le=\"+Inf\"} 4\n"),
            "{text}"
        );
        assert!(text.contains("latency_seconds_sum 100.601\n"), "{text}");
        assert!(text.contains("latency_seconds_count 4\n"), "{text}");
    }

    #[test]
    fn summary_quantiles_cover_a_sliding_window() {
        let m = AppMetrics::new();
        let mut s = spec("summary");
        s.objectives.insert("0.5".into(), 0.05);
        s.objectives.insert("0.9".into(), 0.01);
        s.labels = labels(&["op"]);
        m.declare("size_bytes", s).unwrap();
        let t0 = Instant::now();
        for v in 1..=100 {
            m.update("size_bytes", Op::Observe, v as f64, &labels(&["read"]), t0)
                .unwrap();
        }
        let text = render(&m, t0);
        assert!(
            text.contains("size_bytes{op=\"read\",quantile=\"0.5\"} 50\n"),
            "{text}"
        );
        assert!(
            text.contains("size_bytes{op=\"read\",quantile=\"0.9\"} 90\n"),
            "{text}"
        );
        assert!(
            text.contains("size_bytes_count{op=\"read\"} 100\n"),
            "{text}"
        );

        // Eleven minutes later the window is empty; sum and count remain.
        let later = t0 + Duration::from_secs(660);
        let text = render(&m, later);
        assert!(
            text.contains("size_bytes{op=\"read\",quantile=\"0.5\"} NaN\n"),
            "{text}"
        );
        assert!(
            text.contains("size_bytes_sum{op=\"read\"} 5050\n"),
            "{text}"
        );
    }

    #[test]
    fn summary_window_is_bounded_in_size() {
        let m = AppMetrics::new();
        let mut s = spec("summary");
        s.objectives.insert("0.5".into(), 0.05);
        m.declare("s", s).unwrap();
        let now = Instant::now();
        for v in 0..(SUMMARY_WINDOW_SAMPLES * 2) {
            m.update("s", Op::Observe, v as f64, &[], now).unwrap();
        }
        let c = m.collectors.read().get("s").cloned().unwrap();
        match c.series.lock().get(&Vec::new()).unwrap() {
            Series::Summary { window, count, .. } => {
                assert_eq!(window.len(), SUMMARY_WINDOW_SAMPLES);
                assert_eq!(*count as usize, SUMMARY_WINDOW_SAMPLES * 2);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn series_per_collector_are_bounded() {
        let m = AppMetrics::new();
        let mut s = spec("gauge");
        s.labels = labels(&["id"]);
        m.declare("g", s).unwrap();
        for i in 0..MAX_SERIES {
            m.set("g", 1.0, &[i.to_string()]).unwrap();
        }
        assert!(matches!(
            m.set("g", 1.0, &["one more".to_string()]),
            Err(AppMetricsError::TooManySeries { .. })
        ));
        // Existing series still update.
        m.set("g", 2.0, &["0".to_string()]).unwrap();
    }
}
