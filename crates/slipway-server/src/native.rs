//! Slipway's own API (`/api/v1/...`): what MLflow's protocol has no words for — lineage and
//! the audit trail. Errors keep the same `{"error_code", "message"}` shape.

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use slipway_store::AuditQuery;
use slipway_types::json::de_opt_i64;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Paged, QueryArgs};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/lineage", get(lineage))
        .route("/api/v1/lineage/datasets", get(trained_on))
        .route("/api/v1/audit", get(audit))
}

#[derive(Deserialize)]
struct LineageQuery {
    name: Option<String>,
    version: Option<String>,
}

async fn lineage(State(s): State<AppState>, QueryArgs(q): QueryArgs<LineageQuery>) -> ApiResult<Json<Value>> {
    let name = q.name.filter(|n| !n.is_empty()).ok_or_else(|| ApiError::missing("name"))?;
    let version = q.version.filter(|v| !v.is_empty()).ok_or_else(|| ApiError::missing("version"))?;
    Ok(Json(
        serde_json::to_value(s.store.lineage(name, version).await?)
            .map_err(|_| ApiError::from(slipway_types::MlflowError::internal()))?,
    ))
}

#[derive(Deserialize)]
struct DigestQuery {
    digest: Option<String>,
}

async fn trained_on(State(s): State<AppState>, QueryArgs(q): QueryArgs<DigestQuery>) -> ApiResult<Json<Value>> {
    let digest = q.digest.filter(|d| !d.is_empty()).ok_or_else(|| ApiError::missing("digest"))?;
    let versions = s.store.model_versions_by_dataset(digest).await?;
    Ok(Json(json!({ "model_versions": versions })))
}

#[derive(Deserialize)]
struct AuditArgs {
    name: Option<String>,
    version: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    since: Option<i64>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    until: Option<i64>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_results: Option<i64>,
    page_token: Option<String>,
}

async fn audit(State(s): State<AppState>, QueryArgs(q): QueryArgs<AuditArgs>) -> ApiResult<Response> {
    let page = s
        .store
        .audit_log(AuditQuery {
            name: q.name,
            version: q.version,
            actor: q.actor,
            action: q.action,
            since: q.since,
            until: q.until,
            max_results: q.max_results,
            page_token: q.page_token,
        })
        .await?;
    Ok(Paged::respond("records", page))
}
