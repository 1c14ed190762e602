//! Pacer's sidecar library. See ARCHITECTURE.md for the map.
pub mod children;
pub mod endpoint;
pub mod http;
pub mod metrics;
pub mod pid1;
pub mod pool;
pub mod relay;
pub mod rpc;
pub mod stats;
pub mod status;
pub mod supervisor;
mod sys;
pub mod worker;
