//! Reading an MLflow tracking database (SQLite or PostgreSQL, any schema from MLflow 2 to
//! 3.17): the items to import, in the order they depend on each other, from one consistent
//! snapshot.
//!
//! Columns that arrived late (`workspace`, `deleted_time`, logged models) are probed instead of
//! pinning one schema revision; tables with no Slipway counterpart are counted and reported.

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use rusqlite::types::Value;
use slipway_store::import::{
    Imported, ImportedExperiment, ImportedInput, ImportedLoggedModel, ImportedModelLink, ImportedRegisteredModel,
    ImportedRun, ImportedVersion,
};
use slipway_store::sql::conn::{self, Connection, PgSession, Row, params_from_iter};
use slipway_types::{KeyValue, Metric};

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

/// An open source database, inside a read-only snapshot transaction.
pub enum Database {
    Sqlite(rusqlite::Connection),
    Postgres(PgSession),
}

impl Database {
    /// Opens `sqlite:///relative.db`, `sqlite:////absolute.db` or `postgresql[+driver]://…`.
    /// Must be called off the async runtime's threads (PostgreSQL blocks on `runtime`).
    pub fn open(uri: &str, runtime: &tokio::runtime::Handle) -> anyhow::Result<Self> {
        if let Some(path) = uri.strip_prefix("sqlite:///") {
            let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let db = rusqlite::Connection::open_with_flags(path, flags)
                .with_context(|| format!("opening the MLflow database {path}"))?;
            db.execute_batch("BEGIN").context("starting a read snapshot")?;
            return Ok(Database::Sqlite(db));
        }
        let local = uri.strip_prefix("file://").unwrap_or(uri);
        if std::path::Path::new(local).is_dir() {
            anyhow::bail!(
                "'{uri}' is an MLflow file store (mlruns), not a database: convert it first with \
                 `mlflow migrate-filestore --source <folder holding mlruns> --target sqlite:///mlflow.db`, then \
                 import sqlite:///mlflow.db with --artifacts-from <the mlruns folder>"
            );
        }
        let Some((scheme, rest)) = uri.split_once("://") else {
            anyhow::bail!("unsupported MLflow backend '{uri}': expected sqlite:///… or postgresql://…");
        };
        if scheme != "postgresql" && !scheme.starts_with("postgresql+") && scheme != "postgres" {
            anyhow::bail!("unsupported MLflow backend '{uri}': expected sqlite:///… or postgresql://…");
        }
        let config: tokio_postgres::Config =
            format!("postgresql://{rest}").parse().with_context(|| format!("parsing {scheme}://…"))?;
        let (client, connection) = runtime
            .block_on(config.connect(tokio_postgres::NoTls))
            .context("connecting to the MLflow PostgreSQL database")?;
        runtime.spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!("MLflow database connection: {e}");
            }
        });
        runtime
            .block_on(client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"))
            .context("starting a read snapshot")?;
        Ok(Database::Postgres(PgSession::new(client, runtime.clone())))
    }

    fn conn(&self) -> Connection<'_> {
        match self {
            Database::Sqlite(db) => Connection::Sqlite(db),
            Database::Postgres(s) => Connection::Postgres(s),
        }
    }
}

/// What the source holds, read item by item.
pub struct Reader<'d> {
    conn: Connection<'d>,
    /// Column names per table.
    tables: HashMap<String, HashSet<String>>,
    workspace: String,
}

/// The rows of a query, mapped.
fn rows<T>(
    conn: &Connection,
    sql: &str,
    args: Vec<Value>,
    f: impl FnMut(&Row) -> conn::Result<T>,
) -> anyhow::Result<Vec<T>> {
    let mut stmt = conn.prepare(sql).with_context(|| format!("reading the MLflow database: {sql}"))?;
    let out = stmt.query_map(params_from_iter(args), f)?.collect::<conn::Result<Vec<T>>>();
    out.with_context(|| format!("reading the MLflow database: {sql}"))
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

impl<'d> Reader<'d> {
    pub fn new(db: &'d Database, workspace: &str) -> anyhow::Result<Self> {
        let conn = db.conn();
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
            anyhow::bail!("this database has no MLflow tracking tables (experiments, runs)");
        }
        if tables.get("runs").is_some_and(|c| c.contains("run_key")) {
            anyhow::bail!("this is a Slipway database, not an MLflow one: nothing to import");
        }
        Ok(Self { conn, tables, workspace: workspace.to_string() })
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
        rows(&self.conn, "SELECT version_num FROM alembic_version", vec![], |r| r.get(0)).ok()?.into_iter().next()
    }

    /// Rows of tables Slipway has nothing for, and objects of other workspaces.
    pub fn unmapped(&self) -> anyhow::Result<Vec<String>> {
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

    fn count(&self, sql: &str, args: Vec<Value>) -> anyhow::Result<i64> {
        Ok(rows(&self.conn, sql, args, |r| r.get(0))?.into_iter().next().unwrap_or(0))
    }

    /// Runs in the source, for the progress line.
    pub fn run_count(&self) -> anyhow::Result<i64> {
        self.count("SELECT count(*) FROM runs", vec![])
    }

    pub fn experiments(&self) -> anyhow::Result<Vec<ImportedExperiment>> {
        let mut args = Vec::new();
        let scope = self.in_workspace("experiments", 1, &mut args);
        let mut experiments = rows(
            &self.conn,
            &format!(
                "SELECT experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time
                 FROM experiments WHERE 1 = 1{scope} ORDER BY experiment_id"
            ),
            args,
            |r| {
                Ok(ImportedExperiment {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    artifact_location: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    lifecycle_stage: r.get::<_, Option<String>>(3)?.unwrap_or_else(|| "active".into()),
                    creation_time: r.get::<_, Option<i64>>(4)?.unwrap_or(0),
                    last_update_time: r.get::<_, Option<i64>>(5)?.unwrap_or(0),
                    tags: Vec::new(),
                })
            },
        )?;
        for e in &mut experiments {
            e.tags = rows(
                &self.conn,
                "SELECT key, value FROM experiment_tags WHERE experiment_id = ?1 ORDER BY key",
                vec![Value::Integer(e.id)],
                key_value,
            )?;
        }
        Ok(experiments)
    }

    /// The ids of an experiment's runs, oldest first.
    pub fn run_ids(&self, experiment_id: i64) -> anyhow::Result<Vec<String>> {
        rows(
            &self.conn,
            "SELECT run_uuid FROM runs WHERE experiment_id = ?1 ORDER BY start_time, run_uuid",
            vec![Value::Integer(experiment_id)],
            |r| r.get(0),
        )
    }

    pub fn run(&self, run_id: &str) -> anyhow::Result<ImportedRun> {
        let deleted_time = if self.has("runs", "deleted_time") { "deleted_time" } else { "NULL" };
        let id = || vec![text(run_id)];
        let mut run = rows(
            &self.conn,
            &format!(
                "SELECT run_uuid, experiment_id, name, user_id, status, start_time, end_time, lifecycle_stage,
                        artifact_uri, {deleted_time}
                 FROM runs WHERE run_uuid = ?1"
            ),
            id(),
            |r| {
                Ok(ImportedRun {
                    run_id: r.get(0)?,
                    experiment_id: r.get(1)?,
                    name: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    user_id: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                    status: r.get::<_, Option<String>>(4)?.unwrap_or_else(|| "FINISHED".into()),
                    start_time: r.get::<_, Option<i64>>(5)?.unwrap_or(0),
                    end_time: r.get(6)?,
                    lifecycle_stage: r.get::<_, Option<String>>(7)?.unwrap_or_else(|| "active".into()),
                    artifact_uri: r.get::<_, Option<String>>(8)?.unwrap_or_default(),
                    deleted_time: r.get(9)?,
                    params: Vec::new(),
                    tags: Vec::new(),
                    metrics: Vec::new(),
                    inputs: Vec::new(),
                    model_links: Vec::new(),
                })
            },
        )?
        .pop()
        .with_context(|| format!("run {run_id} disappeared from the snapshot"))?;
        run.params = rows(&self.conn, "SELECT key, value FROM params WHERE run_uuid = ?1", id(), key_value)?;
        run.tags = rows(&self.conn, "SELECT key, value FROM tags WHERE run_uuid = ?1", id(), key_value)?;
        if run.name.is_empty()
            && let Some(tag) = run.tags.iter().find(|t| t.key == "mlflow.runName")
        {
            run.name = tag.value.clone();
        }
        if self.has_table("inputs") && self.has_table("datasets") {
            self.read_inputs(&mut run)?;
        }
        Ok(run)
    }

    /// A run's metric history in parts of at most `n` points, each handed to `f` as it is read
    /// (a cursor, not one result set); stops when `f` returns false.
    fn metric_parts(&self, run_id: &str, n: usize, mut f: impl FnMut(Vec<Metric>) -> bool) -> anyhow::Result<()> {
        const SELECT: &str = "SELECT key, value, timestamp, step, is_nan FROM metrics WHERE run_uuid = ";
        let context = || format!("reading the metric history of run {run_id}");
        if self.conn.is_postgres() {
            // A cursor is declared with its query as text; run ids are MLflow's hex uuids.
            anyhow::ensure!(run_id.chars().all(|c| c.is_ascii_alphanumeric()), "unexpected run id '{run_id}'");
            let declare = format!("DECLARE import_points NO SCROLL CURSOR FOR {SELECT}'{run_id}'");
            self.conn.prepare(&declare)?.execute(params_from_iter(Vec::<Value>::new())).with_context(context)?;
            loop {
                let part = rows(&self.conn, &format!("FETCH FORWARD {n} FROM import_points"), vec![], point)?;
                let last = part.len() < n;
                if (!part.is_empty() && !f(part)) || last {
                    break;
                }
            }
            self.conn.prepare("CLOSE import_points")?.execute(params_from_iter(Vec::<Value>::new()))?;
            return Ok(());
        }
        let mut stmt = self.conn.prepare(&format!("{SELECT}?1")).with_context(context)?;
        let mut cursor = stmt.query([run_id]).with_context(context)?;
        let mut part = Vec::new();
        while let Some(row) = cursor.next().with_context(context)? {
            part.push(point(&row).with_context(context)?);
            if part.len() == n && !f(std::mem::take(&mut part)) {
                return Ok(());
            }
        }
        if !part.is_empty() {
            f(part);
        }
        Ok(())
    }

    fn read_inputs(&self, run: &mut ImportedRun) -> anyhow::Result<()> {
        run.inputs = rows(
            &self.conn,
            "SELECT i.input_uuid, d.dataset_uuid, d.name, d.digest, d.dataset_source_type, d.dataset_source,
                    d.dataset_schema, d.dataset_profile
             FROM inputs i JOIN datasets d ON d.dataset_uuid = i.source_id
             WHERE i.source_type = 'DATASET' AND i.destination_type = 'RUN' AND i.destination_id = ?1
             ORDER BY d.name, d.digest",
            vec![text(&run.run_id)],
            |r| {
                Ok(ImportedInput {
                    input_uuid: r.get(0)?,
                    dataset_uuid: r.get(1)?,
                    name: r.get(2)?,
                    digest: r.get(3)?,
                    source_type: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
                    source: r.get::<_, Option<String>>(5)?.unwrap_or_default(),
                    schema: r.get(6)?,
                    profile: r.get(7)?,
                    tags: Vec::new(),
                })
            },
        )?;
        if self.has_table("input_tags") {
            for input in &mut run.inputs {
                input.tags = rows(
                    &self.conn,
                    "SELECT name, value FROM input_tags WHERE input_uuid = ?1 ORDER BY name",
                    vec![text(&input.input_uuid)],
                    key_value,
                )?;
            }
        }
        let step = if self.has("inputs", "step") { "step" } else { "0" };
        run.model_links = rows(
            &self.conn,
            &format!(
                "SELECT destination_id, destination_type, {step} FROM inputs
                 WHERE source_id = ?1 AND ((source_type = 'RUN_INPUT' AND destination_type = 'MODEL_INPUT')
                                        OR (source_type = 'RUN_OUTPUT' AND destination_type = 'MODEL_OUTPUT'))
                 ORDER BY destination_id"
            ),
            vec![text(&run.run_id)],
            |r| {
                Ok(ImportedModelLink {
                    model_id: r.get(0)?,
                    output: r.get::<_, String>(1)? == "MODEL_OUTPUT",
                    step: r.get::<_, Option<i64>>(2)?.unwrap_or(0),
                })
            },
        )?;
        Ok(())
    }

    pub fn logged_models(&self, experiment_id: i64) -> anyhow::Result<Vec<ImportedLoggedModel>> {
        if !self.has_table("logged_models") {
            return Ok(Vec::new());
        }
        let mut models = rows(
            &self.conn,
            "SELECT model_id, experiment_id, name, artifact_location, creation_timestamp_ms, last_updated_timestamp_ms,
                    status, lifecycle_stage, model_type, source_run_id, status_message
             FROM logged_models WHERE experiment_id = ?1 ORDER BY creation_timestamp_ms, model_id",
            vec![Value::Integer(experiment_id)],
            |r| {
                let status = r.get::<_, Option<i64>>(6)?.unwrap_or(0);
                Ok(ImportedLoggedModel {
                    model_id: r.get(0)?,
                    experiment_id: r.get(1)?,
                    name: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    artifact_location: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                    creation_time: r.get::<_, Option<i64>>(4)?.unwrap_or(0),
                    last_updated_time: r.get::<_, Option<i64>>(5)?.unwrap_or(0),
                    status: LOGGED_MODEL_STATUSES.get(status as usize).unwrap_or(&LOGGED_MODEL_STATUSES[0]).to_string(),
                    lifecycle_stage: r.get::<_, Option<String>>(7)?.unwrap_or_else(|| "active".into()),
                    model_type: r.get(8)?,
                    source_run_id: r.get(9)?,
                    status_message: r.get(10)?,
                    params: Vec::new(),
                    tags: Vec::new(),
                    metrics: Vec::new(),
                })
            },
        )?;
        for m in &mut models {
            let id = || vec![text(&m.model_id)];
            if self.has_table("logged_model_params") {
                m.params = rows(
                    &self.conn,
                    "SELECT param_key, param_value FROM logged_model_params WHERE model_id = ?1",
                    id(),
                    key_value,
                )?;
            }
            if self.has_table("logged_model_tags") {
                m.tags = rows(
                    &self.conn,
                    "SELECT tag_key, tag_value FROM logged_model_tags WHERE model_id = ?1",
                    id(),
                    key_value,
                )?;
            }
            if self.has_table("logged_model_metrics") {
                // MLflow keeps no NaN flag here: what it stored is what its clients read.
                m.metrics = rows(
                    &self.conn,
                    "SELECT metric_name, metric_value, metric_timestamp_ms, metric_step, run_id, dataset_name,
                            dataset_digest
                     FROM logged_model_metrics WHERE model_id = ?1",
                    id(),
                    |r| {
                        Ok(Metric {
                            key: r.get(0)?,
                            value: r.get::<_, Option<f64>>(1)?.unwrap_or(f64::NAN),
                            timestamp: r.get::<_, Option<i64>>(2)?.unwrap_or(0),
                            step: r.get::<_, Option<i64>>(3)?.unwrap_or(0),
                            run_id: r.get(4)?,
                            dataset_name: r.get(5)?,
                            dataset_digest: r.get(6)?,
                            model_id: None,
                        })
                    },
                )?;
            }
        }
        Ok(models)
    }

    pub fn registered_models(&self) -> anyhow::Result<Vec<ImportedRegisteredModel>> {
        if !self.has_table("registered_models") {
            return Ok(Vec::new());
        }
        let mut args = Vec::new();
        let scope = self.in_workspace("registered_models", 1, &mut args);
        let mut models = rows(
            &self.conn,
            &format!(
                "SELECT name, creation_time, last_updated_time, description FROM registered_models
                 WHERE 1 = 1{scope} ORDER BY name"
            ),
            args,
            |r| {
                Ok(ImportedRegisteredModel {
                    name: r.get(0)?,
                    creation_time: r.get::<_, Option<i64>>(1)?.unwrap_or(0),
                    last_updated_time: r.get::<_, Option<i64>>(2)?.unwrap_or(0),
                    description: r.get(3)?,
                    tags: Vec::new(),
                    versions: Vec::new(),
                    aliases: Vec::new(),
                })
            },
        )?;
        for m in &mut models {
            self.fill_registered_model(m)?;
        }
        Ok(models)
    }

    fn fill_registered_model(&self, m: &mut ImportedRegisteredModel) -> anyhow::Result<()> {
        let scoped = |table: &str, first: &str| {
            let mut args = vec![text(&m.name)];
            let scope = self.in_workspace(table, 2, &mut args);
            (format!("{first}{scope}"), args)
        };
        let (sql, args) =
            scoped("registered_model_tags", "SELECT key, value FROM registered_model_tags WHERE name = ?1");
        m.tags = rows(&self.conn, &format!("{sql} ORDER BY key"), args, key_value)?;
        let (sql, args) = scoped(
            "model_versions",
            "SELECT version, creation_time, last_updated_time, user_id, current_stage, description, source,
                    storage_location, run_id, run_link, status, status_message
             FROM model_versions WHERE name = ?1",
        );
        m.versions = rows(&self.conn, &format!("{sql} ORDER BY version"), args, |r| {
            let source: String = r.get::<_, Option<String>>(6)?.unwrap_or_default();
            let stage: String = r.get::<_, Option<String>>(4)?.unwrap_or_else(|| "None".into());
            let deleted = stage == "Deleted_Internal";
            let run_id: Option<String> = r.get::<_, Option<String>>(8)?.filter(|id| !REDACTED.contains(&id.as_str()));
            Ok(ImportedVersion {
                version: r.get(0)?,
                creation_time: r.get::<_, Option<i64>>(1)?.unwrap_or(0),
                last_updated_time: r.get::<_, Option<i64>>(2)?.unwrap_or(0),
                user_id: r.get(3)?,
                current_stage: stage,
                description: r.get(5)?,
                // MLflow derives a version's logged model from a `models:/m-…` source.
                model_id: source.strip_prefix("models:/").filter(|id| id.starts_with("m-")).map(str::to_string),
                // A deleted version's files are not to be found: never resolve them.
                storage_location: if deleted {
                    String::new()
                } else {
                    r.get::<_, Option<String>>(7)?.unwrap_or_default()
                },
                source,
                run_id,
                run_link: r.get(9)?,
                status: r.get::<_, Option<String>>(10)?.unwrap_or_else(|| "READY".into()),
                status_message: r.get(11)?,
                tags: Vec::new(),
            })
        })?;
        for v in &mut m.versions {
            let mut args = vec![text(&m.name), Value::Integer(v.version)];
            let scope = self.in_workspace("model_version_tags", 3, &mut args);
            v.tags = rows(
                &self.conn,
                &format!(
                    "SELECT key, value FROM model_version_tags WHERE name = ?1 AND version = ?2{scope} ORDER BY key"
                ),
                args,
                key_value,
            )?;
        }
        if self.has_table("registered_model_aliases") {
            let (sql, args) = scoped(
                "registered_model_aliases",
                "SELECT alias, version FROM registered_model_aliases WHERE name = ?1",
            );
            m.aliases = rows(&self.conn, &format!("{sql} ORDER BY alias"), args, |r| Ok((r.get(0)?, r.get(1)?)))?;
        }
        Ok(())
    }
}

/// Every item of the source in import order: each experiment, its runs and its logged models,
/// then the registry; at most `points_per_item` metric points in one item. `send` returns false
/// when the importer stopped listening.
pub fn read_all(reader: &Reader, points_per_item: usize, mut send: impl FnMut(Imported) -> bool) -> anyhow::Result<()> {
    for experiment in reader.experiments()? {
        let id = experiment.id;
        if !send(Imported::Experiment(experiment)) {
            return Ok(());
        }
        for run_id in reader.run_ids(id)? {
            // The run travels with the first part of its history, the rest follows it.
            let mut run = Some(reader.run(&run_id)?);
            let mut listening = true;
            reader.metric_parts(&run_id, points_per_item, |metrics| {
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
        for model in reader.logged_models(id)? {
            if !send(Imported::LoggedModel(model)) {
                return Ok(());
            }
        }
    }
    for model in reader.registered_models()? {
        if !send(Imported::RegisteredModel(model)) {
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The tables of an MLflow 2-era database that the reader needs (no workspaces, no logged
    /// models, no inputs: probed, not required).
    pub(in crate::import) fn mlflow_db(path: &std::path::Path) {
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
        let db = Database::open(&format!("sqlite:///{}", path.display()), rt.handle()).unwrap();
        let reader = Reader::new(&db, "default").unwrap();
        assert_eq!(reader.revision(), None);
        assert_eq!(
            reader.unmapped().unwrap(),
            [
                "2 rows of table odd \"name\": Slipway has no counterpart",
                "1 row of table trace_info: Slipway has no counterpart"
            ]
        );
        let mut items = Vec::new();
        read_all(&reader, 3, |item| {
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
        read_all(&reader, 3, |_| {
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
            let err = Database::open(uri, rt.handle()).err().unwrap().to_string();
            assert!(err.contains("unsupported MLflow backend"), "{uri}: {err}");
        }
        let store = tempfile::tempdir().unwrap();
        let err = Database::open(&format!("file://{}", store.path().display()), rt.handle()).err().unwrap();
        assert!(err.to_string().contains("mlflow migrate-filestore"), "{err}");
    }

    #[test]
    fn a_slipway_database_is_not_taken_for_mlflow() {
        let dir = tempfile::tempdir().unwrap();
        let store = slipway_store::sqlite::SqliteStore::open(&dir.path().join("slipway.db"), "mlflow-artifacts:", 1);
        drop(store.unwrap());
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let uri = format!("sqlite:///{}", dir.path().join("slipway.db").display());
        let db = Database::open(&uri, rt.handle()).unwrap();
        let err = Reader::new(&db, "default").err().unwrap().to_string();
        assert!(err.contains("Slipway database"), "{err}");
    }
}
