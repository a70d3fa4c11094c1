//! Dataset versions: what `slipway data add` stores and `slipway data diff` compares.
//!
//! - [`tree`] lists the files a version is made of, from the files and folders it was given:
//!   regular files only, named by relative paths that cannot leave the version's root;
//! - [`manifest`] describes each file by size and SHA-256 (its name in the content-addressed
//!   store) and, for CSV and Parquet files, rows, columns and a profile;
//! - [`diff`] tells what changed between two versions: files added, removed and changed, and
//!   for a changed table its schema change and drift, from the two stored profiles.
//!
//! Nothing here speaks HTTP or SQL: the CLI stores blobs and versions through the server, and
//! the server checks what it is sent. The design is in `docs/design/data.md`.

pub mod diff;
pub mod manifest;
pub mod tree;

/// Why a version could not be read, made or compared.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A path given, or found under a folder given, that a version cannot hold.
    #[error("{path}: {why}")]
    Refused { path: String, why: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A manifest or profile that does not parse.
    #[error("{0}")]
    Format(String),
    #[error(transparent)]
    Monitor(#[from] slipway_monitor::MonitorError),
    #[error(transparent)]
    Hash(#[from] slipway_pipeline::PipelineError),
}

impl DataError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        DataError::Io { path: path.display().to_string(), source }
    }

    pub(crate) fn refused(path: &std::path::Path, why: impl Into<String>) -> Self {
        DataError::Refused { path: path.display().to_string(), why: why.into() }
    }
}

pub type Result<T, E = DataError> = std::result::Result<T, E>;
