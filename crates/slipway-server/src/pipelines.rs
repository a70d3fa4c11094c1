//! `/api/v1/pipelines`: the pipelines this server was given (`--pipeline FILE`) and starting
//! one. `POST /api/v1/pipelines/{name}/runs` is also the URL a monitor's alert rule names as
//! its webhook to retrain on an alert: the delivery's `Idempotency-Key` is the trigger key, so
//! a retried delivery starts nothing new, and a storm joins the run already in flight.
//! Starting, deduplicating and coalescing are `slipway_pipeline::trigger`'s; this module
//! translates.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use slipway_types::ErrorCode;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;

/// Longest trigger key accepted (a webhook's Idempotency-Key, or the body's `trigger_key`).
pub const MAX_TRIGGER_KEY_LENGTH: usize = 256;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/pipelines", get(list)).route("/api/v1/pipelines/{name}/runs", post(start))
}

async fn list(State(s): State<AppState>) -> Json<Value> {
    let pipelines = s.pipelines.as_ref().map(|t| t.list()).unwrap_or_default();
    Json(json!({ "pipelines": pipelines }))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StartRequest {
    trigger_key: Option<String>,
}

async fn start(
    State(s): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let req: StartRequest = if body.get("event_id").is_some() {
        // An alert's webhook body is the alert event itself: its fields are not ours.
        StartRequest::default()
    } else {
        serde_json::from_value(body).map_err(|e| ApiError::invalid(format!("invalid start request: {e}")))?
    };
    let header_key = headers.get("idempotency-key").map(|v| v.to_str().map(str::to_string));
    let (key, source) = match (req.trigger_key, header_key) {
        (Some(k), _) => (k, "request"),
        (None, Some(Ok(k))) => (k, "webhook"),
        (None, Some(Err(_))) => return Err(ApiError::invalid("Idempotency-Key must be visible ASCII")),
        (None, None) => (uuid_key(), "request"),
    };
    if key.is_empty() || key.len() > MAX_TRIGGER_KEY_LENGTH || key.chars().any(char::is_control) {
        return Err(ApiError::invalid(format!(
            "a trigger key is 1 to {MAX_TRIGGER_KEY_LENGTH} characters without control characters"
        )));
    }
    let unknown = || {
        ApiError::new(
            ErrorCode::ResourceDoesNotExist,
            format!("no pipeline '{name}' on this server (start it with --pipeline FILE)"),
        )
    };
    let Some(triggers) = s.pipelines.as_ref() else { return Err(unknown()) };
    let outcome = triggers.fire(&name, &key, source).await?;
    let Some(outcome) = outcome else { return Err(unknown()) };
    let status =
        if outcome == slipway_pipeline::trigger::Outcome::Started { StatusCode::ACCEPTED } else { StatusCode::OK };
    Ok((status, Json(json!({ "pipeline": name, "trigger_key": key, "outcome": outcome }))))
}

fn uuid_key() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
