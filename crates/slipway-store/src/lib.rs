//! The metadata store: everything Slipway knows about experiments, runs, logged models, the
//! model registry and serving deployments.
//!
//! [`MetadataStore`] is the one interface the HTTP layer talks to. [`sql::SqlStore`] implements
//! it once in SQL over two backends: [`sqlite::SqliteStore`], the embedded default, and
//! [`postgres::PostgresStore`] for several servers on one database. Validation of names,
//! lengths and batch limits lives in [`validate`] so every backend enforces the same rules.

pub mod auth;
pub mod import;
pub mod postgres;
pub mod search;
pub mod sql;
pub mod sqlite;
pub mod validate;

use async_trait::async_trait;
use slipway_types::{
    AlertEvent, AlertStatus, AuditRecord, Dataset, Deployment, DeploymentSpec, Experiment, GroundTruth, KeyValue,
    Lineage, LoggedModel, Metric, ModelVersion, Monitor, MonitorSpec, MonitorWindow, RegisteredModel, Run, RunInfo,
    ViewType,
};

/// The store's errors; the HTTP layer maps each to an MLflow error code.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    InvalidParameter(String),
    #[error("{0}")]
    InvalidState(String),
    /// The request lost a race with concurrent writers too many times; retrying it may succeed.
    #[error("{0}")]
    Conflict(String),
    /// A backend failure; its text is for the log, not for clients.
    #[error("backend failure: {0}")]
    Backend(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

impl From<sql::conn::DbError> for StoreError {
    fn from(e: sql::conn::DbError) -> Self {
        StoreError::Backend(e.to_string())
    }
}

impl From<search::ParseError> for StoreError {
    fn from(e: search::ParseError) -> Self {
        StoreError::InvalidParameter(e.0)
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One page of a search; `next_page_token` is absent on the last page.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_token: Option<String>,
}

/// Which objects a search may return: all of them (auth off, administrators), or those the
/// caller's groups may read. Applied inside the query, so counts, pages and page tokens are
/// over visible rows only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Visibility {
    #[default]
    All,
    Groups {
        group_ids: Vec<i64>,
        /// The server's default permission gives READ: every object not denied is visible.
        default_read: bool,
    },
}

#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    /// Experiments' searches; runs and logged models are scoped by the experiment ids asked for.
    pub visible: Visibility,
    pub filter: Option<String>,
    pub order_by: Vec<String>,
    pub view_type: ViewType,
    pub max_results: Option<i64>,
    pub page_token: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct NewRun {
    pub experiment_id: String,
    pub user_id: Option<String>,
    pub run_name: Option<String>,
    pub start_time: Option<i64>,
    pub tags: Vec<KeyValue>,
}

#[derive(Debug, Clone, Default)]
pub struct RunUpdate {
    pub status: Option<String>,
    pub end_time: Option<i64>,
    pub run_name: Option<String>,
}

/// One row of `SearchDatasets`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DatasetSummary {
    pub experiment_id: String,
    pub name: String,
    pub digest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

/// A dataset input of a run, with its input tags (such as `mlflow.data.context`).
#[derive(Debug, Clone)]
pub struct NewDatasetInput {
    pub dataset: Dataset,
    pub tags: Vec<KeyValue>,
}

#[derive(Debug, Clone, Default)]
pub struct NewLoggedModel {
    pub experiment_id: String,
    pub name: Option<String>,
    pub model_type: Option<String>,
    pub source_run_id: Option<String>,
    pub params: Vec<KeyValue>,
    pub tags: Vec<KeyValue>,
}

/// Search over logged models; `order_by` holds (field, ascending) pairs.
#[derive(Debug, Clone, Default)]
pub struct LoggedModelSearch {
    pub experiment_ids: Vec<String>,
    pub filter: Option<String>,
    pub order_by: Vec<(String, bool)>,
    pub max_results: Option<i64>,
    pub page_token: Option<String>,
}

/// A model version to register; `storage_location` is the resolved place of its artifacts.
#[derive(Debug, Clone, Default)]
pub struct NewModelVersion {
    pub name: String,
    pub source: String,
    pub storage_location: String,
    pub run_id: Option<String>,
    pub model_id: Option<String>,
    pub run_link: Option<String>,
    pub description: Option<String>,
    pub user_id: Option<String>,
    pub tags: Vec<KeyValue>,
}

/// Search over registered models or model versions.
#[derive(Debug, Clone, Default)]
pub struct RegistrySearch {
    pub visible: Visibility,
    pub filter: Option<String>,
    pub order_by: Vec<String>,
    pub max_results: Option<i64>,
    pub page_token: Option<String>,
}

/// Filters over the audit log; all optional, combined with AND.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub name: Option<String>,
    pub version: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub max_results: Option<i64>,
    pub page_token: Option<String>,
    /// Whose records: `All`, or (for a reader's groups) those of the registered models,
    /// versions and deployments they may read and of `readable_monitors`; records of users,
    /// groups, grants and tokens only with `All`.
    pub visible: Visibility,
    /// The monitors the reader may read (each has its deployment's permissions); used only
    /// with `visible` of groups.
    pub readable_monitors: Vec<String>,
}

/// What a garbage collection would remove: soft-deleted objects whose deletion is older than
/// the cut-off, with their artifact locations, and the locations live model versions still
/// read from (never to be removed).
#[derive(Debug, Clone, Default)]
pub struct GcPlan {
    /// (experiment id, artifact location)
    pub experiments: Vec<(String, String)>,
    /// (run id, artifact uri) of runs deleted on their own
    pub runs: Vec<(String, String)>,
    /// (model id, artifact location) of logged models deleted on their own
    pub logged_models: Vec<(String, String)>,
    /// (registered model name, version)
    pub model_versions: Vec<(String, i64)>,
    /// storage locations of live model versions
    pub protected: Vec<String>,
    /// artifact locations of runs and logged models inside purged experiments
    pub experiment_children: Vec<String>,
    /// Pipeline outs manifests (`slipway.outs` tags) of every run this pass keeps: the blobs
    /// they name stay in the pipeline cache.
    pub pipeline_manifests: Vec<String>,
}

/// Everything the tracking API persists. Methods validate their input and either apply all of
/// a request or none of it; an `Ok` means the change is durable.
#[async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    // experiments
    async fn create_experiment(
        &self,
        name: String,
        artifact_location: Option<String>,
        tags: Vec<KeyValue>,
    ) -> Result<String>;
    async fn get_experiment(&self, experiment_id: String) -> Result<Experiment>;
    async fn get_experiment_by_name(&self, name: String) -> Result<Experiment>;
    async fn search_experiments(&self, req: SearchRequest) -> Result<Page<Experiment>>;
    async fn rename_experiment(&self, experiment_id: String, new_name: String) -> Result<()>;
    async fn delete_experiment(&self, experiment_id: String) -> Result<()>;
    async fn restore_experiment(&self, experiment_id: String) -> Result<()>;
    async fn set_experiment_tag(&self, experiment_id: String, tag: KeyValue) -> Result<()>;
    async fn delete_experiment_tag(&self, experiment_id: String, key: String) -> Result<()>;

    // runs
    async fn create_run(&self, run: NewRun) -> Result<Run>;
    async fn get_run(&self, run_id: String) -> Result<Run>;
    async fn update_run(&self, run_id: String, update: RunUpdate) -> Result<RunInfo>;
    async fn delete_run(&self, run_id: String) -> Result<()>;
    async fn restore_run(&self, run_id: String) -> Result<()>;
    /// Metrics, params and tags of one request, applied atomically.
    async fn log_batch(
        &self,
        run_id: String,
        metrics: Vec<Metric>,
        params: Vec<KeyValue>,
        tags: Vec<KeyValue>,
    ) -> Result<()>;
    async fn delete_tag(&self, run_id: String, key: String) -> Result<()>;
    async fn log_inputs(&self, run_id: String, datasets: Vec<NewDatasetInput>, model_ids: Vec<String>) -> Result<()>;
    async fn log_outputs(&self, run_id: String, models: Vec<(String, i64)>) -> Result<()>;
    async fn search_runs(&self, experiment_ids: Vec<String>, req: SearchRequest) -> Result<Page<Run>>;
    async fn get_metric_history(
        &self,
        run_id: String,
        key: String,
        max_results: Option<i64>,
        page_token: Option<String>,
    ) -> Result<Page<Metric>>;

    // logged models (MLflow 3)
    async fn create_logged_model(&self, model: NewLoggedModel) -> Result<LoggedModel>;
    async fn get_logged_model(&self, model_id: String, allow_deleted: bool) -> Result<LoggedModel>;
    async fn finalize_logged_model(&self, model_id: String, status: String) -> Result<LoggedModel>;
    async fn delete_logged_model(&self, model_id: String) -> Result<()>;
    async fn set_logged_model_tags(&self, model_id: String, tags: Vec<KeyValue>) -> Result<()>;
    async fn delete_logged_model_tag(&self, model_id: String, key: String) -> Result<()>;
    async fn log_logged_model_params(&self, model_id: String, params: Vec<KeyValue>) -> Result<()>;
    async fn search_logged_models(&self, req: LoggedModelSearch) -> Result<Page<LoggedModel>>;

    // model registry; every mutation names its actor for the audit log
    async fn create_registered_model(
        &self,
        name: String,
        description: Option<String>,
        tags: Vec<KeyValue>,
        actor: String,
    ) -> Result<RegisteredModel>;
    async fn get_registered_model(&self, name: String) -> Result<RegisteredModel>;
    async fn rename_registered_model(&self, name: String, new_name: String, actor: String) -> Result<RegisteredModel>;
    async fn update_registered_model(
        &self,
        name: String,
        description: Option<String>,
        actor: String,
    ) -> Result<RegisteredModel>;
    async fn delete_registered_model(&self, name: String, actor: String) -> Result<()>;
    async fn set_registered_model_tag(&self, name: String, tag: KeyValue, actor: String) -> Result<()>;
    async fn delete_registered_model_tag(&self, name: String, key: String, actor: String) -> Result<()>;
    async fn search_registered_models(&self, req: RegistrySearch) -> Result<Page<RegisteredModel>>;
    async fn get_latest_versions(&self, name: String, stages: Vec<String>) -> Result<Vec<ModelVersion>>;
    async fn create_model_version(&self, version: NewModelVersion, actor: String) -> Result<ModelVersion>;
    async fn get_model_version(&self, name: String, version: String) -> Result<ModelVersion>;
    async fn update_model_version(
        &self,
        name: String,
        version: String,
        description: Option<String>,
        actor: String,
    ) -> Result<ModelVersion>;
    async fn delete_model_version(&self, name: String, version: String, actor: String) -> Result<()>;
    async fn transition_model_version_stage(
        &self,
        name: String,
        version: String,
        stage: String,
        archive_existing: bool,
        actor: String,
    ) -> Result<ModelVersion>;
    async fn set_model_version_tag(&self, name: String, version: String, tag: KeyValue, actor: String) -> Result<()>;
    async fn delete_model_version_tag(&self, name: String, version: String, key: String, actor: String) -> Result<()>;
    async fn search_model_versions(&self, req: RegistrySearch) -> Result<Page<ModelVersion>>;
    async fn set_alias(&self, name: String, alias: String, version: String, actor: String) -> Result<()>;
    async fn delete_alias(&self, name: String, alias: String, actor: String) -> Result<()>;
    async fn get_model_version_by_alias(&self, name: String, alias: String) -> Result<ModelVersion>;

    // lineage and audit (native API)
    async fn lineage(&self, name: String, version: String) -> Result<Lineage>;
    async fn model_versions_by_dataset(&self, digest: String) -> Result<Vec<ModelVersion>>;
    /// A data version (number, `latest` or alias) and the live model versions trained on it:
    /// their runs logged a dataset input whose digest names it.
    async fn model_versions_by_data(
        &self,
        name: String,
        which: String,
    ) -> Result<(slipway_types::DataVersion, Vec<ModelVersion>)>;
    /// The distinct datasets logged as inputs to runs of these experiments, with their
    /// `mlflow.data.context` input tag (MLflow's `SearchDatasets`, at most 1,000).
    async fn search_datasets(&self, experiment_ids: Vec<String>) -> Result<Vec<DatasetSummary>>;
    async fn audit_log(&self, query: AuditQuery) -> Result<Page<AuditRecord>>;

    // dataset versions (docs/design/data.md): immutable, numbered without gaps per set; every
    // mutation names its actor for the audit log (object_type `data_version`)
    /// Makes the set when it is new. The caller has checked that the manifest and its blobs
    /// are stored.
    async fn create_data_version(
        &self,
        new: slipway_types::NewDataVersion,
        actor: String,
    ) -> Result<slipway_types::DataVersion>;
    /// `which`: a version number, `latest`, or an alias.
    async fn get_data_version(&self, name: String, which: String) -> Result<slipway_types::DataVersion>;
    /// A set's versions, newest first.
    async fn list_data_versions(&self, name: String) -> Result<Vec<slipway_types::DataVersion>>;
    async fn list_data_sets(&self) -> Result<Vec<slipway_types::DataSet>>;
    /// Points `alias` at `version`, moving it from where it was.
    async fn set_data_alias(
        &self,
        name: String,
        alias: String,
        version: i64,
        actor: String,
    ) -> Result<slipway_types::DataVersion>;
    async fn delete_data_alias(&self, name: String, alias: String, actor: String) -> Result<()>;
    async fn set_data_tag(
        &self,
        name: String,
        version: i64,
        key: String,
        value: String,
        actor: String,
    ) -> Result<slipway_types::DataVersion>;
    /// The versions whose manifest has this SHA-256, oldest first.
    async fn data_versions_by_manifest(&self, manifest: String) -> Result<Vec<slipway_types::DataVersion>>;

    // labeling queues (docs/design/data.md): items leased to one labeller at a time
    async fn create_label_queue(
        &self,
        queue: slipway_types::LabelQueue,
        actor: String,
    ) -> Result<slipway_types::LabelQueue>;
    async fn get_label_queue(&self, name: String) -> Result<slipway_types::LabelQueue>;
    async fn list_label_queues(&self) -> Result<Vec<slipway_types::LabelQueue>>;
    /// Adds the items the queue lacks (by request id and row); how many were new.
    async fn offer_label_items(&self, queue: String, items: Vec<slipway_types::NewLabelItem>) -> Result<u64>;
    /// Records how far feeding the queue from its deployment's prediction log got.
    async fn set_label_queue_fed(&self, queue: String, fed_ms: i64) -> Result<()>;
    /// Leases the oldest open item (queued, or its lease ran out) to `labeller` under `token`.
    async fn lease_label_item(
        &self,
        queue: String,
        labeller: String,
        token: String,
    ) -> Result<Option<slipway_types::LabelItem>>;
    /// Takes the label from the holder of the item's current lease, once, and writes it as the
    /// deployment's ground truth for the item's request.
    async fn label_item(
        &self,
        queue: String,
        item_id: i64,
        token: String,
        label: serde_json::Value,
        labeller: String,
    ) -> Result<slipway_types::LabelItem>;
    async fn labelled_items(&self, queue: String) -> Result<Vec<slipway_types::LabelItem>>;

    // serving deployments; specs are checked by `validate::deployment`, and every mutation
    // names its actor for the audit log (object_type `deployment`)
    /// `AlreadyExists` if the name is taken.
    async fn create_deployment(&self, spec: DeploymentSpec, actor: String) -> Result<Deployment>;
    /// `NotFound` if there is no deployment of that name.
    async fn get_deployment(&self, name: String) -> Result<Deployment>;
    /// Every deployment, ordered by name.
    async fn list_deployments(&self) -> Result<Vec<Deployment>>;
    /// Replaces the whole spec of the deployment `spec.name` (`NotFound` if there is none). Keeps
    /// `creation_timestamp`; `last_updated_timestamp` always moves forward, even within a millisecond.
    async fn update_deployment(&self, spec: DeploymentSpec, actor: String) -> Result<Deployment>;
    /// `NotFound` if there is no deployment of that name.
    async fn delete_deployment(&self, name: String, actor: String) -> Result<()>;

    // monitors on deployments; specs are checked by `validate::monitor`, and mutations are
    // audited (object_type `monitor`)
    /// `AlreadyExists` if the name is taken.
    async fn create_monitor(&self, spec: MonitorSpec, actor: String) -> Result<Monitor>;
    /// `NotFound` if there is no monitor of that name.
    async fn get_monitor(&self, name: String) -> Result<Monitor>;
    /// Every monitor, ordered by name.
    async fn list_monitors(&self) -> Result<Vec<Monitor>>;
    /// Replaces the whole spec (`NotFound` if there is none); evaluated windows stay.
    async fn update_monitor(&self, spec: MonitorSpec, actor: String) -> Result<Monitor>;
    /// Removes the monitor with its windows and alert events.
    async fn delete_monitor(&self, name: String, actor: String) -> Result<()>;
    /// Inserts or replaces the window starting at `window.start_ms`.
    async fn put_monitor_window(&self, window: MonitorWindow) -> Result<()>;
    /// The windows starting in `[from_ms, to_ms)`, oldest first.
    async fn list_monitor_windows(&self, monitor: String, from_ms: i64, to_ms: i64) -> Result<Vec<MonitorWindow>>;

    // ground truth: labels for past requests of a deployment
    /// Stores every label set, replacing earlier ones for the same request; all or nothing.
    async fn put_ground_truth(&self, deployment: String, labels: Vec<GroundTruth>) -> Result<u64>;
    /// The labels known for these requests; requests without labels are left out.
    async fn get_ground_truth(&self, deployment: String, request_ids: Vec<String>) -> Result<Vec<GroundTruth>>;
    /// When labels for the deployment last arrived.
    async fn ground_truth_updated(&self, deployment: String) -> Result<Option<i64>>;

    // alert firings, unique per (monitor, rule, window)
    /// The stored event, or `None` when this rule already fired for this window.
    async fn record_alert(&self, event: AlertEvent) -> Result<Option<AlertEvent>>;
    async fn update_alert(
        &self,
        id: i64,
        status: AlertStatus,
        attempts: u32,
        last_error: Option<String>,
        delivered_at: Option<i64>,
    ) -> Result<()>;
    /// A monitor's alert events, oldest first.
    async fn list_alerts(&self, monitor: String) -> Result<Vec<AlertEvent>>;
    /// Events of every monitor whose delivery has not finished.
    async fn pending_alerts(&self) -> Result<Vec<AlertEvent>>;

    // leases: one holder at a time for work that must not run on every replica
    /// Takes or renews the lease `name` for `holder` until `now + ttl_ms`; `false` while
    /// another holder's lease has not expired.
    async fn take_lease(&self, name: String, holder: String, ttl_ms: i64) -> Result<bool>;
    /// Gives the lease up, if `holder` has it, so another may take it at once.
    async fn release_lease(&self, name: String, holder: String) -> Result<()>;

    // garbage collection: each purge removes one whole soft-deleted object, or nothing
    async fn gc_plan(&self, deleted_before_ms: i64) -> Result<GcPlan>;
    async fn purge_experiment(&self, experiment_id: String) -> Result<bool>;
    async fn purge_run(&self, run_id: String) -> Result<bool>;
    async fn purge_logged_model(&self, model_id: String) -> Result<bool>;
    async fn purge_model_version(&self, name: String, version: i64) -> Result<bool>;

    /// Pokes `changed` whenever another process commits a change to the registry, deployments
    /// or monitors of this store, and once after each (re)connect of the watch, when changes
    /// may have been missed: what a replica caches then follows at once. On SQLite, where one
    /// process writes, it does nothing.
    fn watch_changes(&self, changed: std::sync::Arc<tokio::sync::Notify>);

    /// Flushes and closes the backend; later calls fail.
    async fn close(&self);
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Opaque offset page tokens: clients must treat them as opaque, we only need an offset.
pub mod page_token {
    use crate::{Result, StoreError};

    pub fn encode(offset: usize) -> String {
        format!("off:{offset}")
    }

    pub fn decode(token: Option<&str>) -> Result<usize> {
        match token {
            None | Some("") => Ok(0),
            Some(t) => t
                .strip_prefix("off:")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| StoreError::InvalidParameter(format!("invalid page token '{t}'"))),
        }
    }
}
