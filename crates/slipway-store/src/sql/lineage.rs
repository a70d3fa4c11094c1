//! Lineage: from a model version back to its logged model, run, params, metrics, datasets and
//! code version; and from a dataset digest (or a data version, whose manifest SHA-256 a run's
//! dataset input names as its digest) forward to the model versions trained on it.

use super::conn::{Connection, OptionalExtension, params, params_from_iter};
use slipway_types::{DataVersion, Lineage, LineageDataset, LineageRun, ModelVersion};

use super::{audit, data, registry, runs};
use crate::{AuditQuery, DatasetSummary, Result};

pub fn of_version(conn: &Connection, name: &str, version: i64) -> Result<Lineage> {
    let mv = registry::get_version(conn, name, version)?;
    let logged_model_run: Option<String> = match &mv.model_id {
        Some(id) => conn
            .query_row("SELECT source_run_id FROM logged_models WHERE model_id = ?1", [id], |r| r.get(0))
            .optional()?
            .flatten(),
        None => None,
    };
    let run_id = mv.run_id.clone().or(logged_model_run);
    let run = match &run_id {
        Some(id) => runs::load_runs(conn, std::slice::from_ref(id))?.pop(),
        None => None,
    };
    let tag = |key: &str| run.as_ref().and_then(|r| r.data.tags.iter().find(|t| t.key == key).map(|t| t.value.clone()));
    let created = audit::list(
        conn,
        &AuditQuery {
            name: Some(name.to_string()),
            version: Some(version.to_string()),
            action: Some("create_model_version".into()),
            max_results: Some(1),
            ..AuditQuery::default()
        },
    )?
    .items
    .pop();
    let inputs = run.as_ref().map(|r| r.inputs.dataset_inputs.as_slice()).unwrap_or_default();
    let datasets = inputs
        .iter()
        .map(|d| {
            Ok(LineageDataset {
                dataset: d.dataset.clone(),
                context: d.tags.iter().find(|t| t.key == "mlflow.data.context").map(|t| t.value.clone()),
                data_versions: data::named_by_digest(conn, &d.dataset.digest)?,
            })
        })
        .collect::<Result<_>>()?;
    // A version may name a run another tracking server holds (a registry apart from tracking);
    // say so rather than leave the reader to guess why params and metrics are empty.
    let run_ref = run_id.as_ref().map(|id| LineageRun { run_id: id.clone(), external: run.is_none() });
    Ok(Lineage {
        logged_model_id: mv.model_id.clone(),
        run_id,
        run: run_ref,
        experiment_id: run.as_ref().map(|r| r.info.experiment_id.clone()),
        run_name: run.as_ref().map(|r| r.info.run_name.clone()),
        params: run.as_ref().map(|r| r.data.params.clone()).unwrap_or_default(),
        metrics: run.as_ref().map(|r| r.data.metrics.clone()).unwrap_or_default(),
        datasets,
        git_commit: tag("mlflow.source.git.commit"),
        source_name: tag("mlflow.source.name"),
        registered_by: created.as_ref().map(|c| c.actor.clone()),
        registered_at: mv.creation_timestamp,
        model_version: mv,
        redacted: false,
    })
}

/// Live model versions whose run (directly or through its logged model) consumed a dataset
/// with this digest.
pub fn versions_by_dataset(conn: &Connection, digest: &str) -> Result<Vec<ModelVersion>> {
    versions_by_digests(conn, std::slice::from_ref(&digest))
}

/// Live model versions trained on a data version: their runs consumed a dataset whose digest
/// is the version's manifest SHA-256 or one of its prefixes of at least 8 hex digits.
pub fn versions_by_data(conn: &Connection, name: &str, which: &str) -> Result<(DataVersion, Vec<ModelVersion>)> {
    let version = data::get(conn, name, which)?;
    let prefixes: Vec<&str> = (data::MIN_DIGEST..=version.manifest.len()).map(|n| &version.manifest[..n]).collect();
    let found = versions_by_digests(conn, &prefixes)?;
    Ok((version, found))
}

fn versions_by_digests(conn: &Connection, digests: &[&str]) -> Result<Vec<ModelVersion>> {
    let marks = (1..=digests.len()).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ");
    let mut stmt = conn.prepare(&format!(
        "SELECT DISTINCT v.name, v.version FROM model_versions v
         LEFT JOIN logged_models m ON m.model_id = v.model_id
         JOIN runs r ON r.run_uuid = COALESCE(v.run_id, m.source_run_id)
         JOIN dataset_inputs di ON di.run_key = r.run_key
         JOIN datasets d ON d.dataset_uuid = di.dataset_uuid
         WHERE d.digest IN ({marks}) AND v.current_stage != 'Deleted_Internal'
         ORDER BY v.name, v.version"
    ))?;
    let keys: Vec<(String, i64)> = stmt
        .query_map(params_from_iter(digests), |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<super::conn::Result<_>>()?;
    keys.iter().map(|(n, v)| registry::get_version(conn, n, *v)).collect()
}

/// The distinct datasets runs of these experiments took as inputs, with their
/// `mlflow.data.context` tag: what the MLflow UI's dataset filter lists.
pub fn datasets_of(conn: &Connection, experiment_ids: &[i64]) -> Result<Vec<DatasetSummary>> {
    if experiment_ids.is_empty() {
        return Ok(Vec::new());
    }
    // The ids are parsed integers, so listing them inline is safe.
    let ids = experiment_ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
    let mut stmt = conn.prepare(&format!(
        "SELECT DISTINCT d.experiment_id, d.name, d.digest, t.value FROM datasets d
         JOIN dataset_inputs di ON di.dataset_uuid = d.dataset_uuid
         LEFT JOIN input_tags t ON t.input_uuid = di.input_uuid AND t.name = 'mlflow.data.context'
         WHERE d.experiment_id IN ({ids})
         ORDER BY d.experiment_id, d.name, d.digest, t.value
         LIMIT 1000"
    ))?;
    let rows = stmt.query_map(params![], |r| {
        Ok(DatasetSummary {
            experiment_id: r.get::<_, i64>(0)?.to_string(),
            name: r.get(1)?,
            digest: r.get(2)?,
            context: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<super::conn::Result<_>>()?)
}
