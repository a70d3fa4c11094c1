//! Dataset versions as the native API (`/api/v1/data`) shows them.

use serde::{Deserialize, Serialize};

use crate::KeyValue;

/// One immutable version of a data set: the manifest (a blob named by its SHA-256) says which
/// files it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataVersion {
    pub name: String,
    pub version: i64,
    /// The SHA-256 of the manifest blob.
    pub manifest: String,
    /// What a run logs as an MLflow dataset input's digest to name this version: the
    /// manifest's first [`DataVersion::DIGEST_LEN`] hex digits (MLflow keeps a digest to 36
    /// characters). Any prefix of the manifest of 8 digits or more names it too.
    #[serde(default)]
    pub digest: String,
    pub files: i64,
    pub bytes: i64,
    /// Rows of its CSV and Parquet files, when it has any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    pub created_ms: i64,
    #[serde(default)]
    pub tags: Vec<KeyValue>,
    /// The aliases that name this version now.
    #[serde(default)]
    pub aliases: Vec<String>,
}

impl DataVersion {
    pub const DIGEST_LEN: usize = 32;

    pub fn digest_of(manifest: &str) -> String {
        manifest.chars().take(Self::DIGEST_LEN).collect()
    }
}

/// A data version named from elsewhere: a run's dataset input whose digest is the version's
/// manifest SHA-256 (or at least its first 8 hex digits, as MLflow digests run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataVersionRef {
    pub name: String,
    pub version: i64,
}

/// A data set: its versions' count, its newest one and its aliases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSet {
    pub name: String,
    pub created_ms: i64,
    pub versions: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<DataVersion>,
}

/// What `POST /api/v1/data/{name}/versions` asks for; the server fills in the counts from the
/// manifest it checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewDataVersion {
    pub name: String,
    pub manifest: String,
    pub files: i64,
    pub bytes: i64,
    pub rows: Option<i64>,
    pub message: Option<String>,
    pub tags: Vec<KeyValue>,
    pub aliases: Vec<String>,
}

/// A labeling queue on a deployment: which predictions it takes (`mode`: `sample` at `rate`,
/// `margin` below `threshold`, `flagged` by a monitor, `manual` pushed by a client), the
/// labels a labeller picks from (free text when empty), and how long a lease lasts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelQueue {
    pub name: String,
    pub deployment: String,
    pub mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    #[serde(default)]
    pub labels: Vec<String>,
    pub lease_seconds: i64,
    #[serde(default)]
    pub created_ms: i64,
    /// Predictions logged before this time were offered to the queue (a fed queue only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fed_ms: Option<i64>,
    /// Items by state: queued (or with an expired lease), leased, labelled.
    #[serde(default)]
    pub counts: LabelCounts,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LabelCounts {
    pub queued: i64,
    pub leased: i64,
    pub labelled: i64,
}

/// One row of one prediction request, waiting for (or given) its label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelItem {
    pub queue: String,
    pub item_id: i64,
    pub request_id: String,
    pub row: i64,
    pub inputs: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction: Option<serde_json::Value>,
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leased_by: Option<String>,
    /// Present only in the answer to the labeller who holds the lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labeller: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labelled_ms: Option<i64>,
}

/// An item offered to a queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewLabelItem {
    pub request_id: String,
    #[serde(default)]
    pub row: i64,
    pub inputs: serde_json::Value,
    #[serde(default)]
    pub prediction: Option<serde_json::Value>,
}
