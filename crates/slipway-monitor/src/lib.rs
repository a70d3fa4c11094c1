//! Monitoring for Slipway: data drift between a reference and a current dataset, with
//! numbers that match Evidently 0.7.23 (its legacy stattests, which the new API delegates to),
//! data validation, and the monitors that watch deployments.
//!
//! - [`read`] streams CSV and Parquet into per-column accumulators (numbers or counts);
//! - [`typing`] types columns: as declared ([`typing::DeclaredTypes`], Evidently's data
//!   definition), else the way Evidently does without one;
//! - [`stats`] holds the tests (KS, chi-square, Z, Wasserstein, Jensen-Shannon, PSI, KL,
//!   Hellinger), Evidently's default choice among them and their thresholds;
//! - [`drift`] runs them over every column and decides the dataset verdict;
//! - [`performance`] scores a model against its ground truth, as scikit-learn does;
//! - [`profile`] builds mergeable column profiles (moments, quantile, distinct and
//!   frequent-item sketches) in one pass, and computes drift from two profiles;
//! - [`validate`] infers a schema from a reference profile and checks a batch against it;
//! - [`monitors`] runs monitors on deployments: windows of the prediction log evaluated
//!   against a reference and ground truth, stored, and alert rules delivered to webhooks.

pub mod drift;
mod error;
pub mod monitors;
pub mod performance;
pub mod profile;
pub mod read;
pub mod stats;
pub mod typing;
pub mod validate;

pub use error::MonitorError;
