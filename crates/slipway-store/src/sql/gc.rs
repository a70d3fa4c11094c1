//! Permanent removal of soft-deleted objects. Each object is purged in its own transaction
//! (children first), so a purge interrupted half-way leaves whole objects behind, never
//! half-objects, and running it again finishes the job.

use super::conn::{Connection, params};

use crate::{GcPlan, Result};

/// Runs and logged models that live model versions depend on: their rows are kept (lineage
/// and re-registration need them) even when deleted, and so are experiments holding them.
const REFERENCED: &str = "
    WITH live AS (SELECT run_id, model_id FROM model_versions WHERE current_stage != 'Deleted_Internal'),
    ref_models AS (SELECT model_id FROM live WHERE model_id IS NOT NULL),
    ref_runs AS (
        SELECT run_id AS run_uuid FROM live WHERE run_id IS NOT NULL
        UNION SELECT m.source_run_id FROM logged_models m JOIN ref_models USING (model_id) WHERE m.source_run_id IS NOT NULL
    )";

/// Deleted experiments old enough to purge and holding nothing a live version depends on.
const PURGEABLE_EXPERIMENTS: &str = "
    SELECT e.experiment_id FROM experiments e
    WHERE e.lifecycle_stage = 'deleted' AND e.experiment_id != 0 AND e.last_update_time < ?1
      AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.experiment_id = e.experiment_id AND r.run_uuid IN (SELECT run_uuid FROM ref_runs))
      AND NOT EXISTS (SELECT 1 FROM logged_models m WHERE m.experiment_id = e.experiment_id AND m.model_id IN (SELECT model_id FROM ref_models))";

pub fn plan(conn: &Connection, deleted_before: i64) -> Result<GcPlan> {
    let strings = |sql: &str| -> Result<Vec<(String, String)>> {
        let mut stmt = conn.prepare(&format!("{REFERENCED} {sql}"))?;
        let rows =
            stmt.query_map([deleted_before], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<super::conn::Result<_>>()?;
        Ok(rows)
    };
    let experiments = strings(&format!(
        "SELECT CAST(experiment_id AS TEXT), artifact_location FROM experiments WHERE experiment_id IN ({PURGEABLE_EXPERIMENTS})"
    ))?;
    // Runs of a purged experiment go with it; these are runs deleted on their own.
    let runs = strings(&format!(
        "SELECT r.run_uuid, r.artifact_uri FROM runs r
         WHERE r.lifecycle_stage = 'deleted' AND r.deleted_time < ?1
           AND r.run_uuid NOT IN (SELECT run_uuid FROM ref_runs)
           AND r.experiment_id NOT IN ({PURGEABLE_EXPERIMENTS})"
    ))?;
    let logged_models = strings(&format!(
        "SELECT m.model_id, m.artifact_location FROM logged_models m
         WHERE m.lifecycle_stage = 'deleted' AND m.deleted_time < ?1
           AND m.model_id NOT IN (SELECT model_id FROM ref_models)
           AND m.experiment_id NOT IN ({PURGEABLE_EXPERIMENTS})"
    ))?;
    let mut stmt = conn.prepare(
        "SELECT name, version FROM model_versions WHERE current_stage = 'Deleted_Internal' AND deleted_time < ?1",
    )?;
    let model_versions =
        stmt.query_map([deleted_before], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<super::conn::Result<_>>()?;
    let mut stmt =
        conn.prepare("SELECT storage_location FROM model_versions WHERE current_stage != 'Deleted_Internal'")?;
    let protected = stmt.query_map(params![], |r| r.get(0))?.collect::<super::conn::Result<_>>()?;
    // Artifact folders of runs and logged models inside purged experiments.
    let mut stmt = conn.prepare(&format!(
        "{REFERENCED}
         SELECT r.artifact_uri FROM runs r WHERE r.experiment_id IN ({PURGEABLE_EXPERIMENTS})
         UNION ALL
         SELECT m.artifact_location FROM logged_models m WHERE m.experiment_id IN ({PURGEABLE_EXPERIMENTS})"
    ))?;
    let experiment_children = stmt.query_map([deleted_before], |r| r.get(0))?.collect::<super::conn::Result<_>>()?;
    // Every run not purged by this pass: live ones, and deleted ones not yet due.
    let mut stmt = conn.prepare(&format!(
        "{REFERENCED}
         SELECT DISTINCT t.value FROM tags t JOIN runs r ON r.run_key = t.run_key
         WHERE t.key = 'slipway.outs'
           AND NOT (r.lifecycle_stage = 'deleted' AND r.deleted_time < ?1 AND r.run_uuid NOT IN (SELECT run_uuid FROM ref_runs))
           AND r.experiment_id NOT IN ({PURGEABLE_EXPERIMENTS})"
    ))?;
    let pipeline_manifests = stmt.query_map([deleted_before], |r| r.get(0))?.collect::<super::conn::Result<_>>()?;
    Ok(GcPlan { experiments, runs, logged_models, model_versions, protected, experiment_children, pipeline_manifests })
}

fn purge_run_rows(conn: &Connection, run_key: i64) -> Result<()> {
    for sql in [
        "DELETE FROM metrics WHERE run_key = ?1",
        "DELETE FROM latest_metrics WHERE run_key = ?1",
        "DELETE FROM params WHERE run_key = ?1",
        "DELETE FROM tags WHERE run_key = ?1",
        "DELETE FROM input_tags WHERE input_uuid IN (SELECT input_uuid FROM dataset_inputs WHERE run_key = ?1)",
        "DELETE FROM dataset_inputs WHERE run_key = ?1",
        "DELETE FROM run_model_links WHERE run_key = ?1",
        "DELETE FROM logged_model_metrics WHERE run_id = (SELECT run_uuid FROM runs WHERE run_key = ?1)",
        "DELETE FROM runs WHERE run_key = ?1",
    ] {
        conn.execute(sql, [run_key])?;
    }
    Ok(())
}

pub fn purge_run(conn: &Connection, run_id: &str) -> Result<bool> {
    let key: Option<i64> = {
        use super::conn::OptionalExtension;
        conn.query_row("SELECT run_key FROM runs WHERE run_uuid = ?1 AND lifecycle_stage = 'deleted'", [run_id], |r| {
            r.get(0)
        })
        .optional()?
    };
    match key {
        Some(k) => purge_run_rows(conn, k).map(|_| true),
        None => Ok(false),
    }
}

fn purge_model_rows(conn: &Connection, model_id: &str) -> Result<usize> {
    conn.execute("DELETE FROM logged_model_params WHERE model_id = ?1", [model_id])?;
    conn.execute("DELETE FROM logged_model_tags WHERE model_id = ?1", [model_id])?;
    conn.execute("DELETE FROM logged_model_metrics WHERE model_id = ?1", [model_id])?;
    Ok(conn.execute("DELETE FROM logged_models WHERE model_id = ?1", [model_id])?)
}

pub fn purge_logged_model(conn: &Connection, model_id: &str) -> Result<bool> {
    let deleted: bool = conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM logged_models WHERE model_id = ?1 AND lifecycle_stage = 'deleted')",
        [model_id],
        |r| r.get(0),
    )?;
    if !deleted {
        return Ok(false);
    }
    purge_model_rows(conn, model_id).map(|n| n > 0)
}

/// Removes a deleted experiment with everything in it.
pub fn purge_experiment(conn: &Connection, experiment_id: &str) -> Result<bool> {
    let Ok(id) = experiment_id.parse::<i64>() else { return Ok(false) };
    let deleted: bool = conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM experiments WHERE experiment_id = ?1 AND lifecycle_stage = 'deleted' AND experiment_id != 0)",
        [id],
        |r| r.get(0),
    )?;
    if !deleted {
        return Ok(false);
    }
    let run_keys: Vec<i64> = conn
        .prepare("SELECT run_key FROM runs WHERE experiment_id = ?1")?
        .query_map([id], |r| r.get(0))?
        .collect::<super::conn::Result<_>>()?;
    for k in run_keys {
        purge_run_rows(conn, k)?;
    }
    let models: Vec<String> = conn
        .prepare("SELECT model_id FROM logged_models WHERE experiment_id = ?1")?
        .query_map([id], |r| r.get(0))?
        .collect::<super::conn::Result<_>>()?;
    for m in models {
        purge_model_rows(conn, &m)?;
    }
    conn.execute("DELETE FROM datasets WHERE experiment_id = ?1", [id])?;
    conn.execute("DELETE FROM experiment_tags WHERE experiment_id = ?1", [id])?;
    conn.execute("DELETE FROM experiments WHERE experiment_id = ?1", [id])?;
    Ok(true)
}

pub fn purge_model_version(conn: &Connection, name: &str, version: i64) -> Result<bool> {
    conn.execute("DELETE FROM model_version_tags WHERE name = ?1 AND version = ?2", params![name, version])?;
    let n = conn.execute(
        "DELETE FROM model_versions WHERE name = ?1 AND version = ?2 AND current_stage = 'Deleted_Internal'",
        params![name, version],
    )?;
    Ok(n > 0)
}
