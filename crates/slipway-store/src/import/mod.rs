//! Writing another tracking server's history into the store as stored facts, for
//! `slipway import`.
//!
//! [`ImportStore`] is deliberately not part of [`crate::MetadataStore`]: it writes ids, times,
//! statuses and deletions that no client may choose, so the HTTP layer never holds it. Each
//! item is upserted by its id with the source as the truth, in one transaction, so an import
//! can be interrupted and run again, and a second run over the same source changes nothing.
//!
//! [`mlflow`] reads the items out of an MLflow tracking database.

pub mod mlflow;

use async_trait::async_trait;
use slipway_types::{KeyValue, Metric};

use crate::Result;

pub struct ImportedExperiment {
    pub id: i64,
    pub name: String,
    pub artifact_location: String,
    pub lifecycle_stage: String,
    pub creation_time: i64,
    pub last_update_time: i64,
    pub tags: Vec<KeyValue>,
}

/// A run with everything it logged.
pub struct ImportedRun {
    pub run_id: String,
    pub experiment_id: i64,
    pub name: String,
    pub user_id: String,
    pub status: String,
    pub start_time: i64,
    pub end_time: Option<i64>,
    pub lifecycle_stage: String,
    pub deleted_time: Option<i64>,
    pub artifact_uri: String,
    pub params: Vec<KeyValue>,
    pub tags: Vec<KeyValue>,
    /// The full history; NaN is `f64::NAN`.
    pub metrics: Vec<Metric>,
    pub inputs: Vec<ImportedInput>,
    pub model_links: Vec<ImportedModelLink>,
}

/// A dataset the run consumed, with the ids the source gave the dataset and the input.
pub struct ImportedInput {
    pub input_uuid: String,
    pub dataset_uuid: String,
    pub name: String,
    pub digest: String,
    pub source_type: String,
    pub source: String,
    pub schema: Option<String>,
    pub profile: Option<String>,
    pub tags: Vec<KeyValue>,
}

/// A logged model the run consumed (`output == false`) or produced at `step`.
pub struct ImportedModelLink {
    pub model_id: String,
    pub output: bool,
    pub step: i64,
}

pub struct ImportedLoggedModel {
    pub model_id: String,
    pub experiment_id: i64,
    pub name: String,
    pub artifact_location: String,
    pub creation_time: i64,
    pub last_updated_time: i64,
    /// `LOGGED_MODEL_READY` and its siblings.
    pub status: String,
    pub lifecycle_stage: String,
    pub model_type: Option<String>,
    pub source_run_id: Option<String>,
    pub status_message: Option<String>,
    pub params: Vec<KeyValue>,
    pub tags: Vec<KeyValue>,
    /// Points runs logged for this model; each names its `run_id`.
    pub metrics: Vec<Metric>,
}

/// A registered model with its versions (deleted ones too, so their numbers stay taken) and
/// aliases.
pub struct ImportedRegisteredModel {
    pub name: String,
    pub creation_time: i64,
    pub last_updated_time: i64,
    pub description: Option<String>,
    pub tags: Vec<KeyValue>,
    pub versions: Vec<ImportedVersion>,
    /// (alias, version).
    pub aliases: Vec<(String, i64)>,
}

pub struct ImportedVersion {
    pub version: i64,
    pub creation_time: i64,
    pub last_updated_time: i64,
    pub user_id: Option<String>,
    /// `Deleted_Internal` marks a deleted version.
    pub current_stage: String,
    pub description: Option<String>,
    pub source: String,
    pub storage_location: String,
    pub run_id: Option<String>,
    pub run_link: Option<String>,
    pub model_id: Option<String>,
    pub status: String,
    pub status_message: Option<String>,
    pub tags: Vec<KeyValue>,
}

/// One unit of an import: written whole or not at all.
pub enum Imported {
    Experiment(ImportedExperiment),
    /// A run, with its history or the first part of it.
    Run(Box<ImportedRun>),
    /// More of an imported run's history: long histories come in parts, so neither side holds
    /// all of one in memory.
    RunMetrics {
        run_id: String,
        metrics: Vec<Metric>,
    },
    LoggedModel(ImportedLoggedModel),
    RegisteredModel(ImportedRegisteredModel),
}

/// What importing one item did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
    /// Nothing was written: the id or name belongs to something else here, or what the item
    /// belongs to was not imported. The text says which.
    Conflict(String),
}

#[async_trait]
pub trait ImportStore: Send + Sync {
    /// Upserts one item; everything it holds commits together.
    async fn import(&self, item: Imported, actor: String) -> Result<Outcome>;

    /// Brings what the database generates itself past the imported ids (PostgreSQL's
    /// experiment id sequence).
    async fn finish_import(&self) -> Result<()>;
}
