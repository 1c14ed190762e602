//! One worker as `informer.Workers` describes it: RoadRunner's record
//! (`pool/state/process/state.go`) field for field, plus pacer's own optional fields,
//! which RoadRunner's clients ignore.

use std::time::UNIX_EPOCH;

use tokio::time::Instant;

use crate::metrics::process;
use crate::worker::WorkerInfo;

/// `{"pid","status","numExecs","created","memoryUsage","CPUPercent","command","statusStr"}`
/// and, from pacer only, `slot` and `currentJobNanos`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct WorkerView {
    pub pid: i64,
    /// RoadRunner's FSM state number (1 ready, 2 working, 3 invalid, 4 stopping, ...).
    pub status: i64,
    #[serde(rename = "numExecs")]
    pub num_execs: u64,
    /// Creation time in Unix nanoseconds.
    pub created: i64,
    /// Resident set size in bytes.
    #[serde(rename = "memoryUsage")]
    pub memory_usage: u64,
    /// CPU time over lifetime, in percent of one CPU (gopsutil's `CPUPercent`).
    #[serde(rename = "CPUPercent")]
    pub cpu_percent: f64,
    pub command: String,
    #[serde(rename = "statusStr")]
    pub status_str: String,
    /// Pacer: the worker's stable slot in its pool (the `slot` metrics label).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<u64>,
    /// Pacer: how long the current job has been running; absent when idle.
    #[serde(rename = "currentJobNanos", skip_serializing_if = "Option::is_none")]
    pub current_job_nanos: Option<u64>,
}

/// `{"workers":[...]}`, or `{"workers":null}` for a plugin without workers.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WorkerList {
    #[serde(default)]
    pub workers: Option<Vec<WorkerView>>,
}

impl WorkerView {
    /// Describes a worker now. Memory and CPU are read from `/proc/<pid>/stat` at call
    /// time, like RoadRunner's informer does (RPC is not a hot path; the metrics
    /// endpoint uses the supervisor's samples instead).
    pub fn of(info: &WorkerInfo, now: Instant) -> WorkerView {
        let stat = process::read_stat(info.pid);
        let age = info.age(now).as_secs_f64();
        let cpu_percent = match stat {
            Some(s) if age > 0.0 => process::cpu_seconds(&s) / age * 100.0,
            _ => 0.0,
        };
        let memory_usage = stat
            .map(|s| s.rss_pages * process::page_size())
            .unwrap_or_else(|| info.rss());
        let state = info.state();
        WorkerView {
            pid: i64::from(info.pid),
            status: state as i64,
            num_execs: info.jobs(),
            created: info
                .created_at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
            memory_usage,
            cpu_percent,
            command: info.command.clone(),
            status_str: state.as_str().to_string(),
            slot: Some(info.ident.slot as u64),
            current_job_nanos: info
                .busy_for(now)
                .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roadrunner_records_parse_and_ours_keep_its_field_names() {
        let rr = r#"{"workers":[{"pid":4242,"status":1,"numExecs":17,"created":1700000000000000000,
            "memoryUsage":31457280,"CPUPercent":1.5,"command":"php worker.php","statusStr":"ready"}]}"#;
        let list: WorkerList = serde_json::from_str(rr).unwrap();
        let w = &list.workers.unwrap()[0];
        assert_eq!(w.pid, 4242);
        assert_eq!(w.num_execs, 17);
        assert_eq!(w.memory_usage, 31457280);
        assert_eq!(w.slot, None);
        let back = serde_json::to_value(w).unwrap();
        let keys: Vec<&str> = back
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for k in [
            "pid",
            "status",
            "numExecs",
            "created",
            "memoryUsage",
            "CPUPercent",
            "command",
            "statusStr",
        ] {
            assert!(keys.contains(&k), "{k} in {keys:?}");
        }
        assert_eq!(keys.len(), 8, "no pacer fields when unset: {keys:?}");
        let none: WorkerList = serde_json::from_str(r#"{"workers":null}"#).unwrap();
        assert_eq!(none.workers, None);
        assert_eq!(
            serde_json::to_string(&WorkerList { workers: None }).unwrap(),
            r#"{"workers":null}"#
        );
    }
}
