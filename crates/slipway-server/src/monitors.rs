//! `/api/v1/monitors`: monitors on deployments, their windows and alerts, and
//! `/api/v1/deployments/{name}/ground-truth`: labels for past requests. Evaluation itself
//! is `slipway_monitor::monitors`; this module translates, and publishes each monitor's
//! latest window on `/metrics`.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use slipway_monitor::monitors::recent;
use slipway_serving::metrics::Gauge;
use slipway_types::serving::ReadableDeployments;
use slipway_types::{GroundTruth, MonitorSpec};

use crate::AppState;
use crate::actor::Actor;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryArgs};

/// Most label sets one ground-truth call may carry, labels per request, and request id length.
pub const MAX_GROUND_TRUTH_PER_CALL: usize = 100_000;
pub const MAX_LABELS_PER_REQUEST: usize = 10_000;
pub const MAX_REQUEST_ID_LENGTH: usize = 256;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/monitors", get(list).post(create))
        .route("/api/v1/monitors/{name}", get(show).put(replace).delete(remove))
        .route("/api/v1/monitors/{name}/windows", get(windows))
        .route("/api/v1/monitors/{name}/alerts", get(alert_events))
        .route("/api/v1/monitors/{name}/evaluate", post(evaluate_now))
        .route("/api/v1/deployments/{name}/ground-truth", post(ground_truth))
}

async fn create(
    State(s): State<AppState>,
    actor: Actor,
    JsonBody(spec): JsonBody<MonitorSpec>,
) -> ApiResult<Json<Value>> {
    s.monitors.check(&spec).await?;
    let m = s.store.create_monitor(spec, actor.0).await?;
    Ok(Json(json!({ "monitor": m })))
}

async fn list(State(s): State<AppState>, readable: Option<Extension<ReadableDeployments>>) -> ApiResult<Json<Value>> {
    let readable = readable.map(|r| r.0);
    let mut monitors = s.store.list_monitors().await?;
    monitors.retain(|m| ReadableDeployments::allows(readable.as_ref(), &m.spec.deployment));
    Ok(Json(json!({ "monitors": monitors })))
}

async fn show(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let m = s.store.get_monitor(name.clone()).await?;
    let latest = s.store.list_monitor_windows(name, recent(&m), i64::MAX).await?.pop();
    Ok(Json(json!({ "monitor": m, "latest_window": latest })))
}

/// Replaces the whole spec; the name cannot change.
async fn replace(
    State(s): State<AppState>,
    actor: Actor,
    Path(name): Path<String>,
    JsonBody(spec): JsonBody<MonitorSpec>,
) -> ApiResult<Json<Value>> {
    if spec.name != name {
        return Err(ApiError::invalid("a monitor cannot be renamed; create a new one"));
    }
    s.monitors.check(&spec).await?;
    let m = s.store.update_monitor(spec, actor.0).await?;
    s.monitors.forget(&name);
    Ok(Json(json!({ "monitor": m })))
}

async fn remove(State(s): State<AppState>, actor: Actor, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    s.store.delete_monitor(name.clone(), actor.0).await?;
    s.monitors.forget(&name);
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct Range {
    from_ms: Option<String>,
    to_ms: Option<String>,
}

fn millis(field: &str, v: Option<&str>, default: i64) -> ApiResult<i64> {
    match v {
        None | Some("") => Ok(default),
        Some(t) => t.parse().map_err(|_| ApiError::invalid(format!("'{field}' must be milliseconds, got '{t}'"))),
    }
}

async fn windows(
    State(s): State<AppState>,
    Path(name): Path<String>,
    QueryArgs(q): QueryArgs<Range>,
) -> ApiResult<Json<Value>> {
    let from = millis("from_ms", q.from_ms.as_deref(), i64::MIN)?;
    let to = millis("to_ms", q.to_ms.as_deref(), i64::MAX)?;
    Ok(Json(json!({ "windows": s.store.list_monitor_windows(name, from, to).await? })))
}

async fn alert_events(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(json!({ "alerts": s.store.list_alerts(name).await? })))
}

/// Seals this server's prediction log, then evaluates the monitor.
async fn evaluate_now(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let m = s.store.get_monitor(name).await?;
    crate::deployments::flush_log(&s).await?;
    let evaluated = s.monitors.evaluate_now(&m).await?;
    publish(&s).await;
    Ok(Json(json!({ "windows": evaluated })))
}

/// One label set as posted: `label` for a one-row request, or `labels`, one per row.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PostedLabel {
    request_id: String,
    #[serde(default)]
    label: Option<Value>,
    #[serde(default)]
    labels: Option<Vec<Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroundTruthBody {
    labels: Vec<PostedLabel>,
}

fn scalar(v: &Value) -> bool {
    matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

async fn ground_truth(
    State(s): State<AppState>,
    Path(deployment): Path<String>,
    JsonBody(body): JsonBody<GroundTruthBody>,
) -> ApiResult<Json<Value>> {
    if body.labels.len() > MAX_GROUND_TRUTH_PER_CALL {
        return Err(ApiError::invalid(format!(
            "at most {MAX_GROUND_TRUTH_PER_CALL} label sets per call, got {}",
            body.labels.len()
        )));
    }
    s.store.get_deployment(deployment.clone()).await?;
    let mut sets = Vec::with_capacity(body.labels.len());
    for (i, p) in body.labels.into_iter().enumerate() {
        let n = p.request_id.chars().count();
        if n == 0 || n > MAX_REQUEST_ID_LENGTH {
            return Err(ApiError::invalid(format!(
                "labels[{i}].request_id must be 1 to {MAX_REQUEST_ID_LENGTH} characters, got {n}"
            )));
        }
        let labels = match (p.label, p.labels) {
            (Some(v), None) => vec![v],
            (None, Some(vs)) if !vs.is_empty() && vs.len() <= MAX_LABELS_PER_REQUEST => vs,
            (None, Some(vs)) => {
                return Err(ApiError::invalid(format!(
                    "labels[{i}].labels must hold 1 to {MAX_LABELS_PER_REQUEST} labels, got {}",
                    vs.len()
                )));
            }
            _ => return Err(ApiError::invalid(format!("labels[{i}] must set exactly one of 'label' and 'labels'"))),
        };
        if let Some(bad) = labels.iter().find(|v| !scalar(v)) {
            return Err(ApiError::invalid(format!(
                "labels[{i}] ({}): a label must be a number, a string or a boolean, got {bad}",
                p.request_id
            )));
        }
        sets.push(GroundTruth { request_id: p.request_id, labels });
    }
    let accepted = s.store.put_ground_truth(deployment, sets).await?;
    Ok(Json(json!({ "accepted": accepted })))
}

/// Publishes every monitor's latest evaluated window (with rows) on `/metrics`.
async fn publish(s: &AppState) {
    let Some(serving) = &s.serving else { return };
    let Ok(monitors) = s.store.list_monitors().await else { return };
    let mut gauges = Vec::new();
    for m in monitors {
        let name = m.spec.name.clone();
        let Ok(windows) = s.store.list_monitor_windows(name.clone(), recent(&m), i64::MAX).await else { continue };
        if let Some(w) = windows.iter().rev().find(|w| w.rows > 0) {
            for (series, value) in &w.series {
                gauges.push(Gauge {
                    name: "slipway_monitor_value",
                    labels: vec![
                        ("monitor", name.clone()),
                        ("deployment", m.spec.deployment.clone()),
                        ("series", series.clone()),
                    ],
                    value: *value,
                });
            }
            gauges.push(Gauge {
                name: "slipway_monitor_window_end_seconds",
                labels: vec![("monitor", name.clone())],
                value: w.end_ms as f64 / 1000.0,
            });
        }
        if let Ok(events) = s.store.list_alerts(name.clone()).await {
            for rule in &m.spec.alerts {
                gauges.push(Gauge {
                    name: "slipway_monitor_alerts_total",
                    labels: vec![("monitor", name.clone()), ("rule", rule.name.clone())],
                    value: events.iter().filter(|e| e.rule == rule.name).count() as f64,
                });
            }
        }
    }
    serving.publish_gauges(gauges);
}

/// Starts evaluating monitors every `interval` (on the replica that holds the lease), and
/// publishes the stored results on `/metrics` after every pass, on every replica.
pub fn run(state: AppState, interval: Duration) {
    let passes = state.monitors.passes();
    state.monitors.clone().run(interval);
    tokio::spawn(async move {
        loop {
            passes.notified().await;
            publish(&state).await;
        }
    });
}
