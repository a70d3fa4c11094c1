//! The embedded SQLite backend.
//!
//! One writer thread owns the only read-write connection and group-commits: it drains every
//! write request waiting in its queue, applies each inside its own SAVEPOINT (so a failing
//! request rolls back alone and a request is all-or-nothing), commits once, and only then
//! answers the callers. Nobody else writes, so SQLite's lock is never contended and
//! "database is locked" cannot happen. Readers use a small pool of read-only connections in
//! WAL mode, each read inside one transaction so it sees a consistent snapshot.
//! `synchronous=FULL`: a commit is on disk before its request is acknowledged.

mod audit;
mod deployments;
mod experiments;
mod gc;
mod lineage;
mod models;
mod monitoring;
mod query;
mod registry;
mod runs;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};
use slipway_types::{
    AlertEvent, AuditRecord, Deployment, DeploymentSpec, Experiment, GroundTruth, KeyValue, Lineage, LoggedModel,
    Metric, ModelVersion, Monitor, MonitorSpec, MonitorWindow, RegisteredModel, Run, RunInfo,
};
use tokio::sync::{Semaphore, oneshot};

use crate::{
    AuditQuery, GcPlan, LoggedModelSearch, MetadataStore, NewDatasetInput, NewLoggedModel, NewModelVersion, NewRun,
    Page, RegistrySearch, Result, RunUpdate, SearchRequest, StoreError, validate,
};

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_tracking.sql")),
    (2, include_str!("migrations/0002_registry.sql")),
    (3, include_str!("migrations/0003_deployments.sql")),
    (4, include_str!("migrations/0004_monitoring.sql")),
];
/// The most write requests committed together in one transaction.
const MAX_GROUP: usize = 512;

/// A write request queued for the writer thread.
trait WriteJob: Send {
    /// Applies the change; `false` means it failed and its savepoint must be rolled back.
    fn apply(&mut self, conn: &Connection) -> bool;
    /// Answers the caller once the transaction's fate is known.
    fn finish(self: Box<Self>, commit: Result<(), String>);
}

struct TypedJob<T, F> {
    work: Option<F>,
    result: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T: Send, F: FnOnce(&Connection) -> Result<T> + Send> WriteJob for TypedJob<T, F> {
    fn apply(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else { return false };
        let result = catch_unwind(AssertUnwindSafe(|| work(conn)))
            .unwrap_or_else(|_| Err(StoreError::Backend("write request panicked".into())));
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }
    fn finish(self: Box<Self>, commit: Result<(), String>) {
        let answer = match (commit, self.result) {
            (_, Some(Err(e))) => Err(e),
            (Ok(()), Some(Ok(v))) => Ok(v),
            (Err(e), _) => Err(StoreError::Backend(format!("commit failed: {e}"))),
            (Ok(()), None) => Err(StoreError::Backend("write request was not applied".into())),
        };
        let _ = self.reply.send(answer);
    }
}

/// The SQLite metadata store.
pub struct SqliteStore {
    writer: Mutex<Option<mpsc::Sender<Box<dyn WriteJob>>>>,
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    readers: Arc<Mutex<Vec<Connection>>>,
    read_permits: Arc<Semaphore>,
    artifact_root: Arc<str>,
}

/// Page cache per connection, in KiB: the writer keeps hot index pages, readers stay small so
/// the whole server fits in a few tens of megabytes.
const WRITER_CACHE_KIB: i64 = 8 * 1024;
const READER_CACHE_KIB: i64 = 2 * 1024;

fn configure(conn: &Connection, cache_kib: i64) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA case_sensitive_like = ON;")?;
    conn.pragma_update(None, "cache_size", -cache_kib)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    /// `artifact_root` prefixes new experiments' artifact locations, e.g. `mlflow-artifacts:`.
    pub fn open(path: &Path, artifact_root: &str, readers: usize) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Backend(format!("create {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        configure(&conn, WRITER_CACHE_KIB)?;
        migrate(&conn)?;
        experiments::ensure_default(&conn, artifact_root)?;

        let readers = readers.max(1);
        let mut pool = Vec::with_capacity(readers);
        for _ in 0..readers {
            let r =
                Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
            configure(&r, READER_CACHE_KIB)?;
            r.pragma_update(None, "query_only", "ON")?;
            pool.push(r);
        }

        let (tx, rx) = mpsc::channel::<Box<dyn WriteJob>>();
        let handle = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(|e| StoreError::Backend(format!("spawn writer: {e}")))?;
        Ok(Self {
            writer: Mutex::new(Some(tx)),
            writer_thread: Mutex::new(Some(handle)),
            readers: Arc::new(Mutex::new(pool)),
            read_permits: Arc::new(Semaphore::new(readers)),
            artifact_root: artifact_root.trim_end_matches('/').into(),
        })
    }

    async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job = Box::new(TypedJob { work: Some(work), result: None, reply });
        {
            let guard = self.writer.lock().map_err(|_| StoreError::Backend("writer lock poisoned".into()))?;
            let sender = guard.as_ref().ok_or_else(|| StoreError::Backend("store is closed".into()))?;
            sender.send(job).map_err(|_| StoreError::Backend("writer thread is gone".into()))?;
        }
        rx.await.map_err(|_| StoreError::Backend("writer dropped the request".into()))?
    }

    async fn read<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let permit = self
            .read_permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Backend("store is closed".into()))?;
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = pool
                .lock()
                .ok()
                .and_then(|mut p| p.pop())
                .ok_or_else(|| StoreError::Backend("no reader available".into()))?;
            let result = (|| {
                conn.execute_batch("BEGIN")?;
                let r = work(&conn);
                conn.execute_batch("COMMIT")?;
                r
            })();
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            if let Ok(mut p) = pool.lock() {
                p.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Backend(format!("reader task failed: {e}")))?
    }
}

fn migrate(conn: &Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )?;
    for (version, sql) in MIGRATIONS {
        let done: bool =
            conn.query_row("SELECT EXISTS(SELECT 1 FROM schema_migrations WHERE version = ?1)", [version], |r| {
                r.get(0)
            })?;
        if done {
            continue;
        }
        tracing::info!(version, "applying sqlite migration");
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let applied = conn
            .execute_batch(sql)
            .and_then(|_| conn.execute("INSERT INTO schema_migrations VALUES (?1, ?2)", (version, crate::now_ms())));
        match applied {
            Ok(_) => conn.execute_batch("COMMIT")?,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e.into());
            }
        }
    }
    Ok(())
}

fn writer_loop(conn: Connection, rx: mpsc::Receiver<Box<dyn WriteJob>>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let commit = run_group(&conn, &mut jobs);
        if let Err(e) = &commit {
            tracing::error!(error = %e, jobs = jobs.len(), "group commit failed");
        }
        for job in jobs {
            job.finish(commit.clone());
        }
    }
    // The channel closed: every queued request has been answered. Checkpoint so the WAL is
    // folded into the main file on a clean shutdown.
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
        tracing::warn!(error = %e, "final wal checkpoint failed");
    }
}

fn run_group(conn: &Connection, jobs: &mut [Box<dyn WriteJob>]) -> Result<(), String> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(|e| e.to_string())?;
    for job in jobs.iter_mut() {
        let step = conn.execute_batch("SAVEPOINT job").and_then(|_| {
            if job.apply(conn) {
                conn.execute_batch("RELEASE job")
            } else {
                conn.execute_batch("ROLLBACK TO job; RELEASE job")
            }
        });
        if let Err(e) = step {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e.to_string());
        }
    }
    conn.execute_batch("COMMIT").map_err(|e| {
        let _ = conn.execute_batch("ROLLBACK");
        e.to_string()
    })
}

#[async_trait]
impl MetadataStore for SqliteStore {
    async fn create_experiment(
        &self,
        name: String,
        artifact_location: Option<String>,
        tags: Vec<KeyValue>,
    ) -> Result<String> {
        crate::validate::experiment_name(&name)?;
        for t in &tags {
            crate::validate::key("tag", &t.key)?;
            crate::validate::value_len("tag", &t.key, &t.value, crate::validate::MAX_EXPERIMENT_TAG_VAL_LENGTH)?;
        }
        let root = self.artifact_root.clone();
        self.write(move |c| experiments::create(c, &root, &name, artifact_location.as_deref(), &tags)).await
    }
    async fn get_experiment(&self, id: String) -> Result<Experiment> {
        self.read(move |c| experiments::get(c, &id)).await
    }
    async fn get_experiment_by_name(&self, name: String) -> Result<Experiment> {
        self.read(move |c| experiments::get_by_name(c, &name)).await
    }
    async fn search_experiments(&self, req: SearchRequest) -> Result<Page<Experiment>> {
        self.read(move |c| experiments::search(c, &req)).await
    }
    async fn rename_experiment(&self, id: String, new_name: String) -> Result<()> {
        crate::validate::experiment_name(&new_name)?;
        self.write(move |c| experiments::rename(c, &id, &new_name)).await
    }
    async fn delete_experiment(&self, id: String) -> Result<()> {
        self.write(move |c| experiments::set_lifecycle(c, &id, true)).await
    }
    async fn restore_experiment(&self, id: String) -> Result<()> {
        self.write(move |c| experiments::set_lifecycle(c, &id, false)).await
    }
    async fn set_experiment_tag(&self, id: String, tag: KeyValue) -> Result<()> {
        crate::validate::key("tag", &tag.key)?;
        crate::validate::value_len("tag", &tag.key, &tag.value, crate::validate::MAX_EXPERIMENT_TAG_VAL_LENGTH)?;
        self.write(move |c| experiments::set_tag(c, &id, &tag)).await
    }
    async fn delete_experiment_tag(&self, id: String, key: String) -> Result<()> {
        self.write(move |c| experiments::delete_tag(c, &id, &key)).await
    }

    async fn create_run(&self, run: NewRun) -> Result<Run> {
        for t in &run.tags {
            crate::validate::tag(t)?;
        }
        let run_id = self.write(move |c| runs::create(c, &run)).await?;
        self.get_run(run_id).await
    }
    async fn get_run(&self, run_id: String) -> Result<Run> {
        crate::validate::run_id(&run_id)?;
        self.read(move |c| runs::get(c, &run_id)).await
    }
    async fn update_run(&self, run_id: String, update: RunUpdate) -> Result<RunInfo> {
        crate::validate::run_id(&run_id)?;
        let id = run_id.clone();
        self.write(move |c| runs::update(c, &id, &update)).await?;
        Ok(self.get_run(run_id).await?.info)
    }
    async fn delete_run(&self, run_id: String) -> Result<()> {
        crate::validate::run_id(&run_id)?;
        self.write(move |c| runs::set_lifecycle(c, &run_id, true)).await
    }
    async fn restore_run(&self, run_id: String) -> Result<()> {
        crate::validate::run_id(&run_id)?;
        self.write(move |c| runs::set_lifecycle(c, &run_id, false)).await
    }
    async fn log_batch(
        &self,
        run_id: String,
        metrics: Vec<Metric>,
        params: Vec<KeyValue>,
        tags: Vec<KeyValue>,
    ) -> Result<()> {
        crate::validate::run_id(&run_id)?;
        crate::validate::batch_limits(metrics.len(), params.len(), tags.len())?;
        metrics.iter().try_for_each(crate::validate::metric)?;
        params.iter().try_for_each(crate::validate::param)?;
        tags.iter().try_for_each(crate::validate::tag)?;
        self.write(move |c| runs::log_batch(c, &run_id, &metrics, &params, &tags)).await
    }
    async fn delete_tag(&self, run_id: String, key: String) -> Result<()> {
        crate::validate::run_id(&run_id)?;
        self.write(move |c| runs::delete_tag(c, &run_id, &key)).await
    }
    async fn log_inputs(&self, run_id: String, datasets: Vec<NewDatasetInput>, model_ids: Vec<String>) -> Result<()> {
        crate::validate::run_id(&run_id)?;
        datasets.iter().try_for_each(runs::validate_dataset)?;
        self.write(move |c| runs::log_inputs(c, &run_id, &datasets, &model_ids)).await
    }
    async fn log_outputs(&self, run_id: String, models: Vec<(String, i64)>) -> Result<()> {
        crate::validate::run_id(&run_id)?;
        self.write(move |c| runs::log_outputs(c, &run_id, &models)).await
    }
    async fn search_runs(&self, experiment_ids: Vec<String>, req: SearchRequest) -> Result<Page<Run>> {
        experiment_ids.iter().try_for_each(|e| crate::validate::experiment_id(e))?;
        self.read(move |c| runs::search(c, &experiment_ids, &req)).await
    }
    async fn get_metric_history(
        &self,
        run_id: String,
        key: String,
        max_results: Option<i64>,
        page_token: Option<String>,
    ) -> Result<Page<Metric>> {
        crate::validate::run_id(&run_id)?;
        self.read(move |c| runs::metric_history(c, &run_id, &key, max_results, page_token.as_deref())).await
    }

    async fn create_logged_model(&self, model: NewLoggedModel) -> Result<LoggedModel> {
        model.params.iter().try_for_each(crate::validate::param)?;
        model.tags.iter().try_for_each(crate::validate::tag)?;
        let id = self.write(move |c| models::create(c, &model)).await?;
        self.get_logged_model(id, false).await
    }
    async fn get_logged_model(&self, model_id: String, allow_deleted: bool) -> Result<LoggedModel> {
        self.read(move |c| models::get(c, &model_id, allow_deleted)).await
    }
    async fn finalize_logged_model(&self, model_id: String, status: String) -> Result<LoggedModel> {
        let id = model_id.clone();
        self.write(move |c| models::finalize(c, &id, &status)).await?;
        self.get_logged_model(model_id, false).await
    }
    async fn delete_logged_model(&self, model_id: String) -> Result<()> {
        self.write(move |c| models::delete(c, &model_id)).await
    }
    async fn set_logged_model_tags(&self, model_id: String, tags: Vec<KeyValue>) -> Result<()> {
        tags.iter().try_for_each(crate::validate::tag)?;
        self.write(move |c| models::set_tags(c, &model_id, &tags)).await
    }
    async fn delete_logged_model_tag(&self, model_id: String, key: String) -> Result<()> {
        self.write(move |c| models::delete_tag(c, &model_id, &key)).await
    }
    async fn log_logged_model_params(&self, model_id: String, params: Vec<KeyValue>) -> Result<()> {
        params.iter().try_for_each(crate::validate::param)?;
        self.write(move |c| models::log_params(c, &model_id, &params)).await
    }
    async fn search_logged_models(&self, req: LoggedModelSearch) -> Result<Page<LoggedModel>> {
        req.experiment_ids.iter().try_for_each(|e| crate::validate::experiment_id(e))?;
        self.read(move |c| models::search(c, &req)).await
    }

    async fn create_registered_model(
        &self,
        name: String,
        description: Option<String>,
        tags: Vec<KeyValue>,
        actor: String,
    ) -> Result<RegisteredModel> {
        registry::validate_name(&name)?;
        tags.iter().try_for_each(validate::registry_tag)?;
        self.write(move |c| registry::create_model(c, &name, description.as_deref(), &tags, &actor)).await
    }
    async fn get_registered_model(&self, name: String) -> Result<RegisteredModel> {
        self.read(move |c| registry::get_model(c, &name)).await
    }
    async fn rename_registered_model(&self, name: String, new_name: String, actor: String) -> Result<RegisteredModel> {
        self.write(move |c| registry::rename_model(c, &name, &new_name, &actor)).await
    }
    async fn update_registered_model(
        &self,
        name: String,
        description: Option<String>,
        actor: String,
    ) -> Result<RegisteredModel> {
        self.write(move |c| registry::update_model(c, &name, description.as_deref(), &actor)).await
    }
    async fn delete_registered_model(&self, name: String, actor: String) -> Result<()> {
        self.write(move |c| registry::delete_model(c, &name, &actor)).await
    }
    async fn set_registered_model_tag(&self, name: String, tag: KeyValue, actor: String) -> Result<()> {
        validate::registry_tag(&tag)?;
        self.write(move |c| registry::set_model_tag(c, &name, &tag, &actor)).await
    }
    async fn delete_registered_model_tag(&self, name: String, key: String, actor: String) -> Result<()> {
        self.write(move |c| registry::delete_model_tag(c, &name, &key, &actor)).await
    }
    async fn search_registered_models(&self, req: RegistrySearch) -> Result<Page<RegisteredModel>> {
        self.read(move |c| registry::search_models(c, &req)).await
    }
    async fn get_latest_versions(&self, name: String, stages: Vec<String>) -> Result<Vec<ModelVersion>> {
        self.read(move |c| registry::get_latest(c, &name, &stages)).await
    }
    async fn create_model_version(&self, version: NewModelVersion, actor: String) -> Result<ModelVersion> {
        version.tags.iter().try_for_each(validate::registry_tag)?;
        self.write(move |c| registry::create_version(c, &version, &actor)).await
    }
    async fn get_model_version(&self, name: String, version: String) -> Result<ModelVersion> {
        let v = registry::parse_version(&version)?;
        self.read(move |c| registry::get_version(c, &name, v)).await
    }
    async fn update_model_version(
        &self,
        name: String,
        version: String,
        description: Option<String>,
        actor: String,
    ) -> Result<ModelVersion> {
        let v = registry::parse_version(&version)?;
        self.write(move |c| registry::update_version(c, &name, v, description.as_deref(), &actor)).await
    }
    async fn delete_model_version(&self, name: String, version: String, actor: String) -> Result<()> {
        let v = registry::parse_version(&version)?;
        self.write(move |c| registry::delete_version(c, &name, v, &actor)).await
    }
    async fn transition_model_version_stage(
        &self,
        name: String,
        version: String,
        stage: String,
        archive_existing: bool,
        actor: String,
    ) -> Result<ModelVersion> {
        let v = registry::parse_version(&version)?;
        self.write(move |c| registry::transition_stage(c, &name, v, &stage, archive_existing, &actor)).await
    }
    async fn set_model_version_tag(&self, name: String, version: String, tag: KeyValue, actor: String) -> Result<()> {
        let v = registry::parse_version(&version)?;
        validate::registry_tag(&tag)?;
        self.write(move |c| registry::set_version_tag(c, &name, v, &tag, &actor)).await
    }
    async fn delete_model_version_tag(&self, name: String, version: String, key: String, actor: String) -> Result<()> {
        let v = registry::parse_version(&version)?;
        self.write(move |c| registry::delete_version_tag(c, &name, v, &key, &actor)).await
    }
    async fn search_model_versions(&self, req: RegistrySearch) -> Result<Page<ModelVersion>> {
        self.read(move |c| registry::search_versions(c, &req)).await
    }
    async fn set_alias(&self, name: String, alias: String, version: String, actor: String) -> Result<()> {
        let v = registry::parse_version(&version)?;
        self.write(move |c| registry::set_alias(c, &name, &alias, v, &actor)).await
    }
    async fn delete_alias(&self, name: String, alias: String, actor: String) -> Result<()> {
        self.write(move |c| registry::delete_alias(c, &name, &alias, &actor)).await
    }
    async fn get_model_version_by_alias(&self, name: String, alias: String) -> Result<ModelVersion> {
        self.read(move |c| registry::version_by_alias(c, &name, &alias)).await
    }
    async fn lineage(&self, name: String, version: String) -> Result<Lineage> {
        let v = registry::parse_version(&version)?;
        self.read(move |c| lineage::of_version(c, &name, v)).await
    }
    async fn model_versions_by_dataset(&self, digest: String) -> Result<Vec<ModelVersion>> {
        self.read(move |c| lineage::versions_by_dataset(c, &digest)).await
    }
    async fn audit_log(&self, query: AuditQuery) -> Result<Page<AuditRecord>> {
        self.read(move |c| audit::list(c, &query)).await
    }

    async fn create_deployment(&self, spec: DeploymentSpec, actor: String) -> Result<Deployment> {
        validate::deployment(&spec)?;
        self.write(move |c| deployments::create(c, &spec, &actor)).await
    }
    async fn get_deployment(&self, name: String) -> Result<Deployment> {
        self.read(move |c| deployments::get(c, &name)).await
    }
    async fn list_deployments(&self) -> Result<Vec<Deployment>> {
        self.read(deployments::list).await
    }
    async fn update_deployment(&self, spec: DeploymentSpec, actor: String) -> Result<Deployment> {
        validate::deployment(&spec)?;
        self.write(move |c| deployments::update(c, &spec, &actor)).await
    }
    async fn delete_deployment(&self, name: String, actor: String) -> Result<()> {
        self.write(move |c| deployments::delete(c, &name, &actor)).await
    }

    async fn create_monitor(&self, spec: MonitorSpec, actor: String) -> Result<Monitor> {
        validate::monitor(&spec)?;
        self.write(move |c| monitoring::create(c, &spec, &actor)).await
    }
    async fn get_monitor(&self, name: String) -> Result<Monitor> {
        self.read(move |c| monitoring::get(c, &name)).await
    }
    async fn list_monitors(&self) -> Result<Vec<Monitor>> {
        self.read(monitoring::list).await
    }
    async fn update_monitor(&self, spec: MonitorSpec, actor: String) -> Result<Monitor> {
        validate::monitor(&spec)?;
        self.write(move |c| monitoring::update(c, &spec, &actor)).await
    }
    async fn delete_monitor(&self, name: String, actor: String) -> Result<()> {
        self.write(move |c| monitoring::delete(c, &name, &actor)).await
    }
    async fn put_monitor_window(&self, window: MonitorWindow) -> Result<()> {
        self.write(move |c| monitoring::put_window(c, &window)).await
    }
    async fn list_monitor_windows(&self, monitor: String, from_ms: i64, to_ms: i64) -> Result<Vec<MonitorWindow>> {
        self.read(move |c| monitoring::windows(c, &monitor, from_ms, to_ms)).await
    }
    async fn put_ground_truth(&self, deployment: String, labels: Vec<GroundTruth>) -> Result<u64> {
        validate::deployment_name(&deployment)?;
        self.write(move |c| monitoring::put_ground_truth(c, &deployment, &labels)).await
    }
    async fn get_ground_truth(&self, deployment: String, request_ids: Vec<String>) -> Result<Vec<GroundTruth>> {
        self.read(move |c| monitoring::ground_truth(c, &deployment, &request_ids)).await
    }
    async fn ground_truth_updated(&self, deployment: String) -> Result<Option<i64>> {
        self.read(move |c| monitoring::ground_truth_updated(c, &deployment)).await
    }
    async fn record_alert(&self, event: AlertEvent) -> Result<Option<AlertEvent>> {
        self.write(move |c| monitoring::record_alert(c, &event)).await
    }
    async fn update_alert(
        &self,
        id: i64,
        status: String,
        attempts: u32,
        last_error: Option<String>,
        delivered_at: Option<i64>,
    ) -> Result<()> {
        self.write(move |c| monitoring::update_alert(c, id, &status, attempts, last_error.as_deref(), delivered_at))
            .await
    }
    async fn list_alerts(&self, monitor: String) -> Result<Vec<AlertEvent>> {
        self.read(move |c| monitoring::alerts(c, &monitor)).await
    }
    async fn pending_alerts(&self) -> Result<Vec<AlertEvent>> {
        self.read(monitoring::pending_alerts).await
    }

    async fn gc_plan(&self, deleted_before_ms: i64) -> Result<GcPlan> {
        self.read(move |c| gc::plan(c, deleted_before_ms)).await
    }
    async fn purge_experiment(&self, experiment_id: String) -> Result<bool> {
        self.write(move |c| gc::purge_experiment(c, &experiment_id)).await
    }
    async fn purge_run(&self, run_id: String) -> Result<bool> {
        self.write(move |c| gc::purge_run(c, &run_id)).await
    }
    async fn purge_logged_model(&self, model_id: String) -> Result<bool> {
        self.write(move |c| gc::purge_logged_model(c, &model_id)).await
    }
    async fn purge_model_version(&self, name: String, version: i64) -> Result<bool> {
        self.write(move |c| gc::purge_model_version(c, &name, version)).await
    }

    async fn close(&self) {
        let sender = self.writer.lock().ok().and_then(|mut w| w.take());
        drop(sender);
        let handle = self.writer_thread.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
    }
}
