//! Monitors on deployments as the native API (`/api/v1/monitors`) and the tests see them: a
//! monitor ties a deployment to a reference dataset and evaluates its prediction log in
//! windows; alert rules watch the series it produces.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where the reference dataset (CSV or Parquet) is: exactly one of the two.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    /// `runs:/<run_id>/<path>` or `mlflow-artifacts:/<path>`: a file in this server's
    /// artifact store (uploaded with `mlflow.log_artifact` or the artifact API).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub uri: Option<String>,
    /// A path among the artifacts of the run that produced the deployment's primary
    /// version: the training data logged beside the model.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub run_artifact: Option<String>,
}

/// Which performance metrics ground truth yields.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    Classification,
    Regression,
}

/// The comparison an alert rule makes against its threshold.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum Comparison {
    #[serde(rename = ">")]
    Above,
    #[serde(rename = ">=")]
    AtLeast,
    #[serde(rename = "<")]
    Below,
    #[serde(rename = "<=")]
    AtMost,
}

impl Comparison {
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::Above => value > threshold,
            Comparison::AtLeast => value >= threshold,
            Comparison::Below => value < threshold,
            Comparison::AtMost => value <= threshold,
        }
    }
}

/// Fires when `series <op> threshold` holds for `for_windows` consecutive windows; fires
/// again only after a window where it did not hold.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    pub name: String,
    /// A series of the monitor's windows, e.g. `drift.share` or `performance.accuracy`.
    pub series: String,
    pub op: Comparison,
    pub threshold: f64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub for_windows: Option<u32>,
    /// Receives a JSON POST when the rule fires.
    pub webhook: String,
    /// An environment variable of the server holding a token the POST carries as
    /// `Authorization: Bearer …` (a Slipway server with auth on, such as its own pipelines
    /// route). Only the variable's name is stored, never the token.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub token_env: Option<String>,
}

/// What a client asks for when it creates or replaces a monitor.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MonitorSpec {
    pub name: String,
    pub deployment: String,
    pub reference: Reference,
    /// Names of the model's input tensor columns, in order; default the reference's
    /// columns (without `target`) when their count matches, else `<tensor>[i]`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub features: Option<Vec<String>>,
    /// The reference column holding the label; compared with the predictions' drift.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub target: Option<String>,
    /// The model output holding the prediction; default the first output.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub prediction: Option<String>,
    /// The model output holding class probabilities (for ROC AUC), in sorted class order.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub probabilities: Option<String>,
    /// Default: classification when the prediction is integer or text, else regression.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub task: Option<Task>,
    /// Window length in seconds; default 3600.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub window_seconds: Option<u64>,
    /// Per-column drift method (as `slipway drift --column-method`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub column_methods: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub column_thresholds: BTreeMap<String, f64>,
    /// The dataset drifts when at least this share of features drift; default 0.5.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub drift_share: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub alerts: Vec<AlertRule>,
    /// Columns declared numerical or categorical, as Evidently's data definition declares
    /// them (an integer code, a zero-padded "001"); the rest are typed by inference.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub numerical_columns: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub categorical_columns: Vec<String>,
    /// A schema as `slipway validate` writes it (edited or not), checked instead of the one
    /// inferred from the reference.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub schema: Option<serde_json::Value>,
}

pub const DEFAULT_WINDOW_SECONDS: u64 = 3600;

impl MonitorSpec {
    pub fn window_ms(&self) -> i64 {
        self.window_seconds.unwrap_or(DEFAULT_WINDOW_SECONDS).saturating_mul(1000).min(i64::MAX as u64) as i64
    }
}

/// A stored monitor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Monitor {
    #[serde(flatten)]
    pub spec: MonitorSpec,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
}

/// One evaluated window `[start_ms, end_ms)` of a monitor: its series by name, and the
/// per-feature drift detail.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MonitorWindow {
    pub monitor: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub rows: u64,
    pub series: BTreeMap<String, f64>,
    /// The drift report (per-column method, statistic, threshold, verdict), when rows were seen.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub drift: Option<serde_json::Value>,
    pub computed_at: i64,
}

/// One firing of an alert rule, and how its webhook delivery went.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AlertEvent {
    pub id: i64,
    pub monitor: String,
    pub rule: String,
    /// The window whose value completed the streak.
    pub window_start_ms: i64,
    pub series: String,
    pub value: f64,
    pub threshold: f64,
    pub fired_at: i64,
    pub status: AlertStatus,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub delivered_at: Option<i64>,
}

/// Where an alert event's webhook delivery stands.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// Not delivered yet; retried, also by the next server to evaluate after a restart.
    Pending,
    Delivered,
    /// Every retry used up.
    Failed,
}

impl AlertStatus {
    /// The stored and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Pending => "pending",
            AlertStatus::Delivered => "delivered",
            AlertStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<AlertStatus> {
        [AlertStatus::Pending, AlertStatus::Delivered, AlertStatus::Failed].into_iter().find(|v| v.as_str() == s)
    }
}

/// Labels for one past request: one per row it sent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroundTruth {
    pub request_id: String,
    pub labels: Vec<serde_json::Value>,
}
