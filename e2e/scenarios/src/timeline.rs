//! A scenario's timeline: one row per tuning round, load change or Event — what a user
//! watching `kubectl get pas -w` and `kubectl describe pas` would have seen, plus the live
//! pools as the pacer processes report them.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use crate::lock;
use anyhow::Result;
use tokio::time::Instant;

/// Starts the last row of a failed scenario's timeline, with the error: `e2e/failures.sh`
/// finds the failed timelines by it and prints them where a CI log's tail shows them.
pub const FAILED: &str = "FAILED:";

/// One row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// Since the scenario started.
    pub at: Duration,
    /// The load at that moment (what is sent, and the rate achieved).
    pub load: String,
    /// Workers per pod in the operator's status (`status.current.workers`).
    pub workers: String,
    /// The live pools: each pod's pacer target size.
    pub pools: String,
    /// Busy ratio the operator observed over its window (`status.observed.busyPercent`).
    pub busy: String,
    /// What the operator decided, or a note from the scenario.
    pub decision: String,
}

/// The rows of one scenario.
#[derive(Debug)]
pub struct Timeline {
    title: String,
    started: Instant,
    rows: Mutex<Vec<Row>>,
}

impl Timeline {
    /// An empty timeline starting now.
    #[must_use]
    pub fn new(title: &str) -> Self {
        Self {
            title: title.to_owned(),
            started: Instant::now(),
            rows: Mutex::new(Vec::new()),
        }
    }

    /// Time since the start.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Appends a row stamped now.
    pub fn push(&self, load: &str, workers: &str, pools: &str, busy: &str, decision: &str) {
        lock(&self.rows).push(Row {
            at: self.elapsed(),
            load: load.to_owned(),
            workers: workers.to_owned(),
            pools: pools.to_owned(),
            busy: busy.to_owned(),
            decision: decision.to_owned(),
        });
    }

    /// The rows so far.
    #[must_use]
    pub fn rows(&self) -> Vec<Row> {
        lock(&self.rows).clone()
    }

    /// The timeline as a text table.
    #[must_use]
    pub fn render(&self) -> String {
        let rows = self.rows();
        let headers = ["time", "load", "workers", "pools", "busy", "decision"];
        let cells: Vec<[String; 6]> = rows
            .iter()
            .map(|r| {
                [
                    format!("{:>6.1}s", r.at.as_secs_f64()),
                    r.load.clone(),
                    r.workers.clone(),
                    r.pools.clone(),
                    r.busy.clone(),
                    r.decision.clone(),
                ]
            })
            .collect();
        let mut widths = headers.map(|h| h.chars().count());
        for row in &cells {
            for (w, c) in widths.iter_mut().zip(row.iter()).take(5) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = format!("=== {} ===\n", self.title);
        let line = |cols: [&str; 6], out: &mut String| {
            let mut text = String::new();
            for (i, c) in cols.iter().enumerate() {
                if i < 5 {
                    let _ = write!(text, "{c:<w$} | ", w = widths[i]);
                } else {
                    text.push_str(c);
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        line(headers, &mut out);
        for row in &cells {
            line(
                [&row[0], &row[1], &row[2], &row[3], &row[4], &row[5]],
                &mut out,
            );
        }
        out
    }

    /// Writes the table to `e2e/out/<stem>.txt` and returns the path.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn save(&self, stem: &str) -> Result<PathBuf> {
        let dir = crate::out_dir();
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{stem}.txt"));
        std::fs::write(&path, self.render())?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_aligned_columns() {
        let t = Timeline::new("demo");
        t.push("/work ×6", "2", "2,2", "100%", "WorkersIncreased 2 → 5");
        t.push("idle", "5", "5,5", "60%", "hold");
        let text = t.render();
        assert!(text.starts_with("=== demo ===\n"));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[2].ends_with("WorkersIncreased 2 → 5"));
        let bar = |l: &str| l.find('|');
        assert_eq!(bar(lines[1]), bar(lines[2]));
    }
}
