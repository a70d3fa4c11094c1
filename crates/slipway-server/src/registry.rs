//! MLflow model-registry routes, and the resolution of a model version's source.
//!
//! A version's source must name an artifact inside Slipway's own artifact store: a logged
//! model (`models:/<model_id>`), another registered version (`models:/name/3`,
//! `models:/name@alias`), a run's artifact (`runs:/<run_id>/<path>`) or a proxied path
//! (`mlflow-artifacts:/<path>`). Everything else — local paths, `file://`, other hosts,
//! traversal in any encoding — is refused before anything is written.
//!
//! One exception, because MLflow lets the registry live apart from tracking (`registry_uri`
//! != `tracking_uri`): a well-formed `runs:/<run_id>/<path>` whose run this server does not
//! hold is kept as given, with no storage location of ours. Its path still goes through the
//! sanitiser, so traversal is refused exactly as for our own runs.

use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use slipway_store::{NewModelVersion, RegistrySearch, StoreError};
use slipway_types::KeyValue;
use slipway_types::json::{de_opt_bool, de_opt_i64};

use crate::AppState;
use crate::actor::Actor;
use crate::artifacts::locate;
use crate::auth::Visible;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Paged, QueryArgs, one_or_many};

pub fn routes() -> Router<AppState> {
    let p = "/api/2.0/mlflow";
    Router::new()
        .route(&format!("{p}/registered-models/create"), post(create_model))
        .route(&format!("{p}/registered-models/rename"), post(rename_model))
        .route(&format!("{p}/registered-models/update"), axum::routing::patch(update_model))
        .route(&format!("{p}/registered-models/delete"), axum::routing::delete(delete_model))
        .route(&format!("{p}/registered-models/get"), get(get_model))
        .route(&format!("{p}/registered-models/search"), get(search_models))
        .route(&format!("{p}/registered-models/get-latest-versions"), post(latest_versions).get(latest_versions_get))
        .route(&format!("{p}/registered-models/set-tag"), post(set_model_tag))
        .route(&format!("{p}/registered-models/delete-tag"), axum::routing::delete(delete_model_tag))
        .route(&format!("{p}/registered-models/alias"), post(set_alias).delete(delete_alias).get(get_by_alias))
        .route(&format!("{p}/model-versions/create"), post(create_version))
        .route(&format!("{p}/model-versions/update"), axum::routing::patch(update_version))
        .route(&format!("{p}/model-versions/transition-stage"), post(transition_stage))
        .route(&format!("{p}/model-versions/delete"), axum::routing::delete(delete_version))
        .route(&format!("{p}/model-versions/get"), get(get_version))
        .route(&format!("{p}/model-versions/search"), get(search_versions))
        .route(&format!("{p}/model-versions/get-download-uri"), get(download_uri))
        .route(&format!("{p}/model-versions/set-tag"), post(set_version_tag))
        .route(&format!("{p}/model-versions/delete-tag"), axum::routing::delete(delete_version_tag))
}

fn required(v: Option<String>, field: &str) -> ApiResult<String> {
    v.filter(|s| !s.is_empty()).ok_or_else(|| ApiError::missing(field))
}

/// Versions arrive as strings, or as numbers from hand-written requests.
fn version_string(v: Option<Value>) -> ApiResult<String> {
    match v {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::Number(n)) => Ok(n.to_string()),
        None | Some(Value::Null) => Err(ApiError::missing("version")),
        Some(other) => Err(crate::extract::invalid_value("version", &other)),
    }
}

#[derive(Deserialize)]
struct Kv {
    key: Option<String>,
    value: Option<String>,
}

fn key_values(items: Vec<Kv>) -> ApiResult<Vec<KeyValue>> {
    items
        .into_iter()
        .map(|kv| Ok(KeyValue { key: required(kv.key, "tags.key")?, value: kv.value.unwrap_or_default() }))
        .collect()
}

// ---- registered models ----

#[derive(Deserialize)]
struct CreateModel {
    name: Option<String>,
    description: Option<String>,
    #[serde(default)]
    tags: Vec<Kv>,
}

async fn create_model(
    State(s): State<AppState>,
    actor: Actor,
    JsonBody(r): JsonBody<CreateModel>,
) -> ApiResult<Json<Value>> {
    let rm =
        s.store.create_registered_model(required(r.name, "name")?, r.description, key_values(r.tags)?, actor.0).await?;
    Ok(Json(json!({ "registered_model": rm })))
}

#[derive(Deserialize)]
struct ModelName {
    name: Option<String>,
    new_name: Option<String>,
    description: Option<String>,
}

async fn rename_model(
    State(s): State<AppState>,
    actor: Actor,
    JsonBody(r): JsonBody<ModelName>,
) -> ApiResult<Json<Value>> {
    let rm =
        s.store.rename_registered_model(required(r.name, "name")?, required(r.new_name, "new_name")?, actor.0).await?;
    Ok(Json(json!({ "registered_model": rm })))
}

async fn update_model(
    State(s): State<AppState>,
    actor: Actor,
    JsonBody(r): JsonBody<ModelName>,
) -> ApiResult<Json<Value>> {
    let rm = s.store.update_registered_model(required(r.name, "name")?, r.description, actor.0).await?;
    Ok(Json(json!({ "registered_model": rm })))
}

async fn delete_model(
    State(s): State<AppState>,
    actor: Actor,
    JsonBody(r): JsonBody<ModelName>,
) -> ApiResult<Json<Value>> {
    s.store.delete_registered_model(required(r.name, "name")?, actor.0).await?;
    Ok(Json(json!({})))
}

async fn get_model(State(s): State<AppState>, QueryArgs(r): QueryArgs<ModelName>) -> ApiResult<Json<Value>> {
    let rm = s.store.get_registered_model(required(r.name, "name")?).await?;
    Ok(Json(json!({ "registered_model": rm })))
}

#[derive(Deserialize)]
struct Search {
    filter: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_results: Option<i64>,
    #[serde(default, deserialize_with = "one_or_many")]
    order_by: Vec<String>,
    page_token: Option<String>,
}

impl Search {
    fn into_request(self, Visible(visible): Visible) -> RegistrySearch {
        RegistrySearch {
            visible,
            filter: self.filter,
            order_by: self.order_by,
            max_results: self.max_results,
            page_token: self.page_token,
        }
    }
}

async fn search_models(State(s): State<AppState>, v: Visible, QueryArgs(r): QueryArgs<Search>) -> ApiResult<Response> {
    Ok(Paged::respond("registered_models", s.store.search_registered_models(r.into_request(v)).await?))
}

#[derive(Deserialize)]
struct LatestVersions {
    name: Option<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    stages: Vec<String>,
}

async fn latest_versions_impl(s: AppState, r: LatestVersions) -> ApiResult<Json<Value>> {
    let versions = s.store.get_latest_versions(required(r.name, "name")?, r.stages).await?;
    Ok(Json(json!({ "model_versions": versions })))
}

async fn latest_versions(State(s): State<AppState>, JsonBody(r): JsonBody<LatestVersions>) -> ApiResult<Json<Value>> {
    latest_versions_impl(s, r).await
}

async fn latest_versions_get(
    State(s): State<AppState>,
    QueryArgs(r): QueryArgs<LatestVersions>,
) -> ApiResult<Json<Value>> {
    latest_versions_impl(s, r).await
}

#[derive(Deserialize)]
struct Tag {
    name: Option<String>,
    version: Option<Value>,
    key: Option<String>,
    value: Option<String>,
}

async fn set_model_tag(State(s): State<AppState>, actor: Actor, JsonBody(r): JsonBody<Tag>) -> ApiResult<Json<Value>> {
    let tag = KeyValue { key: required(r.key, "key")?, value: r.value.unwrap_or_default() };
    s.store.set_registered_model_tag(required(r.name, "name")?, tag, actor.0).await?;
    Ok(Json(json!({})))
}

async fn delete_model_tag(
    State(s): State<AppState>,
    actor: Actor,
    JsonBody(r): JsonBody<Tag>,
) -> ApiResult<Json<Value>> {
    s.store.delete_registered_model_tag(required(r.name, "name")?, required(r.key, "key")?, actor.0).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct AliasRequest {
    name: Option<String>,
    alias: Option<String>,
    version: Option<Value>,
}

async fn set_alias(
    State(s): State<AppState>,
    actor: Actor,
    JsonBody(r): JsonBody<AliasRequest>,
) -> ApiResult<Json<Value>> {
    s.store
        .set_alias(required(r.name, "name")?, required(r.alias, "alias")?, version_string(r.version)?, actor.0)
        .await?;
    s.registry_changed.notify_one();
    Ok(Json(json!({})))
}

async fn delete_alias(
    State(s): State<AppState>,
    actor: Actor,
    JsonBody(r): JsonBody<AliasRequest>,
) -> ApiResult<Json<Value>> {
    s.store.delete_alias(required(r.name, "name")?, required(r.alias, "alias")?, actor.0).await?;
    s.registry_changed.notify_one();
    Ok(Json(json!({})))
}

async fn get_by_alias(State(s): State<AppState>, QueryArgs(r): QueryArgs<AliasRequest>) -> ApiResult<Json<Value>> {
    let mv = s.store.get_model_version_by_alias(required(r.name, "name")?, required(r.alias, "alias")?).await?;
    Ok(Json(json!({ "model_version": mv })))
}

// ---- model versions ----

#[derive(Deserialize)]
struct CreateVersion {
    name: Option<String>,
    source: Option<String>,
    run_id: Option<String>,
    run_link: Option<String>,
    description: Option<String>,
    model_id: Option<String>,
    #[serde(default)]
    tags: Vec<Kv>,
}

/// Where a source's artifacts live, and the run and logged model it implies. `external`: the
/// artifacts belong to a run another tracking server holds; `storage_location` is then empty.
struct Resolved {
    storage_location: String,
    run_id: Option<String>,
    model_id: Option<String>,
    external: bool,
}

impl Resolved {
    fn of_version(mv: slipway_types::ModelVersion) -> Self {
        let external = mv.storage_location.is_empty();
        Resolved { storage_location: mv.storage_location, run_id: mv.run_id, model_id: mv.model_id, external }
    }
    fn ours(storage_location: String, run_id: Option<String>, model_id: Option<String>) -> Self {
        Resolved { storage_location, run_id, model_id, external: false }
    }
}

fn bad_source(source: &str, why: &str) -> ApiError {
    let shown: String = source.chars().take(200).collect();
    ApiError::invalid(format!(
        "Invalid model version source '{shown}': {why}. A source must be an artifact in this server's store: \
         models:/<model_id>, models:/<name>/<version>, runs:/<run_id>/<path> or mlflow-artifacts:/<path>"
    ))
}

fn not_containing(source: &str, id_name: &str) -> ApiError {
    let shown: String = source.chars().take(200).collect();
    ApiError::invalid(format!(
        "Invalid model version source: '{shown}'. The {id_name} request parameter must identify the resource that \
         contains the source."
    ))
}

async fn resolve_source(s: &AppState, source: &str) -> ApiResult<Resolved> {
    if let Some(rest) = source.strip_prefix("models:/") {
        if let Some((name, reference)) = rest.rsplit_once('@') {
            let mv = s.store.get_model_version_by_alias(name.to_string(), reference.to_string()).await?;
            return Ok(Resolved::of_version(mv));
        }
        if let Some((name, version)) = rest.rsplit_once('/') {
            if !version.chars().all(|c| c.is_ascii_digit()) || version.is_empty() || name.is_empty() {
                return Err(bad_source(source, "expected models:/<name>/<version>"));
            }
            let mv = s.store.get_model_version(name.to_string(), version.to_string()).await?;
            return Ok(Resolved::of_version(mv));
        }
        let id_ok = rest.starts_with("m-") && rest.len() <= 64 && rest[2..].chars().all(|c| c.is_ascii_alphanumeric());
        if !id_ok {
            return Err(bad_source(source, "not a logged model id"));
        }
        let model = s
            .store
            .get_logged_model(rest.to_string(), false)
            .await
            .map_err(|_| bad_source(source, "no such logged model"))?;
        locate(s, &model.info.artifact_uri).map_err(|_| bad_source(source, "the logged model is stored elsewhere"))?;
        return Ok(Resolved::ours(model.info.artifact_uri, model.info.source_run_id, Some(model.info.model_id)));
    }
    if let Some(rest) = source.strip_prefix("runs:/") {
        let (run_id, path) = rest.split_once('/').unwrap_or((rest, ""));
        slipway_store::validate::run_id(run_id).map_err(|_| bad_source(source, "not a run id"))?;
        let sub =
            slipway_artifacts::sanitize(path).map_err(|_| bad_source(source, "the path leaves the run's artifacts"))?;
        let run = match s.store.get_run(run_id.to_string()).await {
            Ok(run) => run,
            // A run of another tracking server: kept as given, nothing of ours to resolve.
            Err(StoreError::NotFound(_)) => {
                return Ok(Resolved {
                    storage_location: String::new(),
                    run_id: Some(run_id.to_string()),
                    model_id: None,
                    external: true,
                });
            }
            Err(e) => return Err(e.into()),
        };
        let root = run.info.artifact_uri.trim_end_matches('/');
        let storage_location = if sub.is_root() { root.to_string() } else { format!("{root}/{sub}") };
        locate(s, &storage_location).map_err(|_| bad_source(source, "the run's artifacts are stored elsewhere"))?;
        return Ok(Resolved::ours(storage_location, Some(run.info.run_id), None));
    }
    if s.artifacts.owns(source) {
        let path = locate(s, source).map_err(|_| bad_source(source, "the path leaves the artifact root"))?;
        if path.is_root() {
            return Err(bad_source(source, "the artifact root itself is not a model"));
        }
        // One spelling per object: the one the client used, normalised.
        let root =
            if source.starts_with(crate::artifacts::SCHEME) { crate::artifacts::SCHEME } else { s.artifacts.uri() };
        return Ok(Resolved::ours(format!("{root}/{path}"), None, None));
    }
    Err(bad_source(source, "unsupported location"))
}

async fn create_version(
    State(s): State<AppState>,
    actor: Actor,
    JsonBody(r): JsonBody<CreateVersion>,
) -> ApiResult<Json<Value>> {
    let name = required(r.name, "name")?;
    let source = required(r.source, "source")?;
    let resolved = resolve_source(&s, &source).await?;
    let given = r.run_id.filter(|x| !x.is_empty());
    let model_id = r.model_id.filter(|x| !x.is_empty());
    // Nothing here can vouch for a run we do not hold, so the request must at least agree with
    // its own source (MLflow's rules and wording): no other run, and no logged model.
    if resolved.external && given.is_some() && given != resolved.run_id {
        return Err(not_containing(&source, "run_id"));
    }
    if resolved.external && model_id.is_some() {
        return Err(not_containing(&source, "model_id"));
    }
    let run_id = given.or(resolved.run_id);
    if let Some(id) = run_id.as_ref().filter(|_| !resolved.external) {
        s.store.get_run(id.clone()).await.map_err(|_| ApiError::invalid(format!("Run with id={id} not found")))?;
    }
    let mv = s
        .store
        .create_model_version(
            NewModelVersion {
                name,
                source,
                storage_location: resolved.storage_location,
                run_id,
                model_id: model_id.or(resolved.model_id),
                run_link: r.run_link.filter(|x| !x.is_empty()),
                description: r.description.filter(|x| !x.is_empty()),
                user_id: Some(actor.0.clone()).filter(|a| a != "anonymous"),
                tags: key_values(r.tags)?,
            },
            actor.0,
        )
        .await?;
    Ok(Json(json!({ "model_version": mv })))
}

#[derive(Deserialize)]
struct VersionRequest {
    name: Option<String>,
    version: Option<Value>,
    description: Option<String>,
    stage: Option<String>,
    #[serde(default, deserialize_with = "de_opt_bool")]
    archive_existing_versions: Option<bool>,
}

async fn update_version(
    State(s): State<AppState>,
    actor: Actor,
    JsonBody(r): JsonBody<VersionRequest>,
) -> ApiResult<Json<Value>> {
    let mv = s
        .store
        .update_model_version(required(r.name, "name")?, version_string(r.version)?, r.description, actor.0)
        .await?;
    Ok(Json(json!({ "model_version": mv })))
}

async fn transition_stage(
    State(s): State<AppState>,
    actor: Actor,
    JsonBody(r): JsonBody<VersionRequest>,
) -> ApiResult<Json<Value>> {
    let mv = s
        .store
        .transition_model_version_stage(
            required(r.name, "name")?,
            version_string(r.version)?,
            required(r.stage, "stage")?,
            r.archive_existing_versions.unwrap_or(false),
            actor.0,
        )
        .await?;
    s.registry_changed.notify_one();
    Ok(Json(json!({ "model_version": mv })))
}

async fn delete_version(
    State(s): State<AppState>,
    actor: Actor,
    JsonBody(r): JsonBody<VersionRequest>,
) -> ApiResult<Json<Value>> {
    s.store.delete_model_version(required(r.name, "name")?, version_string(r.version)?, actor.0).await?;
    s.registry_changed.notify_one();
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct VersionQuery {
    name: Option<String>,
    version: Option<String>,
}

async fn get_version(State(s): State<AppState>, QueryArgs(r): QueryArgs<VersionQuery>) -> ApiResult<Json<Value>> {
    let mv = s.store.get_model_version(required(r.name, "name")?, required(r.version, "version")?).await?;
    Ok(Json(json!({ "model_version": mv })))
}

async fn search_versions(
    State(s): State<AppState>,
    v: Visible,
    QueryArgs(r): QueryArgs<Search>,
) -> ApiResult<Response> {
    Ok(Paged::respond("model_versions", s.store.search_model_versions(r.into_request(v)).await?))
}

async fn download_uri(State(s): State<AppState>, QueryArgs(r): QueryArgs<VersionQuery>) -> ApiResult<Json<Value>> {
    let mv = s.store.get_model_version(required(r.name, "name")?, required(r.version, "version")?).await?;
    // A version kept from another tracking server's run has no place of ours: hand back its
    // source, as MLflow does, for the client to resolve against its own tracking server.
    let uri = if mv.storage_location.is_empty() { mv.source } else { mv.storage_location };
    Ok(Json(json!({ "artifact_uri": uri })))
}

async fn set_version_tag(
    State(s): State<AppState>,
    actor: Actor,
    JsonBody(r): JsonBody<Tag>,
) -> ApiResult<Json<Value>> {
    let tag = KeyValue { key: required(r.key, "key")?, value: r.value.unwrap_or_default() };
    s.store.set_model_version_tag(required(r.name, "name")?, version_string(r.version)?, tag, actor.0).await?;
    Ok(Json(json!({})))
}

async fn delete_version_tag(
    State(s): State<AppState>,
    actor: Actor,
    JsonBody(r): JsonBody<Tag>,
) -> ApiResult<Json<Value>> {
    s.store
        .delete_model_version_tag(
            required(r.name, "name")?,
            version_string(r.version)?,
            required(r.key, "key")?,
            actor.0,
        )
        .await?;
    Ok(Json(json!({})))
}
