//! `/api/v1/deployments`: named serving endpoints, stored (and audited) in the metadata store
//! and served by `slipway-serving`. A create or update is checked against what serving can
//! run (the version exists and is ONNX) before anything is written. [`sync`] keeps this
//! process's routes in step with the store: at start-up, on every poll, and at once when an
//! alias moves here.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{Map, Value, json};
use slipway_serving::{Serving, ServingError};
use slipway_types::serving::ReadableDeployments;
use slipway_types::{Deployment, DeploymentSpec, ErrorCode};

use crate::AppState;
use crate::actor::Actor;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/deployments", get(list).post(create))
        .route("/api/v1/deployments/{name}", get(show).patch(update).delete(remove))
        .route("/api/v1/prediction-logs/flush", post(flush))
}

fn serving(s: &AppState) -> ApiResult<&Arc<Serving>> {
    s.serving
        .as_ref()
        .ok_or_else(|| ApiError::new(ErrorCode::TemporarilyUnavailable, "model serving is not enabled on this server"))
}

/// A serving failure while checking a spec: what the client asked for is not servable.
fn refused(e: ServingError) -> ApiError {
    match e {
        ServingError::NotFound(m) | ServingError::NotServable(m) | ServingError::BadInput(m) => ApiError::invalid(m),
        ServingError::Model { path, message } => {
            ApiError::invalid(format!("the model cannot be loaded ({path}): {message}"))
        }
        other => ApiError::new(ErrorCode::TemporarilyUnavailable, other.client_message()),
    }
}

/// The stored deployment plus what this server is serving for it now.
fn with_status(serving: Option<&Arc<Serving>>, d: &Deployment) -> Value {
    let mut v = serde_json::to_value(d).unwrap_or(Value::Null);
    let live = serving.and_then(|s| s.deployment(&d.spec.name));
    let status = match live {
        Some(live) => {
            let route = live.route();
            let mut st =
                json!({ "ready": true, "primary": { "version": route.primary.model.id.version, "ready": true } });
            if let Some((c, w)) = &route.canary {
                st["canary"] = json!({ "version": c.model.id.version, "weight": w });
            }
            if let Some((sh, w)) = &route.shadow {
                st["shadow"] = json!({ "version": sh.model.id.version, "weight": w });
            }
            st
        }
        None => json!({ "ready": false }),
    };
    v["status"] = status;
    v
}

async fn create(
    State(s): State<AppState>,
    actor: Actor,
    JsonBody(spec): JsonBody<DeploymentSpec>,
) -> ApiResult<Json<Value>> {
    let serving = serving(&s)?;
    slipway_store::validate::deployment(&spec)?;
    serving.check(&spec).await.map_err(refused)?;
    let d = s.store.create_deployment(spec.clone(), actor.0).await?;
    serving.apply(&spec).await.map_err(refused)?;
    Ok(Json(json!({ "deployment": with_status(Some(serving), &d) })))
}

async fn list(State(s): State<AppState>, readable: Option<Extension<ReadableDeployments>>) -> ApiResult<Json<Value>> {
    let readable = readable.map(|r| r.0);
    let all = s.store.list_deployments().await?;
    let items: Vec<Value> = all
        .iter()
        .filter(|d| ReadableDeployments::allows(readable.as_ref(), &d.spec.name))
        .map(|d| with_status(s.serving.as_ref(), d))
        .collect();
    Ok(Json(json!({ "deployments": items })))
}

async fn show(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let d = s.store.get_deployment(name).await?;
    Ok(Json(json!({ "deployment": with_status(s.serving.as_ref(), &d) })))
}

/// Merges the given fields into the stored spec (`null` clears an optional one).
async fn update(
    State(s): State<AppState>,
    actor: Actor,
    Path(name): Path<String>,
    JsonBody(patch): JsonBody<Map<String, Value>>,
) -> ApiResult<Json<Value>> {
    let serving = serving(&s)?;
    let current = s.store.get_deployment(name.clone()).await?;
    let mut merged = match serde_json::to_value(&current.spec) {
        Ok(Value::Object(m)) => m,
        _ => return Err(slipway_types::MlflowError::internal().into()),
    };
    let given = |k: &str| patch.get(k).is_some_and(|v| !v.is_null());
    if given("alias") && given("version") {
        return Err(ApiError::invalid("give one of 'alias' and 'version', not both"));
    }
    for (k, v) in patch {
        if k == "name" && v != Value::String(name.clone()) {
            return Err(ApiError::invalid("a deployment cannot be renamed; create a new one"));
        }
        // Choosing a version drops the alias and the other way round.
        match k.as_str() {
            "alias" => drop(merged.remove("version")),
            "version" => drop(merged.remove("alias")),
            _ => {}
        }
        if v.is_null() {
            merged.remove(&k);
        } else {
            merged.insert(k, v);
        }
    }
    let spec: DeploymentSpec = serde_json::from_value(Value::Object(merged))
        .map_err(|e| ApiError::invalid(format!("invalid deployment: {e}")))?;
    slipway_store::validate::deployment(&spec)?;
    serving.check(&spec).await.map_err(refused)?;
    let d = s.store.update_deployment(spec.clone(), actor.0).await?;
    serving.apply(&spec).await.map_err(refused)?;
    Ok(Json(json!({ "deployment": with_status(Some(serving), &d) })))
}

async fn remove(State(s): State<AppState>, actor: Actor, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    s.store.delete_deployment(name.clone(), actor.0).await?;
    if let Some(serving) = &s.serving {
        serving.remove(&name);
    }
    Ok(Json(json!({})))
}

/// Seals and uploads the prediction log's open segments.
async fn flush(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    serving(&s)?;
    Ok(Json(json!({ "files": flush_log(&s).await? })))
}

/// Seals and uploads this server's prediction log, so what it served so far can be read (by a
/// monitor evaluated or a labeling queue fed now); the files uploaded.
pub async fn flush_log(s: &AppState) -> ApiResult<Vec<String>> {
    let Some(log) = s.serving.as_ref().and_then(|sv| sv.predlog()) else { return Ok(Vec::new()) };
    log.flush().await.map_err(|e| {
        tracing::error!(error = %e, "prediction log flush failed");
        ApiError::from(slipway_types::MlflowError::internal())
    })
}

/// Keeps serving's deployments in step with the store until the process ends: every
/// `interval`, and at once when `registry_changed` is poked (this server changed the registry,
/// or the store's change watch saw another replica commit a change).
pub fn sync(state: AppState, interval: Duration) {
    let Some(serving) = state.serving.clone() else { return };
    tokio::spawn(async move {
        loop {
            match state.store.list_deployments().await {
                Ok(all) => {
                    let specs: Vec<DeploymentSpec> = all.into_iter().map(|d| d.spec).collect();
                    serving.reconcile(&specs).await;
                }
                Err(e) => tracing::warn!(error = %e, "cannot list deployments"),
            }
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = state.registry_changed.notified() => {}
            }
        }
    });
}
