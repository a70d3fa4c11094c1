//! The crate's one error type.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot parse csv {path}: {source}")]
    Csv { path: PathBuf, source: csv::Error },
    #[error("cannot read parquet {path}: {message}")]
    Parquet { path: PathBuf, message: String },
    #[error("unknown file format for {0} (expected .csv or .parquet)")]
    UnknownFormat(PathBuf),
    #[error("column '{column}' is empty in the {dataset} dataset after dropping nulls")]
    EmptyColumn { column: String, dataset: &'static str },
    #[error("column '{0}' is missing from the {1} dataset")]
    MissingColumn(String, &'static str),
    #[error("column '{column}' is {current} in the current dataset but {reference} in the reference")]
    TypeMismatch { column: String, current: &'static str, reference: &'static str },
    #[error("column '{0}' is declared both numerical and categorical")]
    DeclaredTwice(String),
    #[error("column '{column}' is declared {declared} but is missing from the {dataset} dataset")]
    DeclaredMissing { column: String, declared: &'static str, dataset: &'static str },
    #[error("column '{column}' is declared {declared} but is not among the compared columns")]
    DeclaredNotCompared { column: String, declared: &'static str },
    #[error("column '{column}' is declared numerical but holds text in the {dataset} dataset (such as '{example}')")]
    DeclaredNumericalHoldsText { column: String, dataset: &'static str, example: String },
    #[error("method {method} needs a numeric column, and '{column}' is categorical")]
    MethodNeedsNumeric { method: &'static str, column: String },
    #[error(
        "unknown drift method '{0}' (expected ks, chisquare, z, wasserstein, jensenshannon, psi, kl_div or hellinger)"
    )]
    UnknownMethod(String),
    #[error("invalid threshold {0} (expected a finite number)")]
    InvalidThreshold(String),
    #[error("no columns to compare")]
    NoColumns,
    #[error("cannot merge profiles: {0}")]
    ProfileMerge(String),
    #[error("invalid profile: {0}")]
    BadProfile(String),
    #[error("invalid schema: {0}")]
    InvalidSchema(String),
    /// A monitor spec that cannot be evaluated as written.
    #[error("{0}")]
    InvalidSpec(String),
    /// A monitor's reference file is missing or unreadable.
    #[error("{0}")]
    Reference(String),
    #[error(transparent)]
    Store(#[from] slipway_store::StoreError),
    #[error(transparent)]
    Artifacts(#[from] slipway_artifacts::ArtifactError),
    /// The prediction log could not be read: not the caller's fault.
    #[error("cannot read the prediction log: {0}")]
    PredictionLog(String),
    /// Anything else that is not the caller's fault.
    #[error("{0}")]
    Internal(String),
}

impl MonitorError {
    /// Logs why a monitor was not evaluated: a fault of ours as an error, the rest (a spec or
    /// reference the user must fix) as a warning.
    pub fn log_for(&self, monitor: &str) {
        match self {
            MonitorError::PredictionLog(_)
            | MonitorError::Internal(_)
            | MonitorError::Store(slipway_store::StoreError::Backend(_))
            | MonitorError::Artifacts(slipway_artifacts::ArtifactError::Backend(_)) => {
                tracing::error!(monitor, error = %self, "monitor not evaluated")
            }
            _ => tracing::warn!(monitor, error = %self, "monitor not evaluated"),
        }
    }
}
