//! Mergeable profiles, in the manner of whylogs: per column, counts and nulls, mean and
//! variance (Welford, merged by Chan's update), a quantile sketch with a certified rank-error
//! bound, a HyperLogLog distinct count and Misra-Gries frequent items. A profile is built in
//! one streaming pass by the same readers as drift, merges with the profile of more rows of
//! the same dataset, serialises to JSON, and two profiles give drift without the rows.
//!
//! Every sketch is deterministic (fixed hashing, a fixed compaction order, no randomness), so
//! the same rows always give the same profile. Error bounds are stated in each module and in
//! `docs/design/monitoring.md` (part B).

pub mod column;
pub mod dataset;
pub mod drift;
pub mod frequent;
pub mod hll;
pub mod moments;
pub mod quantile;

pub use column::{ColumnProfile, ProfileOptions};
pub use dataset::DatasetProfile;
pub use drift::{ProfileDriftReport, compare_profiles};

#[cfg(test)]
mod tests;
