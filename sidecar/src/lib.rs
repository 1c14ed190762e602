//! Pacer's sidecar library. See ARCHITECTURE.md for the map.
pub mod relay;
