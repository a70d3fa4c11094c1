//! The web UI.
//!
//! - [`mlflow`]: the MLflow UI, served from the user's own `mlflow` install (the full wheel
//!   ships the built React bundle; nothing of it is copied into this repository), at `/` and
//!   `/static-files/`.
//! - [`headers`]: the response headers every page carries.
//!
//! The routes take no application state: the server mounts them beside its API.

pub mod headers;
pub mod mlflow;
