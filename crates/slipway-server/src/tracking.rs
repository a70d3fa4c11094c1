//! MLflow tracking routes: experiments, runs, logging, search, metric history, logged models.
//!
//! Handlers translate wire requests into store calls and nothing more; validation of values
//! lives in the store so every backend enforces it.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use slipway_store::{LoggedModelSearch, NewDatasetInput, NewLoggedModel, NewRun, RunUpdate, SearchRequest};
use slipway_types::json::{de_opt_bool, de_opt_f64, de_opt_i64};
use slipway_types::{Dataset, KeyValue, Metric, ViewType};

use crate::AppState;
use crate::auth::Visible;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Paged, QueryArgs, one_or_many};

pub fn routes() -> Router<AppState> {
    let p = "/api/2.0/mlflow";
    Router::new()
        .route(&format!("{p}/experiments/create"), post(create_experiment))
        .route(&format!("{p}/experiments/get"), get(get_experiment))
        .route(&format!("{p}/experiments/get-by-name"), get(get_experiment_by_name))
        .route(&format!("{p}/experiments/search"), post(search_experiments).get(search_experiments_get))
        .route(&format!("{p}/experiments/update"), post(update_experiment))
        .route(&format!("{p}/experiments/delete"), post(delete_experiment))
        .route(&format!("{p}/experiments/restore"), post(restore_experiment))
        .route(&format!("{p}/experiments/set-experiment-tag"), post(set_experiment_tag))
        .route(&format!("{p}/experiments/delete-experiment-tag"), post(delete_experiment_tag))
        .route(&format!("{p}/experiments/search-datasets"), post(search_datasets))
        .route(&format!("{p}/runs/create"), post(create_run))
        .route(&format!("{p}/runs/get"), get(get_run))
        .route(&format!("{p}/runs/update"), post(update_run))
        .route(&format!("{p}/runs/delete"), post(delete_run))
        .route(&format!("{p}/runs/restore"), post(restore_run))
        .route(&format!("{p}/runs/log-metric"), post(log_metric))
        .route(&format!("{p}/runs/log-parameter"), post(log_param))
        .route(&format!("{p}/runs/set-tag"), post(set_tag))
        .route(&format!("{p}/runs/delete-tag"), post(delete_tag))
        .route(&format!("{p}/runs/log-batch"), post(log_batch))
        .route(&format!("{p}/runs/log-model"), post(log_model))
        .route(&format!("{p}/runs/log-inputs"), post(log_inputs))
        .route(&format!("{p}/runs/outputs"), post(log_outputs))
        .route(&format!("{p}/runs/search"), post(search_runs))
        .route(&format!("{p}/metrics/get-history"), get(get_metric_history))
        .route(&format!("{p}/metrics/get-history-bulk"), get(get_metric_history_bulk))
        .route(&format!("{p}/logged-models"), post(create_logged_model))
        .route(&format!("{p}/logged-models/search"), post(search_logged_models))
        .route(
            &format!("{p}/logged-models/{{model_id}}"),
            get(get_logged_model).patch(finalize_logged_model).delete(delete_logged_model),
        )
        .route(&format!("{p}/logged-models/{{model_id}}/tags"), axum::routing::patch(set_logged_model_tags))
        .route(&format!("{p}/logged-models/{{model_id}}/tags/{{key}}"), axum::routing::delete(delete_logged_model_tag))
        .route(&format!("{p}/logged-models/{{model_id}}/params"), post(log_logged_model_params))
}

#[derive(Deserialize)]
struct SearchDatasets {
    #[serde(default)]
    experiment_ids: Vec<String>,
}

/// The datasets an experiment's runs took as inputs (the UI's dataset filter).
async fn search_datasets(State(s): State<AppState>, JsonBody(r): JsonBody<SearchDatasets>) -> ApiResult<Json<Value>> {
    if r.experiment_ids.is_empty() {
        return Err(ApiError::invalid("SearchDatasets request must specify at least one experiment_id."));
    }
    if r.experiment_ids.len() > 20 {
        return Err(ApiError::invalid(format!(
            "SearchDatasets request cannot specify more than 20 experiment_ids. Received {} experiment_ids.",
            r.experiment_ids.len()
        )));
    }
    let found = s.store.search_datasets(r.experiment_ids).await?;
    Ok(Json(if found.is_empty() { json!({}) } else { json!({ "dataset_summaries": found }) }))
}

fn required<T>(v: Option<T>, field: &str) -> ApiResult<T> {
    v.ok_or_else(|| ApiError::missing(field))
}

fn required_str(v: Option<String>, field: &str) -> ApiResult<String> {
    v.filter(|s| !s.is_empty()).ok_or_else(|| ApiError::missing(field))
}

/// Requests name a run as `run_id` or, in older clients, `run_uuid`.
fn pick_run_id(run_id: Option<String>, run_uuid: Option<String>) -> ApiResult<String> {
    required_str(run_id.filter(|s| !s.is_empty()).or(run_uuid), "run_id")
}

fn view_type(v: Option<&Value>) -> ApiResult<ViewType> {
    match v {
        None | Some(Value::Null) => Ok(ViewType::ActiveOnly),
        Some(Value::String(s)) => {
            ViewType::parse(s).ok_or_else(|| ApiError::invalid(format!("invalid view type '{s}'")))
        }
        Some(Value::Number(n)) => {
            ViewType::parse(&n.to_string()).ok_or_else(|| ApiError::invalid(format!("invalid view type {n}")))
        }
        Some(other) => Err(ApiError::invalid(format!("invalid view type {other}"))),
    }
}

#[derive(Deserialize)]
struct Kv {
    key: Option<String>,
    value: Option<String>,
}

fn key_values(items: Vec<Kv>, what: &str) -> ApiResult<Vec<KeyValue>> {
    items
        .into_iter()
        .map(|kv| {
            Ok(KeyValue { key: required_str(kv.key, &format!("{what}.key"))?, value: kv.value.unwrap_or_default() })
        })
        .collect()
}

/// A batch's params or tags; a missing key is named by position (`params[2].key`), as MLflow's
/// log-batch handler names it.
fn indexed_key_values(items: Vec<Kv>, what: &str) -> ApiResult<Vec<KeyValue>> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, kv)| {
            Ok(KeyValue {
                key: required_str(kv.key, &format!("{what}[{i}].key"))?,
                value: kv.value.unwrap_or_default(),
            })
        })
        .collect()
}

// ---- experiments ----

#[derive(Deserialize)]
struct CreateExperiment {
    name: Option<String>,
    artifact_location: Option<String>,
    #[serde(default)]
    tags: Vec<Kv>,
}

async fn create_experiment(
    State(s): State<AppState>,
    JsonBody(r): JsonBody<CreateExperiment>,
) -> ApiResult<Json<Value>> {
    let name = required_str(r.name, "name")?;
    if let Some(loc) = r.artifact_location.as_deref().filter(|l| !l.is_empty()) {
        crate::artifacts::validate_artifact_location(&s, loc)?;
    }
    let id = s.store.create_experiment(name, r.artifact_location, key_values(r.tags, "tags")?).await?;
    Ok(Json(json!({ "experiment_id": id })))
}

#[derive(Deserialize)]
struct ExperimentId {
    experiment_id: Option<String>,
}

async fn get_experiment(State(s): State<AppState>, QueryArgs(r): QueryArgs<ExperimentId>) -> ApiResult<Json<Value>> {
    let e = s.store.get_experiment(required_str(r.experiment_id, "experiment_id")?).await?;
    Ok(Json(json!({ "experiment": e })))
}

#[derive(Deserialize)]
struct ExperimentName {
    experiment_name: Option<String>,
}

async fn get_experiment_by_name(
    State(s): State<AppState>,
    QueryArgs(r): QueryArgs<ExperimentName>,
) -> ApiResult<Json<Value>> {
    let e = s.store.get_experiment_by_name(required_str(r.experiment_name, "experiment_name")?).await?;
    Ok(Json(json!({ "experiment": e })))
}

#[derive(Deserialize)]
struct SearchExperiments {
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_results: Option<i64>,
    page_token: Option<String>,
    filter: Option<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    order_by: Vec<String>,
    view_type: Option<Value>,
}

async fn search_experiments_impl(s: AppState, Visible(visible): Visible, r: SearchExperiments) -> ApiResult<Response> {
    let req = SearchRequest {
        visible,
        filter: r.filter,
        order_by: r.order_by,
        view_type: view_type(r.view_type.as_ref())?,
        max_results: r.max_results,
        page_token: r.page_token,
    };
    let page = s.store.search_experiments(req).await?;
    Ok(Paged::respond("experiments", page))
}

async fn search_experiments(
    State(s): State<AppState>,
    v: Visible,
    JsonBody(r): JsonBody<SearchExperiments>,
) -> ApiResult<Response> {
    search_experiments_impl(s, v, r).await
}

async fn search_experiments_get(
    State(s): State<AppState>,
    v: Visible,
    QueryArgs(r): QueryArgs<SearchExperiments>,
) -> ApiResult<Response> {
    search_experiments_impl(s, v, r).await
}

#[derive(Deserialize)]
struct UpdateExperiment {
    experiment_id: Option<String>,
    new_name: Option<String>,
}

async fn update_experiment(
    State(s): State<AppState>,
    JsonBody(r): JsonBody<UpdateExperiment>,
) -> ApiResult<Json<Value>> {
    let id = required_str(r.experiment_id, "experiment_id")?;
    if let Some(name) = r.new_name.filter(|n| !n.is_empty()) {
        s.store.rename_experiment(id, name).await?;
    }
    Ok(Json(json!({})))
}

async fn delete_experiment(State(s): State<AppState>, JsonBody(r): JsonBody<ExperimentId>) -> ApiResult<Json<Value>> {
    s.store.delete_experiment(required_str(r.experiment_id, "experiment_id")?).await?;
    Ok(Json(json!({})))
}

async fn restore_experiment(State(s): State<AppState>, JsonBody(r): JsonBody<ExperimentId>) -> ApiResult<Json<Value>> {
    s.store.restore_experiment(required_str(r.experiment_id, "experiment_id")?).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct ExperimentTag {
    experiment_id: Option<String>,
    key: Option<String>,
    value: Option<String>,
}

async fn set_experiment_tag(State(s): State<AppState>, JsonBody(r): JsonBody<ExperimentTag>) -> ApiResult<Json<Value>> {
    let id = required_str(r.experiment_id, "experiment_id")?;
    let tag = KeyValue { key: required_str(r.key, "key")?, value: required(r.value, "value")? };
    s.store.set_experiment_tag(id, tag).await?;
    Ok(Json(json!({})))
}

async fn delete_experiment_tag(
    State(s): State<AppState>,
    JsonBody(r): JsonBody<ExperimentTag>,
) -> ApiResult<Json<Value>> {
    s.store.delete_experiment_tag(required_str(r.experiment_id, "experiment_id")?, required_str(r.key, "key")?).await?;
    Ok(Json(json!({})))
}

// ---- runs ----

#[derive(Deserialize)]
struct CreateRun {
    experiment_id: Option<String>,
    user_id: Option<String>,
    run_name: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    start_time: Option<i64>,
    #[serde(default)]
    tags: Vec<Kv>,
}

async fn create_run(State(s): State<AppState>, JsonBody(r): JsonBody<CreateRun>) -> ApiResult<Json<Value>> {
    let run = s
        .store
        .create_run(NewRun {
            experiment_id: r.experiment_id.filter(|e| !e.is_empty()).unwrap_or_else(|| "0".into()),
            user_id: r.user_id,
            run_name: r.run_name,
            start_time: r.start_time,
            tags: key_values(r.tags, "tags")?,
        })
        .await?;
    Ok(Json(json!({ "run": run })))
}

#[derive(Deserialize)]
struct RunRef {
    run_id: Option<String>,
    run_uuid: Option<String>,
}

async fn get_run(State(s): State<AppState>, QueryArgs(r): QueryArgs<RunRef>) -> ApiResult<Json<Value>> {
    let run = s.store.get_run(pick_run_id(r.run_id, r.run_uuid)?).await?;
    Ok(Json(json!({ "run": run })))
}

#[derive(Deserialize)]
struct UpdateRun {
    run_id: Option<String>,
    run_uuid: Option<String>,
    status: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    end_time: Option<i64>,
    run_name: Option<String>,
}

async fn update_run(State(s): State<AppState>, JsonBody(r): JsonBody<UpdateRun>) -> ApiResult<Json<Value>> {
    let id = pick_run_id(r.run_id, r.run_uuid)?;
    let info =
        s.store.update_run(id, RunUpdate { status: r.status, end_time: r.end_time, run_name: r.run_name }).await?;
    Ok(Json(json!({ "run_info": info })))
}

async fn delete_run(State(s): State<AppState>, JsonBody(r): JsonBody<RunRef>) -> ApiResult<Json<Value>> {
    s.store.delete_run(pick_run_id(r.run_id, r.run_uuid)?).await?;
    Ok(Json(json!({})))
}

async fn restore_run(State(s): State<AppState>, JsonBody(r): JsonBody<RunRef>) -> ApiResult<Json<Value>> {
    s.store.restore_run(pick_run_id(r.run_id, r.run_uuid)?).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct WireMetric {
    key: Option<String>,
    #[serde(default, deserialize_with = "de_opt_f64")]
    value: Option<f64>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    timestamp: Option<i64>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    step: Option<i64>,
    model_id: Option<String>,
    dataset_name: Option<String>,
    dataset_digest: Option<String>,
}

impl WireMetric {
    /// `prefix` names the metric in errors as MLflow does: `""` alone, `metrics[3].` in a batch.
    fn into_metric(self, prefix: &str) -> ApiResult<Metric> {
        Ok(Metric {
            key: required_str(self.key, &format!("{prefix}key"))?,
            value: required(self.value, &format!("{prefix}value"))?,
            timestamp: required(self.timestamp, &format!("{prefix}timestamp"))?,
            step: self.step.unwrap_or(0),
            dataset_name: self.dataset_name,
            dataset_digest: self.dataset_digest,
            model_id: self.model_id,
            run_id: None,
        })
    }
}

/// The metric's fields spelled out rather than `#[serde(flatten)]`ed: flattening buffers the
/// fields and loses the path that errors name.
#[derive(Deserialize)]
struct LogMetric {
    run_id: Option<String>,
    run_uuid: Option<String>,
    key: Option<String>,
    #[serde(default, deserialize_with = "de_opt_f64")]
    value: Option<f64>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    timestamp: Option<i64>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    step: Option<i64>,
    model_id: Option<String>,
    dataset_name: Option<String>,
    dataset_digest: Option<String>,
}

async fn log_metric(State(s): State<AppState>, JsonBody(r): JsonBody<LogMetric>) -> ApiResult<Json<Value>> {
    let id = pick_run_id(r.run_id, r.run_uuid)?;
    let metric = WireMetric {
        key: r.key,
        value: r.value,
        timestamp: r.timestamp,
        step: r.step,
        model_id: r.model_id,
        dataset_name: r.dataset_name,
        dataset_digest: r.dataset_digest,
    };
    s.store.log_batch(id, vec![metric.into_metric("")?], vec![], vec![]).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct RunKeyValue {
    run_id: Option<String>,
    run_uuid: Option<String>,
    key: Option<String>,
    value: Option<String>,
}

async fn log_param(State(s): State<AppState>, JsonBody(r): JsonBody<RunKeyValue>) -> ApiResult<Json<Value>> {
    let id = pick_run_id(r.run_id, r.run_uuid)?;
    let p = KeyValue { key: required_str(r.key, "key")?, value: required(r.value, "value")? };
    s.store.log_batch(id, vec![], vec![p], vec![]).await?;
    Ok(Json(json!({})))
}

async fn set_tag(State(s): State<AppState>, JsonBody(r): JsonBody<RunKeyValue>) -> ApiResult<Json<Value>> {
    let id = pick_run_id(r.run_id, r.run_uuid)?;
    let t = KeyValue { key: required_str(r.key, "key")?, value: required(r.value, "value")? };
    s.store.log_batch(id, vec![], vec![], vec![t]).await?;
    Ok(Json(json!({})))
}

async fn delete_tag(State(s): State<AppState>, JsonBody(r): JsonBody<RunKeyValue>) -> ApiResult<Json<Value>> {
    let id = pick_run_id(r.run_id, r.run_uuid)?;
    s.store.delete_tag(id, required_str(r.key, "key")?).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct LogBatch {
    run_id: Option<String>,
    run_uuid: Option<String>,
    #[serde(default)]
    metrics: Vec<WireMetric>,
    #[serde(default)]
    params: Vec<Kv>,
    #[serde(default)]
    tags: Vec<Kv>,
}

async fn log_batch(State(s): State<AppState>, JsonBody(r): JsonBody<LogBatch>) -> ApiResult<Json<Value>> {
    let id = pick_run_id(r.run_id, r.run_uuid)?;
    let metrics = r
        .metrics
        .into_iter()
        .enumerate()
        .map(|(i, m)| m.into_metric(&format!("metrics[{i}].")))
        .collect::<ApiResult<Vec<_>>>()?;
    s.store
        .log_batch(id, metrics, indexed_key_values(r.params, "params")?, indexed_key_values(r.tags, "tags")?)
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct LogModel {
    run_id: Option<String>,
    model_json: Option<String>,
}

/// The MLflow 2 way of recording a model: appended to the run's `mlflow.log-model.history` tag.
async fn log_model(State(s): State<AppState>, JsonBody(r): JsonBody<LogModel>) -> ApiResult<Json<Value>> {
    let id = required_str(r.run_id, "run_id")?;
    let model: Value = serde_json::from_str(&required_str(r.model_json, "model_json")?)
        .map_err(|e| ApiError::invalid(format!("model_json is not valid JSON: {e}")))?;
    let run = s.store.get_run(id.clone()).await?;
    let key = "mlflow.log-model.history";
    let mut history: Vec<Value> = run
        .data
        .tags
        .iter()
        .find(|t| t.key == key)
        .and_then(|t| serde_json::from_str(&t.value).ok())
        .unwrap_or_default();
    history.push(model);
    let tag = KeyValue { key: key.into(), value: Value::Array(history).to_string() };
    s.store.log_batch(id, vec![], vec![], vec![tag]).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct WireDataset {
    name: Option<String>,
    digest: Option<String>,
    source_type: Option<String>,
    source: Option<String>,
    schema: Option<String>,
    profile: Option<String>,
}

#[derive(Deserialize)]
struct WireDatasetInput {
    #[serde(default)]
    tags: Vec<Kv>,
    dataset: Option<WireDataset>,
}

#[derive(Deserialize)]
struct WireModelRef {
    model_id: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    step: Option<i64>,
}

#[derive(Deserialize)]
struct LogInputs {
    run_id: Option<String>,
    #[serde(default)]
    datasets: Vec<WireDatasetInput>,
    #[serde(default)]
    models: Vec<WireModelRef>,
}

async fn log_inputs(State(s): State<AppState>, JsonBody(r): JsonBody<LogInputs>) -> ApiResult<Json<Value>> {
    let id = required_str(r.run_id, "run_id")?;
    let mut datasets = Vec::with_capacity(r.datasets.len());
    for input in r.datasets {
        let d = required(input.dataset, "datasets.dataset")?;
        datasets.push(NewDatasetInput {
            dataset: Dataset {
                name: required_str(d.name, "dataset.name")?,
                digest: required_str(d.digest, "dataset.digest")?,
                source_type: required_str(d.source_type, "dataset.source_type")?,
                source: required_str(d.source, "dataset.source")?,
                schema: d.schema,
                profile: d.profile,
            },
            tags: key_values(input.tags, "tags")?,
        });
    }
    let models = r.models.into_iter().map(|m| required_str(m.model_id, "models.model_id")).collect::<ApiResult<_>>()?;
    s.store.log_inputs(id, datasets, models).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct LogOutputs {
    run_id: Option<String>,
    #[serde(default)]
    models: Vec<WireModelRef>,
}

async fn log_outputs(State(s): State<AppState>, JsonBody(r): JsonBody<LogOutputs>) -> ApiResult<Json<Value>> {
    let id = required_str(r.run_id, "run_id")?;
    let models = r
        .models
        .into_iter()
        .map(|m| Ok((required_str(m.model_id, "models.model_id")?, m.step.unwrap_or(0))))
        .collect::<ApiResult<_>>()?;
    s.store.log_outputs(id, models).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct SearchRuns {
    #[serde(default, deserialize_with = "one_or_many")]
    experiment_ids: Vec<String>,
    filter: Option<String>,
    run_view_type: Option<Value>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_results: Option<i64>,
    #[serde(default, deserialize_with = "one_or_many")]
    order_by: Vec<String>,
    page_token: Option<String>,
}

async fn search_runs(State(s): State<AppState>, JsonBody(r): JsonBody<SearchRuns>) -> ApiResult<Response> {
    let req = SearchRequest {
        filter: r.filter,
        order_by: r.order_by,
        view_type: view_type(r.run_view_type.as_ref())?,
        max_results: r.max_results,
        page_token: r.page_token,
        ..Default::default()
    };
    let page = s.store.search_runs(r.experiment_ids, req).await?;
    Ok(Paged::respond("runs", page))
}

#[derive(Deserialize)]
struct GetHistory {
    run_id: Option<String>,
    run_uuid: Option<String>,
    metric_key: Option<String>,
    page_token: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_results: Option<i64>,
}

async fn get_metric_history(State(s): State<AppState>, QueryArgs(r): QueryArgs<GetHistory>) -> ApiResult<Response> {
    let id = pick_run_id(r.run_id, r.run_uuid)?;
    let key = required_str(r.metric_key, "metric_key")?;
    let page = s.store.get_metric_history(id, key, r.max_results, r.page_token).await?;
    Ok(Paged::respond("metrics", page))
}

/// Most runs one bulk history request may name, and most points it returns; MLflow's limits.
const BULK_HISTORY_MAX_RUNS: usize = 100;
const BULK_HISTORY_MAX_POINTS: i64 = 25_000;

#[derive(Deserialize)]
struct GetHistoryBulk {
    #[serde(default, deserialize_with = "one_or_many")]
    run_id: Vec<String>,
    metric_key: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_results: Option<i64>,
}

/// The UI's history of one metric across several runs: points ordered by run id, then by
/// timestamp, step and value, each carrying its `run_id`. Runs that do not exist add nothing.
async fn get_metric_history_bulk(
    State(s): State<AppState>,
    QueryArgs(r): QueryArgs<GetHistoryBulk>,
) -> ApiResult<Json<Value>> {
    let mut run_ids: Vec<String> = r.run_id.into_iter().filter(|id| !id.is_empty()).collect();
    if run_ids.is_empty() {
        return Err(ApiError::invalid("GetMetricHistoryBulk request must specify at least one run_id."));
    }
    if run_ids.len() > BULK_HISTORY_MAX_RUNS {
        return Err(ApiError::invalid(format!(
            "GetMetricHistoryBulk request cannot specify more than {BULK_HISTORY_MAX_RUNS} run_ids. Received {} \
             run_ids.",
            run_ids.len()
        )));
    }
    let key = r
        .metric_key
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::invalid("GetMetricHistoryBulk request must specify a metric_key."))?;
    let limit = r.max_results.unwrap_or(BULK_HISTORY_MAX_POINTS).clamp(0, BULK_HISTORY_MAX_POINTS);
    run_ids.sort();
    run_ids.dedup();
    let limit = usize::try_from(limit).unwrap_or(0);
    let mut out = Vec::new();
    for run_id in run_ids {
        if out.len() >= limit {
            break;
        }
        let mut points = Vec::new();
        let mut token = None;
        loop {
            let page = match s.store.get_metric_history(run_id.clone(), key.clone(), None, token).await {
                Ok(page) => page,
                Err(slipway_store::StoreError::NotFound(_)) => break,
                Err(e) => return Err(e.into()),
            };
            points.extend(page.items);
            token = page.next_page_token;
            if token.is_none() {
                break;
            }
        }
        points.sort_by(|a, b| (a.timestamp, a.step).cmp(&(b.timestamp, b.step)).then(a.value.total_cmp(&b.value)));
        for m in points {
            let mut point =
                serde_json::to_value(&m).map_err(|_| ApiError::from(slipway_types::MlflowError::internal()))?;
            if let Value::Object(fields) = &mut point {
                fields.insert("run_id".into(), Value::String(run_id.clone()));
            }
            out.push(point);
        }
    }
    out.truncate(limit);
    Ok(Json(json!({ "metrics": out })))
}

// ---- logged models ----

#[derive(Deserialize)]
struct CreateLoggedModel {
    experiment_id: Option<String>,
    name: Option<String>,
    model_type: Option<String>,
    source_run_id: Option<String>,
    #[serde(default)]
    params: Vec<Kv>,
    #[serde(default)]
    tags: Vec<Kv>,
}

async fn create_logged_model(
    State(s): State<AppState>,
    JsonBody(r): JsonBody<CreateLoggedModel>,
) -> ApiResult<Json<Value>> {
    let model = s
        .store
        .create_logged_model(NewLoggedModel {
            experiment_id: required_str(r.experiment_id, "experiment_id")?,
            name: r.name,
            model_type: r.model_type,
            source_run_id: r.source_run_id.filter(|s| !s.is_empty()),
            params: key_values(r.params, "params")?,
            tags: key_values(r.tags, "tags")?,
        })
        .await?;
    Ok(Json(json!({ "model": model })))
}

#[derive(Deserialize)]
struct AllowDeleted {
    #[serde(default, deserialize_with = "de_opt_bool")]
    allow_deleted: Option<bool>,
}

async fn get_logged_model(
    State(s): State<AppState>,
    Path(model_id): Path<String>,
    QueryArgs(q): QueryArgs<AllowDeleted>,
) -> ApiResult<Json<Value>> {
    let model = s.store.get_logged_model(model_id, q.allow_deleted.unwrap_or(false)).await?;
    Ok(Json(json!({ "model": model })))
}

#[derive(Deserialize)]
struct FinalizeLoggedModel {
    status: Option<Value>,
}

async fn finalize_logged_model(
    State(s): State<AppState>,
    Path(model_id): Path<String>,
    JsonBody(r): JsonBody<FinalizeLoggedModel>,
) -> ApiResult<Json<Value>> {
    let status = match required(r.status, "status")? {
        Value::String(s) => s,
        Value::Number(n) => n.to_string(),
        other => return Err(ApiError::invalid(format!("invalid status {other}"))),
    };
    let model = s.store.finalize_logged_model(model_id, status).await?;
    Ok(Json(json!({ "model": model })))
}

async fn delete_logged_model(State(s): State<AppState>, Path(model_id): Path<String>) -> ApiResult<Json<Value>> {
    s.store.delete_logged_model(model_id).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct ModelTags {
    #[serde(default)]
    tags: Vec<Kv>,
}

async fn set_logged_model_tags(
    State(s): State<AppState>,
    Path(model_id): Path<String>,
    JsonBody(r): JsonBody<ModelTags>,
) -> ApiResult<Json<Value>> {
    s.store.set_logged_model_tags(model_id, key_values(r.tags, "tags")?).await?;
    Ok(Json(json!({})))
}

async fn delete_logged_model_tag(
    State(s): State<AppState>,
    Path((model_id, key)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    s.store.delete_logged_model_tag(model_id, key).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct ModelParams {
    #[serde(default)]
    params: Vec<Kv>,
}

async fn log_logged_model_params(
    State(s): State<AppState>,
    Path(model_id): Path<String>,
    JsonBody(r): JsonBody<ModelParams>,
) -> ApiResult<Json<Value>> {
    s.store.log_logged_model_params(model_id, key_values(r.params, "params")?).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct WireOrderBy {
    field_name: Option<String>,
    #[serde(default, deserialize_with = "de_opt_bool")]
    ascending: Option<bool>,
}

#[derive(Deserialize)]
struct SearchLoggedModels {
    #[serde(default, deserialize_with = "one_or_many")]
    experiment_ids: Vec<String>,
    filter: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_results: Option<i64>,
    #[serde(default)]
    order_by: Vec<WireOrderBy>,
    page_token: Option<String>,
}

async fn search_logged_models(
    State(s): State<AppState>,
    JsonBody(r): JsonBody<SearchLoggedModels>,
) -> ApiResult<Response> {
    let order_by = r
        .order_by
        .into_iter()
        .map(|o| Ok((required_str(o.field_name, "order_by.field_name")?, o.ascending.unwrap_or(true))))
        .collect::<ApiResult<_>>()?;
    let page = s
        .store
        .search_logged_models(LoggedModelSearch {
            experiment_ids: r.experiment_ids,
            filter: r.filter,
            order_by,
            max_results: r.max_results,
            page_token: r.page_token,
        })
        .await?;
    Ok(Paged::respond("models", page))
}
