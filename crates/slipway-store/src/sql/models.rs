//! MLflow 3 logged models: created before their artifacts are uploaded, finalized after.

use super::conn::{Connection, OptionalExtension, params};
use slipway_types::{KeyValue, LIFECYCLE_ACTIVE, LoggedModel, LoggedModelData, LoggedModelInfo, Metric};

use super::experiments;
use super::query::{self, Sql};
use crate::search::{Kind, OrderBy, parse_filter};
use crate::{LoggedModelSearch, NewLoggedModel, Page, Result, StoreError, now_ms, page_token, validate};

const STATUSES: [&str; 4] =
    ["LOGGED_MODEL_STATUS_UNSPECIFIED", "LOGGED_MODEL_PENDING", "LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED"];

fn not_found(id: &str) -> StoreError {
    StoreError::NotFound(format!("Logged model with ID '{id}' not found."))
}

/// Accepts a status by name or by its proto number.
pub fn parse_status(s: &str) -> Result<&'static str> {
    if let Ok(n) = s.parse::<usize>() {
        return STATUSES
            .get(n)
            .copied()
            .ok_or_else(|| StoreError::InvalidParameter(format!("invalid logged model status {s}")));
    }
    STATUSES
        .iter()
        .copied()
        .find(|x| *x == s)
        .ok_or_else(|| StoreError::InvalidParameter(format!("invalid logged model status '{s}'")))
}

pub fn create(conn: &Connection, m: &NewLoggedModel) -> Result<String> {
    let (exp_id, location) = experiments::require_active(conn, &m.experiment_id)?;
    if let Some(run_id) = &m.source_run_id {
        let known: bool =
            conn.query_row("SELECT EXISTS(SELECT 1 FROM runs WHERE run_uuid = ?1)", [run_id], |r| r.get(0))?;
        if !known {
            return Err(StoreError::NotFound(format!("Run with id={run_id} not found")));
        }
    }
    let model_id = format!("m-{}", uuid::Uuid::new_v4().simple());
    let name = m.name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| format!("model-{}", &model_id[2..10]));
    let artifact_location = format!("{}/models/{model_id}/artifacts", location.trim_end_matches('/'));
    let now = now_ms();
    conn.execute(
        "INSERT INTO logged_models (model_id, experiment_id, name, artifact_location, creation_time, last_updated_time,
                                    status, model_type, source_run_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5, 'LOGGED_MODEL_PENDING', ?6, ?7)",
        params![model_id, exp_id, name, artifact_location, now, m.model_type, m.source_run_id],
    )?;
    log_params(conn, &model_id, &m.params)?;
    set_tags(conn, &model_id, &m.tags)?;
    Ok(model_id)
}

fn require(conn: &Connection, id: &str) -> Result<()> {
    let stage: Option<String> = conn
        .query_row("SELECT lifecycle_stage FROM logged_models WHERE model_id = ?1", [id], |r| r.get(0))
        .optional()?;
    match stage {
        Some(s) if s == LIFECYCLE_ACTIVE => Ok(()),
        _ => Err(not_found(id)),
    }
}

fn touch(conn: &Connection, id: &str) -> Result<()> {
    conn.execute("UPDATE logged_models SET last_updated_time = ?1 WHERE model_id = ?2", params![now_ms(), id])?;
    Ok(())
}

pub fn finalize(conn: &Connection, id: &str, status: &str) -> Result<()> {
    require(conn, id)?;
    let status = parse_status(status)?;
    conn.execute(
        "UPDATE logged_models SET status = ?1, last_updated_time = ?2 WHERE model_id = ?3",
        params![status, now_ms(), id],
    )?;
    Ok(())
}

pub fn delete(conn: &Connection, id: &str) -> Result<()> {
    require(conn, id)?;
    conn.execute(
        "UPDATE logged_models SET lifecycle_stage = 'deleted', deleted_time = ?1, last_updated_time = ?1 WHERE model_id = ?2",
        params![now_ms(), id],
    )?;
    Ok(())
}

pub fn set_tags(conn: &Connection, id: &str, tags: &[KeyValue]) -> Result<()> {
    require(conn, id)?;
    let mut stmt = conn.prepare_cached(
        "INSERT INTO logged_model_tags (model_id, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value",
    )?;
    for t in tags {
        stmt.execute(params![id, t.key, t.value])?;
    }
    touch(conn, id)
}

pub fn delete_tag(conn: &Connection, id: &str, key: &str) -> Result<()> {
    require(conn, id)?;
    let removed = conn.execute("DELETE FROM logged_model_tags WHERE model_id = ?1 AND key = ?2", params![id, key])?;
    if removed == 0 {
        return Err(StoreError::NotFound(format!("No tag with key '{key}' on logged model '{id}'")));
    }
    touch(conn, id)
}

pub fn log_params(conn: &Connection, id: &str, params_: &[KeyValue]) -> Result<()> {
    require(conn, id)?;
    let mut stmt = conn.prepare_cached(
        "INSERT INTO logged_model_params (model_id, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value",
    )?;
    for p in params_ {
        stmt.execute(params![id, p.key, p.value])?;
    }
    Ok(())
}

const COLUMNS: &str = "m.model_id, m.experiment_id, m.name, m.artifact_location, m.creation_time, m.last_updated_time, \
                       m.status, m.model_type, m.source_run_id, m.status_message";

fn load(conn: &Connection, ids: &[String]) -> Result<Vec<LoggedModel>> {
    let mut out = Vec::with_capacity(ids.len());
    let mut info_stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM logged_models m WHERE m.model_id = ?1"))?;
    let mut tag_stmt =
        conn.prepare_cached("SELECT key, value FROM logged_model_tags WHERE model_id = ?1 ORDER BY key")?;
    let mut param_stmt =
        conn.prepare_cached("SELECT key, value FROM logged_model_params WHERE model_id = ?1 ORDER BY key")?;
    let mut metric_stmt = conn.prepare_cached(
        "SELECT key, value, timestamp, step, is_nan, run_id, dataset_name, dataset_digest FROM logged_model_metrics
         WHERE model_id = ?1 ORDER BY key, step, timestamp",
    )?;
    for id in ids {
        let Some(mut info) = info_stmt
            .query_row([id], |r| {
                Ok(LoggedModelInfo {
                    model_id: r.get(0)?,
                    experiment_id: r.get::<_, i64>(1)?.to_string(),
                    name: r.get(2)?,
                    artifact_uri: r.get(3)?,
                    creation_timestamp_ms: r.get(4)?,
                    last_updated_timestamp_ms: r.get(5)?,
                    status: r.get(6)?,
                    creator_id: None,
                    model_type: r.get(7)?,
                    source_run_id: r.get(8)?,
                    status_message: r.get(9)?,
                    tags: Vec::new(),
                })
            })
            .optional()?
        else {
            continue;
        };
        let kv = |r: &super::conn::Row| Ok(KeyValue { key: r.get(0)?, value: r.get(1)? });
        info.tags = tag_stmt.query_map([id], kv)?.collect::<super::conn::Result<_>>()?;
        let params = param_stmt.query_map([id], kv)?.collect::<super::conn::Result<_>>()?;
        let metrics = metric_stmt
            .query_map([id], |r| {
                Ok(Metric {
                    key: r.get(0)?,
                    value: if r.get::<_, i64>(4)? != 0 { f64::NAN } else { r.get(1)? },
                    timestamp: r.get(2)?,
                    step: r.get(3)?,
                    run_id: r.get(5)?,
                    dataset_name: r.get(6)?,
                    dataset_digest: r.get(7)?,
                    model_id: Some(id.clone()),
                })
            })?
            .collect::<super::conn::Result<_>>()?;
        out.push(LoggedModel { info, data: LoggedModelData { params, metrics } });
    }
    Ok(out)
}

pub fn get(conn: &Connection, id: &str, allow_deleted: bool) -> Result<LoggedModel> {
    let stage: Option<String> = conn
        .query_row("SELECT lifecycle_stage FROM logged_models WHERE model_id = ?1", [id], |r| r.get(0))
        .optional()?;
    match stage {
        Some(s) if s == LIFECYCLE_ACTIVE || allow_deleted => {}
        _ => return Err(not_found(id)),
    }
    load(conn, &[id.to_string()])?.pop().ok_or_else(|| not_found(id))
}

pub fn search(conn: &Connection, req: &LoggedModelSearch) -> Result<Page<LoggedModel>> {
    let limit = validate::max_results(req.max_results, 100, validate::MAX_RESULTS_RUNS)?;
    let offset = page_token::decode(req.page_token.as_deref())?;
    let clauses = parse_filter(req.filter.as_deref().unwrap_or(""))?;
    let ids: Vec<i64> = req.experiment_ids.iter().filter_map(|e| e.parse().ok()).collect();
    if ids.is_empty() {
        return Ok(Page { items: Vec::new(), next_page_token: None });
    }
    let mut sql = Sql::default();
    sql.push("SELECT m.model_id FROM logged_models m WHERE m.lifecycle_stage = 'active' AND m.experiment_id IN (");
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.arg(*id);
    }
    sql.push(")");
    query::model_filter(&mut sql, &clauses)?;
    sql.push(" ORDER BY ");
    for (field, ascending) in &req.order_by {
        let o = OrderBy { kind: Kind::Attribute, key: field.clone(), ascending: *ascending };
        let col = query::model_attribute(&o.key)?.0;
        sql.push(col).push(if o.ascending { " ASC, " } else { " DESC, " });
    }
    sql.push("m.creation_time DESC, m.model_id ASC");
    let ids = sql.page(conn, limit, offset, |r| r.get::<_, String>(0))?;
    Ok(Page { items: load(conn, &ids.items)?, next_page_token: ids.next_page_token })
}
