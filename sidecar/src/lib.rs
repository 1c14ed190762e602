//! Pacer's sidecar library. See ARCHITECTURE.md for the map.
pub mod children;
pub mod http;
pub mod pool;
pub mod relay;
pub mod stats;
pub mod supervisor;
mod sys;
pub mod worker;
