//! Wire types shared by the server, the CLI and the tests.
//!
//! The shapes follow MLflow's protobuf messages rendered as JSON (snake_case proto field names),
//! because the unmodified `mlflow` client parses them with `google.protobuf.json_format`.
//! A request or response shape is defined here once and nowhere else.

pub mod data;
pub mod entities;
pub mod error;
pub mod json;
pub mod monitoring;
pub mod registry;
pub mod serving;
pub mod time;

pub use data::{
    DataSet, DataVersion, DataVersionRef, LabelCounts, LabelItem, LabelQueue, NewDataVersion, NewLabelItem,
};
pub use entities::*;
pub use error::{ErrorCode, MlflowError};
pub use monitoring::{
    AlertEvent, AlertRule, AlertStatus, Comparison, GroundTruth, Monitor, MonitorSpec, MonitorWindow, Reference, Task,
};
pub use registry::*;
pub use serving::{Deployment, DeploymentSpec, Split};
