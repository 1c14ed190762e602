//! The fixture of the `service` tests (`service.rs`, `service_rpc.rs`): side processes
//! running `testdata/workers/service.php`, which record "start PID", "term PID" and
//! "ignored PID" lines in a file of their own, and the pacer config around them.

use std::path::Path;

use super::binary::Ports;
use super::{php, worker_script};

/// The services' files, in a directory that outlives pacer's, to be read after its stop.
pub struct ServiceFiles {
    dir: tempfile::TempDir,
}

impl ServiceFiles {
    pub fn new() -> ServiceFiles {
        ServiceFiles {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The command of a copy that records into `file`; `mode` is service.php's (`loop`,
    /// `exit3`, `ignore-term`).
    pub fn command(&self, file: &str, mode: &str) -> Vec<String> {
        vec![
            php(),
            worker_script("service.php"),
            self.path().join(file).display().to_string(),
            mode.to_string(),
        ]
    }

    /// The pids of the `prefix` lines ("start ", "term ", "ignored ") of `file`.
    pub fn pids(&self, file: &str, prefix: &str) -> Vec<u32> {
        std::fs::read_to_string(self.path().join(file))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.strip_prefix(prefix)?.trim().parse().ok())
            .collect()
    }
}

/// A config with what pacer needs besides the services (one HTTP worker, the status
/// listener, a quick shutdown) and the `sections` given.
pub fn config(ports: &Ports, sections: &str) -> String {
    format!(
        r#"version: "3"
server:
  command: ["{php}", "{http}"]
http:
  address: {http_addr}
  pool: {{num_workers: 1}}
status:
  address: {status}
pacer:
  shutdown: {{delay: 0s, grace_period: 5s}}
{sections}"#,
        php = php(),
        http = worker_script("http.php"),
        http_addr = ports.http,
        status = ports.status,
    )
}
