//! A writer for the Prometheus text exposition format, version 0.0.4: `# HELP` and
//! `# TYPE` lines, samples with escaped label values, and Go-compatible number
//! formatting (`+Inf`, `-Inf`, `NaN`). Pure: it only appends to a `String`.

use std::fmt::Write as _;

use crate::stats::HistogramSnapshot;

/// The metric types of the text format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    Summary,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
            Kind::Summary => "summary",
        }
    }
}

/// Accumulates one exposition.
#[derive(Debug, Default)]
pub struct Text {
    out: String,
}

impl Text {
    pub fn with_capacity(n: usize) -> Text {
        Text {
            out: String::with_capacity(n),
        }
    }

    pub fn finish(self) -> String {
        self.out
    }

    /// Starts a metric family: its HELP and TYPE lines.
    pub fn family(&mut self, name: &str, help: &str, kind: Kind) {
        self.out.push_str("# HELP ");
        self.out.push_str(name);
        self.out.push(' ');
        escape_into(&mut self.out, help, false);
        self.out.push_str("\n# TYPE ");
        self.out.push_str(name);
        self.out.push(' ');
        self.out.push_str(kind.as_str());
        self.out.push('\n');
    }

    /// One sample line: `name{labels} value`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.name_and_labels(name, labels);
        push_value(&mut self.out, value);
        self.out.push('\n');
    }

    /// One sample line with an integer value (exact beyond 2^53).
    pub fn sample_u64(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.name_and_labels(name, labels);
        let _ = write!(self.out, "{value}");
        self.out.push('\n');
    }

    /// The `_bucket`, `_sum` and `_count` lines of one histogram series. `buckets` are
    /// `(upper bound, cumulative count)` and must end with `+Inf`.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &HistogramSnapshot) {
        let bucket = format!("{name}_bucket");
        for (bound, count) in &h.buckets {
            let le = format_value(*bound);
            let mut with_le: Vec<(&str, &str)> = Vec::with_capacity(labels.len() + 1);
            with_le.extend_from_slice(labels);
            with_le.push(("le", &le));
            self.sample_u64(&bucket, &with_le, *count);
        }
        self.sample(&format!("{name}_sum"), labels, h.sum_seconds);
        self.sample_u64(&format!("{name}_count"), labels, h.count);
    }

    fn name_and_labels(&mut self, name: &str, labels: &[(&str, &str)]) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                escape_into(&mut self.out, v, true);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
    }
}

/// Escapes `\` and newlines (HELP text), and `"` too in label values.
fn escape_into(out: &mut String, s: &str, quote: bool) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

fn push_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        // Rust prints the shortest representation that round-trips, like Go's 'g', -1.
        let _ = write!(out, "{v}");
    }
}

/// A sample value or bucket bound as the text format writes it.
pub fn format_value(v: f64) -> String {
    let mut s = String::new();
    push_value(&mut s, v);
    s
}

/// Whether `name` is a valid metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
pub fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Whether `name` is a valid label name (`[a-zA-Z_][a-zA-Z0-9_]*`, not `__`-prefixed,
/// which Prometheus reserves).
pub fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_formatted_like_go() {
        assert_eq!(format_value(1.0), "1");
        assert_eq!(format_value(0.005), "0.005");
        assert_eq!(format_value(-2.5), "-2.5");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(1e21).parse::<f64>().unwrap(), 1e21);
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut t = Text::default();
        t.family("x_total", "a \\ help\nline with \"quotes\"", Kind::Counter);
        t.sample("x_total", &[("path", "C:\\dir\n\"q\"")], 3.0);
        assert_eq!(
            t.finish(),
            "# HELP x_total a \\\\ help\\nline with \"quotes\"\n# TYPE x_total counter\n\
             x_total{path=\"C:\\\\dir\\n\\\"q\\\"\"} 3\n"
        );
    }

    #[test]
    fn histogram_lines_end_with_inf_sum_and_count() {
        let mut t = Text::default();
        t.histogram(
            "d_seconds",
            &[("pool", "http")],
            &HistogramSnapshot {
                buckets: vec![(0.5, 1), (1.0, 2), (f64::INFINITY, 3)],
                sum_seconds: 2.25,
                count: 3,
            },
        );
        assert_eq!(
            t.finish(),
            "d_seconds_bucket{pool=\"http\",le=\"0.5\"} 1\n\
             d_seconds_bucket{pool=\"http\",le=\"1\"} 2\n\
             d_seconds_bucket{pool=\"http\",le=\"+Inf\"} 3\n\
             d_seconds_sum{pool=\"http\"} 2.25\n\
             d_seconds_count{pool=\"http\"} 3\n"
        );
    }

    #[test]
    fn names_are_validated() {
        for ok in ["a", "shop_orders_total", ":x", "_a1"] {
            assert!(is_metric_name(ok), "{ok}");
        }
        for bad in ["", "1a", "a-b", "a b", "ä"] {
            assert!(!is_metric_name(bad), "{bad}");
        }
        assert!(is_label_name("channel") && is_label_name("_x"));
        assert!(!is_label_name("__name__") && !is_label_name("a:b") && !is_label_name("9"));
    }
}
