//! Where a pipeline run is written down and its outs are kept: the tracking server (a
//! parent run per pipeline run, a child run per step) and a content-addressed blob store in
//! the artifact store. The CLI implements these over the REST API; the scheduler only sees
//! the traits.

use std::collections::BTreeMap;
use std::path::Path;

use async_trait::async_trait;

use crate::error::Result;
use crate::hash::Entry;

/// A run's final state, as MLflow spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Finished,
    Failed,
    Killed,
}

impl RunStatus {
    pub fn as_mlflow(self) -> &'static str {
        match self {
            RunStatus::Finished => "FINISHED",
            RunStatus::Failed => "FAILED",
            RunStatus::Killed => "KILLED",
        }
    }
}

/// A step's earlier successful run found by its cache key.
#[derive(Debug, Clone)]
pub struct Cached {
    pub run_id: String,
    /// Hash of the outs manifest blob.
    pub manifest: String,
    pub metrics: Vec<(String, f64)>,
}

/// A dependency logged as a run input: MLflow's dataset (name, digest, source).
#[derive(Debug, Clone)]
pub struct DatasetInput {
    pub name: String,
    pub digest: String,
    pub source: String,
}

/// What is recorded on a run in one call.
#[derive(Debug, Clone, Default)]
pub struct Log {
    pub params: Vec<(String, String)>,
    pub metrics: Vec<(String, f64)>,
    pub tags: Vec<(String, String)>,
}

#[async_trait]
pub trait Records: Send + Sync {
    /// The experiment a pipeline's runs go to, created when missing; returns its id.
    async fn experiment(&self, name: &str) -> Result<String>;
    /// Starts a run (a child when `parent` is given); returns its id.
    async fn start_run(&self, experiment_id: &str, name: &str, parent: Option<&str>, log: Log) -> Result<String>;
    async fn log(&self, run_id: &str, log: Log) -> Result<()>;
    async fn log_inputs(&self, run_id: &str, inputs: &[DatasetInput]) -> Result<()>;
    async fn finish(&self, run_id: &str, status: RunStatus) -> Result<()>;
    /// The latest finished step run with this cache key in the experiment.
    async fn find_cached(&self, experiment_id: &str, key: &str) -> Result<Option<Cached>>;
    /// Stores a file among the run's artifacts (`logs/train.log`).
    async fn upload_artifact(&self, run_id: &str, artifact_path: &str, file: &Path) -> Result<()>;
    /// Whether someone asked for the pipeline run to stop (`slipway pipelines cancel`).
    async fn cancel_requested(&self, run_id: &str) -> Result<bool>;
    /// What a `runs:/` or `models:/` dependency is now, as a stable identity to hash
    /// (a model alias resolves to its version).
    async fn identify(&self, uri: &str) -> Result<String>;
    /// The manifest SHA-256 of a data version (`which`: a number, an alias or `latest`,
    /// resolved now).
    async fn data_version(&self, name: &str, which: &str) -> Result<String>;
    /// Makes `dest` hold exactly the files of the data version with this manifest (files
    /// already right are left alone; others in `dest` are removed).
    async fn materialize_data(&self, manifest: &str, dest: &Path) -> Result<()>;
    /// Stores the files and folders `paths` (relative to `root`) as a new version of data set
    /// `name` with these tags, unless its latest version holds exactly them; returns the
    /// version's number.
    async fn publish_data(&self, name: &str, root: &Path, paths: &[String], tags: Vec<(String, String)>)
    -> Result<i64>;
    /// Runs in the experiment still RUNNING whose tag `tag` equals `value`: (run id, the
    /// value of their `slipway.runner` tag).
    async fn running(&self, experiment_id: &str, tag: &str, value: &str) -> Result<Vec<(String, Option<String>)>>;
}

/// Content-addressed storage for outs: a blob's name is its SHA-256.
#[async_trait]
pub trait Blobs: Send + Sync {
    async fn has(&self, hash: &str) -> Result<bool>;
    /// Stores `file` under `hash` (a no-op when it is already there).
    async fn put(&self, hash: &str, file: &Path) -> Result<()>;
    /// Writes the blob to `dest` (through a temporary file, so `dest` is whole or absent).
    async fn get(&self, hash: &str, dest: &Path) -> Result<()>;
}

/// The outs of one step: path -> what it held.
pub type Manifest = BTreeMap<String, Entry>;
