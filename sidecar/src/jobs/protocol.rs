//! What a worker's reply to a job means (RoadRunner's jobs response protocol,
//! docs/jobs-protocol.md §3): `{"type": T, "data": {...}}` with T = 0 (success, old), 1
//! (error, old), 2 ack, 3 nack, 4 requeue. Pure.

use super::job::Headers;

/// What to do with a job after its worker answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Done: acknowledge it.
    Ack,
    /// Push it again (after `delay` seconds) with `headers` merged into its own, then
    /// acknowledge this delivery (RR's `Requeue`).
    Requeue { delay: u64, headers: Headers },
    /// Give it back to the broker as it is (RR's native requeue: `nack` with requeue).
    NackRequeue,
    /// It failed and PHP did not ask for a requeue. `nacked`: PHP sent a nack (the
    /// broker's dead-lettering applies); otherwise an error (RR acknowledges those).
    Failed { message: String, nacked: bool },
    /// Pacer's, never read from a reply: the worker died or exceeded `exec_ttl` during
    /// the job, so it is delivered again (at-least-once).
    Crashed,
}

#[derive(serde::Deserialize)]
struct Reply {
    #[serde(rename = "type")]
    kind: u32,
    #[serde(default)]
    data: Option<serde_json::Value>,
}

#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct Data {
    message: String,
    requeue: bool,
    delay_seconds: i64,
    headers: Option<Headers>,
}

/// Reads a worker's reply body. An empty body is an ack (RR). A body that is not the
/// protocol is a failure, so the job is not silently lost (RR acks it).
pub fn verdict(body: &[u8]) -> Verdict {
    if body.is_empty() {
        return Verdict::Ack;
    }
    let reply: Reply = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            return Verdict::Failed {
                message: format!("the worker's reply is not the jobs protocol: {e}"),
                nacked: false,
            };
        }
    };
    // PHP encodes an empty `data` as `[]`; only an object carries fields.
    let data: Data = match reply.data {
        Some(v @ serde_json::Value::Object(_)) => serde_json::from_value(v).unwrap_or_default(),
        _ => Data::default(),
    };
    let delay = u64::try_from(data.delay_seconds).unwrap_or(0);
    match reply.kind {
        0 | 2 => Verdict::Ack,
        1 if data.requeue => Verdict::Requeue {
            delay,
            headers: data.headers.unwrap_or_default(),
        },
        1 => Verdict::Failed {
            message: data.message,
            nacked: false,
        },
        3 if data.requeue && delay > 0 => Verdict::Requeue {
            delay,
            headers: Headers::new(),
        },
        3 if data.requeue => Verdict::NackRequeue,
        3 => Verdict::Failed {
            message: data.message,
            nacked: true,
        },
        4 => Verdict::Requeue {
            delay,
            headers: data.headers.unwrap_or_default(),
        },
        // RR acknowledges unknown types (with a warning).
        _ => Verdict::Ack,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reply_of_the_php_library() {
        let h = |k: &str, v: &str| Headers::from([(k.to_string(), vec![v.to_string()])]);
        let cases: Vec<(&str, Verdict)> = vec![
            ("", Verdict::Ack),
            (r#"{"type":0,"data":[]}"#, Verdict::Ack),
            (r#"{"type":2,"data":[]}"#, Verdict::Ack),
            (r#"{"type":2}"#, Verdict::Ack),
            (
                r#"{"type":1,"data":{"message":"boom","requeue":false,"delay_seconds":0}}"#,
                Verdict::Failed {
                    message: "boom".into(),
                    nacked: false,
                },
            ),
            (
                r#"{"type":1,"data":{"message":"x","requeue":true,"delay_seconds":5,"headers":{"a":["1"]}}}"#,
                Verdict::Requeue {
                    delay: 5,
                    headers: h("a", "1"),
                },
            ),
            (
                r#"{"type":3,"data":{"message":"no","requeue":false,"delay_seconds":0}}"#,
                Verdict::Failed {
                    message: "no".into(),
                    nacked: true,
                },
            ),
            (
                r#"{"type":3,"data":{"message":"again","requeue":true,"delay_seconds":0}}"#,
                Verdict::NackRequeue,
            ),
            (
                r#"{"type":3,"data":{"message":"later","requeue":true,"delay_seconds":2}}"#,
                Verdict::Requeue {
                    delay: 2,
                    headers: Headers::new(),
                },
            ),
            (
                r#"{"type":4,"data":{"message":"r","delay_seconds":0,"headers":{"b":["2"]}}}"#,
                Verdict::Requeue {
                    delay: 0,
                    headers: h("b", "2"),
                },
            ),
            (r#"{"type":9,"data":[]}"#, Verdict::Ack),
        ];
        for (body, want) in cases {
            assert_eq!(verdict(body.as_bytes()), want, "{body}");
        }
        assert!(matches!(
            verdict(b"OK"),
            Verdict::Failed { nacked: false, .. }
        ));
    }
}
