//! placeholder
pub mod metrics_source;
pub mod resources;
pub mod sample;
pub mod tuning;
pub use pacer_crds::units;
