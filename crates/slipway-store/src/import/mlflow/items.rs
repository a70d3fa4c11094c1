//! The items of an MLflow database, table by table: experiments, runs with their history and
//! inputs, logged models, registered models with their versions and aliases.

use rusqlite::types::Value;
use slipway_types::Metric;

use super::{
    Context, LOGGED_MODEL_STATUSES, MlflowSource, REDACTED, Result, SourceError, key_value, point, rows, text,
};
use crate::import::{
    ImportedExperiment, ImportedInput, ImportedLoggedModel, ImportedModelLink, ImportedRegisteredModel, ImportedRun,
    ImportedVersion,
};
use crate::sql::conn::params_from_iter;

impl MlflowSource {
    pub(super) fn experiments(&self) -> Result<Vec<ImportedExperiment>> {
        let mut args = Vec::new();
        let scope = self.in_workspace("experiments", 1, &mut args);
        let mut experiments = rows(
            &self.conn(),
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
                &self.conn(),
                "SELECT key, value FROM experiment_tags WHERE experiment_id = ?1 ORDER BY key",
                vec![Value::Integer(e.id)],
                key_value,
            )?;
        }
        Ok(experiments)
    }

    /// The ids of an experiment's runs, oldest first.
    pub(super) fn run_ids(&self, experiment_id: i64) -> Result<Vec<String>> {
        rows(
            &self.conn(),
            "SELECT run_uuid FROM runs WHERE experiment_id = ?1 ORDER BY start_time, run_uuid",
            vec![Value::Integer(experiment_id)],
            |r| r.get(0),
        )
    }

    pub(super) fn run(&self, run_id: &str) -> Result<ImportedRun> {
        let deleted_time = if self.has("runs", "deleted_time") { "deleted_time" } else { "NULL" };
        let id = || vec![text(run_id)];
        let mut run = rows(
            &self.conn(),
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
        .ok_or_else(|| SourceError::new(format!("run {run_id} disappeared from the snapshot")))?;
        run.params = rows(&self.conn(), "SELECT key, value FROM params WHERE run_uuid = ?1", id(), key_value)?;
        run.tags = rows(&self.conn(), "SELECT key, value FROM tags WHERE run_uuid = ?1", id(), key_value)?;
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
    pub(super) fn metric_parts(&self, run_id: &str, n: usize, mut f: impl FnMut(Vec<Metric>) -> bool) -> Result<()> {
        const SELECT: &str = "SELECT key, value, timestamp, step, is_nan FROM metrics WHERE run_uuid = ";
        let context = || format!("reading the metric history of run {run_id}");
        if self.conn().is_postgres() {
            // A cursor is declared with its query as text; run ids are MLflow's hex uuids.
            if !run_id.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(SourceError::new(format!("unexpected run id '{run_id}'")));
            }
            let declare = format!("DECLARE import_points NO SCROLL CURSOR FOR {SELECT}'{run_id}'");
            let no_args = || params_from_iter(Vec::<Value>::new());
            self.conn().prepare(&declare).and_then(|mut s| s.execute(no_args())).context(context)?;
            loop {
                let part = rows(&self.conn(), &format!("FETCH FORWARD {n} FROM import_points"), vec![], point)?;
                let last = part.len() < n;
                if (!part.is_empty() && !f(part)) || last {
                    break;
                }
            }
            self.conn().prepare("CLOSE import_points").and_then(|mut s| s.execute(no_args())).context(context)?;
            return Ok(());
        }
        let mut stmt = self.conn().prepare(&format!("{SELECT}?1")).context(context)?;
        let mut cursor = stmt.query([run_id]).context(context)?;
        let mut part = Vec::new();
        while let Some(row) = cursor.next().context(context)? {
            part.push(point(&row).context(context)?);
            if part.len() == n && !f(std::mem::take(&mut part)) {
                return Ok(());
            }
        }
        if !part.is_empty() {
            f(part);
        }
        Ok(())
    }

    fn read_inputs(&self, run: &mut ImportedRun) -> Result<()> {
        run.inputs = rows(
            &self.conn(),
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
                    &self.conn(),
                    "SELECT name, value FROM input_tags WHERE input_uuid = ?1 ORDER BY name",
                    vec![text(&input.input_uuid)],
                    key_value,
                )?;
            }
        }
        let step = if self.has("inputs", "step") { "step" } else { "0" };
        run.model_links = rows(
            &self.conn(),
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

    pub(super) fn logged_models(&self, experiment_id: i64) -> Result<Vec<ImportedLoggedModel>> {
        if !self.has_table("logged_models") {
            return Ok(Vec::new());
        }
        let mut models = rows(
            &self.conn(),
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
                    &self.conn(),
                    "SELECT param_key, param_value FROM logged_model_params WHERE model_id = ?1",
                    id(),
                    key_value,
                )?;
            }
            if self.has_table("logged_model_tags") {
                m.tags = rows(
                    &self.conn(),
                    "SELECT tag_key, tag_value FROM logged_model_tags WHERE model_id = ?1",
                    id(),
                    key_value,
                )?;
            }
            if self.has_table("logged_model_metrics") {
                // MLflow keeps no NaN flag here: what it stored is what its clients read.
                m.metrics = rows(
                    &self.conn(),
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

    pub(super) fn registered_models(&self) -> Result<Vec<ImportedRegisteredModel>> {
        if !self.has_table("registered_models") {
            return Ok(Vec::new());
        }
        let mut args = Vec::new();
        let scope = self.in_workspace("registered_models", 1, &mut args);
        let mut models = rows(
            &self.conn(),
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

    fn fill_registered_model(&self, m: &mut ImportedRegisteredModel) -> Result<()> {
        let scoped = |table: &str, first: &str| {
            let mut args = vec![text(&m.name)];
            let scope = self.in_workspace(table, 2, &mut args);
            (format!("{first}{scope}"), args)
        };
        let (sql, args) =
            scoped("registered_model_tags", "SELECT key, value FROM registered_model_tags WHERE name = ?1");
        m.tags = rows(&self.conn(), &format!("{sql} ORDER BY key"), args, key_value)?;
        let (sql, args) = scoped(
            "model_versions",
            "SELECT version, creation_time, last_updated_time, user_id, current_stage, description, source,
                    storage_location, run_id, run_link, status, status_message
             FROM model_versions WHERE name = ?1",
        );
        m.versions = rows(&self.conn(), &format!("{sql} ORDER BY version"), args, |r| {
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
                &self.conn(),
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
            m.aliases = rows(&self.conn(), &format!("{sql} ORDER BY alias"), args, |r| Ok((r.get(0)?, r.get(1)?)))?;
        }
        Ok(())
    }
}
