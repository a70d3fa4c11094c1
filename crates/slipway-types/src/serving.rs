//! Serving deployments as the native API (`/api/v1/deployments`), the CLI and the tests see
//! them: a named endpoint that points at a registered model's alias or version, with an
//! optional canary split and an optional shadow copy of traffic.

use serde::{Deserialize, Serialize};

/// Which version of a registered model a deployment (or its canary or shadow) serves:
/// exactly one of `alias` (followed when it moves) and `version` (pinned).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Split {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub alias: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub version: Option<String>,
    /// Canary: the share of requests it answers, in (0, 1). Shadow: the share of requests
    /// copied to it, in (0, 1]; default 1.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub weight: Option<f64>,
}

/// What a client asks for when it creates or replaces a deployment.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeploymentSpec {
    pub name: String,
    /// The registered model.
    pub model: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub alias: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub canary: Option<Split>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub shadow: Option<Split>,
    /// Share of requests written to the prediction log, in [0, 1]; default 1.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub log_sample: Option<f64>,
    /// Most rows one batch may hold; default the server's.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_batch_rows: Option<u32>,
    /// Longest a batch waits for more requests, in microseconds; default 0 (never waits).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_wait_us: Option<u32>,
}

/// A stored deployment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Deployment {
    #[serde(flatten)]
    pub spec: DeploymentSpec,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
}

/// Which deployments a caller may see, left in a request's extensions by the auth layer for
/// the routes that list them; without one (auth off) every deployment is visible.
#[derive(Clone)]
pub struct ReadableDeployments(pub std::sync::Arc<dyn Fn(&str) -> bool + Send + Sync>);

impl ReadableDeployments {
    /// Whether `deployment` may be shown to a caller with `readable` (`None`: anyone may).
    pub fn allows(readable: Option<&ReadableDeployments>, deployment: &str) -> bool {
        readable.is_none_or(|r| (r.0)(deployment))
    }
}
