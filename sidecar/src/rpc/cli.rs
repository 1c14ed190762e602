//! `pacer workers` and `pacer reset`: RPC clients for people. `main.rs` parses the
//! arguments and maps [`CliError::exit_code`] to the process exit code; everything
//! else is here, so tests run it in-process. Rendering is pure ([`render_table`]).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::client::{ClientError, RpcClient};
use super::view::WorkerView;

/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an `informer.*` call may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a rolling reset may take (the server bounds each batch by `reset_timeout`).
pub const RESET_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Rpc(#[from] ClientError),
    #[error("no pool named {pool:?}; pacer has: {known}")]
    UnknownPool { pool: String, known: String },
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

impl CliError {
    /// sysexits-style codes: 64 a bad address or pool name (usage), 69 pacer not
    /// reachable, 70 pacer answered with an error, 74 the output failed.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Rpc(ClientError::Address(_)) | CliError::UnknownPool { .. } => 64,
            CliError::Rpc(e) if e.is_unavailable() => 69,
            CliError::Rpc(_) => 70,
            CliError::Output(_) => 74,
        }
    }
}

/// `pacer workers`: the workers of `plugin` (every pool when `None`) as a table, or as
/// JSON (`{"<pool>":[<informer.Workers record>...]}`, one document per line). With an
/// `interval`, refreshes until the future is dropped or an error occurs.
pub async fn cli_workers(
    addr: &str,
    plugin: Option<&str>,
    json: bool,
    interval: Option<Duration>,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let mut client = RpcClient::connect(addr, CONNECT_TIMEOUT).await?;
    client.set_timeout(CALL_TIMEOUT);
    let mut first = true;
    loop {
        let pools = pools(&mut client, plugin, false).await?;
        let mut all = BTreeMap::new();
        for pool in &pools {
            all.insert(pool.clone(), client.workers(pool).await?);
        }
        if json {
            serde_json::to_writer(&mut *out, &all).map_err(std::io::Error::from)?;
            writeln!(out)?;
        } else {
            if !first {
                writeln!(out)?;
            }
            let now = unix_nanos(SystemTime::now());
            for (pool, workers) in &all {
                out.write_all(render_table(pool, workers, now).as_bytes())?;
            }
        }
        out.flush()?;
        first = false;
        match interval {
            Some(every) => tokio::time::sleep(every.max(Duration::from_millis(100))).await,
            None => return Ok(()),
        }
    }
}

/// `pacer reset [POOL]`: a rolling reset of `plugin`, or of every resettable pool.
pub async fn cli_reset(
    addr: &str,
    plugin: Option<&str>,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let mut client = RpcClient::connect(addr, CONNECT_TIMEOUT).await?;
    client.set_timeout(CALL_TIMEOUT);
    let pools = pools(&mut client, plugin, true).await?;
    client.set_timeout(RESET_TIMEOUT);
    for pool in pools {
        write!(out, "Resetting {pool} workers... ")?;
        out.flush()?;
        client.reset(&pool).await?;
        writeln!(out, "done")?;
    }
    out.flush()?;
    Ok(())
}

/// The pools to show or reset: `plugin` if the server has it, else every one.
async fn pools(
    client: &mut RpcClient,
    plugin: Option<&str>,
    resettable: bool,
) -> Result<Vec<String>, CliError> {
    let known = if resettable {
        client.resettable().await?
    } else {
        client.plugins().await?
    };
    match plugin {
        None => Ok(known),
        Some(p) if known.iter().any(|k| k == p) => Ok(vec![p.to_string()]),
        Some(p) => Err(CliError::UnknownPool {
            pool: p.to_string(),
            known: if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            },
        }),
    }
}

fn unix_nanos(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// A table of `workers` like `rr workers` prints, plus the current job's duration.
/// `now` is Unix nanoseconds (for the age column).
pub fn render_table(pool: &str, workers: &[WorkerView], now: i64) -> String {
    const HEAD: [&str; 7] = [
        "PID",
        "STATUS",
        "EXECS",
        "MEMORY",
        "CPU%",
        "CREATED",
        "CURRENT JOB",
    ];
    let rows: Vec<[String; 7]> = workers
        .iter()
        .map(|w| {
            [
                w.pid.to_string(),
                w.status_str.clone(),
                w.num_execs.to_string(),
                human_bytes(w.memory_usage),
                format!("{:.2}", w.cpu_percent),
                format!(
                    "{} ago",
                    human_duration(Duration::from_nanos(
                        u64::try_from(now.saturating_sub(w.created)).unwrap_or(0)
                    ))
                ),
                w.current_job_nanos.map_or_else(
                    || "-".to_string(),
                    |n| human_duration(Duration::from_nanos(n)),
                ),
            ]
        })
        .collect();
    let mut widths = HEAD.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let rule: String = widths.iter().fold(String::from("+"), |mut s, w| {
        s.push_str(&"-".repeat(w + 2));
        s.push('+');
        s
    });
    let line = |cells: &[String]| -> String {
        let mut s = String::from("|");
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            // Numbers right-aligned, text left-aligned.
            if matches!(i, 0 | 2 | 3 | 4) {
                s.push_str(&format!(" {cell:>w$} |"));
            } else {
                s.push_str(&format!(" {cell:<w$} |"));
            }
        }
        s
    };
    let mut out = format!("Workers of [{pool}]:\n{rule}\n");
    out.push_str(&line(&HEAD.map(String::from)));
    out.push('\n');
    out.push_str(&rule);
    out.push('\n');
    for row in &rows {
        out.push_str(&line(row));
        out.push('\n');
    }
    if !rows.is_empty() {
        out.push_str(&rule);
        out.push('\n');
    }
    out
}

/// `31.5 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// `850ms`, `12s`, `3m 12s`, `2h 5m`, `3d 4h`.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        1..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(31_457_280), "30.0 MiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
        assert_eq!(human_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(human_duration(Duration::from_secs(12)), "12s");
        assert_eq!(human_duration(Duration::from_secs(192)), "3m 12s");
        assert_eq!(human_duration(Duration::from_secs(7500)), "2h 5m");
        assert_eq!(
            human_duration(Duration::from_secs(3 * 86400 + 4 * 3600)),
            "3d 4h"
        );
    }

    #[test]
    fn table_lists_every_worker_with_aligned_columns() {
        let now = 1_700_000_100_000_000_000;
        let workers = vec![
            WorkerView {
                pid: 4242,
                status: 1,
                num_execs: 17,
                created: 1_700_000_000_000_000_000,
                memory_usage: 31_457_280,
                cpu_percent: 1.5,
                command: "php worker.php".into(),
                status_str: "ready".into(),
                slot: Some(0),
                current_job_nanos: None,
            },
            WorkerView {
                pid: 4243,
                status: 2,
                num_execs: 3,
                created: 1_700_000_095_000_000_000,
                memory_usage: 20 << 20,
                cpu_percent: 12.345,
                command: "php worker.php".into(),
                status_str: "working".into(),
                slot: Some(1),
                current_job_nanos: Some(2_500_000_000),
            },
        ];
        let table = render_table("http", &workers, now);
        let want = "\
Workers of [http]:
+------+---------+-------+----------+-------+------------+-------------+
|  PID | STATUS  | EXECS |   MEMORY |  CPU% | CREATED    | CURRENT JOB |
+------+---------+-------+----------+-------+------------+-------------+
| 4242 | ready   |    17 | 30.0 MiB |  1.50 | 1m 40s ago | -           |
| 4243 | working |     3 | 20.0 MiB | 12.35 | 5s ago     | 2s          |
+------+---------+-------+----------+-------+------------+-------------+
";
        assert_eq!(table, want, "\n{table}");
    }

    #[test]
    fn exit_codes_distinguish_the_failures() {
        let unreachable = CliError::Rpc(ClientError::Unreachable {
            addr: "tcp://127.0.0.1:6001".into(),
            reason: "connection refused".into(),
        });
        assert_eq!(unreachable.exit_code(), 69);
        assert_eq!(
            unreachable.to_string(),
            "RPC not reachable at tcp://127.0.0.1:6001: connection refused"
        );
        let failed = CliError::Rpc(ClientError::Service {
            method: "resetter.Reset".into(),
            message: "reset incomplete".into(),
        });
        assert_eq!(failed.exit_code(), 70);
        let unknown = CliError::UnknownPool {
            pool: "grpc".into(),
            known: "http".into(),
        };
        assert_eq!(unknown.exit_code(), 64);
        assert_eq!(
            unknown.to_string(),
            "no pool named \"grpc\"; pacer has: http"
        );
    }
}
