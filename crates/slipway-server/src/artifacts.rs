//! The `mlflow-artifacts` proxy API and the tracking API's artifact listing.
//!
//! Paths are taken from the raw request URI, still percent-encoded, and handed to the one
//! sanitiser in `slipway-artifacts`; axum's own decoding is never trusted with them.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::TryStreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use slipway_artifacts::{ArtifactPath, sanitize};
use slipway_types::FileInfo;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::QueryArgs;

const PREFIX: &str = "/api/2.0/mlflow-artifacts/artifacts";
/// The URI scheme of artifacts proxied through this server.
pub const SCHEME: &str = slipway_artifacts::PROXY_SCHEME;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(PREFIX, get(list_proxied))
        .route(&format!("{PREFIX}/"), get(list_proxied))
        .route(&format!("{PREFIX}/{{*path}}"), get(download).put(upload).delete(delete))
        .route("/api/2.0/mlflow/artifacts/list", get(list_run_artifacts))
        // What the MLflow UI previews and lists.
        .route("/get-artifact", get(run_artifact))
        .route("/model-versions/get-artifact", get(model_version_artifact))
        .route("/api/2.0/mlflow/logged-models/{model_id}/artifacts/directories", get(logged_model_directory))
        .route("/api/2.0/mlflow/logged-models/{model_id}/artifacts/files", get(logged_model_file))
}

/// The artifact path of a request, from the raw URI.
fn raw_path(uri: &Uri) -> ApiResult<ArtifactPath> {
    let rest = uri.path().strip_prefix(PREFIX).unwrap_or("");
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    Ok(sanitize(rest)?)
}

/// Where pipelines keep their content-addressed outs: `slipway-cache/sha256/<ab>/<hash>`.
const CACHE: &str = "slipway-cache/sha256/";

async fn upload(State(s): State<AppState>, req: Request) -> ApiResult<Json<Value>> {
    let path = raw_path(req.uri())?;
    // A cache blob is named by its content's hash: the content must hash to it, or a caller
    // could plant other bytes where another's pipeline will restore them from.
    let text = path.to_string();
    let promised = text.strip_prefix(CACHE).and_then(|rest| rest.rsplit('/').next()).map(str::to_string);
    if let Some(hash) = &promised
        && !(hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
    {
        return Err(ApiError::invalid(format!(
            "a pipeline cache blob is named by its SHA-256 in lowercase hex, not '{hash}'"
        )));
    }
    let body = Box::pin(req.into_body().into_data_stream());
    let bytes = s.artifacts.put_stream_checked(&path, body, promised.as_deref()).await?;
    tracing::debug!(%path, bytes, "artifact stored");
    Ok(Json(json!({})))
}

async fn download(State(s): State<AppState>, uri: Uri) -> ApiResult<Response> {
    let path = raw_path(&uri)?;
    let got = s.artifacts.get_stream(&path).await?;
    let mut resp = Body::from_stream(got.stream.map_err(std::io::Error::other)).into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(got.size));
    Ok(resp)
}

async fn delete(State(s): State<AppState>, uri: Uri) -> ApiResult<Json<Value>> {
    let path = raw_path(&uri)?;
    s.artifacts.delete(&path).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct ListQuery {
    path: Option<String>,
}

/// Lists a directory's direct children by base name, as MLflow's artifact server does.
async fn list_dir(s: &AppState, dir: &ArtifactPath) -> ApiResult<Vec<FileInfo>> {
    let entries = s.artifacts.list(dir).await?;
    Ok(entries
        .into_iter()
        .map(|e| FileInfo {
            path: e.path.rsplit('/').next().unwrap_or(&e.path).to_string(),
            is_dir: e.is_dir,
            file_size: e.size,
        })
        .collect())
}

async fn list_proxied(State(s): State<AppState>, QueryArgs(q): QueryArgs<ListQuery>) -> ApiResult<Json<Value>> {
    // The query value is already decoded once by the query parser: encode nothing further,
    // but refuse what is still encoded as the sanitiser does.
    let raw = q.path.unwrap_or_default();
    let encoded: String = percent_encode_path(&raw);
    let dir = sanitize(&encoded)?;
    let files = list_dir(&s, &dir).await?;
    Ok(Json(if files.is_empty() { json!({}) } else { json!({ "files": files }) }))
}

/// Re-encodes `%` so a decoded query value can pass through the one sanitiser unchanged.
fn percent_encode_path(s: &str) -> String {
    s.replace('%', "%25")
}

#[derive(Deserialize)]
struct RunArtifactsQuery {
    run_id: Option<String>,
    run_uuid: Option<String>,
    path: Option<String>,
}

/// Maps a stored location (`mlflow-artifacts:/...`, or under the root's own URI) to its place
/// in the artifact root.
pub fn locate(s: &AppState, uri: &str) -> ApiResult<ArtifactPath> {
    Ok(s.artifacts.locate(uri)?)
}

pub fn validate_artifact_location(s: &AppState, loc: &str) -> ApiResult<()> {
    if s.artifacts.owns(loc) {
        locate(s, loc).map(|_| ())
    } else if loc.split(['/', '\\']).any(|seg| seg == "..") {
        Err(ApiError::invalid(format!("artifact location '{loc}' must not contain '..'")))
    } else {
        Ok(())
    }
}

async fn list_run_artifacts(
    State(s): State<AppState>,
    QueryArgs(q): QueryArgs<RunArtifactsQuery>,
) -> ApiResult<Json<Value>> {
    let run_id = q.run_id.or(q.run_uuid).filter(|r| !r.is_empty()).ok_or_else(|| ApiError::missing("run_id"))?;
    let run = s.store.get_run(run_id).await?;
    list_under(&s, &run.info.artifact_uri, q.path.as_deref()).await
}

/// `{root_uri, files}`: the folder `sub` (a query value, decoded once) under a stored location,
/// each path from the root, as MLflow lists run and logged-model artifacts.
async fn list_under(s: &AppState, root_uri: &str, sub: Option<&str>) -> ApiResult<Json<Value>> {
    let root = locate(s, root_uri)?;
    let sub = sanitize(&percent_encode_path(sub.unwrap_or("")))?;
    let prefix = sub.to_string();
    let files: Vec<FileInfo> = list_dir(s, &root.join(&sub))
        .await?
        .into_iter()
        .map(|f| FileInfo { path: if prefix.is_empty() { f.path } else { format!("{prefix}/{}", f.path) }, ..f })
        .collect();
    let mut out = json!({ "root_uri": root_uri });
    if !files.is_empty() {
        out["files"] = json!(files);
    }
    Ok(Json(out))
}

// ---- the MLflow UI's file previews ----

#[derive(Deserialize)]
struct RunFileQuery {
    run_id: Option<String>,
    run_uuid: Option<String>,
    path: Option<String>,
}

/// `GET /get-artifact?path=&run_uuid=`: one file of a run, for the UI's preview.
async fn run_artifact(State(s): State<AppState>, QueryArgs(q): QueryArgs<RunFileQuery>) -> ApiResult<Response> {
    let run_id = q.run_id.or(q.run_uuid).filter(|r| !r.is_empty()).ok_or_else(|| ApiError::missing("run_uuid"))?;
    let path = q.path.ok_or_else(|| ApiError::missing("path"))?;
    let run = s.store.get_run(run_id).await?;
    send_file(&s, &run.info.artifact_uri, &path).await
}

#[derive(Deserialize)]
struct VersionFileQuery {
    name: Option<String>,
    version: Option<String>,
    path: Option<String>,
}

/// `GET /model-versions/get-artifact?path=&name=&version=`: one file of a model version
/// (the UI reads `MLmodel` for the schema panel).
async fn model_version_artifact(
    State(s): State<AppState>,
    QueryArgs(q): QueryArgs<VersionFileQuery>,
) -> ApiResult<Response> {
    let name = q.name.filter(|n| !n.is_empty()).ok_or_else(|| ApiError::missing("name"))?;
    let version = q.version.filter(|v| !v.is_empty()).ok_or_else(|| ApiError::missing("version"))?;
    let path = q.path.ok_or_else(|| ApiError::missing("path"))?;
    let mv = s.store.get_model_version(name.clone(), version.clone()).await?;
    if mv.storage_location.is_empty() {
        return Err(ApiError::new(
            slipway_types::ErrorCode::ResourceDoesNotExist,
            format!("model version {name}/{version} keeps its files on another tracking server ({})", mv.source),
        ));
    }
    send_file(&s, &mv.storage_location, &path).await
}

#[derive(Deserialize)]
struct LoggedModelDirQuery {
    artifact_directory_path: Option<String>,
}

/// A logged model's folder: `{root_uri, files: [{path, is_dir, file_size}]}`, paths from the
/// model's root.
async fn logged_model_directory(
    State(s): State<AppState>,
    axum::extract::Path(model_id): axum::extract::Path<String>,
    QueryArgs(q): QueryArgs<LoggedModelDirQuery>,
) -> ApiResult<Json<Value>> {
    let model = s.store.get_logged_model(model_id, false).await?;
    list_under(&s, &model.info.artifact_uri, q.artifact_directory_path.as_deref()).await
}

#[derive(Deserialize)]
struct LoggedModelFileQuery {
    artifact_file_path: Option<String>,
}

async fn logged_model_file(
    State(s): State<AppState>,
    axum::extract::Path(model_id): axum::extract::Path<String>,
    QueryArgs(q): QueryArgs<LoggedModelFileQuery>,
) -> ApiResult<Response> {
    let path = q.artifact_file_path.ok_or_else(|| ApiError::missing("artifact_file_path"))?;
    let model = s.store.get_logged_model(model_id, false).await?;
    send_file(&s, &model.info.artifact_uri, &path).await
}

/// Streams the file `path` (a query value, decoded once) under the stored location `root_uri`,
/// as a download: the browser never renders it as a page of this origin (`attachment`,
/// `nosniff`, a sandboxing CSP); the UI reads the bytes and picks its viewer by extension.
async fn send_file(s: &AppState, root_uri: &str, path: &str) -> ApiResult<Response> {
    let root = locate(s, root_uri)?;
    let rel = sanitize(&percent_encode_path(path))?;
    if rel.is_root() {
        return Err(ApiError::invalid("path must name a file"));
    }
    let got = match s.artifacts.get_stream(&root.join(&rel)).await {
        Ok(got) => got,
        Err(slipway_artifacts::ArtifactError::NotFound(_)) => {
            return Err(ApiError::new(
                slipway_types::ErrorCode::ResourceDoesNotExist,
                format!("No such artifact: '{rel}'"),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let name = rel.segments().last().unwrap_or("artifact").to_string();
    let mut resp = Body::from_stream(got.stream.map_err(std::io::Error::other)).into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(preview_type(&name)));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(got.size));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox; default-src 'none'"));
    let ascii: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{ascii}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

/// MLflow's preview types: its list of text formats (and `MLmodel`, `MLproject`) as plain
/// text, common images as themselves, everything else (HTML and SVG included) as bytes.
fn preview_type(name: &str) -> &'static str {
    const TEXT: &[&str] = &[
        "txt",
        "log",
        "err",
        "cfg",
        "conf",
        "cnf",
        "cf",
        "ini",
        "properties",
        "prop",
        "hocon",
        "toml",
        "yaml",
        "yml",
        "xml",
        "json",
        "js",
        "py",
        "py3",
        "csv",
        "tsv",
        "md",
        "rst",
        "ipynb",
        "mlmodel",
        "mlproject",
    ];
    let ext = name.rsplit_once('.').map_or(name, |(_, e)| e).to_ascii_lowercase();
    match ext.as_str() {
        e if TEXT.contains(&e) => "text/plain; charset=utf-8",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "bmp" => "image/bmp",
        _ => "application/octet-stream",
    }
}
