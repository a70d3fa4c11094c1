//! What can go wrong with a pipeline, typed so the CLI and the server can say it plainly.

use std::path::PathBuf;

/// A problem in a pipeline file, located so a person can go straight to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    /// 1-based; 0 when no line is known.
    pub line: usize,
    pub step: Option<String>,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if let Some(step) = &self.step {
            write!(f, " (step '{step}')")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The file is not valid YAML, or not the shape of a pipeline file.
    #[error("{at}: {message}")]
    Invalid { at: Location, message: String },
    #[error("{at}: dependency cycle: {}", cycle.join(" -> "))]
    Cycle { at: Location, cycle: Vec<String> },
    #[error("{at}: '{path}' is neither in the project nor the out of any step")]
    UnknownDep { at: Location, path: String },
    #[error("{at}: '{path}' is also an out of step '{other}' ({other_line}); one path has one writer")]
    DuplicateOut { at: Location, path: String, other: String, other_line: usize },
    #[error("reading {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// The tracking server or artifact store refused or failed a call.
    #[error("{0}")]
    Records(String),
    #[error("pipeline run cancelled")]
    Cancelled,
}

impl PipelineError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        PipelineError::Io { path: path.into(), source }
    }
}

pub type Result<T, E = PipelineError> = std::result::Result<T, E>;
