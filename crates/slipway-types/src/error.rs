//! MLflow's error codes and the one table that maps them to HTTP statuses.

use serde::Serialize;

/// The `error_code` values the MLflow client branches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    InvalidParameterValue,
    ResourceDoesNotExist,
    ResourceAlreadyExists,
    BadRequest,
    EndpointNotFound,
    InvalidState,
    ResourceConflict,
    RequestLimitExceeded,
    Unauthenticated,
    PermissionDenied,
    InternalError,
    TemporarilyUnavailable,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidParameterValue => "INVALID_PARAMETER_VALUE",
            ErrorCode::ResourceDoesNotExist => "RESOURCE_DOES_NOT_EXIST",
            ErrorCode::ResourceAlreadyExists => "RESOURCE_ALREADY_EXISTS",
            ErrorCode::BadRequest => "BAD_REQUEST",
            ErrorCode::EndpointNotFound => "ENDPOINT_NOT_FOUND",
            ErrorCode::InvalidState => "INVALID_STATE",
            ErrorCode::ResourceConflict => "RESOURCE_CONFLICT",
            ErrorCode::RequestLimitExceeded => "REQUEST_LIMIT_EXCEEDED",
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::PermissionDenied => "PERMISSION_DENIED",
            ErrorCode::InternalError => "INTERNAL_ERROR",
            ErrorCode::TemporarilyUnavailable => "TEMPORARILY_UNAVAILABLE",
        }
    }

    /// The HTTP status MLflow's server answers with for this code. Matched exhaustively so a
    /// new code cannot ship unmapped. The client retries 408/429/5xx, so anything caused by the
    /// request itself must map to a 4xx that is not 408 or 429.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidParameterValue
            | ErrorCode::ResourceAlreadyExists
            | ErrorCode::BadRequest
            | ErrorCode::InvalidState => 400,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::PermissionDenied => 403,
            ErrorCode::ResourceDoesNotExist | ErrorCode::EndpointNotFound => 404,
            ErrorCode::ResourceConflict => 409,
            ErrorCode::RequestLimitExceeded => 429,
            ErrorCode::InternalError => 500,
            ErrorCode::TemporarilyUnavailable => 503,
        }
    }
}

/// An error in MLflow's wire shape: `{"error_code": "...", "message": "..."}`.
#[derive(Debug, Clone, Serialize, thiserror::Error)]
#[error("{error_code:?}: {message}")]
pub struct MlflowError {
    pub error_code: ErrorCode,
    pub message: String,
}

impl MlflowError {
    pub fn new(error_code: ErrorCode, message: impl Into<String>) -> Self {
        Self { error_code, message: message.into() }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidParameterValue, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ResourceDoesNotExist, message)
    }
    pub fn exists(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ResourceAlreadyExists, message)
    }
    /// An internal failure: the details are logged by the caller, never sent to the client.
    pub fn internal() -> Self {
        Self::new(ErrorCode::InternalError, "internal error; see the server log")
    }
}
