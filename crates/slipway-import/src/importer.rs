//! The writing side of an import: items in through [`ImportStore`], refusals of the children
//! of what was refused, artifacts copied after their item, the report out.

use std::collections::HashSet;

use slipway_store::import::{ImportStore, Imported, Outcome};

use crate::files::{ArtifactCopy, Tree};
use crate::{ImportError, ImportReport, Progress, ProgressCounts, Result};

/// The progress counts and whom to tell when they move.
pub(crate) struct Meter<'p> {
    pub(crate) counts: ProgressCounts,
    sink: &'p mut dyn Progress,
}

impl<'p> Meter<'p> {
    pub(crate) fn new(sink: &'p mut dyn Progress) -> Self {
        Meter { counts: ProgressCounts::default(), sink }
    }

    pub(crate) fn advanced(&mut self) {
        self.sink.advanced(&self.counts);
    }

    fn finished(&mut self) {
        self.sink.finished(&self.counts);
    }
}

pub(crate) struct Importer<'a> {
    store: &'a dyn ImportStore,
    actor: String,
    artifacts: ArtifactCopy,
    report: ImportReport,
    progress: Meter<'a>,
    /// Versions' storage locations, copied at the end (most lie inside a run or logged model
    /// copied already).
    locations: Vec<String>,
    /// What the last run's first part did, for the parts of its history that follow.
    last_run: Option<Outcome>,
    /// Source experiments refused here: their runs and logged models are refused with them,
    /// or they would land in whatever holds that id here.
    refused_experiments: HashSet<i64>,
}

impl<'a> Importer<'a> {
    pub(crate) fn new(
        store: &'a dyn ImportStore,
        actor: String,
        artifacts: ArtifactCopy,
        report: ImportReport,
        progress: &'a mut dyn Progress,
    ) -> Self {
        Importer {
            store,
            actor,
            artifacts,
            report,
            progress: Meter::new(progress),
            locations: Vec::new(),
            last_run: None,
            refused_experiments: HashSet::new(),
        }
    }

    /// What the reader found before the first item.
    pub(crate) fn start(&mut self, revision: Option<String>, runs: i64, unmapped: Vec<String>) {
        self.report.schema_revision = revision;
        self.report.skipped.extend(unmapped);
        self.progress.counts.runs_total = u64::try_from(runs).unwrap_or(0);
    }

    pub(crate) async fn take(&mut self, mut item: Imported) -> Result<()> {
        let tally = Tally::of(&item);
        if let Some(why) = self.refused_parent(&item) {
            return self.record(tally, Outcome::Conflict(why), Tree::None).await;
        }
        let tree = self.artifacts.rewrite(&mut item, &mut self.locations);
        let outcome = match self.store.import(item, self.actor.clone()).await {
            Ok(outcome) => outcome,
            Err(source) => return Err(ImportError::Write { what: tally.what, source }),
        };
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

    async fn record(&mut self, tally: Tally, outcome: Outcome, tree: Tree) -> Result<()> {
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
                self.progress.counts.metric_points = report.metric_points;
                self.progress.advanced();
                return Ok(());
            }
            (Kind::Experiment(id), Outcome::Conflict(_)) => {
                self.refused_experiments.insert(id);
            }
            (Kind::Run, _) => {
                self.last_run = Some(outcome.clone());
                self.progress.counts.runs_done += 1;
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
        self.progress.counts.metric_points = report.metric_points;
        self.progress.advanced();
        Ok(())
    }

    pub(crate) async fn finish(mut self) -> Result<ImportReport> {
        self.store.finish_import().await?;
        for location in std::mem::take(&mut self.locations) {
            self.artifacts.copy_tree(&location, &mut self.report, &mut self.progress).await?;
        }
        self.progress.finished();
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

impl ImportReport {
    fn counts(&mut self, kind: Kind) -> &mut crate::Counts {
        match kind {
            Kind::Experiment(_) => &mut self.experiments,
            Kind::Run | Kind::Points => &mut self.runs,
            Kind::LoggedModel => &mut self.logged_models,
            Kind::RegisteredModel => &mut self.registered_models,
        }
    }
}

#[cfg(test)]
mod tests {
    use slipway_artifacts::{Artifacts, PROXY_SCHEME};
    use slipway_store::MetadataStore;
    use slipway_store::sqlite::SqliteStore;

    use crate::{ImportOptions, NoProgress, import_mlflow};

    /// An MLflow 2-era database (the tables the reader requires) with experiments 0 and 1, and
    /// a run in each.
    fn mlflow_db(path: &std::path::Path) {
        rusqlite::Connection::open(path)
            .unwrap()
            .execute_batch(
                "CREATE TABLE experiments (experiment_id INTEGER PRIMARY KEY, name TEXT, artifact_location TEXT,
                                           lifecycle_stage TEXT, creation_time INTEGER, last_update_time INTEGER);
                 CREATE TABLE experiment_tags (key TEXT, value TEXT, experiment_id INTEGER);
                 CREATE TABLE runs (run_uuid TEXT PRIMARY KEY, name TEXT, user_id TEXT, status TEXT,
                                    start_time INTEGER, end_time INTEGER, lifecycle_stage TEXT, artifact_uri TEXT,
                                    experiment_id INTEGER);
                 CREATE TABLE params (key TEXT, value TEXT, run_uuid TEXT);
                 CREATE TABLE tags (key TEXT, value TEXT, run_uuid TEXT);
                 CREATE TABLE metrics (key TEXT, value REAL, timestamp INTEGER, step INTEGER, is_nan BOOLEAN,
                                       run_uuid TEXT);
                 INSERT INTO experiments VALUES (0, 'Default', 'mlflow-artifacts:/0', 'active', 1, 2);
                 INSERT INTO experiments VALUES (1, 'theirs', 'mlflow-artifacts:/1', 'active', 3, 4);
                 INSERT INTO runs VALUES ('aaaa', 'a', 'ana', 'FINISHED', 5, 6, 'active', 'mlflow-artifacts:/0/aaaa/artifacts', 0);
                 INSERT INTO runs VALUES ('cccc', 'r', 'bo', 'FINISHED', 8, 9, 'active', 'mlflow-artifacts:/1/cccc/artifacts', 1);
                 INSERT INTO metrics VALUES ('loss', 1.0, 1, 1, 0, 'aaaa');
                 INSERT INTO metrics VALUES ('loss', 1.0, 1, 1, 0, 'cccc');",
            )
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_runs_of_a_refused_experiment_are_refused_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("mlflow.db");
        mlflow_db(&source);
        let store = SqliteStore::open(&dir.path().join("slipway.db"), PROXY_SCHEME, 1).unwrap();
        // Slipway already has an experiment 1 of its own.
        assert_eq!(store.create_experiment("mine".into(), None, vec![]).await.unwrap(), "1");
        let artifacts = Artifacts::local(dir.path().join("artifacts")).unwrap();
        let options = ImportOptions {
            from: format!("sqlite:///{}", source.display()),
            artifacts_from: None,
            workspace: "default".into(),
            actor: "import".into(),
            locations_root: PROXY_SCHEME.into(),
        };
        let report = import_mlflow(&store, &artifacts, &options, &mut NoProgress).await.unwrap();
        assert_eq!((report.experiments.updated, report.experiments.skipped), (1, 1), "{report:?}");
        assert_eq!((report.runs.created, report.runs.skipped), (1, 1), "{report:?}");
        assert_eq!(report.metric_points, 1, "{report:?}");
        assert!(report.skipped.iter().any(|s| s.contains("run cccc: its experiment 1 was skipped")), "{report:?}");
        let mine = store.search_runs(vec!["1".into()], Default::default()).await.unwrap();
        assert!(mine.items.is_empty(), "the source's runs must not land in our experiment 1");
        assert_eq!(store.get_experiment("1".into()).await.unwrap().name, "mine");
        store.close().await;
    }
}
