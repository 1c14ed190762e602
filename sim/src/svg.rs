//! The picture of a run: stacked panels over time (traffic, workers per pod, pods, memory,
//! queue wait p99 against the SLO, max_jobs), the trace's events shaded, OOM kills marked.
//! Plain SVG, written by hand (a few polylines need no plotting library).

use std::fmt::Write as _;

use crate::app::MIB;
use crate::record::Minute;
use crate::run::Run;
use crate::score::Score;
use crate::trace::HOUR;

const WIDTH: f64 = 1400.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 150.0;
const PANEL: f64 = 130.0;
const GAP: f64 = 34.0;
const TOP: f64 = 64.0;

#[derive(Clone, Copy)]
enum Agg {
    Mean,
    Max,
}

struct Series {
    name: &'static str,
    color: &'static str,
    dashed: bool,
    agg: Agg,
    value: fn(&Minute) -> f64,
}

struct Panel {
    title: &'static str,
    log: bool,
    series: Vec<Series>,
    /// A horizontal reference line (value, label).
    line: Option<(f64, String)>,
    /// Mark OOM kills.
    ooms: bool,
}

fn panels(run: &Run) -> Vec<Panel> {
    vec![
        Panel {
            title: "traffic (requests/s)",
            log: false,
            series: vec![Series {
                name: "arrivals",
                color: "#555",
                dashed: false,
                agg: Agg::Mean,
                value: |m| m.rate,
            }],
            line: None,
            ooms: false,
        },
        Panel {
            title: "workers per pod",
            log: false,
            series: vec![
                Series {
                    name: "decided",
                    color: "#1f77b4",
                    dashed: false,
                    agg: Agg::Max,
                    value: |m| m.workers,
                },
                Series {
                    name: "delivered (mean)",
                    color: "#ff7f0e",
                    dashed: true,
                    agg: Agg::Max,
                    value: |m| m.delivered,
                },
            ],
            line: None,
            ooms: false,
        },
        Panel {
            title: "pods",
            log: false,
            series: vec![
                Series {
                    name: "replicas",
                    color: "#2ca02c",
                    dashed: false,
                    agg: Agg::Max,
                    value: |m| m.pods,
                },
                Series {
                    name: "ready",
                    color: "#98df8a",
                    dashed: true,
                    agg: Agg::Max,
                    value: |m| m.ready,
                },
            ],
            line: None,
            ooms: false,
        },
        Panel {
            title: "memory per pod (MiB)",
            log: false,
            series: vec![
                Series {
                    name: "limit decided",
                    color: "#9467bd",
                    dashed: false,
                    agg: Agg::Max,
                    value: |m| m.memory_limit / MIB,
                },
                Series {
                    name: "limit in force (max)",
                    color: "#c5b0d5",
                    dashed: true,
                    agg: Agg::Max,
                    value: |m| m.memory_in_force / MIB,
                },
                Series {
                    name: "working set (max)",
                    color: "#8c564b",
                    dashed: false,
                    agg: Agg::Max,
                    value: |m| m.working_set / MIB,
                },
            ],
            line: None,
            ooms: true,
        },
        Panel {
            title: "queue wait p99 (s, log)",
            log: true,
            series: vec![Series {
                name: "p99 wait",
                color: "#d62728",
                dashed: false,
                agg: Agg::Max,
                value: |m| m.p99,
            }],
            line: Some((
                run.trace.slo_wait,
                format!("SLO {} ms", run.trace.slo_wait * 1000.0),
            )),
            ooms: false,
        },
        Panel {
            title: "max_jobs",
            log: false,
            series: vec![Series {
                name: "max_jobs",
                color: "#17becf",
                dashed: false,
                agg: Agg::Max,
                value: |m| m.max_jobs,
            }],
            line: None,
            ooms: false,
        },
    ]
}

fn bucket(minutes: &[Minute]) -> usize {
    let pixels = (WIDTH - LEFT - RIGHT) as usize;
    minutes.len().div_ceil(pixels).max(1)
}

fn aggregate(minutes: &[Minute], k: usize, s: &Series) -> Vec<f64> {
    minutes
        .chunks(k)
        .map(|chunk| {
            let values = chunk.iter().map(s.value);
            match s.agg {
                Agg::Max => values.fold(f64::NEG_INFINITY, f64::max),
                Agg::Mean => values.sum::<f64>() / chunk.len() as f64,
            }
        })
        .collect()
}

fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let e = 10f64.powf(v.log10().floor());
    for m in [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0] {
        if m * e >= v {
            return m * e;
        }
    }
    10.0 * e
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The SVG document of a run.
#[must_use]
pub fn render(run: &Run, score: &Score) -> String {
    let minutes = &run.minutes;
    let panels = panels(run);
    let height = TOP + panels.len() as f64 * (PANEL + GAP) + 20.0;
    let plot_w = WIDTH - LEFT - RIGHT;
    let duration = run.trace.duration.max(1.0);
    let x = |t: f64| LEFT + plot_w * (t / duration).clamp(0.0, 1.0);
    let k = bucket(minutes);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="22" font-size="15" font-weight="bold">{} — {}</text>"#,
        esc(run.trace.name),
        esc(run.trace.title)
    );
    let burst = score.burst.map_or("–".to_owned(), |b| {
        if b.is_finite() {
            format!("{b:.0} s")
        } else {
            "never".into()
        }
    });
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="42">SLO minutes {:.2} % · memory {:.1} % of static peak · OOM kills {} ({} outside leaks) · flaps/window {} · burst reaction {} · early decisions {} · failed {:.3} %</text>"#,
        score.slo,
        score.memory,
        score.ooms,
        score.ooms_outside,
        score.flaps,
        burst,
        score.early,
        score.failed
    );

    for (i, panel) in panels.iter().enumerate() {
        let top = TOP + i as f64 * (PANEL + GAP);
        let bottom = top + PANEL;
        let data: Vec<Vec<f64>> = panel
            .series
            .iter()
            .map(|s| aggregate(minutes, k, s))
            .collect();
        let (lo, hi) = if panel.log {
            (1e-3_f64, 100.0_f64)
        } else {
            let max = data
                .iter()
                .flatten()
                .copied()
                .filter(|v| v.is_finite())
                .fold(0.0, f64::max);
            (0.0, nice_max(max * 1.05))
        };
        let y = |v: f64| {
            let f = if panel.log {
                (v.max(lo).log10() - lo.log10()) / (hi.log10() - lo.log10())
            } else {
                (v - lo) / (hi - lo)
            };
            bottom - PANEL * f.clamp(0.0, 1.0)
        };
        let _ = writeln!(
            out,
            r##"<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{PANEL}" fill="#fafafa" stroke="#ccc"/>"##
        );
        // Events.
        for b in &run.trace.bursts {
            let (x0, x1) = (x(b.at), x(b.at + b.seconds).max(x(b.at) + 2.0));
            let _ = writeln!(
                out,
                r##"<rect x="{x0:.1}" y="{top}" width="{:.1}" height="{PANEL}" fill="#ffbb78" opacity="0.6"/>"##,
                x1 - x0
            );
        }
        for s in &run.trace.slowdowns {
            let (x0, x1) = (x(s.at), x(s.at + s.seconds));
            let _ = writeln!(
                out,
                r##"<rect x="{x0:.1}" y="{top}" width="{:.1}" height="{PANEL}" fill="#c5b0d5" opacity="0.6"/>"##,
                x1 - x0
            );
        }
        for d in &run.trace.deploys {
            let xd = x(d.at);
            let _ = writeln!(
                out,
                r##"<line x1="{xd:.1}" x2="{xd:.1}" y1="{top}" y2="{bottom}" stroke="#2ca02c" stroke-width="2"/>"##
            );
        }
        for &at in &run.trace.node_failures {
            let xd = x(at);
            let _ = writeln!(
                out,
                r##"<line x1="{xd:.1}" x2="{xd:.1}" y1="{top}" y2="{bottom}" stroke="#d62728" stroke-width="2"/>"##
            );
        }
        for &r in &run.trace.operator_restarts {
            let xd = x(r);
            let _ = writeln!(
                out,
                r##"<line x1="{xd:.1}" x2="{xd:.1}" y1="{top}" y2="{bottom}" stroke="#999" stroke-dasharray="2,3"/>"##
            );
        }
        // Axes.
        let _ = writeln!(
            out,
            r#"<text x="{LEFT}" y="{:.1}" font-weight="bold">{}</text>"#,
            top - 6.0,
            esc(panel.title)
        );
        let ticks: Vec<f64> = if panel.log {
            vec![1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0]
        } else {
            (0..=4)
                .map(|j| lo + (hi - lo) * f64::from(j) / 4.0)
                .collect()
        };
        for v in ticks {
            let yy = y(v);
            let label = if panel.log {
                format!("{v}")
            } else if hi >= 100.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            };
            let _ = writeln!(
                out,
                r##"<line x1="{LEFT}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"##,
                LEFT + plot_w,
                LEFT - 6.0,
                yy + 4.0
            );
        }
        if let Some((v, label)) = &panel.line {
            let yy = y(*v);
            let _ = writeln!(
                out,
                r##"<line x1="{LEFT}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}" stroke="#d62728" stroke-dasharray="6,4"/><text x="{:.1}" y="{:.1}" fill="#d62728">{}</text>"##,
                LEFT + plot_w,
                LEFT + plot_w + 6.0,
                yy + 4.0,
                esc(label)
            );
        }
        // Series.
        for (j, (s, values)) in panel.series.iter().zip(&data).enumerate() {
            let mut points = String::new();
            for (n, v) in values.iter().enumerate() {
                let t = (n * k) as f64 * 60.0;
                let _ = write!(points, "{:.1},{:.1} ", x(t), y(*v));
            }
            let dash = if s.dashed {
                r#" stroke-dasharray="4,3""#
            } else {
                ""
            };
            let _ = writeln!(
                out,
                r#"<polyline fill="none" stroke="{}" stroke-width="1.2"{dash} points="{}"/>"#,
                s.color,
                points.trim_end()
            );
            let ly = top + 14.0 + j as f64 * 14.0;
            let _ = writeln!(
                out,
                r#"<line x1="{:.1}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="{}" stroke-width="2"{dash}/><text x="{:.1}" y="{:.1}">{}</text>"#,
                LEFT + plot_w + 6.0,
                LEFT + plot_w + 24.0,
                ly - 4.0,
                ly - 4.0,
                s.color,
                LEFT + plot_w + 28.0,
                ly,
                esc(s.name)
            );
        }
        if panel.ooms {
            for m in minutes.iter().filter(|m| m.oom_kills > 0) {
                let xm = x(m.t);
                let _ = writeln!(
                    out,
                    r##"<line x1="{xm:.1}" x2="{xm:.1}" y1="{:.1}" y2="{bottom}" stroke="#d62728" stroke-width="1.5"/>"##,
                    bottom - 12.0
                );
            }
            let ly = top + 14.0 + panel.series.len() as f64 * 14.0;
            let _ = writeln!(
                out,
                r##"<line x1="{:.1}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#d62728" stroke-width="2"/><text x="{:.1}" y="{:.1}">OOM kill</text>"##,
                LEFT + plot_w + 15.0,
                LEFT + plot_w + 15.0,
                ly - 10.0,
                ly,
                LEFT + plot_w + 28.0,
                ly
            );
        }
    }
    // Time axis: hours, labelled every 6 or 24 hours.
    let bottom = TOP + panels.len() as f64 * (PANEL + GAP) - GAP;
    let step = if duration > 3.0 * 24.0 * HOUR {
        24.0
    } else {
        6.0
    };
    let mut h = 0.0;
    while h * HOUR <= duration {
        let xx = x(h * HOUR);
        let _ = writeln!(
            out,
            r#"<text x="{xx:.1}" y="{:.1}" text-anchor="middle">{h:.0} h</text>"#,
            bottom + 14.0
        );
        h += step;
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_maxima() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(7.3), 8.0);
        assert_eq!(nice_max(101.0), 120.0);
    }
}
