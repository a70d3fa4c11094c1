//! `.slipway/<pipeline>.lock.json`: what each step last produced from which inputs (as
//! `dvc.lock`). Checking a pipeline against it needs no server: a rerun where every step's
//! key and outs match does nothing and contacts nobody. It is rewritten (atomically) after
//! every step, so a killed run resumes from the last finished step.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{PipelineError, Result};
use crate::hash::STATE_DIR;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Locked {
    pub key: String,
    /// The run that produced the outs.
    pub run_id: String,
    /// Hash of the outs manifest blob.
    pub manifest: String,
    /// Each out's hash, to compare with the workspace without fetching the manifest.
    pub outs: BTreeMap<String, String>,
    pub metrics: Vec<(String, f64)>,
}

#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
    pub steps: BTreeMap<String, Locked>,
}

impl Lock {
    pub fn open(root: &Path, pipeline: &str) -> Lock {
        let safe: String =
            pipeline.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
        let path = root.join(STATE_DIR).join(format!("{safe}.lock.json"));
        let steps = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        Lock { path, steps }
    }

    pub fn save(&self) -> Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| PipelineError::io(dir, e))?;
        let body = serde_json::to_vec_pretty(&self.steps).map_err(|e| PipelineError::Records(e.to_string()))?;
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, body).map_err(|e| PipelineError::io(&tmp, e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| PipelineError::io(&self.path, e))
    }
}
