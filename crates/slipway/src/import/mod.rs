//! `slipway import mlflow`: copies an MLflow tracking server's database and artifacts into
//! the configured store, keeping every id.
//!
//! A blocking task reads the source (one snapshot transaction) and hands items, in the order
//! they depend on each other, through a short channel to the writer, which upserts each one in
//! its own transaction ([`ImportStore`]) and copies its artifacts. Everything is upserted by id,
//! so an interrupted import is finished by running it again, and a repeated one reports every
//! item unchanged and copies no file twice.

mod files;
mod mlflow;

use std::collections::{HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Serialize;
use slipway_store::import::{Imported, Outcome};

use crate::server::{Store, StoreArgs, open_store};
use files::{ArtifactCopy, SourceRoot, Tree};

#[derive(Args)]
pub struct ImportArgs {
    #[command(subcommand)]
    source: Source,
}

#[derive(Subcommand)]
enum Source {
    /// Copy an MLflow tracking server (its database and artifact root) into this store.
    Mlflow(MlflowArgs),
}

#[derive(Args)]
struct MlflowArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// MLflow's --backend-store-uri: sqlite:////path/mlflow.db or postgresql://user:pw@host/db.
    #[arg(long = "from", value_name = "URI")]
    from: String,
    /// Where MLflow keeps artifacts: its --artifacts-destination (a folder or s3://bucket/prefix),
    /// or the folder its file:// artifact locations point into. Without it only metadata is copied.
    #[arg(long, value_name = "DIR|S3_URI")]
    artifacts_from: Option<String>,
    /// The MLflow workspace to import (MLflow 3.17 and later).
    #[arg(long, default_value = "default")]
    workspace: String,
    /// Who the registry's audit log names for imported changes.
    #[arg(long, default_value = "import")]
    actor: String,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// What happened to one kind of object.
#[derive(Debug, Default, Serialize)]
struct Counts {
    created: u64,
    updated: u64,
    unchanged: u64,
    skipped: u64,
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

#[derive(Debug, Default, Serialize)]
struct Report {
    source: String,
    schema_revision: Option<String>,
    experiments: Counts,
    runs: Counts,
    logged_models: Counts,
    registered_models: Counts,
    model_versions: u64,
    metric_points: u64,
    artifact_files_copied: u64,
    artifact_bytes_copied: u64,
    /// Files the target already held with the same size.
    artifact_files_present: u64,
    /// Everything not imported, and why.
    skipped: Vec<String>,
}

pub fn run(args: ImportArgs) -> anyhow::Result<()> {
    let Source::Mlflow(args) = args.source;
    let config = args.store.config()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let report = runtime.block_on(import(&config, &args))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
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

async fn import(config: &crate::config::Config, args: &MlflowArgs) -> anyhow::Result<Report> {
    let (store, ours) = open_store(config).await?;
    let root =
        if config.direct_artifacts() { ours.uri().to_string() } else { slipway_server::artifacts::SCHEME.into() };
    let from = args.artifacts_from.as_deref().map(SourceRoot::open).transpose()?;
    let artifacts = ArtifactCopy { from, ours, root, present: HashMap::new() };
    let mut report = Report { source: args.from.clone(), ..Report::default() };
    if artifacts.from.is_none() {
        report.skipped.push("artifacts: no --artifacts-from was given, only metadata was copied".into());
    }

    let (tx, mut rx) = tokio::sync::mpsc::channel::<Message>(4);
    let (uri, workspace) = (args.from.clone(), args.workspace.clone());
    let handle = tokio::runtime::Handle::current();
    let reading = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let db = mlflow::Database::open(&uri, &handle)?;
        let reader = mlflow::Reader::new(&db, &workspace)?;
        let start =
            Message::Start { revision: reader.revision(), runs: reader.run_count()?, unmapped: reader.unmapped()? };
        if tx.blocking_send(start).is_err() {
            return Ok(());
        }
        mlflow::read_all(&reader, mlflow::POINTS_PER_ITEM, |item| {
            tx.blocking_send(Message::Item(Box::new(item))).is_ok()
        })
    });

    let mut import = Importer {
        store,
        actor: args.actor.clone(),
        artifacts,
        report,
        progress: Progress::new(),
        locations: Vec::new(),
        last_run: None,
        refused_experiments: HashSet::new(),
    };
    while let Some(message) = rx.recv().await {
        match message {
            Message::Start { revision, runs, unmapped } => {
                import.report.schema_revision = revision;
                import.report.skipped.extend(unmapped);
                import.progress.runs_total = runs;
            }
            Message::Item(item) => import.take(*item).await?,
        }
    }
    reading.await.context("the reading task failed")??;
    import.finish().await
}

/// The writing side: items in, report out.
struct Importer {
    store: Arc<dyn Store>,
    actor: String,
    artifacts: ArtifactCopy,
    report: Report,
    progress: Progress,
    /// Versions' storage locations, copied at the end (most lie inside a run or logged model
    /// copied already).
    locations: Vec<String>,
    /// What the last run's first part did, for the parts of its history that follow.
    last_run: Option<Outcome>,
    /// Source experiments refused here: their runs and logged models are refused with them,
    /// or they would land in whatever holds that id here.
    refused_experiments: HashSet<i64>,
}

impl Importer {
    async fn take(&mut self, mut item: Imported) -> anyhow::Result<()> {
        let tally = Tally::of(&item);
        if let Some(why) = self.refused_parent(&item) {
            return self.record(tally, Outcome::Conflict(why), Tree::None).await;
        }
        let tree = self.artifacts.rewrite(&mut item, &mut self.locations);
        let outcome =
            self.store.import(item, self.actor.clone()).await.with_context(|| format!("importing {}", tally.what))?;
        self.record(tally, outcome, tree).await
    }

    fn refused_parent(&self, item: &Imported) -> Option<String> {
        let refused = |id: &i64| self.refused_experiments.contains(id);
        match item {
            Imported::Run(r) if refused(&r.experiment_id) => {
                Some(format!("its experiment {} was skipped", r.experiment_id))
            }
            Imported::LoggedModel(m) if refused(&m.experiment_id) => {
                Some(format!("its experiment {} was skipped", m.experiment_id))
            }
            Imported::RunMetrics { .. } if matches!(self.last_run, Some(Outcome::Conflict(_))) => {
                Some("its run was skipped".into())
            }
            _ => None,
        }
    }

    async fn record(&mut self, tally: Tally, outcome: Outcome, tree: Tree) -> anyhow::Result<()> {
        let report = &mut self.report;
        match (tally.kind, &outcome) {
            // A later part of the run just counted (a refused run was reported already).
            (Kind::Points, Outcome::Conflict(_)) => return Ok(()),
            (Kind::Points, _) => {
                // New points make an unchanged run an updated one.
                if outcome == Outcome::Updated && self.last_run == Some(Outcome::Unchanged) {
                    report.runs.unchanged -= 1;
                    report.runs.updated += 1;
                    self.last_run = Some(Outcome::Updated);
                }
                report.metric_points += tally.points;
                self.progress.points = report.metric_points;
                self.progress.draw(false);
                return Ok(());
            }
            (Kind::Experiment(id), Outcome::Conflict(_)) => {
                self.refused_experiments.insert(id);
            }
            (Kind::Run, _) => {
                self.last_run = Some(outcome.clone());
                self.progress.runs_done += 1;
            }
            _ => {}
        }
        report.counts(tally.kind).add(&outcome);
        if let Outcome::Conflict(why) = &outcome {
            report.skipped.push(format!("{}: {why}", tally.what));
            return Ok(());
        }
        report.metric_points += tally.points;
        report.model_versions += tally.versions;
        match tree {
            Tree::Copy(location) => self.artifacts.copy_tree(&location, report, &mut self.progress).await?,
            Tree::Elsewhere(location) => {
                report.skipped.push(format!("artifacts of {} at {location}: not under --artifacts-from", tally.what))
            }
            Tree::None => {}
        }
        self.progress.points = report.metric_points;
        self.progress.draw(false);
        Ok(())
    }

    async fn finish(mut self) -> anyhow::Result<Report> {
        self.store.finish_import().await?;
        for location in std::mem::take(&mut self.locations) {
            self.artifacts.copy_tree(&location, &mut self.report, &mut self.progress).await?;
        }
        self.progress.draw(true);
        Ok(self.report)
    }
}

#[derive(Clone, Copy)]
enum Kind {
    /// With the source's id.
    Experiment(i64),
    Run,
    /// More of the last run's history.
    Points,
    LoggedModel,
    RegisteredModel,
}

/// What an item adds to the report once imported.
struct Tally {
    kind: Kind,
    what: String,
    points: u64,
    versions: u64,
}

impl Tally {
    fn of(item: &Imported) -> Self {
        let tally = |kind, what, points, versions| Tally { kind, what, points, versions };
        match item {
            Imported::Experiment(e) => tally(Kind::Experiment(e.id), format!("experiment {} '{}'", e.id, e.name), 0, 0),
            Imported::Run(r) => tally(Kind::Run, format!("run {}", r.run_id), r.metrics.len() as u64, 0),
            Imported::RunMetrics { run_id, metrics } => {
                tally(Kind::Points, format!("metric history of run {run_id}"), metrics.len() as u64, 0)
            }
            Imported::LoggedModel(m) => tally(Kind::LoggedModel, format!("logged model {}", m.model_id), 0, 0),
            Imported::RegisteredModel(m) => {
                tally(Kind::RegisteredModel, format!("registered model '{}'", m.name), 0, m.versions.len() as u64)
            }
        }
    }
}

impl Report {
    fn counts(&mut self, kind: Kind) -> &mut Counts {
        match kind {
            Kind::Experiment(_) => &mut self.experiments,
            Kind::Run | Kind::Points => &mut self.runs,
            Kind::LoggedModel => &mut self.logged_models,
            Kind::RegisteredModel => &mut self.registered_models,
        }
    }
}

/// One stderr line, redrawn at most 10 times a second, when stderr is a terminal.
struct Progress {
    runs_total: i64,
    runs_done: u64,
    points: u64,
    bytes: u64,
    drawn: Option<Instant>,
    enabled: bool,
}

impl Progress {
    fn new() -> Self {
        Progress {
            runs_total: 0,
            runs_done: 0,
            points: 0,
            bytes: 0,
            drawn: None,
            enabled: std::io::stderr().is_terminal(),
        }
    }

    fn draw(&mut self, last: bool) {
        if !self.enabled || (!last && self.drawn.is_some_and(|t| t.elapsed() < Duration::from_millis(100))) {
            return;
        }
        self.drawn = Some(Instant::now());
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\rimporting: runs {}/{}  metric points {}  artifacts {:.1} MB{}",
            self.runs_done,
            self.runs_total,
            self.points,
            self.bytes as f64 / 1e6,
            if last { "\n" } else { "" }
        );
        let _ = err.flush();
    }
}

fn print_report(r: &Report) {
    println!("imported {} (schema {})", r.source, r.schema_revision.as_deref().unwrap_or("unknown"));
    println!("{:<18} {:>8} {:>8} {:>10} {:>8}", "", "created", "updated", "unchanged", "skipped");
    for (name, c) in [
        ("experiments", &r.experiments),
        ("runs", &r.runs),
        ("logged models", &r.logged_models),
        ("registered models", &r.registered_models),
    ] {
        println!("{name:<18} {:>8} {:>8} {:>10} {:>8}", c.created, c.updated, c.unchanged, c.skipped);
    }
    println!("model versions: {}, metric points: {}", r.model_versions, r.metric_points);
    println!(
        "artifacts: {} files copied ({} bytes), {} already present",
        r.artifact_files_copied, r.artifact_bytes_copied, r.artifact_files_present
    );
    if !r.skipped.is_empty() {
        println!("skipped:");
        for s in &r.skipped {
            println!("  {s}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn the_runs_of_a_refused_experiment_are_refused_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("mlflow.db");
        mlflow::tests::mlflow_db(&source);
        rusqlite::Connection::open(&source)
            .unwrap()
            .execute_batch(
                "INSERT INTO experiments VALUES (1, 'theirs', 'mlflow-artifacts:/1', 'active', 3, 4);
                 INSERT INTO runs VALUES ('cccc', 'r', 'bo', 'FINISHED', 8, 9, 'active', 'mlflow-artifacts:/1/cccc/artifacts', 1);
                 INSERT INTO metrics VALUES ('loss', 1.0, 1, 1, 0, 'cccc');",
            )
            .unwrap();
        let config = crate::config::Config { data_dir: dir.path().join("target"), ..Default::default() };
        {
            // Slipway already has an experiment 1 of its own.
            let (store, _) = open_store(&config).await.unwrap();
            assert_eq!(store.create_experiment("mine".into(), None, vec![]).await.unwrap(), "1");
            store.close().await;
        }
        let args = MlflowArgs {
            store: StoreArgs::default(),
            from: format!("sqlite:///{}", source.display()),
            artifacts_from: None,
            workspace: "default".into(),
            actor: "import".into(),
            json: true,
        };
        let report = import(&config, &args).await.unwrap();
        assert_eq!((report.experiments.updated, report.experiments.skipped), (1, 1), "{report:?}");
        assert_eq!((report.runs.created, report.runs.skipped), (2, 1), "{report:?}");
        assert!(report.skipped.iter().any(|s| s.contains("run cccc: its experiment 1 was skipped")), "{report:?}");
        let (store, _) = open_store(&config).await.unwrap();
        let mine = store.search_runs(vec!["1".into()], Default::default()).await.unwrap();
        assert!(mine.items.is_empty(), "the source's runs must not land in our experiment 1");
        assert_eq!(store.get_experiment("1".into()).await.unwrap().name, "mine");
    }
}
