//! Reading an MLflow tracking database (SQLite or PostgreSQL, any schema from MLflow 2 to
//! 3.17) for `slipway import mlflow`: the items to import, in the order they depend on each
//! other, from one consistent snapshot.
//!
//! It lives in the store because it is SQL over the store's own connection layer
//! (`crate::sql::conn`), which stays private to this crate. Columns that arrived late
//! (`workspace`, `deleted_time`, logged models) are probed instead of pinning one schema
//! revision; tables with no Slipway counterpart are counted and reported.

pub mod auth;
mod items;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};

use rusqlite::types::Value;
use slipway_types::{KeyValue, Metric};

use crate::import::Imported;
use crate::sql::conn::{self, Connection, PgSession, Row, params_from_iter};

/// Tables whose rows become Slipway objects (or follow from them, as `latest_metrics` does, or
/// describe the database itself).
const MAPPED: [&str; 21] = [
    "alembic_version",
    "workspaces",
    "experiments",
    "experiment_tags",
    "runs",
    "tags",
    "params",
    "metrics",
    "latest_metrics",
    "datasets",
    "inputs",
    "input_tags",
    "logged_models",
    "logged_model_params",
    "logged_model_tags",
    "logged_model_metrics",
    "registered_models",
    "registered_model_tags",
    "model_versions",
    "model_version_tags",
    "registered_model_aliases",
];

/// MLflow stores a logged model's status as its proto number.
const LOGGED_MODEL_STATUSES: [&str; 4] =
    ["LOGGED_MODEL_STATUS_UNSPECIFIED", "LOGGED_MODEL_PENDING", "LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED"];

/// Metric points per item: bounds the memory a long history takes on both sides of the
/// channel, and the size of one write transaction.
pub const POINTS_PER_ITEM: usize = 100_000;

/// A deleted version's source and run, as MLflow overwrites them.
const REDACTED: [&str; 2] = ["REDACTED-SOURCE-PATH", "REDACTED-RUN-ID"];

/// Why the MLflow database could not be read: what was being done, and beneath it the
/// database's own error where there is one.
#[derive(Debug, thiserror::Error)]
#[error("{context}")]
pub struct SourceError {
    context: String,
    #[source]
    cause: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl SourceError {
    fn new(context: impl Into<String>) -> Self {
        SourceError { context: context.into(), cause: None }
    }
}

pub type Result<T, E = SourceError> = std::result::Result<T, E>;

/// Names what was being done when a call below failed, keeping the failure as the cause.
trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| SourceError { context: what(), cause: Some(Box::new(e)) })
    }
}

/// The source database, inside a read-only snapshot transaction.
enum Database {
    Sqlite(rusqlite::Connection),
    Postgres(PgSession),
}

impl Database {
    /// See [`MlflowSource::open`].
    fn open(uri: &str, runtime: &tokio::runtime::Handle) -> Result<Self> {
        if let Some(path) = uri.strip_prefix("sqlite:///") {
            let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let db = rusqlite::Connection::open_with_flags(path, flags)
                .context(|| format!("opening the MLflow database {path}"))?;
            db.execute_batch("BEGIN").context(|| "starting a read snapshot".into())?;
            return Ok(Database::Sqlite(db));
        }
        let local = uri.strip_prefix("file://").unwrap_or(uri);
        if std::path::Path::new(local).is_dir() {
            return Err(SourceError::new(format!(
                "'{uri}' is an MLflow file store (mlruns), not a database: convert it first with \
                 `mlflow migrate-filestore --source <folder holding mlruns> --target sqlite:///mlflow.db`, then \
                 import sqlite:///mlflow.db with --artifacts-from <the mlruns folder>"
            )));
        }
        let unsupported =
            || SourceError::new(format!("unsupported MLflow backend '{uri}': expected sqlite:///… or postgresql://…"));
        let (scheme, rest) = uri.split_once("://").ok_or_else(unsupported)?;
        if scheme != "postgresql" && !scheme.starts_with("postgresql+") && scheme != "postgres" {
            return Err(unsupported());
        }
        let config: tokio_postgres::Config =
            format!("postgresql://{rest}").parse().context(|| format!("parsing {scheme}://…"))?;
        let (client, connection) = runtime
            .block_on(config.connect(tokio_postgres::NoTls))
            .context(|| "connecting to the MLflow PostgreSQL database".into())?;
        runtime.spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!("MLflow database connection: {e}");
            }
        });
        runtime
            .block_on(client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"))
            .context(|| "starting a read snapshot".into())?;
        Ok(Database::Postgres(PgSession::new(client, runtime.clone())))
    }
}

/// An MLflow tracking database open for reading one workspace, its tables' columns probed.
pub struct MlflowSource {
    db: Database,
    /// Column names per table.
    tables: HashMap<String, HashSet<String>>,
    workspace: String,
}

/// The rows of a query, mapped.
fn rows<T>(conn: &Connection, sql: &str, args: Vec<Value>, f: impl FnMut(&Row) -> conn::Result<T>) -> Result<Vec<T>> {
    let context = || format!("reading the MLflow database: {sql}");
    let mut stmt = conn.prepare(sql).context(context)?;
    let out = stmt.query_map(params_from_iter(args), f).context(context)?.collect::<conn::Result<Vec<T>>>();
    out.context(context)
}

impl MlflowSource {
    /// Opens `sqlite:///relative.db`, `sqlite:////absolute.db` or `postgresql[+driver]://…` in
    /// one read snapshot, to read `workspace` (MLflow 3.17's workspaces; `default` before).
    /// Must be called off the async runtime's threads: PostgreSQL blocks on `runtime`.
    pub fn open(uri: &str, workspace: &str, runtime: &tokio::runtime::Handle) -> Result<Self> {
        let db = Database::open(uri, runtime)?;
        let conn = match &db {
            Database::Sqlite(db) => Connection::Sqlite(db),
            Database::Postgres(s) => Connection::Postgres(s),
        };
        let columns = if conn.is_postgres() {
            rows(
                &conn,
                "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()",
                vec![],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
            )?
        } else {
            rows(
                &conn,
                "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p WHERE m.type = 'table'",
                vec![],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
            )?
        };
        let mut tables: HashMap<String, HashSet<String>> = HashMap::new();
        for (table, column) in columns {
            tables.entry(table).or_default().insert(column);
        }
        if !tables.contains_key("experiments") || !tables.contains_key("runs") {
            return Err(SourceError::new("this database has no MLflow tracking tables (experiments, runs)"));
        }
        if tables.get("runs").is_some_and(|c| c.contains("run_key")) {
            return Err(SourceError::new("this is a Slipway database, not an MLflow one: nothing to import"));
        }
        Ok(Self { db, tables, workspace: workspace.to_string() })
    }

    fn conn(&self) -> Connection<'_> {
        match &self.db {
            Database::Sqlite(db) => Connection::Sqlite(db),
            Database::Postgres(s) => Connection::Postgres(s),
        }
    }

    fn has(&self, table: &str, column: &str) -> bool {
        self.tables.get(table).is_some_and(|c| c.contains(column))
    }

    fn has_table(&self, table: &str) -> bool {
        self.tables.contains_key(table)
    }

    /// ` AND workspace = ?n` where the table has workspaces, with its argument pushed.
    fn in_workspace(&self, table: &str, n: usize, args: &mut Vec<Value>) -> String {
        if self.has(table, "workspace") {
            args.push(text(&self.workspace));
            format!(" AND workspace = ?{n}")
        } else {
            String::new()
        }
    }

    /// The schema revision, for the report.
    pub fn revision(&self) -> Option<String> {
        if !self.has_table("alembic_version") {
            return None;
        }
        rows(&self.conn(), "SELECT version_num FROM alembic_version", vec![], |r| r.get(0)).ok()?.into_iter().next()
    }

    /// Rows of tables Slipway has nothing for, and objects of other workspaces.
    pub fn unmapped(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut names: Vec<&String> = self.tables.keys().filter(|t| !MAPPED.contains(&t.as_str())).collect();
        names.sort();
        for table in names {
            // The name comes from the source's catalog: quoted as an identifier, whatever it holds.
            let n = self.count(&format!("SELECT count(*) FROM \"{}\"", table.replace('"', "\"\"")), vec![])?;
            if n > 0 {
                let rows = if n == 1 { "row" } else { "rows" };
                out.push(format!("{n} {rows} of table {table}: Slipway has no counterpart"));
            }
        }
        for table in ["experiments", "registered_models"] {
            if self.has(table, "workspace") {
                let n = self.count(
                    &format!("SELECT count(*) FROM {table} WHERE workspace <> ?1"),
                    vec![text(&self.workspace)],
                )?;
                if n > 0 {
                    out.push(format!("{n} {table} of other workspaces than '{}'", self.workspace));
                }
            }
        }
        Ok(out)
    }

    fn count(&self, sql: &str, args: Vec<Value>) -> Result<i64> {
        Ok(rows(&self.conn(), sql, args, |r| r.get(0))?.into_iter().next().unwrap_or(0))
    }

    /// Runs in the source, for the progress line.
    pub fn run_count(&self) -> Result<i64> {
        self.count("SELECT count(*) FROM runs", vec![])
    }

    /// Every item of the source in import order: each experiment, its runs and its logged models,
    /// then the registry; at most `points_per_item` metric points in one item. `send` returns false
    /// when the importer stopped listening.
    pub fn read_all(&self, points_per_item: usize, mut send: impl FnMut(Imported) -> bool) -> Result<()> {
        for experiment in self.experiments()? {
            let id = experiment.id;
            if !send(Imported::Experiment(experiment)) {
                return Ok(());
            }
            for run_id in self.run_ids(id)? {
                // The run travels with the first part of its history, the rest follows it.
                let mut run = Some(self.run(&run_id)?);
                let mut listening = true;
                self.metric_parts(&run_id, points_per_item, |metrics| {
                    listening = match run.take() {
                        Some(mut run) => {
                            run.metrics = metrics;
                            send(Imported::Run(Box::new(run)))
                        }
                        None => send(Imported::RunMetrics { run_id: run_id.clone(), metrics }),
                    };
                    listening
                })?;
                if let Some(run) = run {
                    listening = send(Imported::Run(Box::new(run)));
                }
                if !listening {
                    return Ok(());
                }
            }
            for model in self.logged_models(id)? {
                if !send(Imported::LoggedModel(model)) {
                    return Ok(());
                }
            }
        }
        for model in self.registered_models()? {
            if !send(Imported::RegisteredModel(model)) {
                return Ok(());
            }
        }
        Ok(())
    }
}

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

/// A metric point as MLflow stores it: NaN as value 0 with `is_nan`.
fn point(r: &Row) -> conn::Result<Metric> {
    let is_nan = r.get::<_, Option<i64>>(4)?.unwrap_or(0) != 0;
    Ok(Metric {
        key: r.get(0)?,
        value: if is_nan { f64::NAN } else { r.get::<_, Option<f64>>(1)?.unwrap_or(f64::NAN) },
        timestamp: r.get::<_, Option<i64>>(2)?.unwrap_or(0),
        step: r.get::<_, Option<i64>>(3)?.unwrap_or(0),
        dataset_name: None,
        dataset_digest: None,
        model_id: None,
        run_id: None,
    })
}

fn key_value(r: &Row) -> conn::Result<KeyValue> {
    Ok(KeyValue { key: r.get(0)?, value: r.get::<_, Option<String>>(1)?.unwrap_or_default() })
}
