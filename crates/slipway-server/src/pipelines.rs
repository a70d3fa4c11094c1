//! `/api/v1/pipelines`: the pipelines this server was given (`--pipeline FILE`) and starting
//! one. `POST /api/v1/pipelines/{name}/runs` is also the URL a monitor's alert rule names as
//! its webhook to retrain on an alert: the delivery's `Idempotency-Key` is the trigger key, so
//! a retried delivery starts nothing new, and a storm joins the run already in flight.
//! Starting, deduplicating and coalescing are `slipway_pipeline::trigger`'s; this module
//! translates. A pipeline run is an MLflow parent run with a child per step, so its views
//! (`/runs`, `/runs/{id}`) are searches over the store, and a cancel is the tag the runner
//! polls.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use slipway_types::ErrorCode;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryArgs};
use slipway_store::SearchRequest;
use slipway_types::{KeyValue, Run, ViewType};

/// Longest trigger key accepted (a webhook's Idempotency-Key, or the body's `trigger_key`).
pub const MAX_TRIGGER_KEY_LENGTH: usize = 256;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/pipelines", get(list))
        .route("/api/v1/pipelines/{name}/runs", post(start).get(runs))
        .route("/api/v1/pipeline-runs/{run_id}", get(show_run))
        .route("/api/v1/pipeline-runs/{run_id}/cancel", post(cancel))
}

fn tag<'a>(run: &'a Run, key: &str) -> Option<&'a str> {
    run.data.tags.iter().find(|t| t.key == key).map(|t| t.value.as_str())
}

/// A pipeline run as the native API shows it.
fn pipeline_run(run: &Run) -> Value {
    json!({
        "run_id": run.info.run_id,
        "pipeline": tag(run, "slipway.pipeline"),
        "experiment_id": run.info.experiment_id,
        "status": tag(run, "slipway.status").unwrap_or(&run.info.status),
        "mlflow_status": run.info.status,
        "start_time": run.info.start_time,
        "end_time": run.info.end_time,
        "summary": tag(run, "slipway.summary"),
        "executor": tag(run, "slipway.executor"),
        "trigger": tag(run, "slipway.trigger"),
        "trigger_source": tag(run, "slipway.trigger.source"),
    })
}

fn quoted(value: &str) -> ApiResult<String> {
    if value.contains('\'') {
        return Err(ApiError::invalid(format!("'{value}' may not contain a quote")));
    }
    Ok(format!("'{value}'"))
}

#[derive(Deserialize)]
struct RunsQuery {
    max_results: Option<i64>,
    page_token: Option<String>,
}

/// A registered pipeline's runs, newest first, paged.
async fn runs(
    State(s): State<AppState>,
    Path(name): Path<String>,
    QueryArgs(q): QueryArgs<RunsQuery>,
) -> ApiResult<Json<Value>> {
    let (runs, next) = runs_of(&s, &name, q.max_results.unwrap_or(100), q.page_token).await?;
    Ok(Json(json!({ "runs": runs, "next_page_token": next })))
}

/// A registered pipeline's runs as the native API shows them, newest first, and the next
/// page's token.
pub async fn runs_of(
    s: &AppState,
    name: &str,
    max_results: i64,
    page_token: Option<String>,
) -> ApiResult<(Vec<Value>, Option<String>)> {
    let unknown = || ApiError::new(ErrorCode::ResourceDoesNotExist, format!("no pipeline '{name}' on this server"));
    let reg = s.pipelines.as_ref().and_then(|t| t.get(name)).ok_or_else(unknown)?;
    let experiment = match s.store.get_experiment_by_name(reg.experiment.clone()).await {
        Ok(e) => e,
        // Registered but never run: no experiment yet.
        Err(slipway_store::StoreError::NotFound(_)) => return Ok((Vec::new(), None)),
        Err(e) => return Err(e.into()),
    };
    let req = SearchRequest {
        filter: Some(format!("tags.`slipway.pipeline` = {}", quoted(name)?)),
        order_by: vec!["attributes.start_time DESC".into()],
        view_type: ViewType::ActiveOnly,
        max_results: Some(max_results),
        page_token,
        ..Default::default()
    };
    let page = s.store.search_runs(vec![experiment.experiment_id], req).await?;
    Ok((page.items.iter().map(pipeline_run).collect(), page.next_page_token))
}

async fn parent(s: &AppState, run_id: &str) -> ApiResult<Run> {
    let run = s.store.get_run(run_id.to_string()).await?;
    if tag(&run, "slipway.pipeline").is_none() {
        return Err(ApiError::new(ErrorCode::ResourceDoesNotExist, format!("run {run_id} is not a pipeline run")));
    }
    Ok(run)
}

/// One pipeline run with its steps (the child runs), in the order they started.
async fn show_run(State(s): State<AppState>, Path(run_id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(json!({ "pipeline_run": run_detail(&s, &run_id).await? })))
}

/// A pipeline run as the native API shows it, with its `steps`.
pub async fn run_detail(s: &AppState, run_id: &str) -> ApiResult<Value> {
    let run = parent(s, run_id).await?;
    let req = SearchRequest {
        filter: Some(format!("tags.`mlflow.parentRunId` = {}", quoted(run_id)?)),
        order_by: vec!["attributes.start_time ASC".into()],
        view_type: ViewType::ActiveOnly,
        max_results: Some(1000),
        page_token: None,
        ..Default::default()
    };
    let children = s.store.search_runs(vec![run.info.experiment_id.clone()], req).await?;
    let steps: Vec<Value> = children
        .items
        .iter()
        .map(|c| {
            json!({
                "step": tag(c, "slipway.step"),
                "run_id": c.info.run_id,
                "status": tag(c, "slipway.status"),
                "mlflow_status": c.info.status,
                "cache_key": tag(c, "slipway.cache_key"),
                "cached_from": tag(c, "slipway.cached_from"),
                "error": tag(c, "slipway.error"),
                "metrics": c.data.metrics.iter().map(|m| (m.key.clone(), m.value)).collect::<std::collections::BTreeMap<_, _>>(),
                "start_time": c.info.start_time,
                "end_time": c.info.end_time,
            })
        })
        .collect();
    let mut body = pipeline_run(&run);
    body["steps"] = Value::Array(steps);
    Ok(body)
}

/// Asks the run's runner to stop (it polls the tag every 2 s and kills its running steps).
async fn cancel(State(s): State<AppState>, Path(run_id): Path<String>) -> ApiResult<Json<Value>> {
    let run = parent(&s, &run_id).await?;
    if run.info.status != "RUNNING" {
        return Err(ApiError::new(
            ErrorCode::InvalidState,
            format!("pipeline run {run_id} is {} already; only a running one can be cancelled", run.info.status),
        ));
    }
    let tag = KeyValue { key: "slipway.cancel".into(), value: "requested".into() };
    s.store.log_batch(run_id.clone(), Vec::new(), Vec::new(), vec![tag]).await?;
    Ok(Json(json!({ "run_id": run_id, "cancel": "requested" })))
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
