//! Model registry entities as MLflow's client reads them, plus Slipway's audit and lineage
//! records (native API).

use serde::{Deserialize, Serialize};

use crate::entities::{Dataset, KeyValue, Metric};

/// Writes a missing string as `""`: MLflow's server sets these proto fields from the request's
/// defaults, so its client always sees them.
fn ser_or_empty<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.as_deref().unwrap_or(""))
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Alias {
    pub alias: String,
    pub version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelVersion {
    pub name: String,
    /// A string on the wire: the client raises if it is a number.
    pub version: String,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user_id: Option<String>,
    pub current_stage: String,
    /// MLflow answers `""` for a version without one, never leaves it out.
    #[serde(serialize_with = "ser_or_empty", default)]
    pub description: Option<String>,
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub run_id: Option<String>,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status_message: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub tags: Vec<KeyValue>,
    /// `""` when absent, as MLflow answers.
    #[serde(serialize_with = "ser_or_empty", default)]
    pub run_link: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub aliases: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub model_id: Option<String>,
    /// Where the version's artifacts are read from; not part of MLflow's message.
    #[serde(skip)]
    pub storage_location: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisteredModel {
    pub name: String,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub latest_versions: Vec<ModelVersion>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub tags: Vec<KeyValue>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub aliases: Vec<Alias>,
}

/// One registry mutation, as recorded in the append-only audit log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditRecord {
    pub id: i64,
    pub timestamp: i64,
    pub actor: String,
    /// e.g. `create_registered_model`, `set_alias`, `transition_stage`.
    pub action: String,
    /// `registered_model` or `model_version`.
    pub object_type: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub version: Option<String>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

/// A dataset a run consumed, with the context it was used in (training, evaluation, ...).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LineageDataset {
    #[serde(flatten)]
    pub dataset: Dataset,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub context: Option<String>,
    /// The data versions (`slipway data`) this input's digest names.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub data_versions: Vec<crate::DataVersionRef>,
}

/// The run a model version names, and whether this server holds it. A run held by another
/// tracking server (MLflow's registry may be separate from tracking) is `external`: its params,
/// metrics and datasets are unknown here.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LineageRun {
    pub run_id: String,
    pub external: bool,
}

/// Where a model version came from: logged model, run, its inputs and code version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lineage {
    pub model_version: ModelVersion,
    pub logged_model_id: Option<String>,
    pub run_id: Option<String>,
    #[serde(default)]
    pub run: Option<LineageRun>,
    pub experiment_id: Option<String>,
    pub run_name: Option<String>,
    pub params: Vec<KeyValue>,
    pub metrics: Vec<Metric>,
    pub datasets: Vec<LineageDataset>,
    pub git_commit: Option<String>,
    pub source_name: Option<String>,
    pub registered_by: Option<String>,
    pub registered_at: i64,
    /// The run's side was left out: its experiment is not the reader's to see.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redacted: bool,
}

impl Lineage {
    /// Leaves out what the version's run says (its experiment, name, params, metrics,
    /// datasets, code), keeping the version and the run id it names anyway.
    pub fn redact_run(&mut self) {
        self.experiment_id = None;
        self.run_name = None;
        self.params.clear();
        self.metrics.clear();
        self.datasets.clear();
        self.git_commit = None;
        self.source_name = None;
        self.redacted = true;
    }
}
