//! `pacer-sim`: a deterministic cluster simulator that drives the operator's real tuning
//! code for simulated days and scores what it does.
//!
//! # Theory of operation
//! A [`trace::Trace`] describes a scenario: a daily traffic cycle, bursts, a database
//! slowdown, deploys that bring a leak, a node that stops, operator restarts. [`run::run`]
//! steps a modelled [`cluster::Cluster`] one second at a time — pods whose PHP workers are
//! a queue ([`queue`]), per-worker memory that warms up and leaks ([`app`]), the cgroup
//! limit and OOM kills, CPU limits and throttling, the kubelet's ConfigMap delivery and
//! in-place resizes, pod start-up and readiness, scrape failures — and wakes the operator
//! ([`operator`]) when its last plan asked to be woken. The operator part is not a model:
//! it is `plan::plan` and `tuning::decide` of `pacer-operator`, fed by its own
//! `observe::pod_targets`, `metrics_source::window::Windows` and `aggregate`, exactly
//! as the controller calls them. [`record`] keeps one record per minute; [`score`] turns a
//! run into the numbers of issue 13 and checks them against the goals; [`svg`] draws it.
//!
//! Everything random comes from one seeded generator per trace ([`rng`]), so a run is
//! the same on every machine; a simulated week takes seconds.
//!
//! # Modules
//! * [`trace`] — the scenarios; [`app`] — the modelled PHP application.
//! * [`cluster`] — nodes, pods, kubelet, endpoints, the database; [`queue`] — the formulas.
//! * [`operator`] — the real decision code in the loop; [`run`] — one trace end to end.
//! * [`record`], [`score`], [`svg`] — what a run leaves, its score, its picture.
//!
//! Start reading at [`run::run`], then [`operator::Operator::tick`].

pub mod app;
pub mod cluster;
pub mod operator;
pub mod queue;
pub mod record;
pub mod rng;
pub mod run;
pub mod score;
pub mod svg;
pub mod trace;
