//! A job as pacer carries it between a producer, a broker and a worker, and the context
//! a worker receives with it (docs/jobs-protocol.md §2). Pure.

use std::collections::BTreeMap;

use bytes::Bytes;

/// The header pacer counts deliveries in (retries, see `RetryPolicy`). PHP code reads it
/// with `$task->getHeaderLine('attempts')`.
pub const ATTEMPTS_HEADER: &str = "attempts";

/// Headers: a name to its values, as RoadRunner's `map[string][]string`.
pub type Headers = BTreeMap<String, Vec<String>>;

/// One job.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Job {
    /// `job`: its name, usually the PHP class that handles it.
    pub name: String,
    /// `id`: given by the producer (the PHP library sends a UUID).
    pub id: String,
    pub payload: Bytes,
    pub headers: Headers,
    /// The pipeline it was pushed to.
    pub pipeline: String,
    /// Higher runs first within a pipeline (RR: default 10, the pipeline's).
    pub priority: i64,
    /// Seconds to wait before the job may run.
    pub delay: u64,
    /// Acknowledged when taken from the broker, before PHP sees it.
    pub auto_ack: bool,
}

impl Job {
    /// Deliveries so far, from the `attempts` header (0 when absent or not a number).
    pub fn attempts(&self) -> u32 {
        self.headers
            .get(ATTEMPTS_HEADER)
            .and_then(|v| v.first())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    pub fn set_attempts(&mut self, n: u32) {
        self.headers
            .insert(ATTEMPTS_HEADER.to_string(), vec![n.to_string()]);
    }
}

/// The worker's frame header for a job: RoadRunner's JSON object
/// `{"id","job","driver","queue","headers","pipeline"}` (the PHP library's
/// `ReceivedTaskFactory` reads these keys). `headers` is `null` when there are none, as
/// Go marshals a nil map.
pub fn context(job: &Job, driver: &str, queue: &str) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Ctx<'a> {
        id: &'a str,
        job: &'a str,
        driver: &'a str,
        queue: &'a str,
        headers: Option<&'a Headers>,
        pipeline: &'a str,
    }
    // Sized once: the keys and quotes are ~70 bytes; headers, when any, grow it.
    let mut out = Vec::with_capacity(
        96 + job.id.len() + job.name.len() + driver.len() + queue.len() + job.pipeline.len(),
    );
    let ctx = Ctx {
        id: &job.id,
        job: &job.name,
        driver,
        queue,
        headers: (!job.headers.is_empty()).then_some(&job.headers),
        pipeline: &job.pipeline,
    };
    match serde_json::to_writer(&mut out, &ctx) {
        Ok(()) => out,
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_has_roadrunners_keys_in_its_order() {
        let mut job = Job {
            name: "App\\Mail".into(),
            id: "0b9c".into(),
            pipeline: "emails".into(),
            ..Default::default()
        };
        assert_eq!(
            String::from_utf8(context(&job, "amqp", "q1")).unwrap(),
            r#"{"id":"0b9c","job":"App\\Mail","driver":"amqp","queue":"q1","headers":null,"pipeline":"emails"}"#
        );
        job.headers.insert("k".into(), vec!["a".into(), "b".into()]);
        assert!(
            String::from_utf8(context(&job, "memory", "emails"))
                .unwrap()
                .contains(r#""headers":{"k":["a","b"]}"#)
        );
    }

    #[test]
    fn attempts_count_from_the_header() {
        let mut job = Job::default();
        assert_eq!(job.attempts(), 0);
        job.set_attempts(3);
        assert_eq!(job.attempts(), 3);
        job.headers.insert(ATTEMPTS_HEADER.into(), vec!["x".into()]);
        assert_eq!(job.attempts(), 0);
    }
}
