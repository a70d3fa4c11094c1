//! Dataset versions (`/api/v1/data`, docs/design/data.md): the store holds each version's
//! record, the artifact store its files as content-addressed blobs under `slipway-cache/`. A
//! version is created only once its manifest and every blob the manifest names are stored
//! (and the sizes agree), so a client killed half-way leaves no version behind, only blobs the
//! next attempt reuses.

use std::collections::BTreeSet;

use axum::extract::{Path, State};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use slipway_artifacts::ArtifactPath;
use slipway_data::manifest::{Manifest, hash_bytes, is_sha256};
use slipway_types::{KeyValue, NewDataVersion};

use crate::AppState;
use crate::actor::Actor;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;

/// Manifests larger than this are refused (a million files fit in far less).
const MAX_MANIFEST: u64 = 256 << 20;
/// Blob checks in flight at once (HEAD requests, on S3).
const CHECKS: usize = 32;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/data", get(sets))
        .route("/api/v1/data/{name}", get(versions))
        .route("/api/v1/data/{name}/versions", post(create))
        .route("/api/v1/data/{name}/versions/{which}", get(version))
        .route("/api/v1/data/{name}/versions/{version}/tags", post(tag))
        .route("/api/v1/data/{name}/aliases/{alias}", put(set_alias).delete(delete_alias))
}

/// Where a blob lives: the pipelines' content-addressed store.
pub fn blob_path(hash: &str) -> ApiResult<ArtifactPath> {
    if !is_sha256(hash) {
        return Err(ApiError::invalid(format!("'{hash}' is not a SHA-256 in lowercase hex")));
    }
    Ok(slipway_artifacts::sanitize(&format!("slipway-cache/sha256/{}/{hash}", &hash[..2]))?)
}

async fn sets(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"data_sets": s.store.list_data_sets().await?})))
}

async fn versions(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"versions": s.store.list_data_versions(name).await?})))
}

async fn version(State(s): State<AppState>, Path((name, which)): Path<(String, String)>) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"version": s.store.get_data_version(name, which).await?})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewVersion {
    manifest: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    tags: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    aliases: Vec<String>,
}

async fn create(
    State(s): State<AppState>,
    actor: Actor,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<NewVersion>,
) -> ApiResult<Json<Value>> {
    if !is_sha256(&req.manifest) {
        return Err(ApiError::invalid(format!("manifest '{}' is not a SHA-256 in lowercase hex", req.manifest)));
    }
    let manifest = stored_manifest(&s, &req.manifest).await?;
    check_blobs(&s, &manifest).await?;
    let new = NewDataVersion {
        name,
        manifest: req.manifest,
        files: i64::try_from(manifest.files.len()).unwrap_or(i64::MAX),
        bytes: i64::try_from(manifest.bytes()).unwrap_or(i64::MAX),
        rows: manifest.rows().map(|r| i64::try_from(r).unwrap_or(i64::MAX)),
        message: req.message,
        tags: req.tags.into_iter().map(|(key, value)| KeyValue { key, value }).collect(),
        aliases: req.aliases,
    };
    Ok(Json(json!({"version": s.store.create_data_version(new, actor.0).await?})))
}

/// The manifest blob, read and checked: stored, of its hash, well formed.
async fn stored_manifest(s: &AppState, hash: &str) -> ApiResult<Manifest> {
    let path = blob_path(hash)?;
    let bytes = match s.artifacts.read_small(&path, MAX_MANIFEST).await {
        Ok(b) => b,
        Err(slipway_artifacts::ArtifactError::NotFound(_)) => {
            return Err(ApiError::invalid(format!("manifest {hash} is not stored: upload it, and its files, first")));
        }
        Err(e) => return Err(e.into()),
    };
    if hash_bytes(&bytes) != hash {
        return Err(ApiError::invalid(format!("the blob stored as {hash} does not hash to it")));
    }
    Manifest::parse(&bytes).map_err(|e| ApiError::invalid(e.to_string()))
}

/// Every blob the manifest names is stored, files at the sizes it says.
async fn check_blobs(s: &AppState, manifest: &Manifest) -> ApiResult<()> {
    let sizes: std::collections::HashMap<&str, u64> =
        manifest.files.iter().map(|f| (f.sha256.as_str(), f.size)).collect();
    let wanted: BTreeSet<String> = manifest.blobs().map(str::to_owned).collect();
    let found: Vec<(String, Option<u64>)> = futures::stream::iter(wanted)
        .map(|hash| {
            let artifacts = s.artifacts.clone();
            async move {
                let size = artifacts.size_of(&blob_path(&hash)?).await?;
                Ok::<_, ApiError>((hash, size))
            }
        })
        .buffer_unordered(CHECKS)
        .try_collect()
        .await?;
    let mut missing: Vec<&str> = found.iter().filter(|(_, size)| size.is_none()).map(|(h, _)| h.as_str()).collect();
    missing.sort_unstable();
    if let Some(first) = missing.first() {
        let path = manifest.files.iter().find(|f| f.sha256 == *first).map_or("a profile", |f| f.path.as_str());
        return Err(ApiError::invalid(format!(
            "{} of the version's blobs are not stored (the first: {first}, {path}): upload them first",
            missing.len()
        )));
    }
    let wrong = found.iter().find(|(h, size)| sizes.get(h.as_str()).is_some_and(|want| Some(*want) != *size));
    if let Some((hash, size)) = wrong {
        return Err(ApiError::invalid(format!(
            "blob {hash} is {} bytes, not the {} the manifest says",
            size.unwrap_or(0),
            sizes[hash.as_str()]
        )));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AliasTarget {
    version: Value,
}

fn version_number(v: &Value) -> ApiResult<i64> {
    let parsed = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    parsed.filter(|n| *n > 0).ok_or_else(|| ApiError::invalid(format!("version {v} is not a version number")))
}

async fn set_alias(
    State(s): State<AppState>,
    actor: Actor,
    Path((name, alias)): Path<(String, String)>,
    JsonBody(req): JsonBody<AliasTarget>,
) -> ApiResult<Json<Value>> {
    let version = version_number(&req.version)?;
    Ok(Json(json!({"version": s.store.set_data_alias(name, alias, version, actor.0).await?})))
}

async fn delete_alias(
    State(s): State<AppState>,
    actor: Actor,
    Path((name, alias)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    s.store.delete_data_alias(name, alias, actor.0).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTag {
    key: String,
    value: String,
}

async fn tag(
    State(s): State<AppState>,
    actor: Actor,
    Path((name, version)): Path<(String, String)>,
    JsonBody(req): JsonBody<NewTag>,
) -> ApiResult<Json<Value>> {
    let version = version_number(&Value::String(version))?;
    Ok(Json(json!({"version": s.store.set_data_tag(name, version, req.key, req.value, actor.0).await?})))
}
