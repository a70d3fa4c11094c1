//! The reader on hand-made MLflow databases.

use super::*;

/// The tables of an MLflow 2-era database that the reader needs (no workspaces, no logged
/// models, no inputs: probed, not required).
fn mlflow_db(path: &std::path::Path) {
    let db = rusqlite::Connection::open(path).unwrap();
    db.execute_batch(
        "CREATE TABLE experiments (experiment_id INTEGER PRIMARY KEY, name TEXT, artifact_location TEXT,
                                   lifecycle_stage TEXT, creation_time INTEGER, last_update_time INTEGER);
         CREATE TABLE experiment_tags (key TEXT, value TEXT, experiment_id INTEGER);
         CREATE TABLE runs (run_uuid TEXT PRIMARY KEY, name TEXT, user_id TEXT, status TEXT, start_time INTEGER,
                            end_time INTEGER, lifecycle_stage TEXT, artifact_uri TEXT, experiment_id INTEGER);
         CREATE TABLE params (key TEXT, value TEXT, run_uuid TEXT);
         CREATE TABLE tags (key TEXT, value TEXT, run_uuid TEXT);
         CREATE TABLE metrics (key TEXT, value REAL, timestamp INTEGER, step INTEGER, is_nan BOOLEAN,
                               run_uuid TEXT);
         CREATE TABLE trace_info (request_id TEXT);
         INSERT INTO trace_info VALUES ('t1');
         CREATE TABLE \"odd \"\"name\"\"\" (x);
         INSERT INTO \"odd \"\"name\"\"\" VALUES (1), (2);
         INSERT INTO experiments VALUES (0, 'Default', 'mlflow-artifacts:/0', 'active', 1, 2);
         INSERT INTO runs VALUES ('aaaa', NULL, 'ana', 'FINISHED', 5, 6, 'active', 'mlflow-artifacts:/0/aaaa/artifacts', 0);
         INSERT INTO runs VALUES ('bbbb', 'empty', 'ana', 'FAILED', 7, NULL, 'deleted', 'mlflow-artifacts:/0/bbbb/artifacts', 0);
         INSERT INTO tags VALUES ('mlflow.runName', 'from-tag', 'aaaa');",
    )
    .unwrap();
    for step in 0..7 {
        let is_nan = step == 3;
        let value = if is_nan { 0.0 } else { step as f64 };
        db.execute(
            "INSERT INTO metrics VALUES ('loss', ?1, ?2, ?2, ?3, 'aaaa')",
            rusqlite::params![value, step, is_nan],
        )
        .unwrap();
    }
}

#[test]
fn a_long_history_comes_in_parts_after_its_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mlflow.db");
    mlflow_db(&path);
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let reader = MlflowSource::open(&format!("sqlite:///{}", path.display()), "default", rt.handle()).unwrap();
    assert_eq!(reader.revision(), None);
    assert_eq!(
        reader.unmapped().unwrap(),
        [
            "2 rows of table odd \"name\": Slipway has no counterpart",
            "1 row of table trace_info: Slipway has no counterpart"
        ]
    );
    let mut items = Vec::new();
    reader
        .read_all(3, |item| {
            items.push(match item {
                Imported::Experiment(e) => format!("experiment {}", e.id),
                Imported::Run(r) => {
                    let nan = r.metrics.iter().filter(|m| m.value.is_nan()).count();
                    format!("run {} '{}' {} points {nan} nan", r.run_id, r.name, r.metrics.len())
                }
                Imported::RunMetrics { run_id, metrics } => {
                    let nan = metrics.iter().filter(|m| m.value.is_nan()).count();
                    format!("more of {run_id}: {} points {nan} nan", metrics.len())
                }
                Imported::LoggedModel(m) => format!("logged model {}", m.model_id),
                Imported::RegisteredModel(m) => format!("registered model {}", m.name),
            });
            true
        })
        .unwrap();
    assert_eq!(
        items,
        [
            "experiment 0",
            "run aaaa 'from-tag' 3 points 0 nan",
            "more of aaaa: 3 points 1 nan",
            "more of aaaa: 1 points 0 nan",
            "run bbbb 'empty' 0 points 0 nan",
        ]
    );
    // A reader that stops listening stops reading.
    let mut taken = 0;
    reader
        .read_all(3, |_| {
            taken += 1;
            taken < 2
        })
        .unwrap();
    assert_eq!(taken, 2);
}

#[test]
fn only_sqlite_and_postgresql_sources_are_accepted() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    for uri in ["mysql://u@h/db", "file:///nowhere/mlruns", "mlruns"] {
        let err = MlflowSource::open(uri, "default", rt.handle()).err().unwrap().to_string();
        assert!(err.contains("unsupported MLflow backend"), "{uri}: {err}");
    }
    let store = tempfile::tempdir().unwrap();
    let err = MlflowSource::open(&format!("file://{}", store.path().display()), "default", rt.handle()).err().unwrap();
    assert!(err.to_string().contains("mlflow migrate-filestore"), "{err}");
}

#[test]
fn a_slipway_database_is_not_taken_for_mlflow() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::sqlite::SqliteStore::open(&dir.path().join("slipway.db"), "mlflow-artifacts:", 1);
    drop(store.unwrap());
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let uri = format!("sqlite:///{}", dir.path().join("slipway.db").display());
    let err = MlflowSource::open(&uri, "default", rt.handle()).err().unwrap().to_string();
    assert!(err.contains("Slipway database"), "{err}");
}
