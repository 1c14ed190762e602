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
