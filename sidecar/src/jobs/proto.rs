//! `jobs.v1` protobuf messages of RoadRunner's jobs RPC (`roadrunner-server/api`
//! `jobs/v1/jobs.proto`; the PHP library uses the generated classes of
//! `roadrunner-php/roadrunner-api-dto`). Field numbers are the contract.

use std::collections::HashMap;

#[derive(Clone, PartialEq, prost::Message)]
pub struct PushRequest {
    #[prost(message, optional, tag = "1")]
    pub job: Option<Job>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PushBatchRequest {
    #[prost(message, repeated, tag = "1")]
    pub jobs: Vec<Job>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Job {
    #[prost(string, tag = "1")]
    pub job: String,
    #[prost(string, tag = "2")]
    pub id: String,
    #[prost(bytes = "bytes", tag = "3")]
    pub payload: bytes::Bytes,
    #[prost(map = "string, message", tag = "4")]
    pub headers: HashMap<String, HeaderValue>,
    #[prost(message, optional, tag = "5")]
    pub options: Option<Options>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HeaderValue {
    #[prost(string, repeated, tag = "1")]
    pub value: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Options {
    #[prost(int64, tag = "1")]
    pub priority: i64,
    #[prost(string, tag = "2")]
    pub pipeline: String,
    #[prost(int64, tag = "3")]
    pub delay: i64,
    #[prost(bool, tag = "6")]
    pub auto_ack: bool,
    #[prost(string, tag = "7")]
    pub topic: String,
    #[prost(string, tag = "8")]
    pub metadata: String,
    #[prost(int64, tag = "9")]
    pub offset: i64,
    #[prost(int32, tag = "10")]
    pub partition: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Pipelines {
    #[prost(string, repeated, tag = "1")]
    pub pipelines: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DeclareRequest {
    #[prost(map = "string, string", tag = "1")]
    pub pipeline: HashMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Empty {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Stat {
    #[prost(string, tag = "1")]
    pub pipeline: String,
    #[prost(string, tag = "2")]
    pub driver: String,
    #[prost(string, tag = "3")]
    pub queue: String,
    #[prost(int64, tag = "4")]
    pub active: i64,
    #[prost(int64, tag = "5")]
    pub delayed: i64,
    #[prost(int64, tag = "6")]
    pub reserved: i64,
    #[prost(bool, tag = "7")]
    pub ready: bool,
    #[prost(uint64, tag = "8")]
    pub priority: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Stats {
    #[prost(message, repeated, tag = "1")]
    pub stats: Vec<Stat>,
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    fn golden() -> serde_json::Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../testdata/jobs/proto-golden.json"
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// The same bytes as our PHP library's hand-written encoder (php/tests/Jobs), and
    /// decodable both ways.
    #[test]
    fn golden_messages_match_the_php_encoder() {
        let g = golden();
        let j = &g["push_request"]["job"];
        let push = PushRequest {
            job: Some(Job {
                job: j["job"].as_str().unwrap().into(),
                id: j["id"].as_str().unwrap().into(),
                payload: j["payload"].as_str().unwrap().as_bytes().to_vec().into(),
                headers: HashMap::from([(
                    "k".to_string(),
                    HeaderValue {
                        value: vec!["v1".into(), "v2".into()],
                    },
                )]),
                options: Some(Options {
                    priority: 5,
                    pipeline: "emails".into(),
                    delay: 3,
                    auto_ack: true,
                    ..Default::default()
                }),
            }),
        };
        assert_eq!(hex(&push.encode_to_vec()), g["push_request"]["hex"]);
        let p = Pipelines {
            pipelines: vec!["a".into(), "b".into()],
        };
        assert_eq!(hex(&p.encode_to_vec()), g["pipelines"]["hex"]);
        let d = DeclareRequest {
            pipeline: HashMap::from([("driver".to_string(), "memory".to_string())]),
        };
        assert_eq!(hex(&d.encode_to_vec()), g["declare"]["hex"]);
        let s = Stats {
            stats: vec![Stat {
                pipeline: "emails".into(),
                driver: "amqp".into(),
                queue: "q".into(),
                active: 7,
                delayed: 1,
                reserved: 2,
                ready: true,
                priority: 10,
            }],
        };
        assert_eq!(hex(&s.encode_to_vec()), g["stats"]["hex"]);
    }
}
