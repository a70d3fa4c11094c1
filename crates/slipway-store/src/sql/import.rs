//! [`crate::import::ImportStore`] in SQL: each item upserted by its id, counting the rows that
//! actually changed, so a repeated import reports "unchanged".
//!
//! An upsert only rewrites a row whose columns differ (`WHERE … IS DISTINCT FROM excluded.…`),
//! so the affected-row counts of an item's statements add up to zero exactly when the store
//! already held it. Import adds and updates; it never deletes what the source no longer has.

use slipway_types::{KeyValue, Metric};

use super::conn::{Connection, OptionalExtension, params};
use super::{audit, registry, runs};
use crate::import::{
    ImportedExperiment, ImportedLoggedModel, ImportedRegisteredModel, ImportedRun, ImportedVersion, Outcome,
};
use crate::{Result, StoreError};

const DELETED_STAGE: &str = "Deleted_Internal";

/// `INSERT … ON CONFLICT (key) DO UPDATE` of every other column, only where one differs.
/// Placeholders follow `columns`.
fn upsert(table: &str, columns: &[&str], key: &[&str]) -> String {
    let marks: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
    let rest: Vec<&str> = columns.iter().copied().filter(|c| !key.contains(c)).collect();
    let set: Vec<String> = rest.iter().map(|c| format!("{c} = excluded.{c}")).collect();
    let differs: Vec<String> = rest.iter().map(|c| format!("{table}.{c} IS DISTINCT FROM excluded.{c}")).collect();
    format!(
        "INSERT INTO {table} ({}) VALUES ({}) ON CONFLICT ({}) DO UPDATE SET {} WHERE {}",
        columns.join(", "),
        marks.join(", "),
        key.join(", "),
        set.join(", "),
        differs.join(" OR ")
    )
}

fn outcome(existed: bool, changed: usize) -> Outcome {
    match (existed, changed) {
        (false, _) => Outcome::Created,
        (true, 0) => Outcome::Unchanged,
        (true, _) => Outcome::Updated,
    }
}

/// Upserts `(owner, key, value)` rows of a tag or param table whose key is `(owner, key)`.
fn key_values(
    conn: &Connection,
    table: &str,
    owner: (&str, &dyn rusqlite::ToSql),
    items: &[KeyValue],
) -> Result<usize> {
    let (owner_col, owner_val) = owner;
    let mut stmt = conn.prepare_cached(&upsert(table, &[owner_col, "key", "value"], &[owner_col, "key"]))?;
    let mut changed = 0;
    for kv in items {
        changed += stmt.execute(params![owner_val, kv.key, kv.value])?;
    }
    Ok(changed)
}

fn experiment_exists(conn: &Connection, id: i64) -> Result<bool> {
    Ok(conn.query_row("SELECT EXISTS(SELECT 1 FROM experiments WHERE experiment_id = ?1)", [id], |r| r.get(0))?)
}

pub fn experiment(conn: &Connection, e: &ImportedExperiment) -> Result<Outcome> {
    conn.lock("experiment", &e.name)?;
    let by_id: Option<String> =
        conn.query_row("SELECT name FROM experiments WHERE experiment_id = ?1", [e.id], |r| r.get(0)).optional()?;
    let by_name: Option<i64> =
        conn.query_row("SELECT experiment_id FROM experiments WHERE name = ?1", [&e.name], |r| r.get(0)).optional()?;
    if let Some(other) = by_name.filter(|&other| other != e.id) {
        return Ok(Outcome::Conflict(format!("an experiment named '{}' exists here with id {other}", e.name)));
    }
    // Experiment 0 is every server's default: the source's merges into ours, name and all.
    if let Some(name) = by_id.as_ref().filter(|n| **n != e.name && e.id != 0) {
        return Ok(Outcome::Conflict(format!("experiment id {} belongs to '{name}' here", e.id)));
    }
    let mut changed = conn.execute(
        &upsert(
            "experiments",
            &["experiment_id", "name", "artifact_location", "lifecycle_stage", "creation_time", "last_update_time"],
            &["experiment_id"],
        ),
        params![e.id, e.name, e.artifact_location, e.lifecycle_stage, e.creation_time, e.last_update_time],
    )?;
    changed += key_values(conn, "experiment_tags", ("experiment_id", &e.id), &e.tags)?;
    Ok(outcome(by_id.is_some(), changed))
}

pub fn run(conn: &Connection, r: &ImportedRun) -> Result<Outcome> {
    if !experiment_exists(conn, r.experiment_id)? {
        return Ok(Outcome::Conflict(format!("its experiment {} was not imported", r.experiment_id)));
    }
    let existing: Option<i64> = conn
        .query_row("SELECT experiment_id FROM runs WHERE run_uuid = ?1", [&r.run_id], |row| row.get(0))
        .optional()?;
    if let Some(other) = existing.filter(|&other| other != r.experiment_id) {
        return Ok(Outcome::Conflict(format!("run {} belongs to experiment {other} here", r.run_id)));
    }
    let mut changed = conn.execute(
        &upsert(
            "runs",
            &[
                "run_uuid",
                "experiment_id",
                "name",
                "user_id",
                "status",
                "start_time",
                "end_time",
                "lifecycle_stage",
                "artifact_uri",
                "deleted_time",
            ],
            &["run_uuid"],
        ),
        params![
            r.run_id,
            r.experiment_id,
            r.name,
            r.user_id,
            r.status,
            r.start_time,
            r.end_time,
            r.lifecycle_stage,
            r.artifact_uri,
            r.deleted_time
        ],
    )?;
    let run_key: i64 = conn.query_row("SELECT run_key FROM runs WHERE run_uuid = ?1", [&r.run_id], |row| row.get(0))?;
    changed += key_values(conn, "params", ("run_key", &run_key), &r.params)?;
    changed += key_values(conn, "tags", ("run_key", &run_key), &r.tags)?;
    changed += points(conn, run_key, &r.metrics)?;
    changed += inputs(conn, r, run_key)?;
    let mut link = conn.prepare_cached(&upsert(
        "run_model_links",
        &["run_key", "model_id", "direction", "step"],
        &["run_key", "direction", "model_id"],
    ))?;
    for l in &r.model_links {
        let direction = if l.output { "output" } else { "input" };
        changed += link.execute(params![run_key, l.model_id, direction, l.step])?;
    }
    Ok(outcome(existing.is_some(), changed))
}

/// Appends to the history; the latest values follow from it, so only new points can move them.
fn points(conn: &Connection, run_key: i64, metrics: &[Metric]) -> Result<usize> {
    let new_points = runs::insert_metrics(conn, run_key, metrics)?;
    if new_points > 0 {
        runs::update_latest(conn, run_key, metrics)?;
    }
    Ok(new_points)
}

/// A later part of a run's history. `Updated` when it held new points.
pub fn run_metrics(conn: &Connection, run_id: &str, metrics: &[Metric]) -> Result<Outcome> {
    let run_key: Option<i64> =
        conn.query_row("SELECT run_key FROM runs WHERE run_uuid = ?1", [run_id], |row| row.get(0)).optional()?;
    let Some(run_key) = run_key else {
        return Ok(Outcome::Conflict(format!("run {run_id} was not imported")));
    };
    Ok(outcome(true, points(conn, run_key, metrics)?))
}

/// Datasets are one per (experiment, name, digest) and inputs one per (run, dataset): where
/// the store already has them under other ids, those are kept.
fn inputs(conn: &Connection, r: &ImportedRun, run_key: i64) -> Result<usize> {
    let mut changed = 0;
    for i in &r.inputs {
        let known: Option<String> = conn
            .query_row(
                "SELECT dataset_uuid FROM datasets WHERE experiment_id = ?1 AND name = ?2 AND digest = ?3",
                params![r.experiment_id, i.name, i.digest],
                |row| row.get(0),
            )
            .optional()?;
        let dataset_uuid = match known {
            Some(uuid) => uuid,
            None => {
                changed += conn.execute(
                    "INSERT INTO datasets (dataset_uuid, experiment_id, name, digest, source_type, source, schema, profile)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![i.dataset_uuid, r.experiment_id, i.name, i.digest, i.source_type, i.source, i.schema, i.profile],
                )?;
                i.dataset_uuid.clone()
            }
        };
        let known: Option<String> = conn
            .query_row(
                "SELECT input_uuid FROM dataset_inputs WHERE run_key = ?1 AND dataset_uuid = ?2",
                params![run_key, dataset_uuid],
                |row| row.get(0),
            )
            .optional()?;
        let input_uuid = match known {
            Some(uuid) => uuid,
            None => {
                changed += conn.execute(
                    "INSERT INTO dataset_inputs (input_uuid, dataset_uuid, run_key) VALUES (?1, ?2, ?3)",
                    params![i.input_uuid, dataset_uuid, run_key],
                )?;
                i.input_uuid.clone()
            }
        };
        let mut tag =
            conn.prepare_cached(&upsert("input_tags", &["input_uuid", "name", "value"], &["input_uuid", "name"]))?;
        for t in &i.tags {
            changed += tag.execute(params![input_uuid, t.key, t.value])?;
        }
    }
    Ok(changed)
}

pub fn logged_model(conn: &Connection, m: &ImportedLoggedModel) -> Result<Outcome> {
    if !experiment_exists(conn, m.experiment_id)? {
        return Ok(Outcome::Conflict(format!("its experiment {} was not imported", m.experiment_id)));
    }
    let existing: Option<i64> = conn
        .query_row("SELECT experiment_id FROM logged_models WHERE model_id = ?1", [&m.model_id], |r| r.get(0))
        .optional()?;
    if let Some(other) = existing.filter(|&other| other != m.experiment_id) {
        return Ok(Outcome::Conflict(format!("logged model {} belongs to experiment {other} here", m.model_id)));
    }
    let deleted_time = (m.lifecycle_stage == slipway_types::LIFECYCLE_DELETED).then_some(m.last_updated_time);
    let mut changed = conn.execute(
        &upsert(
            "logged_models",
            &[
                "model_id",
                "experiment_id",
                "name",
                "artifact_location",
                "creation_time",
                "last_updated_time",
                "status",
                "lifecycle_stage",
                "model_type",
                "source_run_id",
                "status_message",
                "deleted_time",
            ],
            &["model_id"],
        ),
        params![
            m.model_id,
            m.experiment_id,
            m.name,
            m.artifact_location,
            m.creation_time,
            m.last_updated_time,
            m.status,
            m.lifecycle_stage,
            m.model_type,
            m.source_run_id,
            m.status_message,
            deleted_time
        ],
    )?;
    changed += key_values(conn, "logged_model_params", ("model_id", &m.model_id), &m.params)?;
    changed += key_values(conn, "logged_model_tags", ("model_id", &m.model_id), &m.tags)?;
    for point in &m.metrics {
        changed += runs::insert_model_metric(conn, &m.model_id, point.run_id.as_deref().unwrap_or_default(), point)?;
    }
    Ok(outcome(existing.is_some(), changed))
}

pub fn registered_model(conn: &Connection, m: &ImportedRegisteredModel, actor: &str) -> Result<Outcome> {
    conn.lock("model", &m.name)?;
    let before = match registry::get_model(conn, &m.name) {
        Ok(model) => Some(model),
        Err(StoreError::NotFound(_)) => None,
        Err(e) => return Err(e),
    };
    // A name is all that ties a registered model to the source's: one that Slipway users made
    // themselves is a different model, and importing over it would overwrite its versions.
    if before.is_some() {
        let imported: bool = conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM audit_log WHERE object_type = 'registered_model' AND name = ?1
                                                     AND action = 'import')",
            [&m.name],
            |r| r.get(0),
        )?;
        if !imported {
            return Ok(Outcome::Conflict(format!(
                "a registered model '{}' that no import wrote exists here: rename one of them first",
                m.name
            )));
        }
    }
    let stored_max: i64 = conn
        .query_row("SELECT max_version FROM registered_models WHERE name = ?1", [&m.name], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    // Numbers are never reused: deleted versions count, and so does anything given out here.
    let max_version = m.versions.iter().map(|v| v.version).chain([stored_max]).max().unwrap_or(0);
    let mut changed = conn.execute(
        &upsert(
            "registered_models",
            &["name", "creation_time", "last_updated_time", "description", "max_version"],
            &["name"],
        ),
        params![m.name, m.creation_time, m.last_updated_time, m.description, max_version],
    )?;
    changed += key_values(conn, "registered_model_tags", ("name", &m.name), &m.tags)?;
    for v in &m.versions {
        changed += version(conn, &m.name, v)?;
    }
    let mut alias =
        conn.prepare_cached(&upsert("registered_model_aliases", &["name", "alias", "version"], &["name", "alias"]))?;
    for (name, number) in &m.aliases {
        changed += alias.execute(params![m.name, name, number])?;
    }
    if changed > 0 {
        let after = registry::get_model(conn, &m.name)?;
        audit::change(conn, actor, "import", audit::model(&m.name), before.as_ref(), Some(&after))?;
    }
    Ok(outcome(before.is_some(), changed))
}

fn version(conn: &Connection, name: &str, v: &ImportedVersion) -> Result<usize> {
    let deleted_time = (v.current_stage == DELETED_STAGE).then_some(v.last_updated_time);
    let mut changed = conn.execute(
        &upsert(
            "model_versions",
            &[
                "name",
                "version",
                "creation_time",
                "last_updated_time",
                "user_id",
                "current_stage",
                "description",
                "source",
                "storage_location",
                "run_id",
                "run_link",
                "model_id",
                "status",
                "status_message",
                "deleted_time",
            ],
            &["name", "version"],
        ),
        params![
            name,
            v.version,
            v.creation_time,
            v.last_updated_time,
            v.user_id,
            v.current_stage,
            v.description,
            v.source,
            v.storage_location,
            v.run_id,
            v.run_link,
            v.model_id,
            v.status,
            v.status_message,
            deleted_time
        ],
    )?;
    let mut tag = conn.prepare_cached(&upsert(
        "model_version_tags",
        &["name", "version", "key", "value"],
        &["name", "version", "key"],
    ))?;
    for t in &v.tags {
        changed += tag.execute(params![name, v.version, t.key, t.value])?;
    }
    Ok(changed)
}

/// PostgreSQL's identity sequence does not see explicitly inserted ids: move it past them so
/// the next created experiment does not collide. SQLite takes max + 1 on its own.
pub fn finish(conn: &Connection) -> Result<()> {
    if conn.is_postgres() {
        conn.query_row(
            "SELECT setval(pg_get_serial_sequence('experiments', 'experiment_id'),
                           GREATEST((SELECT max(experiment_id) FROM experiments), 1))",
            params![],
            |_| Ok(()),
        )?;
    }
    Ok(())
}
