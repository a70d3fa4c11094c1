//! Slipway's own API (`/api/v1/...`): what MLflow's protocol has no words for — lineage and
//! the audit trail. Errors keep the same `{"error_code", "message"}` shape.

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use slipway_auth::Level;
use slipway_store::auth::ObjectKind;
use slipway_store::{AuditQuery, Visibility};
use slipway_types::ErrorCode;
use slipway_types::json::de_opt_i64;

use crate::AppState;
use crate::auth::Reader;
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

/// A model version's lineage (the route needs READ on the model); the run's side is left out
/// for a reader who may not read its experiment.
async fn lineage(
    State(s): State<AppState>,
    reader: Reader,
    QueryArgs(q): QueryArgs<LineageQuery>,
) -> ApiResult<Json<Value>> {
    let name = q.name.filter(|n| !n.is_empty()).ok_or_else(|| ApiError::missing("name"))?;
    let version = q.version.filter(|v| !v.is_empty()).ok_or_else(|| ApiError::missing("version"))?;
    let lineage = readable_lineage(&s, &reader, name.clone(), version.clone()).await?;
    let mut out = serde_json::to_value(lineage).map_err(|_| ApiError::from(slipway_types::MlflowError::internal()))?;
    out["serving"] = json!(serving_deployments(&s, &reader, &name, &version).await?);
    Ok(Json(out))
}

/// The deployments `reader` may read that serve this version (as primary, canary or shadow):
/// as this process serves them, or, where it serves nothing, as their specs resolve now.
pub async fn serving_deployments(s: &AppState, reader: &Reader, name: &str, version: &str) -> ApiResult<Vec<String>> {
    let mut out = Vec::new();
    for d in s.store.list_deployments().await? {
        if d.spec.model != name || !reader.may_read(ObjectKind::Deployment, &d.spec.name) {
            continue;
        }
        let serves = match &s.serving {
            Some(sv) => sv.deployment(&d.spec.name).is_some_and(|live| {
                let r = live.route();
                let v = |id: &slipway_serving::model::ModelId| id.version == version;
                v(&r.primary.model.id)
                    || r.canary.as_ref().is_some_and(|(c, _)| v(&c.model.id))
                    || r.shadow.as_ref().is_some_and(|(c, _)| v(&c.model.id))
            }),
            None => {
                let targets = [(d.spec.version.clone(), d.spec.alias.clone())].into_iter().chain(
                    [&d.spec.canary, &d.spec.shadow]
                        .into_iter()
                        .flatten()
                        .map(|split| (split.version.clone(), split.alias.clone())),
                );
                let mut serves = false;
                for target in targets {
                    serves |= match target {
                        (Some(v), _) => v == version,
                        (None, Some(alias)) => s
                            .store
                            .get_model_version_by_alias(name.to_string(), alias)
                            .await
                            .is_ok_and(|mv| mv.version == version),
                        (None, None) => false,
                    };
                }
                serves
            }
        };
        if serves {
            out.push(d.spec.name);
        }
    }
    Ok(out)
}

/// A version's lineage as `reader` may see it.
pub async fn readable_lineage(
    s: &AppState,
    reader: &Reader,
    name: String,
    version: String,
) -> ApiResult<slipway_types::Lineage> {
    let mut lineage = s.store.lineage(name, version).await?;
    if lineage.experiment_id.as_ref().is_some_and(|e| !reader.may_read(ObjectKind::Experiment, e)) {
        lineage.redact_run();
    }
    Ok(lineage)
}

#[derive(Deserialize)]
struct TrainedOnQuery {
    digest: Option<String>,
    /// A data version, `NAME@VERSION` (number, `latest` or alias) or `NAME` for its latest.
    data: Option<String>,
}

/// The versions trained on a dataset (by the digest a run logged, or a data version whose
/// manifest that digest names), of the models the reader may read, each with the deployments
/// serving it.
async fn trained_on(
    State(s): State<AppState>,
    reader: Reader,
    QueryArgs(q): QueryArgs<TrainedOnQuery>,
) -> ApiResult<Json<Value>> {
    let given = |v: Option<String>| v.filter(|d| !d.is_empty());
    let (data_version, mut versions) = match (given(q.digest), given(q.data)) {
        (Some(digest), None) => (None, s.store.model_versions_by_dataset(digest).await?),
        (None, Some(data)) => {
            // A version's manifest hash opens its files in the content-addressed store: only
            // who may read data versions learns it.
            if !reader.holds_on_all(ObjectKind::Experiment, Level::Read) {
                return Err(ApiError::new(
                    ErrorCode::PermissionDenied,
                    "reading data versions needs READ on every experiment",
                ));
            }
            let (name, which) = data.split_once('@').unwrap_or((data.as_str(), "latest"));
            let (version, found) = s.store.model_versions_by_data(name.to_string(), which.to_string()).await?;
            (Some(version), found)
        }
        (Some(_), Some(_)) => return Err(ApiError::invalid("give one of 'digest' and 'data', not both")),
        (None, None) => return Err(ApiError::missing("digest")),
    };
    versions.retain(|v| reader.may_read(ObjectKind::RegisteredModel, &v.name));
    let mut out = Vec::with_capacity(versions.len());
    for v in versions {
        let serving = serving_deployments(&s, &reader, &v.name, &v.version).await?;
        let mut row = serde_json::to_value(&v).map_err(|_| ApiError::from(slipway_types::MlflowError::internal()))?;
        row["serving"] = json!(serving);
        out.push(row);
    }
    Ok(Json(json!({ "data_version": data_version, "model_versions": out })))
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

/// Which audit records `reader` may see: [`AuditQuery`]'s `visible` and `readable_monitors`.
pub async fn audit_scope(s: &AppState, reader: &Reader) -> ApiResult<(Visibility, Vec<String>)> {
    if reader.sees_all() {
        return Ok((Visibility::All, Vec::new()));
    }
    let searches = (reader.visibility(ObjectKind::RegisteredModel), reader.visibility(ObjectKind::Deployment));
    let (Some(visible), Some(_)) = searches else {
        return Err(ApiError::new(ErrorCode::PermissionDenied, "this token cannot search the audit log"));
    };
    let monitors = s.store.list_monitors().await?.into_iter();
    let readable = monitors.filter(|m| reader.may_read(ObjectKind::Deployment, &m.spec.deployment));
    Ok((visible, readable.map(|m| m.spec.name).collect()))
}

/// The audit log: everything for an administrator; for anyone else the records of the
/// models, deployments and monitors they may read, filtered in the query so pages and page
/// tokens count only those.
async fn audit(State(s): State<AppState>, reader: Reader, QueryArgs(q): QueryArgs<AuditArgs>) -> ApiResult<Response> {
    let (visible, readable_monitors) = audit_scope(&s, &reader).await?;
    let page = s
        .store
        .audit_log(AuditQuery {
            visible,
            readable_monitors,
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
