//! Model serving: registered ONNX models behind the MLflow scoring protocol, the Open
//! Inference Protocol V2 and KServe V1, with dynamic batching, a model cache under a memory
//! budget, deployments with canary and shadow versions, hot swap when an alias moves,
//! Prometheus metrics and the prediction log. The plan and the facts it rests on are in
//! `docs/design/serving.md`.
//!
//! Layers, one way: `http` (axum routers, protocol framing) → `serving` (deployments, routes,
//! the request path) → `cache` (loading, LRU) → `batch` (queues, worker pool) → `model`
//! (ONNX Runtime sessions). `decode`, `v2` and `encode` turn bodies into tensors and back.

pub mod batch;
pub mod cache;
pub mod decode;
pub mod encode;
pub mod http;
pub mod metrics;
pub mod mlmodel;
pub mod model;
pub mod runtime;
pub mod serving;
pub mod source;
pub mod tensor;
pub mod v2;
pub mod zipmap;

pub use serving::{Serving, ServingConfig};

/// Errors of the serving layer. Every variant has a status in [`ServingError::status`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum ServingError {
    /// The ONNX Runtime library could not be found or loaded; the text says how to get it.
    #[error("{0}")]
    Runtime(String),
    /// The model is not one Slipway can run (flavor, MLmodel); the text says what to do.
    #[error("{0}")]
    NotServable(String),
    /// A model file could not be loaded.
    #[error("cannot load model {path}: {message}")]
    Model { path: String, message: String },
    /// The request does not fit the model (input name, dtype, shape); the text names it.
    #[error("{0}")]
    BadInput(String),
    /// ONNX Runtime failed while running a model.
    #[error("inference failed: {0}")]
    Inference(String),
    /// No such deployment, model or version.
    #[error("{0}")]
    NotFound(String),
    /// The model's queue is full: try again shortly.
    #[error("{0}")]
    Overloaded(String),
    /// The request's deadline passed before it ran.
    #[error("{0}")]
    Timeout(String),
    /// Loading, over the memory budget, shutting down, or a backend failure.
    #[error("{0}")]
    Unavailable(String),
    /// The body is larger than the configured limit.
    #[error("{0}")]
    TooLarge(String),
    /// The content type is not one the protocol takes.
    #[error("{0}")]
    UnsupportedMedia(String),
}

/// How a client should hear of an error: status, MLflow error code, and seconds to wait.
pub struct Answer {
    pub status: u16,
    pub code: slipway_types::ErrorCode,
    pub retry_after: Option<u32>,
}

impl ServingError {
    /// The one table from error to status, matched without a catch-all.
    pub fn answer(&self) -> Answer {
        use slipway_types::ErrorCode as C;
        let (status, code, retry_after) = match self {
            ServingError::BadInput(_) => (400, C::BadRequest, None),
            ServingError::TooLarge(_) => (413, C::BadRequest, None),
            ServingError::UnsupportedMedia(_) => (415, C::BadRequest, None),
            ServingError::NotServable(_) => (400, C::InvalidParameterValue, None),
            ServingError::NotFound(_) => (404, C::ResourceDoesNotExist, None),
            ServingError::Overloaded(_) => (429, C::RequestLimitExceeded, Some(1)),
            ServingError::Timeout(_) => (503, C::TemporarilyUnavailable, Some(1)),
            ServingError::Unavailable(_) | ServingError::Runtime(_) => (503, C::TemporarilyUnavailable, Some(5)),
            ServingError::Model { .. } | ServingError::Inference(_) => (500, C::InternalError, None),
        };
        Answer { status, code, retry_after }
    }

    /// The text a client may see: internal failures are logged, not sent.
    pub fn client_message(&self) -> String {
        match self {
            ServingError::Inference(detail) => {
                tracing::error!(%detail, "inference failed");
                "inference failed; see the server log".to_string()
            }
            other => other.to_string(),
        }
    }
}
