//! Pacer's sidecar library. See ARCHITECTURE.md for the map.
pub mod app;
pub mod children;
pub mod config;
pub mod config_watch;
pub mod endpoint;
pub mod http;
pub mod metrics;
pub mod pid1;
pub mod pool;
pub mod relay;
pub mod reload;
pub mod rpc;
pub mod shutdown;
pub mod stats;
pub mod status;
pub mod supervisor;
mod sys;
pub mod worker;
