//! Labeling queues (`/api/v1/labeling`, docs/design/data.md): items offered to a deployment's
//! queue (through the API, or picked from the deployment's prediction log by the monitor loop
//! or `feed`), handed out one at a time under a lease (`next`), labelled once by the lease's holder
//! (`label`, which becomes the deployment's ground truth for the request), and exported as a
//! data version for retraining (`export`). The labeller is the caller, as the audit log names
//! it. A queue has its deployment's permissions: a labeller needs USE on that deployment.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use slipway_data::manifest::{describe, hash_bytes};
use slipway_data::tree::FileRef;
use slipway_store::auth::ObjectKind;
use slipway_types::{LabelItem, LabelQueue, NewDataVersion, NewLabelItem};

use crate::AppState;
use crate::actor::Actor;
use crate::auth::Reader;
use crate::data::blob_path;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/labeling", get(list).post(create))
        .route("/api/v1/labeling/{queue}", get(show))
        .route("/api/v1/labeling/{queue}/items", post(offer))
        .route("/api/v1/labeling/{queue}/feed", post(feed))
        .route("/api/v1/labeling/{queue}/next", get(next))
        .route("/api/v1/labeling/{queue}/label", post(label))
        .route("/api/v1/labeling/{queue}/export", post(export))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewQueue {
    name: String,
    deployment: String,
    #[serde(default = "manual")]
    mode: String,
    rate: Option<f64>,
    threshold: Option<f64>,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default = "five_minutes")]
    lease_seconds: i64,
}

fn manual() -> String {
    "manual".into()
}

fn five_minutes() -> i64 {
    300
}

async fn create(State(s): State<AppState>, actor: Actor, JsonBody(q): JsonBody<NewQueue>) -> ApiResult<Json<Value>> {
    // A queue fed from its deployment's predictions needs the deployment; a manual one takes
    // items for whatever name its feeder gives.
    if q.mode != "manual" {
        s.store.get_deployment(q.deployment.clone()).await?;
    }
    let queue = LabelQueue {
        name: q.name,
        deployment: q.deployment,
        mode: q.mode,
        rate: q.rate,
        threshold: q.threshold,
        labels: q.labels,
        lease_seconds: q.lease_seconds,
        created_ms: 0,
        fed_ms: None,
        counts: Default::default(),
    };
    Ok(Json(json!({"queue": s.store.create_label_queue(queue, actor.0).await?})))
}

/// The queues on deployments the caller may read.
async fn list(State(s): State<AppState>, reader: Reader) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"queues": readable_queues(&s, &reader).await?})))
}

/// The queues a reader may see: those on the deployments it may read.
pub async fn readable_queues(s: &AppState, reader: &Reader) -> ApiResult<Vec<LabelQueue>> {
    let mut queues = s.store.list_label_queues().await?;
    queues.retain(|q| reader.may_read(ObjectKind::Deployment, &q.deployment));
    Ok(queues)
}

async fn show(State(s): State<AppState>, Path(queue): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"queue": s.store.get_label_queue(queue).await?})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Offer {
    items: Vec<NewLabelItem>,
}

async fn offer(
    State(s): State<AppState>,
    Path(queue): Path<String>,
    JsonBody(o): JsonBody<Offer>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"added": s.store.offer_label_items(queue, o.items).await?})))
}

/// Seals this server's prediction log, then offers the queue what its deployment logged since
/// it was last fed (the monitor loop does this on every pass).
async fn feed(State(s): State<AppState>, Path(queue): Path<String>) -> ApiResult<Json<Value>> {
    let q = s.store.get_label_queue(queue.clone()).await?;
    if q.mode == "manual" {
        return Err(ApiError::invalid(format!(
            "queue '{queue}' is manual: it takes items offered through the API, not from its deployment"
        )));
    }
    crate::deployments::flush_log(&s).await?;
    let added = s.monitors.feed_now(&q).await?;
    Ok(Json(json!({"added": added, "queue": s.store.get_label_queue(queue).await?})))
}

/// The next item for the caller, under a lease only the answer carries; `null` when none waits.
async fn next(State(s): State<AppState>, actor: Actor, Path(queue): Path<String>) -> ApiResult<Json<Value>> {
    let token = uuid::Uuid::new_v4().simple().to_string();
    Ok(Json(json!({"item": s.store.lease_label_item(queue, actor.0, token).await?})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Labelled {
    item_id: i64,
    lease_token: String,
    label: Value,
}

async fn label(
    State(s): State<AppState>,
    actor: Actor,
    Path(queue): Path<String>,
    JsonBody(l): JsonBody<Labelled>,
) -> ApiResult<Json<Value>> {
    if l.label.is_null() {
        return Err(ApiError::missing("label"));
    }
    Ok(Json(json!({"item": s.store.label_item(queue, l.item_id, l.lease_token, l.label, actor.0).await?})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Export {
    data_set: String,
    #[serde(default)]
    aliases: Vec<String>,
    message: Option<String>,
}

/// The labelled items as one CSV (`request_id`, `row`, the inputs' fields, `label`), stored
/// as a new version of `data_set`, for retraining.
async fn export(
    State(s): State<AppState>,
    actor: Actor,
    reader: Reader,
    Path(queue): Path<String>,
    JsonBody(e): JsonBody<Export>,
) -> ApiResult<Json<Value>> {
    // The queue is its deployment's, the version it writes is the data set's: making one
    // needs what `POST /api/v1/data/{name}/versions` needs.
    if !reader.holds_on_all(ObjectKind::Experiment, slipway_auth::Level::Edit) {
        return Err(ApiError::new(
            slipway_types::ErrorCode::PermissionDenied,
            "exporting labels as a data version needs EDIT on every experiment, as making any data version does",
        ));
    }
    let items = s.store.labelled_items(queue.clone()).await?;
    if items.is_empty() {
        return Err(ApiError::new(
            slipway_types::ErrorCode::InvalidState,
            format!("queue '{queue}' has no labelled items yet"),
        ));
    }
    let csv = to_csv(&items)?;
    let dir = tempfile::tempdir().map_err(internal)?;
    let file = dir.path().join(format!("{queue}.csv"));
    std::fs::write(&file, &csv).map_err(internal)?;
    let refs = vec![FileRef { path: format!("{queue}.csv"), disk: file, size: csv.len() as u64 }];
    let described = tokio::task::spawn_blocking(move || describe(&refs, 1))
        .await
        .map_err(internal)?
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let mut blobs = vec![(described.manifest.files[0].sha256.clone(), Bytes::from(csv))];
    blobs.extend(described.extras.iter().map(|x| (x.sha256.clone(), Bytes::from(x.bytes.clone()))));
    let manifest = described.manifest.to_bytes();
    let manifest_hash = hash_bytes(&manifest);
    blobs.push((manifest_hash.clone(), Bytes::from(manifest)));
    for (hash, bytes) in blobs {
        let body = futures::stream::iter([Ok::<_, std::io::Error>(bytes)]);
        s.artifacts.put_stream_checked(&blob_path(&hash)?, body, Some(&hash)).await?;
    }
    let new = NewDataVersion {
        name: e.data_set,
        manifest: manifest_hash,
        files: 1,
        bytes: i64::try_from(described.manifest.bytes()).unwrap_or(i64::MAX),
        rows: described.manifest.rows().map(|r| i64::try_from(r).unwrap_or(i64::MAX)),
        message: e.message.or_else(|| Some(format!("labels of queue {queue}"))),
        tags: vec![slipway_types::KeyValue { key: "slipway.labeling_queue".into(), value: queue }],
        aliases: e.aliases,
    };
    Ok(Json(json!({"version": s.store.create_data_version(new, actor.0).await?})))
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "exporting labels failed");
    slipway_types::MlflowError::internal().into()
}

/// Inputs that are JSON objects give a column per field (in the first item's order, then new
/// ones as they appear); other inputs are one `inputs` column of JSON text.
fn to_csv(items: &[LabelItem]) -> ApiResult<Vec<u8>> {
    let mut fields: Vec<String> = Vec::new();
    for it in items {
        if let Value::Object(map) = &it.inputs {
            for k in map.keys() {
                if !fields.contains(k) {
                    fields.push(k.clone());
                }
            }
        }
    }
    let objects = !fields.is_empty() && items.iter().all(|it| it.inputs.is_object());
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["request_id".to_string(), "row".to_string()];
    header.extend(if objects { fields.clone() } else { vec!["inputs".to_string()] });
    header.push("label".into());
    w.write_record(&header).map_err(|e| ApiError::invalid(e.to_string()))?;
    for it in items {
        let mut record = vec![it.request_id.clone(), it.row.to_string()];
        if objects {
            record.extend(fields.iter().map(|f| it.inputs.get(f).map_or_else(String::new, text)));
        } else {
            record.push(it.inputs.to_string());
        }
        record.push(it.label.as_ref().map_or_else(String::new, text));
        w.write_record(&record).map_err(|e| ApiError::invalid(e.to_string()))?;
    }
    w.into_inner().map_err(|e| ApiError::invalid(e.to_string()))
}
