//! The crate's one error type: what stops a gate from reaching a verdict. A verdict of "fail"
//! is not an error; it is a report whose `passed` is false.

use std::path::PathBuf;

/// An error from whoever keeps the registry and the runs (see [`crate::Registry`]).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("unsupported metric '{given}' (supported: {supported})")]
    UnsupportedMetric { given: String, supported: String },
    #[error("{0}")]
    InvalidOption(String),
    #[error("registered model '{0}' does not exist")]
    UnknownModel(String),
    #[error("registered model '{model}' has no version {version}")]
    UnknownVersion { model: String, version: String },
    #[error("cannot read the holdout {}: {source}", path.display())]
    Holdout { path: PathBuf, source: slipway_monitor::MonitorError },
    #[error("label column '{label}' is not in the holdout {} (its columns: {columns})", path.display())]
    MissingLabel { label: String, path: PathBuf, columns: String },
    #[error("holdout column '{column}' has the type {kind}, which a model request cannot carry")]
    UnsupportedColumn { column: String, kind: String },
    #[error("the holdout has no rows with a label in column '{0}'")]
    NoLabelledRows(String),
    #[error("{metric} needs numeric labels, but column '{label}' holds '{example}'")]
    LabelNotNumeric { metric: &'static str, label: String, example: String },
    #[error("cannot load model {model}/{version}: {message}")]
    ModelLoad { model: String, version: String, message: String },
    /// The holdout does not fit the model, or the model failed on it.
    #[error("cannot score model {model}/{version} on the holdout: {message}")]
    Scoring { model: String, version: String, message: String },
    /// The metric cannot be computed for this model on this holdout (no probabilities for
    /// ROC AUC, a single class, no numeric predictions).
    #[error("{metric} is undefined for model {model}/{version}: {why}")]
    MetricUndefined { metric: &'static str, model: String, version: String, why: String },
    /// The registry or tracking server could not be asked or changed.
    #[error("{action}: {source}")]
    Registry { action: String, source: BoxError },
}
