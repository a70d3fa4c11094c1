//! `/api/v1/monitors`: monitors on deployments, their windows and alerts, and
//! `/api/v1/deployments/{name}/ground-truth`: labels for past requests.
//!
//! [`run`] evaluates every monitor on an interval (see `eval` for which windows, `alerts` for
//! firing and delivery) and publishes each monitor's latest window on `/metrics`.
//! `POST /api/v1/monitors/{name}/evaluate` runs the same evaluation at once, after sealing
//! this server's open prediction-log segments.

pub mod alerts;
pub mod eval;
pub mod log;

use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use slipway_serving::metrics::Gauge;
use slipway_types::{ErrorCode, GroundTruth, Monitor, MonitorSpec, MonitorWindow};

use crate::AppState;
use crate::actor::Actor;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryArgs};

/// Most label sets one ground-truth call may carry, labels per request, and request id length.
pub const MAX_GROUND_TRUTH_PER_CALL: usize = 100_000;
pub const MAX_LABELS_PER_REQUEST: usize = 10_000;
pub const MAX_REQUEST_ID_LENGTH: usize = 256;

/// What evaluating monitors keeps between passes.
pub struct Monitoring {
    references: eval::References,
    webhooks: alerts::Webhooks,
    /// One evaluation at a time, so the loop and an explicit call do not race.
    pass: tokio::sync::Mutex<()>,
    /// This process's name in the monitor lease.
    holder: String,
}

impl Default for Monitoring {
    fn default() -> Self {
        Self {
            references: eval::References::default(),
            webhooks: alerts::Webhooks::default(),
            pass: tokio::sync::Mutex::default(),
            holder: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
        }
    }
}

/// The lease under which one server process, of all sharing a database, evaluates monitors
/// and delivers their alerts.
const LEASE: &str = "monitors";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/monitors", get(list).post(create))
        .route("/api/v1/monitors/{name}", get(show).put(replace).delete(remove))
        .route("/api/v1/monitors/{name}/windows", get(windows))
        .route("/api/v1/monitors/{name}/alerts", get(alert_events))
        .route("/api/v1/monitors/{name}/evaluate", post(evaluate_now))
        .route("/api/v1/deployments/{name}/ground-truth", post(ground_truth))
}

/// What the store cannot check: drift method names, and that the deployment exists.
async fn check(s: &AppState, spec: &MonitorSpec) -> ApiResult<()> {
    slipway_store::validate::monitor(spec)?;
    eval::drift_options(spec)?;
    s.store.get_deployment(spec.deployment.clone()).await?;
    Ok(())
}

async fn create(
    State(s): State<AppState>,
    actor: Actor,
    JsonBody(spec): JsonBody<MonitorSpec>,
) -> ApiResult<Json<Value>> {
    check(&s, &spec).await?;
    let m = s.store.create_monitor(spec, actor.0).await?;
    Ok(Json(json!({ "monitor": m })))
}

async fn list(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    Ok(Json(json!({ "monitors": s.store.list_monitors().await? })))
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
    check(&s, &spec).await?;
    let m = s.store.update_monitor(spec, actor.0).await?;
    s.monitoring.references.forget(&name);
    Ok(Json(json!({ "monitor": m })))
}

async fn remove(State(s): State<AppState>, actor: Actor, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    s.store.delete_monitor(name.clone(), actor.0).await?;
    s.monitoring.references.forget(&name);
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
    if let Some(log) = s.serving.as_ref().and_then(|sv| sv.predlog()) {
        log.flush().await.map_err(|e| {
            tracing::error!(error = %e, "prediction log flush failed");
            ApiError::from(slipway_types::MlflowError::internal())
        })?;
    }
    let _pass = s.monitoring.pass.lock().await;
    let evaluated = evaluate_one(&s, &m).await?;
    publish(&s).await;
    Ok(Json(json!({ "windows": evaluated })))
}

async fn evaluate_one(s: &AppState, m: &Monitor) -> ApiResult<Vec<MonitorWindow>> {
    let evaluated = eval::evaluate(s, &s.monitoring.references, m, slipway_store::now_ms()).await?;
    if let (Some(first), Some(last)) = (evaluated.first(), evaluated.last())
        && !m.spec.alerts.is_empty()
    {
        let w = m.spec.window_ms().max(1);
        let from = first.start_ms - alerts::history_windows(m) * w;
        let history = s.store.list_monitor_windows(m.spec.name.clone(), from, last.end_ms).await?;
        let starts = evaluated.iter().map(|x| x.start_ms).collect();
        alerts::check(s, &s.monitoring.webhooks, m, &history, &starts).await?;
    }
    Ok(evaluated)
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

/// The start of the windows an evaluation looks at: older ones are history, not news.
fn recent(m: &Monitor) -> i64 {
    slipway_store::now_ms() - eval::LOOKBACK_WINDOWS * m.spec.window_ms().max(1)
}

/// Gives the monitor lease up at shutdown, so another replica takes over at its next pass
/// instead of after the lease lapses.
pub async fn step_down(state: &AppState) {
    let holder = state.monitoring.holder.clone();
    if let Err(e) = state.store.release_lease(LEASE.into(), holder).await {
        tracing::warn!(error = %e, "cannot release the monitor lease; it lapses on its own");
    }
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

/// Evaluates every monitor every `interval` until the process ends, on whichever server
/// process holds the monitor lease (one of all the replicas on a database; it lapses after
/// three intervals without renewal). A process that becomes the holder first resumes the alert
/// deliveries a previous holder left pending. Every process publishes the stored results.
pub fn run(state: AppState, interval: Duration) {
    tokio::spawn(async move {
        let ttl_ms = i64::try_from(interval.as_millis() * 3).unwrap_or(i64::MAX);
        let mut leading = false;
        loop {
            let holder = state.monitoring.holder.clone();
            let lead = match state.store.take_lease(LEASE.into(), holder, ttl_ms).await {
                Ok(lead) => lead,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot take the monitor lease; not evaluating this pass");
                    false
                }
            };
            if lead && !leading {
                tracing::info!("this server now evaluates monitors");
                alerts::resume(&state, &state.monitoring.webhooks).await;
            }
            leading = lead;
            match state.store.list_monitors().await {
                Ok(all) if lead => {
                    let _pass = state.monitoring.pass.lock().await;
                    for m in all {
                        if let Err(e) = evaluate_one(&state, &m).await {
                            let code = e.error.error_code;
                            if code != ErrorCode::InternalError {
                                tracing::warn!(monitor = %m.spec.name, error = %e.error.message, "monitor not evaluated");
                            }
                        }
                    }
                    drop(_pass);
                    publish(&state).await;
                }
                Ok(_) => publish(&state).await,
                Err(e) => tracing::warn!(error = %e, "cannot list monitors"),
            }
            tokio::time::sleep(interval).await;
        }
    });
}
