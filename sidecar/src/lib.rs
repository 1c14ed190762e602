//! `pacer`: a RoadRunner-compatible PHP application server, run as one process per pod.
//!
//! pacer reads a RoadRunner `.rr.yaml` ([`config`]), starts long-lived PHP worker
//! processes ([`worker`]) and keeps a pool of them at its target size ([`pool`]), and
//! serves HTTP ([`http`]) by handing each request to an idle worker as one Goridge frame
//! ([`relay`]) and turning the worker's reply frame into the response. Around that:
//! health and readiness ([`status`], [`readiness`]), Prometheus metrics ([`metrics`],
//! [`stats`]), RoadRunner's RPC ([`rpc`]) for `informer`/`resetter`/`metrics` calls from
//! PHP and the CLI, worker supervision ([`supervisor`]: ttl, idle_ttl, memory,
//! exec_ttl), hot reload ([`reload`]), live config changes ([`config_watch`]) and PID-1
//! duties ([`pid1`], [`children`]). [`app`] composes all of it and owns the shutdown
//! order; the `pacer` binary (`main.rs`, [`cli`]) parses the command line and picks the
//! runtime ([`shards`] for one runtime per CPU).
//!
//! # One request
//!
//! ```text
//! accept (http::server) → static file? → body (bounded) → request context (http::convert)
//!   → Pool::exec: lease an idle worker (own shard first) or wait in the bounded queue
//!   → Worker::exec: one write of the job frame, read the reply frame (worker::exchange)
//!   → http::response::parse → hyper response (X-Sendfile, streamed replies) → release
//! ```
//!
//! Everything for one request runs in its connection's task; with runtime shards that
//! task, the connection and the worker's relay share one thread and one CPU.
//!
//! # Where to start reading
//!
//! `app.rs`, then `pool/mod.rs` with its fake-worker tests (`pool/tests.rs`), then
//! `http/server.rs`. ARCHITECTURE.md (repository root) maps every module; the wire
//! contract with PHP is Goridge v3 frames carrying RoadRunner's JSON payloads.
//!
//! # Invariants worth knowing
//!
//! * A [`worker::Worker`] has exactly one owner: the pool's idle list or the request that
//!   leased it ([`pool::Lease`]). No lock is held across I/O.
//! * Bad input never takes the server down: bad config exits 64 naming the key; bad
//!   frames from PHP replace the worker and answer `http.internal_error_code`; bad HTTP
//!   gets a 4xx.
//! * The only `unsafe` code is the pre-exec hooks in `sys.rs`.
pub mod accept;
pub mod app;
pub mod cgroup;
pub mod children;
pub mod cli;
pub mod config;
pub mod config_watch;
pub mod endpoint;
pub mod http;
pub mod jobs;
pub mod logging;
pub mod metrics;
pub mod otel;
pub mod pid1;
pub mod plugin;
pub mod pool;
pub mod readiness;
pub mod relay;
pub mod reload;
pub mod rpc;
pub mod rr_cli;
pub mod service;
pub mod shards;
pub mod shutdown;
pub mod stats;
pub mod status;
pub mod supervisor;
mod sys;
pub mod worker;
pub mod zap_json;
