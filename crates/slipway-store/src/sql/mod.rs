//! The SQL store: every request as SQL, written once for SQLite and PostgreSQL.
//!
//! [`SqlStore`] implements [`MetadataStore`] by validating each request and running one closure
//! of the modules below inside one transaction of its [`Backend`]. The modules speak through
//! [`conn::Connection`], which hides which database is underneath; the backends differ only in
//! how they run a transaction (`crate::sqlite`: one writer thread with group commit;
//! `crate::postgres`: a pool of connections, one transaction per request, retried on
//! serialization conflicts), and in their migrations.

mod audit;
mod auth;
pub(crate) mod conn;
mod data;
mod deployments;
pub(crate) mod experiments;
mod gc;
mod import;
mod labeling;
mod lineage;
mod models;
mod monitoring;
mod query;
mod registry;
mod runs;

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use slipway_types::{
    AlertEvent, AlertStatus, AuditRecord, Deployment, DeploymentSpec, Experiment, GroundTruth, KeyValue, Lineage,
    LoggedModel, Metric, ModelVersion, Monitor, MonitorSpec, MonitorWindow, RegisteredModel, Run, RunInfo,
};

use crate::{
    AuditQuery, DatasetSummary, GcPlan, LoggedModelSearch, MetadataStore, NewDatasetInput, NewLoggedModel,
    NewModelVersion, NewRun, Page, RegistrySearch, Result, RunUpdate, SearchRequest, validate,
};
pub use conn::Connection;
/// What one offer of labeling items may hold (the API and the prediction-log feeder alike).
pub use labeling::{MAX_OFFERED as MAX_LABEL_ITEMS_OFFERED, MAX_ROW as MAX_LABEL_ROW};

/// How a database runs one request's SQL. `write` applies all of `work` or none of it and
/// returns once it is durable; it may run `work` more than once (after a conflict with a
/// concurrent transaction), so `work` must only touch the database. `read` sees one snapshot.
pub trait Backend: Send + Sync + 'static {
    /// Whether other processes write the same database (PostgreSQL replicas). When not, the
    /// auth epoch is kept in memory after it is first read, and advanced by this process's
    /// own auth changes, so checking it costs no query.
    const SHARED: bool;

    fn write<T, F>(&self, work: F) -> impl Future<Output = Result<T>> + Send
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T> + Send + 'static;

    fn read<T, F>(&self, work: F) -> impl Future<Output = Result<T>> + Send
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static;

    /// See [`MetadataStore::watch_changes`].
    fn watch_changes(&self, changed: std::sync::Arc<tokio::sync::Notify>);

    /// Finishes what is in flight and releases the database; later calls fail.
    fn close(&self) -> impl Future<Output = ()> + Send;
}

#[async_trait]
impl<B: Backend> crate::import::ImportStore for SqlStore<B> {
    async fn import(&self, item: crate::import::Imported, actor: String) -> Result<crate::import::Outcome> {
        use crate::import::Imported;
        let item = Arc::new(item);
        self.backend
            .write(move |c| match &*item {
                Imported::Experiment(e) => import::experiment(c, e),
                Imported::Run(r) => import::run(c, r),
                Imported::RunMetrics { run_id, metrics } => import::run_metrics(c, run_id, metrics),
                Imported::LoggedModel(m) => import::logged_model(c, m),
                Imported::RegisteredModel(m) => import::registered_model(c, m, &actor),
            })
            .await
    }
    async fn finish_import(&self) -> Result<()> {
        self.backend.write(import::finish).await
    }
}

#[async_trait]
impl<B: Backend> crate::auth::AuthStore for SqlStore<B> {
    async fn auth_epoch(&self) -> Result<u64> {
        if !B::SHARED {
            let seen = self.epoch.load(std::sync::atomic::Ordering::Acquire);
            if seen != u64::MAX {
                return Ok(seen);
            }
        }
        let epoch = self.backend.read(auth::epoch).await?;
        if !B::SHARED {
            self.remember_epoch(epoch);
        }
        Ok(epoch)
    }
    async fn create_principal(&self, new: crate::auth::NewPrincipal, actor: String) -> Result<crate::auth::Principal> {
        auth::validate_name("user name", &new.name)?;
        self.auth_write(move |c| {
            c.lock("principal", &new.name)?;
            auth::create_principal(c, &new, &actor)
        })
        .await
    }
    async fn principal(&self, name: String) -> Result<crate::auth::Principal> {
        self.backend.read(move |c| auth::principal(c, &name)).await
    }
    async fn principal_by_id(&self, id: i64) -> Result<crate::auth::Principal> {
        self.backend.read(move |c| auth::principal_by_id(c, id)).await
    }
    async fn list_principals(&self) -> Result<Vec<crate::auth::Principal>> {
        self.backend.read(auth::list_principals).await
    }
    async fn update_principal(&self, name: String, update: crate::auth::PrincipalUpdate, actor: String) -> Result<()> {
        self.auth_write(move |c| auth::update_principal(c, &name, &update, &actor)).await
    }
    async fn rehash_password(&self, principal_id: i64, old_hash: String, new_hash: String) -> Result<()> {
        self.backend.write(move |c| auth::rehash_password(c, principal_id, &old_hash, &new_hash)).await
    }
    async fn delete_principal(&self, name: String, actor: String) -> Result<()> {
        self.auth_write(move |c| auth::delete_principal(c, &name, &actor)).await
    }
    async fn access(&self, principal_id: i64) -> Result<crate::auth::Access> {
        self.backend.read(move |c| auth::access(c, principal_id)).await
    }
    async fn set_grant(
        &self,
        grantee: crate::auth::Grantee,
        kind: crate::auth::ObjectKind,
        pattern: String,
        permission: i64,
        actor: String,
    ) -> Result<crate::auth::Grant> {
        self.auth_write(move |c| auth::set_grant(c, &grantee, kind, &pattern, permission, &actor)).await
    }
    async fn remove_grant(
        &self,
        grantee: crate::auth::Grantee,
        kind: crate::auth::ObjectKind,
        pattern: String,
        actor: String,
    ) -> Result<()> {
        self.auth_write(move |c| auth::remove_grant(c, &grantee, kind, &pattern, &actor)).await
    }
    async fn add_grant(
        &self,
        grantee: crate::auth::Grantee,
        kind: crate::auth::ObjectKind,
        pattern: String,
        permission: i64,
        actor: String,
    ) -> Result<crate::auth::Grant> {
        self.auth_write(move |c| auth::add_grant(c, &grantee, kind, &pattern, permission, &actor)).await
    }
    async fn grant(&self, grant_id: i64) -> Result<crate::auth::Grant> {
        self.backend.read(move |c| auth::grant(c, grant_id)).await
    }
    async fn update_grant(&self, grant_id: i64, permission: i64, actor: String) -> Result<crate::auth::Grant> {
        self.auth_write(move |c| auth::update_grant(c, grant_id, permission, &actor)).await
    }
    async fn delete_grant(&self, grant_id: i64, actor: String) -> Result<()> {
        self.auth_write(move |c| auth::delete_grant(c, grant_id, &actor)).await
    }
    async fn create_group(
        &self,
        name: String,
        description: Option<String>,
        actor: String,
    ) -> Result<crate::auth::Group> {
        auth::validate_group_name(&name)?;
        self.auth_write(move |c| {
            c.lock("group", &name)?;
            auth::create_group(c, &name, description.as_deref(), &actor)
        })
        .await
    }
    async fn group(&self, group_id: i64) -> Result<crate::auth::Group> {
        self.backend.read(move |c| auth::group(c, group_id)).await
    }
    async fn list_groups(&self) -> Result<Vec<crate::auth::Group>> {
        self.backend.read(auth::list_groups).await
    }
    async fn groups_named(&self, names: Vec<String>) -> Result<Vec<crate::auth::Group>> {
        self.backend.read(move |c| auth::groups_named(c, &names)).await
    }
    async fn update_group(
        &self,
        group_id: i64,
        update: crate::auth::GroupUpdate,
        actor: String,
    ) -> Result<crate::auth::Group> {
        self.auth_write(move |c| {
            if let Some(name) = &update.name {
                c.lock("group", name)?;
            }
            auth::update_group(c, group_id, &update, &actor)
        })
        .await
    }
    async fn delete_group(&self, group_id: i64, actor: String) -> Result<()> {
        self.auth_write(move |c| auth::delete_group(c, group_id, &actor)).await
    }
    async fn add_member(&self, group_id: i64, principal: String, actor: String) -> Result<crate::auth::Membership> {
        self.auth_write(move |c| {
            c.lock("membership", &format!("{group_id}/{principal}"))?;
            auth::add_member(c, group_id, &principal, &actor)
        })
        .await
    }
    async fn remove_member(&self, group_id: i64, principal: String, actor: String) -> Result<()> {
        self.auth_write(move |c| auth::remove_member(c, group_id, &principal, &actor)).await
    }
    async fn members(&self, group_id: i64) -> Result<Vec<crate::auth::Membership>> {
        self.backend.read(move |c| auth::members(c, group_id)).await
    }
    async fn groups_of(&self, principal: String) -> Result<Vec<crate::auth::Group>> {
        self.backend.read(move |c| auth::groups_of(c, &principal)).await
    }
    async fn create_token(&self, new: crate::auth::NewToken, actor: String) -> Result<crate::auth::TokenRecord> {
        self.auth_write(move |c| auth::create_token(c, &new, &actor)).await
    }
    async fn token(&self, id: String) -> Result<crate::auth::TokenRecord> {
        self.backend.read(move |c| auth::token(c, &id)).await
    }
    async fn list_tokens(&self, principal_id: Option<i64>) -> Result<Vec<crate::auth::TokenRecord>> {
        self.backend.read(move |c| auth::list_tokens(c, principal_id)).await
    }
    async fn revoke_token(&self, id: String, actor: String) -> Result<()> {
        self.auth_write(move |c| auth::revoke_token(c, &id, &actor)).await
    }
    async fn touch_token(&self, id: String, now_ms: i64) -> Result<()> {
        self.backend.write(move |c| auth::touch_token(c, &id, now_ms)).await
    }
    async fn parent_of(&self, child: crate::auth::Child) -> Result<Option<String>> {
        self.backend.read(move |c| auth::parent_of(c, &child)).await
    }
    async fn record_denials(&self, denials: Vec<crate::auth::Denial>) -> Result<()> {
        self.backend.write(move |c| auth::record_denials(c, &denials)).await
    }
    async fn denials(&self, query: crate::auth::DenialQuery) -> Result<crate::Page<crate::auth::Denial>> {
        self.backend.read(move |c| auth::denials(c, &query)).await
    }
    async fn alias_followers(&self, model: String, alias: String) -> Result<Vec<String>> {
        self.backend.read(move |c| auth::alias_followers(c, &model, &alias)).await
    }
}

/// A metadata store over a SQL [`Backend`].
pub struct SqlStore<B> {
    backend: B,
    /// The auth epoch as last read or advanced here; `u64::MAX` until first read. Used only
    /// when `!B::SHARED`.
    epoch: Arc<std::sync::atomic::AtomicU64>,
    /// Prefixes new experiments' artifact locations, e.g. `mlflow-artifacts:`.
    artifact_root: Arc<str>,
}

impl<B: Backend> SqlStore<B> {
    /// An auth change: written, then (for a database only this process writes) the epoch it
    /// reached is remembered.
    async fn auth_write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T> + Send + 'static,
    {
        let done = self.backend.write(work).await?;
        if !B::SHARED {
            let epoch = self.backend.read(auth::epoch).await?;
            self.remember_epoch(epoch);
        }
        Ok(done)
    }

    fn remember_epoch(&self, epoch: u64) {
        use std::sync::atomic::Ordering;
        let _ = self.epoch.fetch_update(Ordering::AcqRel, Ordering::Acquire, |seen| {
            (seen == u64::MAX || seen < epoch).then_some(epoch)
        });
    }

    pub(crate) fn new(backend: B, artifact_root: &str) -> Self {
        Self {
            backend,
            epoch: Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX)),
            artifact_root: artifact_root.trim_end_matches('/').into(),
        }
    }
}

#[async_trait]
impl<B: Backend> MetadataStore for SqlStore<B> {
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
        self.backend
            .write(move |c| {
                c.lock("experiment", &name)?;
                experiments::create(c, &root, &name, artifact_location.as_deref(), &tags)
            })
            .await
    }
    async fn get_experiment(&self, id: String) -> Result<Experiment> {
        self.backend.read(move |c| experiments::get(c, &id)).await
    }
    async fn get_experiment_by_name(&self, name: String) -> Result<Experiment> {
        self.backend.read(move |c| experiments::get_by_name(c, &name)).await
    }
    async fn search_experiments(&self, req: SearchRequest) -> Result<Page<Experiment>> {
        self.backend.read(move |c| experiments::search(c, &req)).await
    }
    async fn rename_experiment(&self, id: String, new_name: String) -> Result<()> {
        crate::validate::experiment_name(&new_name)?;
        self.backend
            .write(move |c| {
                c.lock("experiment", &new_name)?;
                experiments::rename(c, &id, &new_name)
            })
            .await
    }
    async fn delete_experiment(&self, id: String) -> Result<()> {
        self.backend.write(move |c| experiments::set_lifecycle(c, &id, true)).await
    }
    async fn restore_experiment(&self, id: String) -> Result<()> {
        self.backend.write(move |c| experiments::set_lifecycle(c, &id, false)).await
    }
    async fn set_experiment_tag(&self, id: String, tag: KeyValue) -> Result<()> {
        crate::validate::key("tag", &tag.key)?;
        crate::validate::value_len("tag", &tag.key, &tag.value, crate::validate::MAX_EXPERIMENT_TAG_VAL_LENGTH)?;
        self.backend.write(move |c| experiments::set_tag(c, &id, &tag)).await
    }
    async fn delete_experiment_tag(&self, id: String, key: String) -> Result<()> {
        self.backend.write(move |c| experiments::delete_tag(c, &id, &key)).await
    }

    async fn create_run(&self, run: NewRun) -> Result<Run> {
        for t in &run.tags {
            crate::validate::tag(t)?;
        }
        let run_id = self.backend.write(move |c| runs::create(c, &run)).await?;
        self.get_run(run_id).await
    }
    async fn get_run(&self, run_id: String) -> Result<Run> {
        crate::validate::run_id(&run_id)?;
        self.backend.read(move |c| runs::get(c, &run_id)).await
    }
    async fn update_run(&self, run_id: String, update: RunUpdate) -> Result<RunInfo> {
        crate::validate::run_id(&run_id)?;
        let id = run_id.clone();
        self.backend.write(move |c| runs::update(c, &id, &update)).await?;
        Ok(self.get_run(run_id).await?.info)
    }
    async fn delete_run(&self, run_id: String) -> Result<()> {
        crate::validate::run_id(&run_id)?;
        self.backend.write(move |c| runs::set_lifecycle(c, &run_id, true)).await
    }
    async fn restore_run(&self, run_id: String) -> Result<()> {
        crate::validate::run_id(&run_id)?;
        self.backend.write(move |c| runs::set_lifecycle(c, &run_id, false)).await
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
        self.backend.write(move |c| runs::log_batch(c, &run_id, &metrics, &params, &tags)).await
    }
    async fn delete_tag(&self, run_id: String, key: String) -> Result<()> {
        crate::validate::run_id(&run_id)?;
        self.backend.write(move |c| runs::delete_tag(c, &run_id, &key)).await
    }
    async fn log_inputs(&self, run_id: String, datasets: Vec<NewDatasetInput>, model_ids: Vec<String>) -> Result<()> {
        crate::validate::run_id(&run_id)?;
        datasets.iter().try_for_each(runs::validate_dataset)?;
        self.backend.write(move |c| runs::log_inputs(c, &run_id, &datasets, &model_ids)).await
    }
    async fn log_outputs(&self, run_id: String, models: Vec<(String, i64)>) -> Result<()> {
        crate::validate::run_id(&run_id)?;
        self.backend.write(move |c| runs::log_outputs(c, &run_id, &models)).await
    }
    async fn search_runs(&self, experiment_ids: Vec<String>, req: SearchRequest) -> Result<Page<Run>> {
        experiment_ids.iter().try_for_each(|e| crate::validate::experiment_id(e))?;
        self.backend.read(move |c| runs::search(c, &experiment_ids, &req)).await
    }
    async fn get_metric_history(
        &self,
        run_id: String,
        key: String,
        max_results: Option<i64>,
        page_token: Option<String>,
    ) -> Result<Page<Metric>> {
        crate::validate::run_id(&run_id)?;
        self.backend.read(move |c| runs::metric_history(c, &run_id, &key, max_results, page_token.as_deref())).await
    }

    async fn create_logged_model(&self, model: NewLoggedModel) -> Result<LoggedModel> {
        model.params.iter().try_for_each(crate::validate::param)?;
        model.tags.iter().try_for_each(crate::validate::tag)?;
        let id = self.backend.write(move |c| models::create(c, &model)).await?;
        self.get_logged_model(id, false).await
    }
    async fn get_logged_model(&self, model_id: String, allow_deleted: bool) -> Result<LoggedModel> {
        self.backend.read(move |c| models::get(c, &model_id, allow_deleted)).await
    }
    async fn finalize_logged_model(&self, model_id: String, status: String) -> Result<LoggedModel> {
        let id = model_id.clone();
        self.backend.write(move |c| models::finalize(c, &id, &status)).await?;
        self.get_logged_model(model_id, false).await
    }
    async fn delete_logged_model(&self, model_id: String) -> Result<()> {
        self.backend.write(move |c| models::delete(c, &model_id)).await
    }
    async fn set_logged_model_tags(&self, model_id: String, tags: Vec<KeyValue>) -> Result<()> {
        tags.iter().try_for_each(crate::validate::tag)?;
        self.backend.write(move |c| models::set_tags(c, &model_id, &tags)).await
    }
    async fn delete_logged_model_tag(&self, model_id: String, key: String) -> Result<()> {
        self.backend.write(move |c| models::delete_tag(c, &model_id, &key)).await
    }
    async fn log_logged_model_params(&self, model_id: String, params: Vec<KeyValue>) -> Result<()> {
        params.iter().try_for_each(crate::validate::param)?;
        self.backend.write(move |c| models::log_params(c, &model_id, &params)).await
    }
    async fn search_logged_models(&self, req: LoggedModelSearch) -> Result<Page<LoggedModel>> {
        req.experiment_ids.iter().try_for_each(|e| crate::validate::experiment_id(e))?;
        self.backend.read(move |c| models::search(c, &req)).await
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
        self.backend
            .write(move |c| {
                c.lock("model", &name)?;
                registry::create_model(c, &name, description.as_deref(), &tags, &actor)
            })
            .await
    }
    async fn get_registered_model(&self, name: String) -> Result<RegisteredModel> {
        self.backend.read(move |c| registry::get_model(c, &name)).await
    }
    async fn rename_registered_model(&self, name: String, new_name: String, actor: String) -> Result<RegisteredModel> {
        self.backend
            .write(move |c| {
                let (first, second) = if name <= new_name { (&name, &new_name) } else { (&new_name, &name) };
                c.lock("model", first)?;
                c.lock("model", second)?;
                registry::rename_model(c, &name, &new_name, &actor)
            })
            .await
    }
    async fn update_registered_model(
        &self,
        name: String,
        description: Option<String>,
        actor: String,
    ) -> Result<RegisteredModel> {
        self.backend
            .write(move |c| {
                c.lock("model", &name)?;
                registry::update_model(c, &name, description.as_deref(), &actor)
            })
            .await
    }
    async fn delete_registered_model(&self, name: String, actor: String) -> Result<()> {
        self.backend
            .write(move |c| {
                c.lock("model", &name)?;
                registry::delete_model(c, &name, &actor)
            })
            .await
    }
    async fn set_registered_model_tag(&self, name: String, tag: KeyValue, actor: String) -> Result<()> {
        validate::registry_tag(&tag)?;
        self.backend
            .write(move |c| {
                c.lock("model", &name)?;
                registry::set_model_tag(c, &name, &tag, &actor)
            })
            .await
    }
    async fn delete_registered_model_tag(&self, name: String, key: String, actor: String) -> Result<()> {
        self.backend
            .write(move |c| {
                c.lock("model", &name)?;
                registry::delete_model_tag(c, &name, &key, &actor)
            })
            .await
    }
    async fn search_registered_models(&self, req: RegistrySearch) -> Result<Page<RegisteredModel>> {
        self.backend.read(move |c| registry::search_models(c, &req)).await
    }
    async fn get_latest_versions(&self, name: String, stages: Vec<String>) -> Result<Vec<ModelVersion>> {
        self.backend.read(move |c| registry::get_latest(c, &name, &stages)).await
    }
    async fn create_model_version(&self, version: NewModelVersion, actor: String) -> Result<ModelVersion> {
        version.tags.iter().try_for_each(validate::registry_tag)?;
        self.backend
            .write(move |c| {
                c.lock("model", &version.name)?;
                registry::create_version(c, &version, &actor)
            })
            .await
    }
    async fn get_model_version(&self, name: String, version: String) -> Result<ModelVersion> {
        let v = registry::parse_version(&version)?;
        self.backend.read(move |c| registry::get_version(c, &name, v)).await
    }
    async fn update_model_version(
        &self,
        name: String,
        version: String,
        description: Option<String>,
        actor: String,
    ) -> Result<ModelVersion> {
        let v = registry::parse_version(&version)?;
        self.backend
            .write(move |c| {
                c.lock("model", &name)?;
                registry::update_version(c, &name, v, description.as_deref(), &actor)
            })
            .await
    }
    async fn delete_model_version(&self, name: String, version: String, actor: String) -> Result<()> {
        let v = registry::parse_version(&version)?;
        self.backend
            .write(move |c| {
                c.lock("model", &name)?;
                registry::delete_version(c, &name, v, &actor)
            })
            .await
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
        self.backend
            .write(move |c| {
                c.lock("model", &name)?;
                registry::transition_stage(c, &name, v, &stage, archive_existing, &actor)
            })
            .await
    }
    async fn set_model_version_tag(&self, name: String, version: String, tag: KeyValue, actor: String) -> Result<()> {
        let v = registry::parse_version(&version)?;
        validate::registry_tag(&tag)?;
        self.backend
            .write(move |c| {
                c.lock("model", &name)?;
                registry::set_version_tag(c, &name, v, &tag, &actor)
            })
            .await
    }
    async fn delete_model_version_tag(&self, name: String, version: String, key: String, actor: String) -> Result<()> {
        let v = registry::parse_version(&version)?;
        self.backend
            .write(move |c| {
                c.lock("model", &name)?;
                registry::delete_version_tag(c, &name, v, &key, &actor)
            })
            .await
    }
    async fn search_model_versions(&self, req: RegistrySearch) -> Result<Page<ModelVersion>> {
        self.backend.read(move |c| registry::search_versions(c, &req)).await
    }
    async fn set_alias(&self, name: String, alias: String, version: String, actor: String) -> Result<()> {
        let v = registry::parse_version(&version)?;
        self.backend
            .write(move |c| {
                c.lock("model", &name)?;
                registry::set_alias(c, &name, &alias, v, &actor)
            })
            .await
    }
    async fn delete_alias(&self, name: String, alias: String, actor: String) -> Result<()> {
        self.backend
            .write(move |c| {
                c.lock("model", &name)?;
                registry::delete_alias(c, &name, &alias, &actor)
            })
            .await
    }
    async fn get_model_version_by_alias(&self, name: String, alias: String) -> Result<ModelVersion> {
        self.backend.read(move |c| registry::version_by_alias(c, &name, &alias)).await
    }
    async fn lineage(&self, name: String, version: String) -> Result<Lineage> {
        let v = registry::parse_version(&version)?;
        self.backend.read(move |c| lineage::of_version(c, &name, v)).await
    }
    async fn model_versions_by_dataset(&self, digest: String) -> Result<Vec<ModelVersion>> {
        self.backend.read(move |c| lineage::versions_by_dataset(c, &digest)).await
    }
    async fn model_versions_by_data(
        &self,
        name: String,
        which: String,
    ) -> Result<(slipway_types::DataVersion, Vec<ModelVersion>)> {
        self.backend.read(move |c| lineage::versions_by_data(c, &name, &which)).await
    }
    async fn search_datasets(&self, experiment_ids: Vec<String>) -> Result<Vec<DatasetSummary>> {
        experiment_ids.iter().try_for_each(|e| crate::validate::experiment_id(e))?;
        // Stored ids are integers: any other names no experiment.
        let ids: Vec<i64> = experiment_ids.iter().filter_map(|e| e.parse().ok()).collect();
        self.backend.read(move |c| lineage::datasets_of(c, &ids)).await
    }
    async fn audit_log(&self, query: AuditQuery) -> Result<Page<AuditRecord>> {
        self.backend.read(move |c| audit::list(c, &query)).await
    }

    async fn create_data_version(
        &self,
        new: slipway_types::NewDataVersion,
        actor: String,
    ) -> Result<slipway_types::DataVersion> {
        data::validate_new(&new)?;
        self.backend
            .write(move |c| {
                c.lock("data", &new.name)?;
                data::create(c, &new, &actor)
            })
            .await
    }
    async fn get_data_version(&self, name: String, which: String) -> Result<slipway_types::DataVersion> {
        self.backend.read(move |c| data::get(c, &name, &which)).await
    }
    async fn list_data_versions(&self, name: String) -> Result<Vec<slipway_types::DataVersion>> {
        self.backend.read(move |c| data::versions(c, &name)).await
    }
    async fn list_data_sets(&self) -> Result<Vec<slipway_types::DataSet>> {
        self.backend.read(data::sets).await
    }
    async fn set_data_alias(
        &self,
        name: String,
        alias: String,
        version: i64,
        actor: String,
    ) -> Result<slipway_types::DataVersion> {
        data::validate_alias(&alias)?;
        self.backend
            .write(move |c| {
                c.lock("data", &name)?;
                data::set_alias(c, &name, &alias, version, &actor)
            })
            .await
    }
    async fn delete_data_alias(&self, name: String, alias: String, actor: String) -> Result<()> {
        self.backend
            .write(move |c| {
                c.lock("data", &name)?;
                data::delete_alias(c, &name, &alias, &actor)
            })
            .await
    }
    async fn set_data_tag(
        &self,
        name: String,
        version: i64,
        key: String,
        value: String,
        actor: String,
    ) -> Result<slipway_types::DataVersion> {
        data::validate_tag(&key, &value)?;
        self.backend.write(move |c| data::set_tag(c, &name, version, &key, &value, &actor)).await
    }
    async fn data_versions_by_manifest(&self, manifest: String) -> Result<Vec<slipway_types::DataVersion>> {
        self.backend.read(move |c| data::by_manifest(c, &manifest)).await
    }
    async fn create_label_queue(
        &self,
        queue: slipway_types::LabelQueue,
        actor: String,
    ) -> Result<slipway_types::LabelQueue> {
        labeling::validate_queue(&queue)?;
        self.backend
            .write(move |c| {
                c.lock("label_queue", &queue.name)?;
                labeling::create_queue(c, &queue, &actor)
            })
            .await
    }
    async fn get_label_queue(&self, name: String) -> Result<slipway_types::LabelQueue> {
        self.backend.read(move |c| labeling::get_queue(c, &name)).await
    }
    async fn list_label_queues(&self) -> Result<Vec<slipway_types::LabelQueue>> {
        self.backend.read(labeling::list_queues).await
    }
    async fn offer_label_items(&self, queue: String, items: Vec<slipway_types::NewLabelItem>) -> Result<u64> {
        if items.len() > labeling::MAX_OFFERED {
            return Err(crate::StoreError::InvalidParameter(format!(
                "at most {} items at once",
                labeling::MAX_OFFERED
            )));
        }
        let bad_row = |row: i64| !(0..=labeling::MAX_ROW).contains(&row);
        if let Some(bad) = items.iter().find(|i| i.request_id.is_empty() || i.request_id.len() > 256 || bad_row(i.row))
        {
            return Err(crate::StoreError::InvalidParameter(format!(
                "item '{}' row {}: a request id of 1 to 256 bytes and a row from 0 to {}",
                bad.request_id,
                bad.row,
                labeling::MAX_ROW
            )));
        }
        self.backend
            .write(move |c| {
                c.lock("label_queue", &queue)?;
                labeling::offer(c, &queue, &items)
            })
            .await
    }
    async fn set_label_queue_fed(&self, queue: String, fed_ms: i64) -> Result<()> {
        self.backend.write(move |c| labeling::set_fed(c, &queue, fed_ms)).await
    }
    async fn lease_label_item(
        &self,
        queue: String,
        labeller: String,
        token: String,
    ) -> Result<Option<slipway_types::LabelItem>> {
        self.backend
            .write(move |c| {
                c.lock("label_queue", &queue)?;
                labeling::lease(c, &queue, &labeller, &token, crate::now_ms())
            })
            .await
    }
    async fn label_item(
        &self,
        queue: String,
        item_id: i64,
        token: String,
        label: serde_json::Value,
        labeller: String,
    ) -> Result<slipway_types::LabelItem> {
        self.backend
            .write(move |c| {
                c.lock("label_queue", &queue)?;
                labeling::label(c, &queue, item_id, &token, &label, &labeller)
            })
            .await
    }
    async fn labelled_items(&self, queue: String) -> Result<Vec<slipway_types::LabelItem>> {
        self.backend.read(move |c| labeling::labelled(c, &queue)).await
    }
    async fn create_deployment(&self, spec: DeploymentSpec, actor: String) -> Result<Deployment> {
        validate::deployment(&spec)?;
        self.backend
            .write(move |c| {
                c.lock("deployment", &spec.name)?;
                deployments::create(c, &spec, &actor)
            })
            .await
    }
    async fn get_deployment(&self, name: String) -> Result<Deployment> {
        self.backend.read(move |c| deployments::get(c, &name)).await
    }
    async fn list_deployments(&self) -> Result<Vec<Deployment>> {
        self.backend.read(deployments::list).await
    }
    async fn update_deployment(&self, spec: DeploymentSpec, actor: String) -> Result<Deployment> {
        validate::deployment(&spec)?;
        self.backend
            .write(move |c| {
                c.lock("deployment", &spec.name)?;
                deployments::update(c, &spec, &actor)
            })
            .await
    }
    async fn delete_deployment(&self, name: String, actor: String) -> Result<()> {
        self.backend
            .write(move |c| {
                c.lock("deployment", &name)?;
                deployments::delete(c, &name, &actor)
            })
            .await
    }

    async fn create_monitor(&self, spec: MonitorSpec, actor: String) -> Result<Monitor> {
        validate::monitor(&spec)?;
        self.backend
            .write(move |c| {
                c.lock("monitor", &spec.name)?;
                monitoring::create(c, &spec, &actor)
            })
            .await
    }
    async fn get_monitor(&self, name: String) -> Result<Monitor> {
        self.backend.read(move |c| monitoring::get(c, &name)).await
    }
    async fn list_monitors(&self) -> Result<Vec<Monitor>> {
        self.backend.read(monitoring::list).await
    }
    async fn update_monitor(&self, spec: MonitorSpec, actor: String) -> Result<Monitor> {
        validate::monitor(&spec)?;
        self.backend
            .write(move |c| {
                c.lock("monitor", &spec.name)?;
                monitoring::update(c, &spec, &actor)
            })
            .await
    }
    async fn delete_monitor(&self, name: String, actor: String) -> Result<()> {
        self.backend
            .write(move |c| {
                c.lock("monitor", &name)?;
                monitoring::delete(c, &name, &actor)
            })
            .await
    }
    async fn put_monitor_window(&self, window: MonitorWindow) -> Result<()> {
        self.backend.write(move |c| monitoring::put_window(c, &window)).await
    }
    async fn list_monitor_windows(&self, monitor: String, from_ms: i64, to_ms: i64) -> Result<Vec<MonitorWindow>> {
        self.backend.read(move |c| monitoring::windows(c, &monitor, from_ms, to_ms)).await
    }
    async fn put_ground_truth(&self, deployment: String, labels: Vec<GroundTruth>) -> Result<u64> {
        validate::deployment_name(&deployment)?;
        self.backend.write(move |c| monitoring::put_ground_truth(c, &deployment, &labels)).await
    }
    async fn get_ground_truth(&self, deployment: String, request_ids: Vec<String>) -> Result<Vec<GroundTruth>> {
        self.backend.read(move |c| monitoring::ground_truth(c, &deployment, &request_ids)).await
    }
    async fn ground_truth_updated(&self, deployment: String) -> Result<Option<i64>> {
        self.backend.read(move |c| monitoring::ground_truth_updated(c, &deployment)).await
    }
    async fn take_lease(&self, name: String, holder: String, ttl_ms: i64) -> Result<bool> {
        self.backend.write(move |c| monitoring::take_lease(c, &name, &holder, ttl_ms)).await
    }
    async fn release_lease(&self, name: String, holder: String) -> Result<()> {
        self.backend.write(move |c| monitoring::release_lease(c, &name, &holder)).await
    }
    async fn record_alert(&self, event: AlertEvent) -> Result<Option<AlertEvent>> {
        self.backend.write(move |c| monitoring::record_alert(c, &event)).await
    }
    async fn update_alert(
        &self,
        id: i64,
        status: AlertStatus,
        attempts: u32,
        last_error: Option<String>,
        delivered_at: Option<i64>,
    ) -> Result<()> {
        self.backend
            .write(move |c| monitoring::update_alert(c, id, status, attempts, last_error.as_deref(), delivered_at))
            .await
    }
    async fn list_alerts(&self, monitor: String) -> Result<Vec<AlertEvent>> {
        self.backend.read(move |c| monitoring::alerts(c, &monitor)).await
    }
    async fn pending_alerts(&self) -> Result<Vec<AlertEvent>> {
        self.backend.read(monitoring::pending_alerts).await
    }

    async fn gc_plan(&self, deleted_before_ms: i64) -> Result<GcPlan> {
        self.backend.read(move |c| gc::plan(c, deleted_before_ms)).await
    }
    async fn purge_experiment(&self, experiment_id: String) -> Result<bool> {
        self.backend.write(move |c| gc::purge_experiment(c, &experiment_id)).await
    }
    async fn purge_run(&self, run_id: String) -> Result<bool> {
        self.backend.write(move |c| gc::purge_run(c, &run_id)).await
    }
    async fn purge_logged_model(&self, model_id: String) -> Result<bool> {
        self.backend.write(move |c| gc::purge_logged_model(c, &model_id)).await
    }
    async fn purge_model_version(&self, name: String, version: i64) -> Result<bool> {
        self.backend
            .write(move |c| {
                c.lock("model", &name)?;
                gc::purge_model_version(c, &name, version)
            })
            .await
    }

    fn watch_changes(&self, changed: Arc<tokio::sync::Notify>) {
        self.backend.watch_changes(changed)
    }

    async fn close(&self) {
        self.backend.close().await
    }
}
