//! The web UI.
//!
//! - [`mlflow`]: the MLflow UI, served from the user's own `mlflow` install (the full wheel
//!   ships the built React bundle; nothing of it is copied into this repository), at `/` and
//!   `/static-files/`.
//! - [`pages`]: Slipway's own pages under `/ui/` (deployments, monitors, alerts, audit,
//!   lineage, pipelines), rendered on the server from what the server hands them; [`assets`]:
//!   the script, stylesheet and vendored chart and htmx files they load, embedded.
//! - [`headers`]: the response headers every page carries.
//!
//! The routes take no application state: the server mounts them beside its API.

pub mod assets;
pub mod headers;
pub mod mlflow;
pub mod pages;
