//! The HTTP face of every error: MLflow's `{"error_code", "message"}` body and status.
//!
//! The mapping from store and artifact errors is matched exhaustively, without a `_` arm, so a
//! new variant cannot reach clients unmapped. Backend details are logged, never sent.

#![warn(clippy::wildcard_enum_match_arm)]

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use slipway_artifacts::ArtifactError;
use slipway_monitor::MonitorError;
use slipway_pipeline::PipelineError;
use slipway_store::StoreError;
use slipway_types::{ErrorCode, MlflowError};

/// An error answered to a client. `status` overrides the code's usual status (413, 405).
#[derive(Debug)]
pub struct ApiError {
    pub error: MlflowError,
    pub status: Option<StatusCode>,
    /// Seconds for a `Retry-After` header: throttled and overloaded answers.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { error: MlflowError::new(code, message), status: None, retry_after: None }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidParameterValue, message)
    }
    pub fn with_retry_after(mut self, wait: std::time::Duration) -> Self {
        self.retry_after = Some(wait.as_secs().max(1));
        self
    }
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }
    /// MLflow's words for a required field left out, with the pointer to the docs its
    /// schema check adds.
    pub fn missing(field: &str) -> Self {
        Self::invalid(format!(
            "Missing value for required parameter '{field}'. See the API docs for more information about request \
             parameters."
        ))
    }
}

impl From<MlflowError> for ApiError {
    fn from(error: MlflowError) -> Self {
        Self { error, status: None, retry_after: None }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => Self::new(ErrorCode::ResourceDoesNotExist, m),
            StoreError::AlreadyExists(m) => Self::new(ErrorCode::ResourceAlreadyExists, m),
            StoreError::InvalidParameter(m) => Self::new(ErrorCode::InvalidParameterValue, m),
            StoreError::InvalidState(m) => Self::new(ErrorCode::InvalidState, m),
            // 503: the MLflow client retries it.
            StoreError::Conflict(m) => Self::new(ErrorCode::TemporarilyUnavailable, m),
            StoreError::Backend(detail) => {
                tracing::error!(%detail, "metadata store failure");
                MlflowError::internal().into()
            }
        }
    }
}

impl From<ArtifactError> for ApiError {
    fn from(e: ArtifactError) -> Self {
        match e {
            ArtifactError::InvalidPath(m) => Self::new(ErrorCode::InvalidParameterValue, m),
            ArtifactError::NotFound(m) => Self::new(ErrorCode::ResourceDoesNotExist, m),
            ArtifactError::Upload(m) => Self::new(ErrorCode::BadRequest, m),
            ArtifactError::Backend(detail) => {
                tracing::error!(%detail, "artifact store failure");
                MlflowError::internal().into()
            }
        }
    }
}

impl From<PipelineError> for ApiError {
    fn from(e: PipelineError) -> Self {
        match e {
            e @ (PipelineError::Invalid { .. }
            | PipelineError::Cycle { .. }
            | PipelineError::UnknownDep { .. }
            | PipelineError::DuplicateOut { .. }) => Self::invalid(e.to_string()),
            e @ (PipelineError::Io { .. } | PipelineError::Records(_) | PipelineError::Cancelled) => {
                tracing::error!(detail = %e, "pipeline failure");
                MlflowError::internal().into()
            }
        }
    }
}

impl From<MonitorError> for ApiError {
    fn from(e: MonitorError) -> Self {
        match e {
            MonitorError::Store(e) => e.into(),
            MonitorError::Artifacts(e) => e.into(),
            MonitorError::PredictionLog(detail) | MonitorError::Internal(detail) => {
                tracing::error!(%detail, "monitor evaluation failure");
                MlflowError::internal().into()
            }
            // A spec, a reference or a dataset the caller must fix.
            e @ (MonitorError::Io { .. }
            | MonitorError::Csv { .. }
            | MonitorError::Parquet { .. }
            | MonitorError::UnknownFormat(_)
            | MonitorError::EmptyColumn { .. }
            | MonitorError::MissingColumn(..)
            | MonitorError::TypeMismatch { .. }
            | MonitorError::MethodNeedsNumeric { .. }
            | MonitorError::UnknownMethod(_)
            | MonitorError::InvalidThreshold(_)
            | MonitorError::NoColumns
            | MonitorError::ProfileMerge(_)
            | MonitorError::BadProfile(_)
            | MonitorError::InvalidSchema(_)
            | MonitorError::DeclaredTwice(_)
            | MonitorError::DeclaredMissing { .. }
            | MonitorError::DeclaredNotCompared { .. }
            | MonitorError::DeclaredNumericalHoldsText { .. }
            | MonitorError::InvalidSpec(_)
            | MonitorError::Reference(_)) => Self::invalid(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status.unwrap_or_else(|| {
            StatusCode::from_u16(self.error.error_code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        });
        let mut resp = (status, axum::Json(self.error)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
