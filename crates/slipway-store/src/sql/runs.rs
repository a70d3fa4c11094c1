//! Runs: lifecycle, logging (params, tags, metrics), inputs and outputs, search and history.

use std::collections::HashMap;

use super::conn::{Connection, OptionalExtension, params, params_from_iter};
use slipway_types::{
    Dataset, DatasetInput, KeyValue, LIFECYCLE_ACTIVE, LIFECYCLE_DELETED, Metric, ModelOutput, ModelRef, RUN_STATUSES,
    Run, RunData, RunInfo, RunInputs, RunOutputs, ViewType,
};

use super::experiments;
use super::query::{self, Sql};
use crate::search::{parse_filter, parse_order_by};
use crate::{
    NewDatasetInput, NewRun, Page, Result, RunUpdate, SearchRequest, StoreError, now_ms, page_token, validate,
};

pub const RUN_NAME_TAG: &str = "mlflow.runName";
pub const USER_TAG: &str = "mlflow.user";
const UPSERT_TAG: &str = "INSERT INTO tags (run_key, key, value) VALUES (?1, ?2, ?3)
     ON CONFLICT (run_key, key) DO UPDATE SET value = excluded.value";

fn not_found(run_id: &str) -> StoreError {
    StoreError::NotFound(format!("Run with id={run_id} not found"))
}

/// A readable default run name, like MLflow's `adjective-animal-NNN`.
fn generate_name() -> String {
    const ADJ: [&str; 16] = [
        "bold", "calm", "brave", "clever", "eager", "fierce", "gentle", "jolly", "keen", "lively", "merry", "nimble",
        "quiet", "swift", "vivid", "witty",
    ];
    const NOUN: [&str; 16] = [
        "otter", "heron", "lynx", "panda", "falcon", "whale", "badger", "koala", "mole", "newt", "owl", "seal",
        "stork", "tern", "wren", "yak",
    ];
    let b = uuid::Uuid::new_v4().into_bytes();
    format!("{}-{}-{}", ADJ[(b[0] % 16) as usize], NOUN[(b[1] % 16) as usize], u16::from_le_bytes([b[2], b[3]]) % 1000)
}

pub fn create(conn: &Connection, run: &NewRun) -> Result<String> {
    let (exp_id, location) = experiments::require_active(conn, &run.experiment_id)?;
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let tag_name = run.tags.iter().find(|t| t.key == RUN_NAME_TAG).map(|t| t.value.clone());
    let name = match (run.run_name.clone().filter(|n| !n.is_empty()), tag_name) {
        (Some(n), Some(t)) if n != t => {
            return Err(StoreError::InvalidParameter(format!(
                "both 'run_name' ('{n}') and tag '{RUN_NAME_TAG}' ('{t}') were set and they differ"
            )));
        }
        (Some(n), _) | (None, Some(n)) => n,
        (None, None) => generate_name(),
    };
    let user = run
        .user_id
        .clone()
        .or_else(|| run.tags.iter().find(|t| t.key == USER_TAG).map(|t| t.value.clone()))
        .unwrap_or_default();
    let artifact_uri = format!("{}/{run_id}/artifacts", location.trim_end_matches('/'));
    let key: i64 = conn.query_row(
        "INSERT INTO runs (run_uuid, experiment_id, name, user_id, status, start_time, lifecycle_stage, artifact_uri)
         VALUES (?1, ?2, ?3, ?4, 'RUNNING', ?5, 'active', ?6) RETURNING run_key",
        params![run_id, exp_id, name, user, run.start_time.unwrap_or_else(now_ms), artifact_uri],
        |r| r.get(0),
    )?;
    let mut insert = conn.prepare_cached(UPSERT_TAG)?;
    for t in run.tags.iter().filter(|t| t.key != RUN_NAME_TAG) {
        insert.execute(params![key, t.key, t.value])?;
    }
    insert.execute(params![key, RUN_NAME_TAG, name])?;
    Ok(run_id)
}

/// The run's internal key and lifecycle stage.
fn lookup(conn: &Connection, run_id: &str) -> Result<(i64, String)> {
    let mut stmt = conn.prepare_cached("SELECT run_key, lifecycle_stage FROM runs WHERE run_uuid = ?1")?;
    stmt.query_row([run_id], |r| Ok((r.get(0)?, r.get(1)?))).optional()?.ok_or_else(|| not_found(run_id))
}

/// Fails unless the run exists and is active (writes to deleted runs are refused); returns
/// its internal key.
fn require_active(conn: &Connection, run_id: &str) -> Result<i64> {
    match lookup(conn, run_id)? {
        (key, s) if s == LIFECYCLE_ACTIVE => Ok(key),
        (_, s) => Err(StoreError::InvalidParameter(format!(
            "The run {run_id} must be in the 'active' state. Current state is {s}."
        ))),
    }
}

pub fn update(conn: &Connection, run_id: &str, u: &RunUpdate) -> Result<()> {
    let key = require_active(conn, run_id)?;
    if let Some(status) = &u.status {
        if !RUN_STATUSES.contains(&status.as_str()) {
            return Err(StoreError::InvalidParameter(format!("invalid run status '{status}'")));
        }
        conn.execute("UPDATE runs SET status = ?1 WHERE run_uuid = ?2", params![status, run_id])?;
    }
    if let Some(end) = u.end_time {
        conn.execute("UPDATE runs SET end_time = ?1 WHERE run_uuid = ?2", params![end, run_id])?;
    }
    if let Some(name) = u.run_name.as_ref().filter(|n| !n.is_empty()) {
        set_name(conn, key, name)?;
    }
    Ok(())
}

fn set_name(conn: &Connection, key: i64, name: &str) -> Result<()> {
    conn.execute("UPDATE runs SET name = ?1 WHERE run_key = ?2", params![name, key])?;
    conn.execute(UPSERT_TAG, params![key, RUN_NAME_TAG, name])?;
    Ok(())
}

pub fn set_lifecycle(conn: &Connection, run_id: &str, delete: bool) -> Result<()> {
    lookup(conn, run_id)?;
    let (stage, when) = if delete { (LIFECYCLE_DELETED, Some(now_ms())) } else { (LIFECYCLE_ACTIVE, None) };
    conn.execute(
        "UPDATE runs SET lifecycle_stage = ?1, deleted_time = ?2 WHERE run_uuid = ?3",
        params![stage, when, run_id],
    )?;
    Ok(())
}

pub fn log_batch(
    conn: &Connection,
    run_id: &str,
    metrics: &[Metric],
    params_: &[KeyValue],
    tags: &[KeyValue],
) -> Result<()> {
    let run_key = require_active(conn, run_id)?;

    // Params are immutable: the same value again is fine, a different one is an error, also
    // between two entries of this very request.
    let mut seen: HashMap<&str, &str> = HashMap::new();
    let mut existing = conn.prepare_cached("SELECT value FROM params WHERE run_key = ?1 AND key = ?2")?;
    let mut insert_param =
        conn.prepare_cached("INSERT INTO params (run_key, key, value) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING")?;
    for p in params_ {
        if let Some(prev) = seen.insert(&p.key, &p.value)
            && prev != p.value
        {
            return Err(StoreError::InvalidParameter(format!(
                "Duplicate parameter keys have been submitted: key '{}' with values '{prev}' and '{}'",
                p.key, p.value
            )));
        }
        let old: Option<String> = existing.query_row(params![run_key, p.key], |r| r.get(0)).optional()?;
        match old {
            Some(old) if old != p.value => {
                return Err(StoreError::InvalidParameter(format!(
                    "Changing param values is not allowed. Param with key='{}' was already logged with \
                     value='{old}' for run ID='{run_id}'. Attempted logging new value '{}'.",
                    p.key, p.value
                )));
            }
            Some(_) => {}
            None => {
                // Nothing inserted: a concurrent request logged this key first (PostgreSQL).
                if insert_param.execute(params![run_key, p.key, p.value])? == 0 {
                    let winner: String = existing.query_row(params![run_key, p.key], |r| r.get(0))?;
                    if winner != p.value {
                        return Err(StoreError::InvalidParameter(format!(
                            "Changing param values is not allowed. Param with key='{}' was already logged with \
                             value='{winner}' for run ID='{run_id}'. Attempted logging new value '{}'.",
                            p.key, p.value
                        )));
                    }
                }
            }
        }
    }

    let mut upsert_tag = conn.prepare_cached(UPSERT_TAG)?;
    for t in tags {
        if t.key == RUN_NAME_TAG {
            set_name(conn, run_key, &t.value)?;
        } else {
            upsert_tag.execute(params![run_key, t.key, t.value])?;
        }
    }

    insert_metrics(conn, run_key, metrics)?;
    update_latest(conn, run_key, metrics)?;
    for m in metrics {
        if let Some(model_id) = &m.model_id {
            insert_model_metric(conn, model_id, run_id, m)?;
        }
    }
    Ok(())
}

/// Records a point for a logged model's metrics (it is in the run's history as well); an exact
/// repeat is kept once. Returns whether it was new.
pub(crate) fn insert_model_metric(conn: &Connection, model_id: &str, run_id: &str, m: &Metric) -> Result<usize> {
    let (value, is_nan) = if m.value.is_nan() { (0.0, 1) } else { (m.value, 0) };
    Ok(conn.execute(
        "INSERT INTO logged_model_metrics (model_id, key, step, timestamp, value, is_nan, run_id, dataset_name,
                                           dataset_digest)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING",
        params![model_id, m.key, m.step, m.timestamp, value, is_nan, run_id, m.dataset_name, m.dataset_digest],
    )?)
}

/// Rows per multi-row INSERT of metric points, largest first: a batch of 1,000 points is 10
/// statements (one round trip each on PostgreSQL, where one per point made a batch take
/// longer than MLflow's), and only this many distinct statement texts get prepared.
const METRIC_CHUNKS: [usize; 5] = [256, 64, 16, 4, 1];

/// Moves each key's latest value forward to the newest of `metrics` where it is newer, by
/// (step, timestamp, value) as MLflow orders them.
pub(crate) fn update_latest(conn: &Connection, run_key: i64, metrics: &[Metric]) -> Result<()> {
    let mut upsert_latest = conn.prepare_cached(
        "INSERT INTO latest_metrics (run_key, key, step, timestamp, value, is_nan) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (run_key, key) DO UPDATE SET
            step = excluded.step, timestamp = excluded.timestamp, value = excluded.value, is_nan = excluded.is_nan
         WHERE (excluded.step, excluded.timestamp, excluded.value) >= (latest_metrics.step, latest_metrics.timestamp, latest_metrics.value)",
    )?;
    // The latest value per key of this batch, by (step, timestamp, value) as SQLite compares
    // the stored rows: one upsert per key instead of one per point.
    let mut latest: HashMap<&str, (i64, i64, f64, i64)> = HashMap::new();
    for m in metrics {
        let (value, is_nan) = if m.value.is_nan() { (0.0, 1) } else { (m.value, 0) };
        let candidate = (m.step, m.timestamp, value, is_nan);
        latest
            .entry(&m.key)
            .and_modify(|cur| {
                if (candidate.0, candidate.1).cmp(&(cur.0, cur.1)).then(candidate.2.total_cmp(&cur.2)).is_ge() {
                    *cur = candidate;
                }
            })
            .or_insert(candidate);
    }
    for (key, (step, timestamp, value, is_nan)) in latest {
        upsert_latest.execute(params![run_key, key, step, timestamp, value, is_nan])?;
    }
    Ok(())
}

/// Appends points to the history; an exact repeat of a stored point is kept once. Returns how
/// many points were new.
pub(crate) fn insert_metrics(conn: &Connection, run_key: i64, metrics: &[Metric]) -> Result<usize> {
    use rusqlite::types::Value;
    let mut rest = metrics;
    let mut inserted = 0;
    while !rest.is_empty() {
        let n = METRIC_CHUNKS.into_iter().find(|&c| c <= rest.len()).unwrap_or(1);
        let (chunk, tail) = rest.split_at(n);
        let rows: Vec<String> = (0..n)
            .map(|i| {
                let b = i * 6;
                format!("(?{}, ?{}, ?{}, ?{}, ?{}, ?{})", b + 1, b + 2, b + 3, b + 4, b + 5, b + 6)
            })
            .collect();
        let sql = format!(
            "INSERT INTO metrics (run_key, key, step, timestamp, value, is_nan) VALUES {} ON CONFLICT DO NOTHING",
            rows.join(", ")
        );
        let args = chunk.iter().flat_map(|m| {
            let (value, is_nan) = if m.value.is_nan() { (0.0, 1) } else { (m.value, 0) };
            [
                Value::Integer(run_key),
                Value::Text(m.key.clone()),
                Value::Integer(m.step),
                Value::Integer(m.timestamp),
                Value::Real(value),
                Value::Integer(is_nan),
            ]
        });
        inserted += conn.execute(&sql, params_from_iter(args))?;
        rest = tail;
    }
    Ok(inserted)
}

pub fn delete_tag(conn: &Connection, run_id: &str, key: &str) -> Result<()> {
    let run_key = require_active(conn, run_id)?;
    let removed = conn.execute("DELETE FROM tags WHERE run_key = ?1 AND key = ?2", params![run_key, key])?;
    if removed == 0 {
        return Err(StoreError::NotFound(format!("No tag with name: {key} in run with id {run_id}")));
    }
    Ok(())
}

pub fn validate_dataset(d: &NewDatasetInput) -> Result<()> {
    let ds = &d.dataset;
    let check = |what: &str, v: &str, limit: usize| validate::value_len("dataset", what, v, limit);
    if ds.name.is_empty() || ds.digest.is_empty() || ds.source_type.is_empty() || ds.source.is_empty() {
        return Err(StoreError::InvalidParameter("dataset name, digest, source_type and source are required".into()));
    }
    check("name", &ds.name, validate::MAX_DATASET_NAME_SIZE)?;
    check("digest", &ds.digest, validate::MAX_DATASET_DIGEST_SIZE)?;
    check("source", &ds.source, validate::MAX_DATASET_SOURCE_SIZE)?;
    check("schema", ds.schema.as_deref().unwrap_or(""), validate::MAX_DATASET_SCHEMA_SIZE)?;
    check("profile", ds.profile.as_deref().unwrap_or(""), validate::MAX_DATASET_PROFILE_SIZE)?;
    for t in &d.tags {
        validate::value_len("input tag", "key", &t.key, 255)?;
        validate::value_len("input tag", &t.key, &t.value, 500)?;
    }
    Ok(())
}

pub fn log_inputs(conn: &Connection, run_id: &str, datasets: &[NewDatasetInput], model_ids: &[String]) -> Result<()> {
    let run_key = require_active(conn, run_id)?;
    let exp_id: i64 = conn.query_row("SELECT experiment_id FROM runs WHERE run_key = ?1", [run_key], |r| r.get(0))?;
    for input in datasets {
        let ds = &input.dataset;
        conn.execute(
            "INSERT INTO datasets (dataset_uuid, experiment_id, name, digest, source_type, source, schema, profile)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING",
            params![
                uuid::Uuid::new_v4().simple().to_string(),
                exp_id,
                ds.name,
                ds.digest,
                ds.source_type,
                ds.source,
                ds.schema,
                ds.profile
            ],
        )?;
        let dataset_uuid: String = conn.query_row(
            "SELECT dataset_uuid FROM datasets WHERE experiment_id = ?1 AND name = ?2 AND digest = ?3",
            params![exp_id, ds.name, ds.digest],
            |r| r.get(0),
        )?;
        conn.execute(
            "INSERT INTO dataset_inputs (input_uuid, dataset_uuid, run_key) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
            params![uuid::Uuid::new_v4().simple().to_string(), dataset_uuid, run_key],
        )?;
        let input_uuid: String = conn.query_row(
            "SELECT input_uuid FROM dataset_inputs WHERE run_key = ?1 AND dataset_uuid = ?2",
            params![run_key, dataset_uuid],
            |r| r.get(0),
        )?;
        for t in &input.tags {
            conn.execute(
                "INSERT INTO input_tags (input_uuid, name, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (input_uuid, name) DO UPDATE SET value = excluded.value",
                params![input_uuid, t.key, t.value],
            )?;
        }
    }
    for model_id in model_ids {
        conn.execute(
            "INSERT INTO run_model_links (run_key, model_id, direction) VALUES (?1, ?2, 'input') ON CONFLICT DO NOTHING",
            params![run_key, model_id],
        )?;
    }
    Ok(())
}

pub fn log_outputs(conn: &Connection, run_id: &str, models: &[(String, i64)]) -> Result<()> {
    let run_key = require_active(conn, run_id)?;
    for (model_id, step) in models {
        let known: bool =
            conn.query_row("SELECT EXISTS(SELECT 1 FROM logged_models WHERE model_id = ?1)", [model_id], |r| r.get(0))?;
        if !known {
            return Err(StoreError::NotFound(format!("Logged model with ID '{model_id}' not found.")));
        }
        conn.execute(
            "INSERT INTO run_model_links (run_key, model_id, direction, step) VALUES (?1, ?2, 'output', ?3)
             ON CONFLICT (run_key, direction, model_id) DO UPDATE SET step = excluded.step",
            params![run_key, model_id, step],
        )?;
    }
    Ok(())
}

fn row_to_info(r: &super::conn::Row) -> super::conn::Result<RunInfo> {
    let id: String = r.get(0)?;
    Ok(RunInfo {
        run_uuid: id.clone(),
        run_id: id,
        experiment_id: r.get::<_, i64>(1)?.to_string(),
        run_name: r.get(2)?,
        user_id: r.get(3)?,
        status: r.get(4)?,
        start_time: r.get(5)?,
        end_time: r.get(6)?,
        lifecycle_stage: r.get(7)?,
        artifact_uri: r.get(8)?,
    })
}

const RUN_COLUMNS: &str =
    "run_uuid, experiment_id, name, user_id, status, start_time, end_time, lifecycle_stage, artifact_uri, run_key";

fn read_metric(key: String, r: &super::conn::Row, base: usize) -> super::conn::Result<Metric> {
    let is_nan: bool = r.get(base + 3)?;
    Ok(Metric {
        key,
        value: if is_nan { f64::NAN } else { r.get(base)? },
        timestamp: r.get(base + 1)?,
        step: r.get(base + 2)?,
        dataset_name: None,
        dataset_digest: None,
        model_id: None,
        run_id: None,
    })
}

/// Loads whole runs, in the order of `ids`, with a fixed number of queries per call.
pub fn load_runs(conn: &Connection, ids: &[String]) -> Result<Vec<Run>> {
    let mut runs: Vec<Run> = Vec::with_capacity(ids.len());
    let mut by_key: HashMap<i64, usize> = HashMap::with_capacity(ids.len());
    // Chunks keep the number of bound variables well under SQLite's limit.
    for chunk in ids.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(",");
        let mut stmt = conn.prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_uuid IN ({marks})"))?;
        let mut keys = Vec::with_capacity(chunk.len());
        let mut rows = stmt.query(params_from_iter(chunk))?;
        while let Some(r) = rows.next()?.as_ref() {
            let key: i64 = r.get(9)?;
            by_key.insert(key, runs.len());
            keys.push(key);
            let info = row_to_info(r)?;
            runs.push(Run {
                info,
                data: RunData::default(),
                inputs: RunInputs::default(),
                outputs: RunOutputs::default(),
            });
        }
        load_side_tables(conn, &keys, &by_key, &mut runs)?;
    }
    let position: HashMap<&str, usize> = ids.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
    runs.sort_by_key(|r| position.get(r.info.run_id.as_str()).copied().unwrap_or(usize::MAX));
    Ok(runs)
}

/// Params, tags, latest metrics, inputs and outputs of the runs with these keys.
fn load_side_tables(conn: &Connection, keys: &[i64], by_key: &HashMap<i64, usize>, runs: &mut [Run]) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let marks = vec!["?"; keys.len()].join(",");
    let run_of =
        |r: &super::conn::Row| -> super::conn::Result<Option<usize>> { Ok(by_key.get(&r.get::<_, i64>(0)?).copied()) };

    let mut stmt = conn
        .prepare_cached(&format!("SELECT run_key, key, value FROM params WHERE run_key IN ({marks}) ORDER BY key"))?;
    let mut rows = stmt.query(params_from_iter(keys))?;
    while let Some(r) = rows.next()?.as_ref() {
        if let Some(i) = run_of(r)? {
            runs[i].data.params.push(KeyValue { key: r.get(1)?, value: r.get(2)? });
        }
    }
    let mut stmt =
        conn.prepare_cached(&format!("SELECT run_key, key, value FROM tags WHERE run_key IN ({marks}) ORDER BY key"))?;
    let mut rows = stmt.query(params_from_iter(keys))?;
    while let Some(r) = rows.next()?.as_ref() {
        if let Some(i) = run_of(r)? {
            runs[i].data.tags.push(KeyValue { key: r.get(1)?, value: r.get(2)? });
        }
    }
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT run_key, key, value, timestamp, step, is_nan FROM latest_metrics WHERE run_key IN ({marks}) ORDER BY key"
    ))?;
    let mut rows = stmt.query(params_from_iter(keys))?;
    while let Some(r) = rows.next()?.as_ref() {
        if let Some(i) = run_of(r)? {
            let m = read_metric(r.get(1)?, r, 2)?;
            runs[i].data.metrics.push(m);
        }
    }
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT di.run_key, di.input_uuid, d.name, d.digest, d.source_type, d.source, d.schema, d.profile
         FROM dataset_inputs di JOIN datasets d ON d.dataset_uuid = di.dataset_uuid
         WHERE di.run_key IN ({marks}) ORDER BY d.name, d.digest"
    ))?;
    let mut rows = stmt.query(params_from_iter(keys))?;
    let mut tag_stmt = conn.prepare_cached("SELECT name, value FROM input_tags WHERE input_uuid = ?1 ORDER BY name")?;
    while let Some(r) = rows.next()?.as_ref() {
        if let Some(i) = run_of(r)? {
            let input_uuid: String = r.get(1)?;
            let tags = tag_stmt
                .query_map([&input_uuid], |t| Ok(KeyValue { key: t.get(0)?, value: t.get(1)? }))?
                .collect::<super::conn::Result<_>>()?;
            runs[i].inputs.dataset_inputs.push(DatasetInput {
                tags,
                dataset: Dataset {
                    name: r.get(2)?,
                    digest: r.get(3)?,
                    source_type: r.get(4)?,
                    source: r.get(5)?,
                    schema: r.get(6)?,
                    profile: r.get(7)?,
                },
            });
        }
    }
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT run_key, model_id, direction, step FROM run_model_links WHERE run_key IN ({marks}) ORDER BY model_id"
    ))?;
    let mut rows = stmt.query(params_from_iter(keys))?;
    while let Some(r) = rows.next()?.as_ref() {
        if let Some(i) = run_of(r)? {
            let model_id: String = r.get(1)?;
            if r.get::<_, String>(2)? == "input" {
                runs[i].inputs.model_inputs.push(ModelRef { model_id });
            } else {
                runs[i].outputs.model_outputs.push(ModelOutput { model_id, step: r.get(3)? });
            }
        }
    }
    Ok(())
}

pub fn get(conn: &Connection, run_id: &str) -> Result<Run> {
    load_runs(conn, &[run_id.to_string()])?.pop().ok_or_else(|| not_found(run_id))
}

pub fn search(conn: &Connection, experiment_ids: &[String], req: &SearchRequest) -> Result<Page<Run>> {
    let limit = validate::max_results(req.max_results, 1000, validate::MAX_RESULTS_RUNS)?;
    let offset = page_token::decode(req.page_token.as_deref())?;
    let clauses = parse_filter(req.filter.as_deref().unwrap_or(""))?;
    let order: Vec<_> = req.order_by.iter().map(|o| parse_order_by(o)).collect::<Result<_, _>>()?;
    let ids: Vec<i64> = experiment_ids.iter().filter_map(|e| e.parse().ok()).collect();
    if ids.is_empty() {
        return Ok(Page { items: Vec::new(), next_page_token: None });
    }

    let mut scope = Sql::default();
    scope.push("r.experiment_id IN (");
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            scope.push(", ");
        }
        scope.arg(*id);
    }
    scope.push(") AND ");
    scope.push(match req.view_type {
        ViewType::ActiveOnly => "r.lifecycle_stage = 'active'",
        ViewType::DeletedOnly => "r.lifecycle_stage = 'deleted'",
        ViewType::All => "1 = 1",
    });
    if let Some(split) = query::split_run_query(&scope, &clauses, &order)? {
        let ids = split_page(conn, split, limit, offset)?;
        return Ok(Page { items: load_runs(conn, &ids.items)?, next_page_token: ids.next_page_token });
    }
    let mut q = query::RunQuery::default();
    query::run_filter(&mut q, &clauses)?;
    query::run_order(&mut q, &order)?;
    let ids = q.into_sql(scope).page(conn, limit, offset, |r| r.get::<_, String>(0))?;
    Ok(Page { items: load_runs(conn, &ids.items)?, next_page_token: ids.next_page_token })
}

/// One page (limit + 1 rows from `offset`, the extra row telling whether another page follows)
/// over the concatenation of the two segments. The second is read only when the first runs out,
/// and counted only when the page starts past its end.
fn split_page(conn: &Connection, split: query::SplitRunQuery, limit: usize, offset: usize) -> Result<Page<String>> {
    let want = limit + 1;
    let mut ids: Vec<String> = split.with_value.clone().rows(conn, want, offset, |r| r.get(0))?;
    if ids.len() < want {
        let past = if ids.is_empty() && offset > 0 { offset.saturating_sub(split.with_value.count(conn)?) } else { 0 };
        let more: Vec<String> = split.without_value.rows(conn, want - ids.len(), past, |r| r.get(0))?;
        ids.extend(more);
    }
    let next_page_token = (ids.len() > limit).then(|| page_token::encode(offset + limit));
    ids.truncate(limit);
    Ok(Page { items: ids, next_page_token })
}

pub fn metric_history(
    conn: &Connection,
    run_id: &str,
    key: &str,
    max_results: Option<i64>,
    token: Option<&str>,
) -> Result<Page<Metric>> {
    let (run_key, _) = lookup(conn, run_id)?;
    let offset = page_token::decode(token)?;
    // Without max_results MLflow returns the whole history in one answer.
    let limit = match max_results {
        None => i64::MAX as usize - 1,
        Some(_) => validate::max_results(max_results, validate::MAX_RESULTS_HISTORY, validate::MAX_RESULTS_HISTORY)?,
    };
    let mut stmt = conn.prepare_cached(
        "SELECT value, timestamp, step, is_nan FROM metrics WHERE run_key = ?1 AND key = ?2
         ORDER BY step, timestamp, value LIMIT ?3 OFFSET ?4",
    )?;
    let fetch = limit.saturating_add(1).min(i64::MAX as usize) as i64;
    let mut items: Vec<Metric> = stmt
        .query_map(params![run_key, key, fetch, offset as i64], |r| read_metric(key.to_string(), r, 0))?
        .collect::<super::conn::Result<_>>()?;
    let next_page_token = (items.len() > limit).then(|| page_token::encode(offset + limit));
    items.truncate(limit);
    Ok(Page { items, next_page_token })
}
