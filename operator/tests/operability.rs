//! What a platform team runs beside the operator: the chart's alert rules (checked and
//! unit-tested with `promtool`) and its Grafana dashboard (valid JSON, every PromQL
//! expression parses, and names only metrics that pacer or the operator export).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/pacer-operator")
}

/// promtool from Debian's prometheus package; its absence fails in CI.
fn promtool() -> Result<Option<PathBuf>> {
    let path = std::env::var_os("PACER_PROMTOOL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/promtool"));
    if path.exists() {
        return Ok(Some(path));
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        bail!(
            "{} is missing (scripts/deps.sh installs prometheus)",
            path.display()
        );
    }
    eprintln!("SKIPPED (not in CI): {} is missing", path.display());
    Ok(None)
}

fn run(tool: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(tool)
        .args(args)
        .output()
        .with_context(|| format!("running {}", tool.display()))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        out.status.success(),
        "{} {args:?} failed:\n{text}",
        tool.display()
    );
    Ok(text)
}

/// Every metric family the two binaries export, with the suffixes their types add.
fn exported() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for family in pacer::metrics::FAMILIES {
        names.insert((*family).to_owned());
        for suffix in ["_bucket", "_sum", "_count"] {
            names.insert(format!("{family}{suffix}"));
        }
    }
    // The operator's exposition with a sample in every family: the names it prints.
    let metrics = pacer_operator::telemetry::Metrics::new();
    metrics.record_app(
        "ns",
        "app",
        &pacer_operator::telemetry::AppView {
            busy_ratio: Some(0.5),
            conditions: pacer_operator::telemetry::EXPORTED_CONDITIONS
                .iter()
                .map(|c| (*c, "True".to_owned()))
                .collect(),
            ..Default::default()
        },
    );
    for result in ["ok", "error"] {
        metrics
            .reconciliations
            .get_or_create(&pacer_operator::telemetry::ResultLabels { result })
            .inc();
    }
    metrics
        .tuning_changes
        .get_or_create(&pacer_operator::telemetry::ChangeLabels {
            setting: "workers",
            direction: "up",
        })
        .inc();
    metrics
        .metrics_errors
        .get_or_create(&pacer_operator::telemetry::SourceLabels { source: "Direct" })
        .inc();
    metrics.reconcile_duration.observe(0.1);
    for line in metrics.encode().lines().filter(|l| !l.starts_with('#')) {
        if let Some(name) = line.split(['{', ' ']).next() {
            names.insert(name.to_owned());
        }
    }
    names
}

const PROMQL_WORDS: &[&str] = &[
    "sum",
    "max",
    "min",
    "avg",
    "count",
    "rate",
    "increase",
    "delta",
    "irate",
    "by",
    "without",
    "and",
    "or",
    "unless",
    "on",
    "ignoring",
    "bool",
    "histogram_quantile",
    "time",
    "vector",
    "absent",
    "abs",
    "clamp_min",
    "group_left",
    "group_right",
];

/// The metric names an expression reads: identifiers outside label matchers, ranges,
/// groupings and strings that are not PromQL's own words.
fn metric_names(expr: &str) -> Vec<String> {
    let mut cleaned = String::new();
    let mut depth_brace = 0;
    let mut depth_bracket = 0;
    let mut in_string = false;
    for c in expr.chars() {
        match c {
            '"' => in_string = !in_string,
            _ if in_string => {}
            '{' => depth_brace += 1,
            '}' => depth_brace -= 1,
            '[' => depth_bracket += 1,
            ']' => depth_bracket -= 1,
            _ if depth_brace > 0 || depth_bracket > 0 => {}
            c => cleaned.push(c),
        }
    }
    // Drop the label lists of `by (...)`, `on (...)` and friends.
    let mut out = Vec::new();
    let mut tokens = Vec::new();
    let mut word = String::new();
    for c in cleaned.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
        } else {
            if !word.is_empty() {
                tokens.push(std::mem::take(&mut word));
            }
            if !c.is_whitespace() {
                tokens.push(c.to_string());
            }
        }
    }
    let mut skip_group = false;
    let mut in_group = false;
    for token in tokens {
        if in_group {
            if token == ")" {
                in_group = false;
            }
            continue;
        }
        if skip_group {
            skip_group = false;
            if token == "(" {
                in_group = true;
                continue;
            }
        }
        if [
            "by",
            "without",
            "on",
            "ignoring",
            "group_left",
            "group_right",
        ]
        .contains(&token.as_str())
        {
            skip_group = true;
            continue;
        }
        let first = token.chars().next().unwrap_or(' ');
        if (first.is_ascii_alphabetic() || first == '_') && !PROMQL_WORDS.contains(&token.as_str())
        {
            out.push(token);
        }
    }
    out
}

#[test]
fn the_metric_name_reader_finds_what_an_expression_reads() {
    assert_eq!(
        metric_names(
            r#"sum by (pod, code) (rate(pacer_http_requests_total{namespace="$ns",pod=~"a-.*"}[5m])) / on (pod) group_left max(process_open_fds)"#
        ),
        ["pacer_http_requests_total", "process_open_fds"]
    );
    assert_eq!(
        metric_names("(sum(pacer_operator_leader) or vector(0)) < 1"),
        ["pacer_operator_leader"]
    );
}

#[test]
fn the_alert_rules_pass_promtool_check_and_their_unit_tests() -> Result<()> {
    let Some(promtool) = promtool()? else {
        return Ok(());
    };
    let rules = chart().join("files/alerts.rules.yaml");
    let rules = rules.to_str().context("path")?;
    let checked = run(&promtool, &["check", "rules", rules])?;
    ensure!(checked.contains("SUCCESS: 9 rules found"), "{checked}");
    let tests = chart().join("tests/alerts.test.yaml");
    let tested = run(
        &promtool,
        &["test", "rules", tests.to_str().context("path")?],
    )?;
    ensure!(tested.contains("SUCCESS"), "{tested}");

    // Every alert reads only metrics that pacer or the operator export.
    let exported = exported();
    let text = std::fs::read_to_string(chart().join("files/alerts.rules.yaml"))?;
    let doc: serde_yaml::Value = serde_yaml::from_str(&text)?;
    let mut alerts = BTreeSet::new();
    for group in doc["groups"].as_sequence().context("groups")? {
        for rule in group["rules"].as_sequence().context("rules")? {
            let expr = rule["expr"].as_str().context("expr")?;
            alerts.insert(rule["alert"].as_str().context("alert")?.to_owned());
            for name in metric_names(expr) {
                ensure!(
                    exported.contains(&name),
                    "alert {:?} reads {name}, which neither pacer nor the operator exports",
                    rule["alert"]
                );
            }
        }
    }
    for wanted in [
        "PacerOperatorDown",
        "PacerAppDegraded",
        "PacerAppOOMKilled",
        "PacerAppPoolAtCeiling",
        "PacerTunerCannotAct",
    ] {
        ensure!(alerts.contains(wanted), "no {wanted} alert");
    }
    Ok(())
}

#[test]
fn the_dashboard_is_valid_and_reads_only_exported_metrics() -> Result<()> {
    let text = std::fs::read_to_string(chart().join("files/dashboard.json"))?;
    let dashboard: Value = serde_json::from_str(&text).context("dashboard.json is not JSON")?;
    let panels = dashboard["panels"].as_array().context("no panels")?;
    ensure!(panels.len() >= 10, "only {} panels", panels.len());
    let exported = exported();
    let mut exprs = Vec::new();
    for panel in panels {
        for target in panel["targets"]
            .as_array()
            .context("panel without targets")?
        {
            let expr = target["expr"].as_str().context("target without expr")?;
            for name in metric_names(expr) {
                ensure!(
                    exported.contains(&name),
                    "panel {:?} reads {name}, which neither pacer nor the operator exports",
                    panel["title"]
                );
            }
            exprs.push(expr.to_owned());
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .context("no variables")?
    {
        if let Some(query) = variable["query"]["query"].as_str() {
            let inner = query
                .strip_prefix("label_values(")
                .and_then(|q| q.rsplit_once(','))
                .map(|(metric, _)| metric.to_owned())
                .context("a variable that is not label_values")?;
            exprs.push(inner);
        }
    }
    // Every expression parses: each becomes a recording rule `promtool check rules` reads,
    // with Grafana's variables replaced by values.
    let Some(promtool) = promtool()? else {
        return Ok(());
    };
    let rules: Vec<Value> = exprs
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let expr = e
                .replace("$__rate_interval", "5m")
                .replace("$namespace", "shop")
                .replace("$phpappserver", "web");
            serde_json::json!({"record": format!("dashboard:expr_{i}"), "expr": expr})
        })
        .collect();
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("dashboard.rules.yaml");
    std::fs::write(
        &file,
        serde_yaml::to_string(
            &serde_json::json!({"groups": [{"name": "dashboard", "rules": rules}]}),
        )?,
    )?;
    let checked = run(
        &promtool,
        &["check", "rules", file.to_str().context("path")?],
    )?;
    ensure!(
        checked.contains(&format!("SUCCESS: {} rules found", exprs.len())),
        "{checked}"
    );
    Ok(())
}
