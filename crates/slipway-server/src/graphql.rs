//! `POST /graphql`: the four operations the MLflow UI bundle sends, answered by name.
//!
//! The bundle (mlflow 3.17.2) sends `GetRun`, `MlflowGetExperimentQuery`, `SearchRuns` and
//! `GetMetricHistoryBulkInterval` through Apollo, each a fixed document. A small dispatcher on
//! `operationName` answers each with exactly the fields its document selects, in MLflow's
//! encoding (camelCase; 64-bit integers as decimal strings; enums by name; NaN as null; the
//! `__typename` Apollo adds to every selection set). A general GraphQL engine would be a large
//! dependency for four fixed queries. An operation it does not know, or a document that does
//! not select the field the operation is known by, is a GraphQL error with status 400;
//! MLflow answers a malformed body with a 500 page, which this does not copy.
//!
//! With auth on, each answer holds only what the caller may read ([`Reader`]): a run or
//! experiment of another team answers as a missing one, searches and metric histories skip
//! the experiments and runs that are not the caller's, and a run's model versions are those of
//! models the caller may read.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use slipway_store::{RegistrySearch, SearchRequest, StoreError};
use slipway_types::{Experiment, KeyValue, Metric, ModelVersion, Run, ViewType};

use crate::AppState;
use crate::auth::Reader;
use crate::history::{HistoryInterval, sampled_history};
use slipway_store::auth::ObjectKind;

pub fn routes() -> Router<AppState> {
    Router::new().route("/graphql", post(graphql))
}

/// A GraphQL error answer: `{"data": null, "errors": [{"message": …}]}`.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"data": null, "errors": [{"message": message.into()}]}))).into_response()
}

async fn graphql(State(s): State<AppState>, reader: Reader, body: axum::body::Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "the body must be a JSON object with `query` (and `operationName`, `variables`)",
        );
    };
    let Some(query) = request.get("query").and_then(Value::as_str) else {
        return error(StatusCode::BAD_REQUEST, "the request has no `query` string");
    };
    let name = match request.get("operationName") {
        Some(Value::String(n)) => n.clone(),
        None | Some(Value::Null) => match operation_name(query) {
            Some(n) => n,
            None => return error(StatusCode::BAD_REQUEST, "the query names no operation; send `operationName`"),
        },
        Some(_) => return error(StatusCode::BAD_REQUEST, "`operationName` must be a string"),
    };
    let vars = request.get("variables").cloned().unwrap_or(Value::Null);
    let Some(op) = Operation::named(&name) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("unknown operation '{name}': this server answers {}", Operation::ALL.map(|o| o.name()).join(", ")),
        );
    };
    if !query.contains(op.field()) {
        return error(StatusCode::BAD_REQUEST, format!("operation {name} must select {}", op.field()));
    }
    let input = vars.get(op.variable()).cloned().unwrap_or(Value::Null);
    let answer = match op {
        Operation::GetRun => get_run(&s, &reader, &input).await,
        Operation::GetExperiment => get_experiment(&s, &reader, &input).await,
        Operation::SearchRuns => search_runs(&s, &reader, &input).await,
        Operation::BulkInterval => bulk_interval(&s, &reader, &input).await,
    };
    match answer {
        Ok(value) => Json(json!({"data": {op.field(): value}})).into_response(),
        // As MLflow does: the field is null and the error says why, with status 200 (Apollo
        // retries any other status).
        Err(Failure::Store(e)) => {
            Json(json!({"data": {op.field(): null}, "errors": [{"message": e.to_string()}]})).into_response()
        }
        Err(Failure::Input(message)) => error(StatusCode::BAD_REQUEST, message),
    }
}

#[derive(Debug, Clone, Copy)]
enum Operation {
    GetRun,
    GetExperiment,
    SearchRuns,
    BulkInterval,
}

impl Operation {
    const ALL: [Operation; 4] =
        [Operation::GetRun, Operation::GetExperiment, Operation::SearchRuns, Operation::BulkInterval];

    fn named(name: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|o| o.name() == name)
    }

    fn name(self) -> &'static str {
        match self {
            Operation::GetRun => "GetRun",
            Operation::GetExperiment => "MlflowGetExperimentQuery",
            Operation::SearchRuns => "SearchRuns",
            Operation::BulkInterval => "GetMetricHistoryBulkInterval",
        }
    }

    /// The root field the operation's document selects.
    fn field(self) -> &'static str {
        match self {
            Operation::GetRun => "mlflowGetRun",
            Operation::GetExperiment => "mlflowGetExperiment",
            Operation::SearchRuns => "mlflowSearchRuns",
            Operation::BulkInterval => "mlflowGetMetricHistoryBulkInterval",
        }
    }

    /// The variable holding the operation's input.
    fn variable(self) -> &'static str {
        match self {
            Operation::GetExperiment => "input",
            _ => "data",
        }
    }
}

/// `query Name(` / `query Name {` → `Name`.
fn operation_name(query: &str) -> Option<String> {
    let rest = query.trim_start().strip_prefix("query")?.trim_start();
    let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    (!name.is_empty()).then_some(name)
}

enum Failure {
    /// The store refused (not found and the like): reported in `errors`, the field null.
    Store(StoreError),
    /// The variables are wrong: a 400.
    Input(String),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

type Answer = Result<Value, Failure>;

fn string_var(input: &Value, key: &str) -> Result<String, Failure> {
    match input.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(Failure::Input(format!("variable field `{key}` must be a non-empty string"))),
    }
}

async fn get_run(s: &AppState, reader: &Reader, input: &Value) -> Answer {
    let run_id = string_var(input, "runId")?;
    let run = s.store.get_run(run_id.clone()).await?;
    if !reader.may_read(ObjectKind::Experiment, &run.info.experiment_id) {
        return Err(Failure::Store(StoreError::NotFound(format!("Run with id={run_id} not found"))));
    }
    let versions = versions_of(s, reader, &run.info.run_id).await?;
    let experiment = s.store.get_experiment(run.info.experiment_id.clone()).await?;
    Ok(json!({
        "__typename": "MlflowGetRunResponse",
        "apiError": null,
        "run": run_json(&run, &experiment, &versions, false),
    }))
}

async fn get_experiment(s: &AppState, reader: &Reader, input: &Value) -> Answer {
    let id = string_var(input, "experimentId")?;
    if !reader.may_read(ObjectKind::Experiment, &id) {
        return Err(Failure::Store(StoreError::NotFound(format!("No Experiment with id={id} exists"))));
    }
    let e = s.store.get_experiment(id).await?;
    Ok(json!({
        "__typename": "MlflowGetExperimentResponse",
        "apiError": null,
        "experiment": {
            "__typename": "MlflowExperiment",
            "artifactLocation": e.artifact_location,
            "creationTime": e.creation_time.to_string(),
            "effectiveTraceArchivalRetention": "",
            "experimentId": e.experiment_id,
            "lastUpdateTime": e.last_update_time.to_string(),
            "lifecycleStage": e.lifecycle_stage,
            "name": e.name,
            "tags": tags(&e.tags, "MlflowExperimentTag"),
        },
    }))
}

async fn search_runs(s: &AppState, reader: &Reader, input: &Value) -> Answer {
    let mut experiment_ids: Vec<String> = match input.get("experimentIds") {
        Some(Value::Array(ids)) => ids.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        _ => return Err(Failure::Input("variable field `experimentIds` must be a list of experiment ids".into())),
    };
    // Another team's experiments answer as missing ones do: with no runs.
    experiment_ids.retain(|id| reader.may_read(ObjectKind::Experiment, id));
    if experiment_ids.is_empty() {
        return Ok(json!({"__typename": "MlflowSearchRunsResponse", "apiError": null, "runs": []}));
    }
    let filter = input.get("filter").and_then(Value::as_str).filter(|f| !f.is_empty()).map(str::to_string);
    // Each run brings its experiment and model versions along: a page stays small.
    let max_results = Some(input.get("maxResults").and_then(Value::as_i64).unwrap_or(100).clamp(1, 100));
    let page = s
        .store
        .search_runs(
            experiment_ids,
            SearchRequest {
                filter,
                order_by: Vec::new(),
                view_type: ViewType::ActiveOnly,
                max_results,
                page_token: None,
                ..Default::default()
            },
        )
        .await?;
    let mut runs = Vec::with_capacity(page.items.len());
    let mut experiments: std::collections::HashMap<String, Experiment> = std::collections::HashMap::new();
    for run in &page.items {
        let id = &run.info.experiment_id;
        if !experiments.contains_key(id) {
            experiments.insert(id.clone(), s.store.get_experiment(id.clone()).await?);
        }
        let experiment = &experiments[id];
        let versions = versions_of(s, reader, &run.info.run_id).await?;
        runs.push(run_json(run, experiment, &versions, true));
    }
    Ok(json!({"__typename": "MlflowSearchRunsResponse", "apiError": null, "runs": runs}))
}

async fn bulk_interval(s: &AppState, reader: &Reader, input: &Value) -> Answer {
    let mut run_ids: Vec<String> = match input.get("runIds") {
        Some(Value::Array(ids)) => ids.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        _ => return Err(Failure::Input("variable field `runIds` must be a list of run ids".into())),
    };
    if !reader.sees_all() {
        // Runs of experiments the caller may not read have no history to show, as missing ones.
        let mut readable = Vec::with_capacity(run_ids.len());
        for id in run_ids {
            let experiment = match s.store.get_run(id.clone()).await {
                Ok(run) => run.info.experiment_id,
                Err(StoreError::NotFound(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            if reader.may_read(ObjectKind::Experiment, &experiment) {
                readable.push(id);
            }
        }
        run_ids = readable;
    }
    let interval = HistoryInterval {
        run_ids,
        metric_key: string_var(input, "metricKey")?,
        start_step: input.get("startStep").and_then(Value::as_i64),
        end_step: input.get("endStep").and_then(Value::as_i64),
        max_results: input.get("maxResults").and_then(Value::as_i64),
    };
    let points = sampled_history(s, interval).await.map_err(|e| Failure::Input(e.error.message))?;
    let metrics: Vec<Value> = points
        .iter()
        .map(|(run_id, m)| {
            json!({
                "__typename": "MlflowMetricWithRunId",
                "timestamp": m.timestamp.to_string(),
                "step": m.step.to_string(),
                "runId": run_id,
                "key": m.key,
                "value": finite(m.value),
            })
        })
        .collect();
    Ok(json!({"__typename": "MlflowGetMetricHistoryBulkIntervalResponse", "metrics": metrics, "apiError": null}))
}

/// Every registered version made from the run, of the models the caller may read.
async fn versions_of(s: &AppState, reader: &Reader, run_id: &str) -> Result<Vec<ModelVersion>, Failure> {
    let req =
        RegistrySearch { filter: Some(format!("run_id = '{run_id}'")), max_results: Some(1000), ..Default::default() };
    let mut versions = s.store.search_model_versions(req).await?.items;
    versions.retain(|v| reader.may_read(ObjectKind::RegisteredModel, &v.name));
    Ok(versions)
}

fn finite(v: f64) -> Value {
    if v.is_nan() { Value::Null } else { json!(v) }
}

fn tags(kvs: &[KeyValue], typename: &str) -> Vec<Value> {
    kvs.iter().map(|t| json!({"__typename": typename, "key": t.key, "value": t.value})).collect()
}

fn metric(m: &Metric) -> Value {
    json!({
        "__typename": "MlflowMetricExtension",
        "key": m.key,
        "value": finite(m.value),
        "step": m.step.to_string(),
        "timestamp": m.timestamp.to_string(),
    })
}

/// The run sub-tree `GetRun` and `SearchRuns` select. `SearchRuns` also selects
/// `creationTimestamp` on its model versions.
fn run_json(run: &Run, e: &Experiment, versions: &[ModelVersion], with_created: bool) -> Value {
    let i = &run.info;
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            let mut o = json!({
                "__typename": "MlflowModelVersion",
                "status": v.status,
                "version": v.version,
                "name": v.name,
                "source": v.source,
            });
            if with_created {
                o["creationTimestamp"] = json!(v.creation_timestamp.to_string());
            }
            o
        })
        .collect();
    let datasets: Vec<Value> = run
        .inputs
        .dataset_inputs
        .iter()
        .map(|d| {
            json!({
                "__typename": "MlflowDatasetInput",
                "dataset": {
                    "__typename": "MlflowDataset",
                    "digest": d.dataset.digest,
                    "name": d.dataset.name,
                    "profile": d.dataset.profile.clone().unwrap_or_default(),
                    "schema": d.dataset.schema.clone().unwrap_or_default(),
                    "source": d.dataset.source,
                    "sourceType": d.dataset.source_type,
                },
                "tags": tags(&d.tags, "MlflowInputTag"),
            })
        })
        .collect();
    json!({
        "__typename": "MlflowRunExtension",
        "info": {
            "__typename": "MlflowRunInfo",
            "runName": i.run_name,
            "status": i.status,
            "runUuid": i.run_uuid,
            "experimentId": i.experiment_id,
            "artifactUri": i.artifact_uri,
            "endTime": i.end_time.unwrap_or(0).to_string(),
            "lifecycleStage": i.lifecycle_stage,
            "startTime": i.start_time.to_string(),
            "userId": i.user_id,
        },
        "experiment": {
            "__typename": "MlflowExperiment",
            "experimentId": e.experiment_id,
            "name": e.name,
            "tags": tags(&e.tags, "MlflowExperimentTag"),
            "artifactLocation": e.artifact_location,
            "lifecycleStage": e.lifecycle_stage,
            "lastUpdateTime": e.last_update_time.to_string(),
        },
        "modelVersions": versions,
        "data": {
            "__typename": "MlflowRunData",
            "metrics": run.data.metrics.iter().map(metric).collect::<Vec<_>>(),
            "params": run.data.params.iter().map(|p| json!({"__typename": "MlflowParam", "key": p.key, "value": p.value})).collect::<Vec<_>>(),
            "tags": tags(&run.data.tags, "MlflowRunTag"),
        },
        "inputs": {
            "__typename": "MlflowRunInputs",
            "datasetInputs": datasets,
            "modelInputs": run.inputs.model_inputs.iter().map(|m| json!({"__typename": "MlflowModelInput", "modelId": m.model_id})).collect::<Vec<_>>(),
        },
        "outputs": {
            "__typename": "MlflowRunOutputs",
            "modelOutputs": run.outputs.model_outputs.iter().map(|m| json!({"__typename": "MlflowModelOutput", "modelId": m.model_id, "step": m.step.to_string()})).collect::<Vec<_>>(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_are_read_from_the_document() {
        assert_eq!(operation_name("query GetRun($data: X!) { a }").as_deref(), Some("GetRun"));
        assert_eq!(
            operation_name("  query MlflowGetExperimentQuery{ a }").as_deref(),
            Some("MlflowGetExperimentQuery")
        );
        assert_eq!(operation_name("mutation X { a }"), None);
        assert_eq!(operation_name("{ a }"), None);
    }
}
