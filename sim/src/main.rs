//! `pacer-sim`: runs the traces, prints the score table, writes a picture per trace and
//! exits 1 when a trace does worse than its gate (`score::gate`: the goals, or the level
//! reached where a goal is not met yet; see `sim/README.md`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use pacer_sim::score::{self, Goals, Score};
use pacer_sim::{run, svg, trace};

/// Runs the tuner against simulated clusters and scores it.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// Directory for the pictures (`<trace>.svg`) and the table (`scores.md`).
    #[arg(long, default_value = "sim/out")]
    out: PathBuf,
    /// Run only these traces (by name; repeatable).
    #[arg(long = "trace")]
    traces: Vec<String>,
    /// Print and write the results but do not fail when a trace is worse than its gate.
    #[arg(long)]
    report_only: bool,
    /// Also print every tuning change with its reason.
    #[arg(long)]
    changes: bool,
    /// Also print every minute that missed the SLO.
    #[arg(long)]
    bad_minutes: bool,
    /// Run the traces with this seed instead of their own (the randomness of arrivals,
    /// job times, scrapes and the kubelet's timing): how much a score owes to one draw.
    /// The gates are the traces' own seeds'; use with `--report-only`.
    #[arg(long)]
    seed: Option<u64>,
}

fn main() -> ExitCode {
    match run_all() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("pacer-sim: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run_all() -> Result<bool> {
    let cli = Cli::parse();
    let traces: Vec<trace::Trace> = trace::all()
        .into_iter()
        .filter(|t| cli.traces.is_empty() || cli.traces.iter().any(|n| n == t.name))
        .map(|t| trace::Trace {
            seed: cli.seed.unwrap_or(t.seed),
            ..t
        })
        .collect();
    anyhow::ensure!(!traces.is_empty(), "no trace matches {:?}", cli.traces);
    std::fs::create_dir_all(&cli.out).with_context(|| format!("creating {}", cli.out.display()))?;
    let started = Instant::now();
    // Two at a time: each trace is independent and deterministic.
    let results: Vec<Result<(run::Run, Score, f64)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = traces
            .chunks(traces.len().div_ceil(2))
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|t| {
                            let started = Instant::now();
                            let r = run::run(t)?;
                            let s = score::score(&r);
                            Ok((r, s, started.elapsed().as_secs_f64()))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|_| vec![Err(anyhow::anyhow!("a trace panicked"))])
            })
            .collect()
    });
    let goals = Goals::default();
    let mut scores = Vec::new();
    let mut ok = true;
    for result in results {
        let (r, s, seconds) = result?;
        let path = cli.out.join(format!("{}.svg", r.trace.name));
        std::fs::write(&path, svg::render(&r, &s))
            .with_context(|| format!("writing {}", path.display()))?;
        let misses = score::misses(&s, &goals);
        let worse = score::misses(&s, &score::gate(r.trace.name));
        eprintln!(
            "{:<12} {:>5.1} simulated days in {seconds:.1} s → {}{}{}",
            r.trace.name,
            r.trace.duration / trace::DAY,
            path.display(),
            if misses.is_empty() {
                String::new()
            } else {
                format!("; misses the goals: {}", misses.join(", "))
            },
            if worse.is_empty() {
                String::new()
            } else {
                format!(
                    "; WORSE than its gate (sim/src/score.rs): {}",
                    worse.join(", ")
                )
            }
        );
        ok &= worse.is_empty();
        if cli.bad_minutes {
            for m in r.minutes.iter().filter(|m| m.bad > 0.01 || m.oom_kills > 0) {
                println!(
                    "{} {:>6.2} h  rate {:>5.0}/s  bad {:>5.1} %  p99 {:>6.3} s  failed {:>4.0}  workers {:>4.1} (delivered {:>4.1}, running {:>3.0})  pods {} (ready {})  max_jobs {:.0}  db ×{:.1}  throttled {:.2}  oom {}  limit {:.0}/{:.0} MiB  ws {:.0} MiB",
                    r.trace.name,
                    m.t / 3600.0,
                    m.rate,
                    m.bad * 100.0,
                    m.p99,
                    m.failed,
                    m.workers,
                    m.delivered,
                    m.total_workers,
                    m.pods,
                    m.ready,
                    m.max_jobs,
                    m.db_factor,
                    m.throttled,
                    m.oom_kills,
                    m.memory_limit / 1048576.0,
                    m.memory_in_force / 1048576.0,
                    m.working_set / 1048576.0,
                );
            }
        }
        if cli.changes {
            for c in &r.changes {
                println!(
                    "{} {:>9.0} s {:>5.2} h  {} {} → {}{}: {}",
                    r.trace.name,
                    c.t,
                    c.t / 3600.0,
                    c.knob,
                    c.from,
                    c.to,
                    if c.early { " (early)" } else { "" },
                    c.reason
                );
            }
        }
        scores.push(s);
    }
    let table = score::table(&scores, &goals);
    println!("{table}");
    std::fs::write(cli.out.join("scores.md"), &table).context("writing scores.md")?;
    eprintln!("all traces in {:.1} s", started.elapsed().as_secs_f64());
    Ok(ok || cli.report_only)
}
