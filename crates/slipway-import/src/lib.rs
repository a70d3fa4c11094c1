//! Importing another tracking server's history into Slipway: `slipway import mlflow` copies an
//! MLflow tracking server's database and artifacts into the configured stores, keeping every id.
//!
//! A blocking task reads the source (one snapshot transaction, through
//! [`slipway_store::import::mlflow::MlflowSource`]) and hands items, in the order they depend on
//! each other, through a short channel to the [`importer`], which upserts each one in its own
//! transaction ([`ImportStore`]) and copies its artifacts ([`files`]). Everything is upserted by
//! id, so an interrupted import is finished by running it again, and a repeated one reports
//! every item unchanged and copies no file twice.
//!
//! The crate never prints: the caller gets a [`Progress`] callback while it runs and an
//! [`ImportReport`] at the end.

pub mod auth;
mod files;
mod importer;

use serde::Serialize;
use slipway_artifacts::{ArtifactError, Artifacts};
use slipway_store::StoreError;
use slipway_store::import::mlflow::{MlflowSource, POINTS_PER_ITEM, SourceError};
use slipway_store::import::{ImportStore, Imported, Outcome};

use files::{ArtifactCopy, SourceRoot};
use importer::Importer;

/// What to import, and how to name what is written.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// MLflow's `--backend-store-uri`: `sqlite:////path/mlflow.db` or `postgresql://user:pw@host/db`.
    pub from: String,
    /// Where MLflow keeps artifacts: a folder, `file:///folder` or `s3://bucket/prefix`. Without
    /// it only metadata is copied.
    pub artifacts_from: Option<String>,
    /// The MLflow workspace to import (MLflow 3.17 and later; `default` before).
    pub workspace: String,
    /// Who the registry's audit log names for imported changes.
    pub actor: String,
    /// What our stored artifact locations start with: [`slipway_artifacts::PROXY_SCHEME`] when
    /// clients reach artifacts through the server, the artifact root's URI when they go direct.
    pub locations_root: String,
}

/// Why an import stopped. What merely could not be imported is no error: it is listed in
/// [`ImportReport::skipped`].
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// MLflow's database could not be opened or read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// `--artifacts-from` names nothing that can be read.
    #[error("{0}")]
    ArtifactsFrom(String),
    /// Writing one item failed (not a conflict: those are reported and skipped).
    #[error("importing {what}")]
    Write {
        what: String,
        #[source]
        source: StoreError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An artifact root failed, with what was being done.
    #[error("{context}")]
    Artifacts {
        context: String,
        #[source]
        source: ArtifactError,
    },
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    /// A local source folder could not be read, with what was being done.
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the reading task failed")]
    Task(#[from] tokio::task::JoinError),
}

pub type Result<T, E = ImportError> = std::result::Result<T, E>;

/// What happened to one kind of object.
#[derive(Debug, Default, Serialize)]
pub struct Counts {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub skipped: u64,
}

impl Counts {
    fn add(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Created => self.created += 1,
            Outcome::Updated => self.updated += 1,
            Outcome::Unchanged => self.unchanged += 1,
            Outcome::Conflict(_) => self.skipped += 1,
        }
    }
}

/// What an import did; its JSON is what `slipway import --json` prints.
#[derive(Debug, Default, Serialize)]
pub struct ImportReport {
    pub source: String,
    pub schema_revision: Option<String>,
    pub experiments: Counts,
    pub runs: Counts,
    pub logged_models: Counts,
    pub registered_models: Counts,
    pub model_versions: u64,
    pub metric_points: u64,
    pub artifact_files_copied: u64,
    pub artifact_bytes_copied: u64,
    /// Files the target already held with the same size.
    pub artifact_files_present: u64,
    /// Everything not imported, and why.
    pub skipped: Vec<String>,
    /// Users, roles and permissions, when an auth database was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<auth::AuthReport>,
}

/// How far an import has come.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProgressCounts {
    /// Runs in the source.
    pub runs_total: u64,
    pub runs_done: u64,
    pub metric_points: u64,
    pub artifact_bytes: u64,
}

/// Told how an import moves on, so the caller can draw it; the crate itself never prints.
pub trait Progress: Send {
    /// After each item and each copied file: often, so a caller that draws throttles itself.
    fn advanced(&mut self, now: &ProgressCounts);
    /// Once, when everything is written.
    fn finished(&mut self, now: &ProgressCounts);
}

/// A [`Progress`] that ignores everything.
pub struct NoProgress;

impl Progress for NoProgress {
    fn advanced(&mut self, _: &ProgressCounts) {}
    fn finished(&mut self, _: &ProgressCounts) {}
}

/// What the reading task sends.
enum Message {
    /// First: what the source is, for the report and the progress line.
    Start {
        revision: Option<String>,
        runs: i64,
        unmapped: Vec<String>,
    },
    Item(Box<Imported>),
}

/// Copies the MLflow tracking server `options` names into `store` and `artifacts`. Items that
/// collide with what the store holds are skipped and reported, with everything that belongs to
/// them; a failure to read the source or to write ours stops the import, and running it again
/// finishes it.
pub async fn import_mlflow(
    store: &dyn ImportStore,
    artifacts: &Artifacts,
    options: &ImportOptions,
    progress: &mut dyn Progress,
) -> Result<ImportReport> {
    let from = options.artifacts_from.as_deref().map(SourceRoot::open).transpose()?;
    let copy = ArtifactCopy::new(from, artifacts.clone(), options.locations_root.clone());
    let mut report = ImportReport { source: options.from.clone(), ..ImportReport::default() };
    if !copy.has_source() {
        report.skipped.push("artifacts: no --artifacts-from was given, only metadata was copied".into());
    }

    let (tx, mut rx) = tokio::sync::mpsc::channel::<Message>(4);
    let (uri, workspace) = (options.from.clone(), options.workspace.clone());
    let handle = tokio::runtime::Handle::current();
    let reading = tokio::task::spawn_blocking(move || -> Result<(), SourceError> {
        let source = MlflowSource::open(&uri, &workspace, &handle)?;
        let start =
            Message::Start { revision: source.revision(), runs: source.run_count()?, unmapped: source.unmapped()? };
        if tx.blocking_send(start).is_err() {
            return Ok(());
        }
        source.read_all(POINTS_PER_ITEM, |item| tx.blocking_send(Message::Item(Box::new(item))).is_ok())
    });

    let mut import = Importer::new(store, options.actor.clone(), copy, report, progress);
    while let Some(message) = rx.recv().await {
        match message {
            Message::Start { revision, runs, unmapped } => import.start(revision, runs, unmapped),
            Message::Item(item) => import.take(*item).await?,
        }
    }
    reading.await??;
    import.finish().await
}
