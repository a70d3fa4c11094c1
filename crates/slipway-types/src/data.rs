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
