//! Pipelines started by `slipway server`: on request (`POST /api/v1/pipelines/{name}/runs`,
//! which is also what a monitor's alert rule calls when its webhook names the pipeline) and
//! on the `triggers:` cron schedules of the pipeline files the server was given.
//!
//! A start is a `slipway run FILE` child process against this server, so a triggered run is
//! recorded exactly as one started by hand. Two store leases make starts safe under retries,
//! storms and replicas: `pipeline-trigger:<key>` is taken once per trigger key (a webhook's
//! `Idempotency-Key`, a cron minute) and never again, so a key starts at most one run;
//! `pipeline-active:<name>` is held (and renewed) while a triggered run of the pipeline is in
//! flight, so triggers arriving meanwhile join that run instead of starting another.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use slipway_store::MetadataStore;

use crate::cron::Cron;
use crate::error::{PipelineError, Result};
use crate::spec::Pipeline;

/// How long a trigger key stays spent: far longer than any retry of its delivery.
const KEY_TTL_MS: i64 = 30 * 24 * 3600 * 1000;
/// The in-flight lease lapses this long after its holder stops renewing it (a server that died).
const ACTIVE_TTL_MS: i64 = 120_000;
const RENEW_EVERY: Duration = Duration::from_secs(30);
/// The lease under which one replica checks the cron schedules.
const CRON_LEASE: &str = "pipelines-cron";

/// Credentials for the runs a server starts, when the server requires them: a token minted
/// for one run, handed to it as `MLFLOW_TRACKING_TOKEN` and revoked when it ends.
#[async_trait::async_trait]
pub trait RunCredentials: Send + Sync {
    /// A token for one run of `pipeline`, and its id.
    async fn issue(&self, pipeline: &str) -> std::result::Result<(String, String), String>;
    async fn revoke(&self, token_id: String);
}

/// A pipeline this server may start.
#[derive(Debug, Clone, Serialize)]
pub struct Registered {
    pub name: String,
    /// The MLflow experiment its runs go to.
    pub experiment: String,
    pub file: PathBuf,
    pub crons: Vec<String>,
    #[serde(skip)]
    schedules: Vec<Cron>,
}

/// What became of a trigger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A new run was started for it.
    Started,
    /// This key already started a run (a retried delivery).
    Duplicate,
    /// A run of the pipeline was already in flight; this trigger is answered by it.
    Coalesced,
}

pub struct Triggers {
    pipelines: BTreeMap<String, Registered>,
    store: Arc<dyn MetadataStore>,
    /// The `slipway` binary and the URL of this server, for the runs it starts.
    exe: PathBuf,
    tracking_uri: String,
    log_dir: PathBuf,
    holder: String,
    credentials: Option<Arc<dyn RunCredentials>>,
}

impl Triggers {
    /// Reads each pipeline file; two files naming the same pipeline are an error.
    pub fn load(
        files: &[PathBuf],
        store: Arc<dyn MetadataStore>,
        exe: PathBuf,
        tracking_uri: String,
        log_dir: PathBuf,
    ) -> Result<Triggers> {
        let mut pipelines = BTreeMap::new();
        for path in files {
            let file = if path.is_dir() { path.join(crate::spec::DEFAULT_FILE) } else { path.clone() };
            let file = std::fs::canonicalize(&file).map_err(|e| PipelineError::io(&file, e))?;
            let p: Pipeline = crate::spec::load(&file)?;
            crate::dag::Dag::build(&p)?;
            let reg = Registered {
                name: p.name.clone(),
                experiment: p.experiment.clone(),
                file,
                crons: p.crons.iter().map(ToString::to_string).collect(),
                schedules: p.crons,
            };
            if let Some(other) = pipelines.insert(p.name.clone(), reg) {
                return Err(PipelineError::Records(format!(
                    "two pipeline files name pipeline '{}': {} and {}",
                    p.name,
                    other.file.display(),
                    pipelines[&p.name].file.display()
                )));
            }
        }
        let holder = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple());
        Ok(Triggers { pipelines, store, exe, tracking_uri, log_dir, holder, credentials: None })
    }

    /// Runs started from now on authenticate with credentials from `source`.
    pub fn with_credentials(mut self, source: Arc<dyn RunCredentials>) -> Self {
        self.credentials = Some(source);
        self
    }

    pub fn list(&self) -> Vec<&Registered> {
        self.pipelines.values().collect()
    }

    pub fn get(&self, name: &str) -> Option<&Registered> {
        self.pipelines.get(name)
    }

    /// Starts a run of `name` for the trigger `key` unless the key was used or a triggered
    /// run is in flight. `None` when no such pipeline is registered.
    pub async fn fire(self: &Arc<Self>, name: &str, key: &str, source: &str) -> Result<Option<Outcome>> {
        let Some(reg) = self.pipelines.get(name) else { return Ok(None) };
        // Every attempt holds under its own name: a retry of a spent key never renews it.
        let attempt = uuid::Uuid::new_v4().simple().to_string();
        let lease = |e: slipway_store::StoreError| PipelineError::Records(format!("trigger lease: {e}"));
        if !self
            .store
            .take_lease(format!("pipeline-trigger:{name}:{key}"), attempt.clone(), KEY_TTL_MS)
            .await
            .map_err(lease)?
        {
            return Ok(Some(Outcome::Duplicate));
        }
        let active = format!("pipeline-active:{name}");
        if !self.store.take_lease(active.clone(), attempt.clone(), ACTIVE_TTL_MS).await.map_err(lease)? {
            return Ok(Some(Outcome::Coalesced));
        }
        let token = match &self.credentials {
            None => Ok(None),
            Some(c) => {
                c.issue(name).await.map(Some).map_err(|e| PipelineError::Records(format!("run credentials: {e}")))
            }
        };
        let spawned =
            token.and_then(|token| Ok((self.spawn(reg, key, source, token.as_ref().map(|t| t.0.as_str()))?, token)));
        let (child, token) = match spawned {
            Ok(c) => c,
            Err(e) => {
                let _ = self.store.release_lease(active, attempt).await;
                return Err(e);
            }
        };
        let this = self.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            this.watch(child, &name, active, attempt).await;
            if let (Some(c), Some((_, id))) = (&this.credentials, token) {
                c.revoke(id).await;
            }
        });
        Ok(Some(Outcome::Started))
    }

    fn spawn(&self, reg: &Registered, key: &str, source: &str, token: Option<&str>) -> Result<tokio::process::Child> {
        std::fs::create_dir_all(&self.log_dir).map_err(|e| PipelineError::io(&self.log_dir, e))?;
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let log_path = self.log_dir.join(format!("{}-{stamp}.log", reg.name));
        let log = std::fs::File::create(&log_path).map_err(|e| PipelineError::io(&log_path, e))?;
        let err = log.try_clone().map_err(|e| PipelineError::io(&log_path, e))?;
        let cwd = reg.file.parent().unwrap_or(Path::new("/"));
        let mut command = tokio::process::Command::new(&self.exe);
        if let Some(token) = token {
            // The run is its service account, not whoever the server's environment names.
            command
                .env_remove("MLFLOW_TRACKING_USERNAME")
                .env_remove("MLFLOW_TRACKING_PASSWORD")
                .env("MLFLOW_TRACKING_TOKEN", token);
        }
        command
            .arg("run")
            .arg(&reg.file)
            .current_dir(cwd)
            // The server's own malloc settings (see the binary's memory.rs) are not the steps'.
            .env_remove("GLIBC_TUNABLES")
            .env("MLFLOW_TRACKING_URI", &self.tracking_uri)
            .env("SLIPWAY_TRIGGER", key)
            .env("SLIPWAY_TRIGGER_SOURCE", source)
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| PipelineError::io(&self.exe, e))
    }

    /// Waits for a started run, renewing the in-flight lease, then gives it up.
    async fn watch(&self, mut child: tokio::process::Child, name: &str, active: String, attempt: String) {
        let mut renew = tokio::time::interval(RENEW_EVERY);
        renew.tick().await;
        let status = loop {
            tokio::select! {
                status = child.wait() => break status,
                _ = renew.tick() => {
                    if let Err(e) = self.store.take_lease(active.clone(), attempt.clone(), ACTIVE_TTL_MS).await {
                        tracing::warn!(pipeline = name, error = %e, "cannot renew the pipeline's in-flight lease");
                    }
                }
            }
        };
        match status {
            Ok(s) if s.success() => tracing::info!(pipeline = name, "triggered pipeline run finished"),
            Ok(s) => tracing::warn!(pipeline = name, status = %s, "triggered pipeline run did not succeed"),
            Err(e) => tracing::warn!(pipeline = name, error = %e, "lost the triggered pipeline run"),
        }
        if let Err(e) = self.store.release_lease(active, attempt).await {
            tracing::warn!(pipeline = name, error = %e, "cannot release the in-flight lease; it lapses on its own");
        }
    }

    /// Checks the cron schedules every `interval` while this replica holds the cron lease,
    /// firing each schedule once per minute it names (the key is the minute).
    pub fn run_cron(self: Arc<Self>, interval: Duration) {
        if self.pipelines.values().all(|p| p.schedules.is_empty()) {
            return;
        }
        tokio::spawn(async move {
            let mut checked = now_minute();
            let mut tick = tokio::time::interval(interval);
            loop {
                tick.tick().await;
                let ttl = (interval.as_millis() as i64).saturating_mul(3);
                match self.store.take_lease(CRON_LEASE.into(), self.holder.clone(), ttl).await {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot take the pipeline cron lease");
                        continue;
                    }
                }
                let now = now_minute();
                for reg in self.pipelines.values() {
                    for cron in &reg.schedules {
                        if let Some(minute) = cron.last_between(checked, now) {
                            let key = format!("cron:{cron}:{minute}");
                            match self.fire(&reg.name, &key, "cron").await {
                                Ok(outcome) => tracing::info!(pipeline = %reg.name, %key, ?outcome, "cron trigger"),
                                Err(e) => tracing::warn!(pipeline = %reg.name, error = %e, "cron trigger failed"),
                            }
                        }
                    }
                }
                checked = now;
            }
        });
    }
}

fn now_minute() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| (d.as_secs() / 60) as i64)
}
