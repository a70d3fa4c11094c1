//! The model registry: registered models, versions, stages, aliases and tags. Every mutation
//! appends its audit record in the same transaction as the change itself.

use super::conn::{Connection, OptionalExtension, params, params_from_iter};
use slipway_types::{Alias, KeyValue, ModelVersion, RegisteredModel};

use super::audit;
use super::query::{self, Sql};
use crate::search::{Kind, parse_filter};
use crate::{NewModelVersion, Page, RegistrySearch, Result, StoreError, now_ms, page_token, validate};

pub const STAGES: [&str; 4] = ["None", "Staging", "Production", "Archived"];
/// The MLflow client adds `tags.`mlflow.prompt.is_prompt` != 'true'` to every registry search
/// to hide prompts. Models do not carry the tag, and MLflow counts a missing tag as "not a
/// prompt" here (unlike every other tag filter), so the two prompt forms match models without it.
const IS_PROMPT_TAG: &str = "mlflow.prompt.is_prompt";

/// For `tags.mlflow.prompt.is_prompt != 'true'` and `= 'false'`: the tag value that excludes
/// a row, when the clause is one of those two forms.
fn prompt_exclusion(c: &crate::search::Clause) -> Option<&'static str> {
    use crate::search::{Op, Value};
    if c.kind != Kind::Tag || c.key != IS_PROMPT_TAG {
        return None;
    }
    match (&c.op, &c.value) {
        (Op::Ne, Value::Str(v)) if v == "true" => Some("true"),
        (Op::Eq, Value::Str(v)) if v == "false" => Some("true"),
        _ => None,
    }
}
const DELETED_STAGE: &str = "Deleted_Internal";

fn model_not_found(name: &str) -> StoreError {
    StoreError::NotFound(format!("Registered Model with name={name} not found"))
}

fn version_not_found(name: &str, version: i64) -> StoreError {
    StoreError::NotFound(format!("Model Version (name={name}, version={version}) not found"))
}

/// Version numbers travel as strings; one that is not an integer is a client error in MLflow's
/// words. Zero and negative numbers parse, and then name no version (not found, as in MLflow).
pub fn parse_version(v: &str) -> Result<i64> {
    v.trim()
        .parse::<i64>()
        .map_err(|_| StoreError::InvalidParameter(format!("Parameter 'version' must be an integer, got '{v}'.")))
}

/// Stage names are matched case-insensitively and returned in canonical form.
pub fn canonical_stage(s: &str) -> Result<&'static str> {
    STAGES.iter().copied().find(|c| c.eq_ignore_ascii_case(s)).ok_or_else(|| {
        StoreError::InvalidParameter(format!(
            "Invalid Model Version stage: {s}. Value must be one of {}.",
            STAGES.join(", ")
        ))
    })
}

fn require_model(conn: &Connection, name: &str) -> Result<()> {
    let found: bool =
        conn.query_row("SELECT EXISTS(SELECT 1 FROM registered_models WHERE name = ?1)", [name], |r| r.get(0))?;
    if found { Ok(()) } else { Err(model_not_found(name)) }
}

fn touch_model(conn: &Connection, name: &str, now: i64) -> Result<()> {
    conn.execute("UPDATE registered_models SET last_updated_time = ?1 WHERE name = ?2", params![now, name])?;
    Ok(())
}

// ---- reading ----

const MV_COLUMNS: &str = "name, version, creation_time, last_updated_time, user_id, current_stage, description, \
                          source, storage_location, run_id, run_link, model_id, status, status_message";

fn row_to_version(r: &super::conn::Row) -> super::conn::Result<ModelVersion> {
    Ok(ModelVersion {
        name: r.get(0)?,
        version: r.get::<_, i64>(1)?.to_string(),
        creation_timestamp: r.get(2)?,
        last_updated_timestamp: r.get(3)?,
        user_id: r.get(4)?,
        current_stage: r.get(5)?,
        description: r.get(6)?,
        source: r.get(7)?,
        storage_location: r.get(8)?,
        run_id: r.get(9)?,
        run_link: r.get(10)?,
        model_id: r.get(11)?,
        status: r.get(12)?,
        status_message: r.get(13)?,
        tags: Vec::new(),
        aliases: Vec::new(),
    })
}

fn fill_version(conn: &Connection, mv: &mut ModelVersion) -> Result<()> {
    let mut tags =
        conn.prepare_cached("SELECT key, value FROM model_version_tags WHERE name = ?1 AND version = ?2 ORDER BY key")?;
    mv.tags = tags
        .query_map(params![mv.name, mv.version], |r| Ok(KeyValue { key: r.get(0)?, value: r.get(1)? }))?
        .collect::<super::conn::Result<_>>()?;
    let mut aliases = conn
        .prepare_cached("SELECT alias FROM registered_model_aliases WHERE name = ?1 AND version = ?2 ORDER BY alias")?;
    mv.aliases = aliases.query_map(params![mv.name, mv.version], |r| r.get(0))?.collect::<super::conn::Result<_>>()?;
    Ok(())
}

/// A live (not deleted) version.
pub fn get_version(conn: &Connection, name: &str, version: i64) -> Result<ModelVersion> {
    let mut mv = conn
        .query_row(
            &format!(
                "SELECT {MV_COLUMNS} FROM model_versions WHERE name = ?1 AND version = ?2 AND current_stage != ?3"
            ),
            params![name, version, DELETED_STAGE],
            row_to_version,
        )
        .optional()?
        .ok_or_else(|| version_not_found(name, version))?;
    fill_version(conn, &mut mv)?;
    Ok(mv)
}

fn latest_versions(conn: &Connection, name: &str, stages: &[&str]) -> Result<Vec<ModelVersion>> {
    let mut out = Vec::new();
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MV_COLUMNS} FROM model_versions WHERE name = ?1 AND current_stage = ?2 ORDER BY version DESC LIMIT 1"
    ))?;
    for stage in stages {
        if let Some(mut mv) = stmt.query_row(params![name, stage], row_to_version).optional()? {
            fill_version(conn, &mut mv)?;
            out.push(mv);
        }
    }
    out.sort_by_key(|mv| mv.version.parse::<i64>().unwrap_or(0));
    Ok(out)
}

pub fn get_model(conn: &Connection, name: &str) -> Result<RegisteredModel> {
    load_models(conn, &[name.to_string()])?.pop().ok_or_else(|| model_not_found(name))
}

pub fn get_latest(conn: &Connection, name: &str, stages: &[String]) -> Result<Vec<ModelVersion>> {
    require_model(conn, name)?;
    let wanted: Vec<&str> = if stages.is_empty() {
        STAGES.to_vec()
    } else {
        stages.iter().map(|s| canonical_stage(s)).collect::<Result<_>>()?
    };
    latest_versions(conn, name, &wanted)
}

pub fn version_by_alias(conn: &Connection, name: &str, alias: &str) -> Result<ModelVersion> {
    require_model(conn, name)?;
    // `latest` is reserved: it always means the highest live version, as in MLflow.
    if alias.eq_ignore_ascii_case("latest") {
        let highest: Option<i64> = conn.query_row(
            "SELECT MAX(version) FROM model_versions WHERE name = ?1 AND current_stage != ?2",
            params![name, DELETED_STAGE],
            |r| r.get(0),
        )?;
        let version =
            highest.ok_or_else(|| StoreError::InvalidParameter(format!("Registered model {name} has no versions.")))?;
        return get_version(conn, name, version);
    }
    let version: Option<i64> = conn
        .query_row(
            "SELECT version FROM registered_model_aliases WHERE name = ?1 AND alias = ?2",
            params![name, alias],
            |r| r.get(0),
        )
        .optional()?;
    // MLflow answers an unknown alias with INVALID_PARAMETER_VALUE (400), not 404.
    let version =
        version.ok_or_else(|| StoreError::InvalidParameter(format!("Registered model alias {alias} not found.")))?;
    get_version(conn, name, version)
}

/// Tags and aliases of many versions with two queries, for search pages.
fn fill_versions(conn: &Connection, versions: &mut [ModelVersion]) -> Result<()> {
    if versions.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = {
        let mut n: Vec<String> = versions.iter().map(|v| v.name.clone()).collect();
        n.sort();
        n.dedup();
        n
    };
    let index: std::collections::HashMap<(String, String), usize> =
        versions.iter().enumerate().map(|(i, v)| ((v.name.clone(), v.version.clone()), i)).collect();
    for chunk in names.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(",");
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT name, version, key, value FROM model_version_tags WHERE name IN ({marks}) ORDER BY key"
        ))?;
        let mut rows = stmt.query(params_from_iter(chunk))?;
        while let Some(r) = rows.next()?.as_ref() {
            let k = (r.get::<_, String>(0)?, r.get::<_, i64>(1)?.to_string());
            if let Some(&i) = index.get(&k) {
                versions[i].tags.push(KeyValue { key: r.get(2)?, value: r.get(3)? });
            }
        }
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT name, version, alias FROM registered_model_aliases WHERE name IN ({marks}) ORDER BY alias"
        ))?;
        let mut rows = stmt.query(params_from_iter(chunk))?;
        while let Some(r) = rows.next()?.as_ref() {
            let k = (r.get::<_, String>(0)?, r.get::<_, i64>(1)?.to_string());
            if let Some(&i) = index.get(&k) {
                versions[i].aliases.push(r.get(2)?);
            }
        }
    }
    Ok(())
}

/// Whole registered models, in the order of `names`, with a fixed number of queries.
fn load_models(conn: &Connection, names: &[String]) -> Result<Vec<RegisteredModel>> {
    let mut models: Vec<RegisteredModel> = Vec::with_capacity(names.len());
    let mut latest: Vec<ModelVersion> = Vec::new();
    for chunk in names.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(",");
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT name, creation_time, last_updated_time, description FROM registered_models WHERE name IN ({marks})"
        ))?;
        let found = stmt.query_map(params_from_iter(chunk), |r| {
            Ok(RegisteredModel {
                name: r.get(0)?,
                creation_timestamp: r.get(1)?,
                last_updated_timestamp: r.get(2)?,
                description: r.get(3)?,
                latest_versions: Vec::new(),
                tags: Vec::new(),
                aliases: Vec::new(),
            })
        })?;
        for m in found {
            models.push(m?);
        }
        // The highest live version in each stage.
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {MV_COLUMNS} FROM model_versions v WHERE v.name IN ({marks}) AND v.current_stage != '{DELETED_STAGE}'
               AND v.version = (SELECT MAX(w.version) FROM model_versions w WHERE w.name = v.name AND w.current_stage = v.current_stage)"
        ))?;
        for mv in stmt.query_map(params_from_iter(chunk), row_to_version)? {
            latest.push(mv?);
        }
    }
    fill_versions(conn, &mut latest)?;
    let index: std::collections::HashMap<String, usize> =
        models.iter().enumerate().map(|(i, m)| (m.name.clone(), i)).collect();
    for chunk in names.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(",");
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT name, key, value FROM registered_model_tags WHERE name IN ({marks}) ORDER BY key"
        ))?;
        let mut rows = stmt.query(params_from_iter(chunk))?;
        while let Some(r) = rows.next()?.as_ref() {
            if let Some(&i) = index.get(&r.get::<_, String>(0)?) {
                models[i].tags.push(KeyValue { key: r.get(1)?, value: r.get(2)? });
            }
        }
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT name, alias, version FROM registered_model_aliases WHERE name IN ({marks}) ORDER BY alias"
        ))?;
        let mut rows = stmt.query(params_from_iter(chunk))?;
        while let Some(r) = rows.next()?.as_ref() {
            if let Some(&i) = index.get(&r.get::<_, String>(0)?) {
                models[i].aliases.push(Alias { alias: r.get(1)?, version: r.get::<_, i64>(2)?.to_string() });
            }
        }
    }
    for mv in latest {
        if let Some(&i) = index.get(&mv.name) {
            models[i].latest_versions.push(mv);
        }
    }
    for m in &mut models {
        m.latest_versions.sort_by_key(|mv| mv.version.parse::<i64>().unwrap_or(0));
    }
    let position: std::collections::HashMap<&str, usize> =
        names.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
    models.sort_by_key(|m| position.get(m.name.as_str()).copied().unwrap_or(usize::MAX));
    Ok(models)
}

// ---- registered models ----

pub fn validate_name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(StoreError::InvalidParameter("Registered model name cannot be empty.".into()));
    }
    validate::value_len("registered model", "name", name, 256)
}

pub fn create_model(
    conn: &Connection,
    name: &str,
    description: Option<&str>,
    tags: &[KeyValue],
    actor: &str,
) -> Result<RegisteredModel> {
    let exists: bool =
        conn.query_row("SELECT EXISTS(SELECT 1 FROM registered_models WHERE name = ?1)", [name], |r| r.get(0))?;
    if exists {
        return Err(StoreError::AlreadyExists(format!("Registered Model (name={name}) already exists.")));
    }
    let now = now_ms();
    conn.execute(
        "INSERT INTO registered_models (name, creation_time, last_updated_time, description) VALUES (?1, ?2, ?2, ?3)",
        params![name, now, description],
    )?;
    let mut stmt = conn.prepare_cached(
        "INSERT INTO registered_model_tags (name, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (name, key) DO UPDATE SET value = excluded.value",
    )?;
    for t in tags {
        stmt.execute(params![name, t.key, t.value])?;
    }
    let rm = get_model(conn, name)?;
    audit::change(conn, actor, "create_registered_model", audit::model(name), None, Some(&rm))?;
    Ok(rm)
}

pub fn rename_model(conn: &Connection, name: &str, new_name: &str, actor: &str) -> Result<RegisteredModel> {
    let before = get_model(conn, name)?;
    validate_name(new_name)?;
    let taken: bool =
        conn.query_row("SELECT EXISTS(SELECT 1 FROM registered_models WHERE name = ?1)", [new_name], |r| r.get(0))?;
    if taken {
        return Err(StoreError::AlreadyExists(format!("Registered Model (name={new_name}) already exists.")));
    }
    conn.execute(
        "UPDATE registered_models SET name = ?1, last_updated_time = ?2 WHERE name = ?3",
        params![new_name, now_ms(), name],
    )?;
    let after = get_model(conn, new_name)?;
    audit::change(conn, actor, "rename_registered_model", audit::model(new_name), Some(&before), Some(&after))?;
    Ok(after)
}

pub fn update_model(conn: &Connection, name: &str, description: Option<&str>, actor: &str) -> Result<RegisteredModel> {
    let before = get_model(conn, name)?;
    conn.execute(
        "UPDATE registered_models SET description = ?1, last_updated_time = ?2 WHERE name = ?3",
        params![description, now_ms(), name],
    )?;
    let after = get_model(conn, name)?;
    audit::change(conn, actor, "update_registered_model", audit::model(name), Some(&before), Some(&after))?;
    Ok(after)
}

/// Deletes the model with its tags, aliases and versions, as MLflow does.
pub fn delete_model(conn: &Connection, name: &str, actor: &str) -> Result<()> {
    let before = get_model(conn, name)?;
    conn.execute("DELETE FROM registered_models WHERE name = ?1", [name])?;
    audit::change(conn, actor, "delete_registered_model", audit::model(name), Some(&before), None)?;
    Ok(())
}

pub fn set_model_tag(conn: &Connection, name: &str, tag: &KeyValue, actor: &str) -> Result<()> {
    let before = get_model(conn, name)?;
    conn.execute(
        "INSERT INTO registered_model_tags (name, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (name, key) DO UPDATE SET value = excluded.value",
        params![name, tag.key, tag.value],
    )?;
    touch_model(conn, name, now_ms())?;
    let after = get_model(conn, name)?;
    audit::change(conn, actor, "set_registered_model_tag", audit::model(name), Some(&before), Some(&after))
}

pub fn delete_model_tag(conn: &Connection, name: &str, key: &str, actor: &str) -> Result<()> {
    let before = get_model(conn, name)?;
    let n = conn.execute("DELETE FROM registered_model_tags WHERE name = ?1 AND key = ?2", params![name, key])?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("No tag with key '{key}' on registered model '{name}'")));
    }
    touch_model(conn, name, now_ms())?;
    let after = get_model(conn, name)?;
    audit::change(conn, actor, "delete_registered_model_tag", audit::model(name), Some(&before), Some(&after))
}

pub fn search_models(conn: &Connection, req: &RegistrySearch) -> Result<Page<RegisteredModel>> {
    let limit = validate::max_results(req.max_results, 100, 1000)?;
    let offset = page_token::decode(req.page_token.as_deref())?;
    let clauses = parse_filter(req.filter.as_deref().unwrap_or(""))?;
    let mut sql = Sql::default();
    sql.push("SELECT m.name FROM registered_models m WHERE 1 = 1");
    sql.visible(&req.visible, "registered_model", "m.name");
    for c in &clauses {
        sql.push(" AND ");
        match (c.kind, c.key.as_str()) {
            (Kind::Attribute, "name") => query::string_comparison(&mut sql, "m.name", c)?,
            (Kind::Tag, _) if prompt_exclusion(c).is_some() => {
                sql.push("NOT EXISTS (SELECT 1 FROM registered_model_tags t WHERE t.name = m.name AND t.key = ")
                    .arg(IS_PROMPT_TAG.to_string())
                    .push(" AND t.value = ")
                    .arg(prompt_exclusion(c).unwrap_or("true").to_string())
                    .push(")");
            }
            (Kind::Tag, _) => query::key_value_filter(&mut sql, "m.name", "registered_model_tags", "name", c)?,
            _ => {
                return Err(StoreError::InvalidParameter(format!(
                    "invalid filter on registered models: '{}' (use name or tags.<key>)",
                    c.key
                )));
            }
        }
    }
    sql.push(" ORDER BY ");
    query::push_order(&mut sql, &req.order_by, "registered models", |kind, key| match (kind, key) {
        (Kind::Attribute, "name") => Some("m.name"),
        (Kind::Attribute, "timestamp" | "last_updated_timestamp") => Some("m.last_updated_time"),
        (Kind::Attribute, "creation_timestamp") => Some("m.creation_time"),
        _ => None,
    })?;
    sql.push("m.name ASC");
    let names = sql.page(conn, limit, offset, |r| r.get::<_, String>(0))?;
    let (items, next_page_token) = (load_models(conn, &names.items)?, names.next_page_token);
    Ok(Page { items, next_page_token })
}

// ---- model versions ----

pub fn create_version(conn: &Connection, v: &NewModelVersion, actor: &str) -> Result<ModelVersion> {
    require_model(conn, &v.name)?;
    let next: i64 = conn.query_row(
        "UPDATE registered_models SET max_version = max_version + 1 WHERE name = ?1 RETURNING max_version",
        [&v.name],
        |r| r.get(0),
    )?;
    let now = now_ms();
    conn.execute(
        "INSERT INTO model_versions (name, version, creation_time, last_updated_time, user_id, description, source,
                                     storage_location, run_id, run_link, model_id)
         VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            v.name,
            next,
            now,
            v.user_id,
            v.description,
            v.source,
            v.storage_location,
            v.run_id,
            v.run_link,
            v.model_id
        ],
    )?;
    let mut stmt = conn.prepare_cached(
        "INSERT INTO model_version_tags (name, version, key, value) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (name, version, key) DO UPDATE SET value = excluded.value",
    )?;
    for t in &v.tags {
        stmt.execute(params![v.name, next, t.key, t.value])?;
    }
    touch_model(conn, &v.name, now)?;
    let mv = get_version(conn, &v.name, next)?;
    audit::change(conn, actor, "create_model_version", audit::version(&v.name, next), None, Some(&mv))?;
    Ok(mv)
}

pub fn update_version(
    conn: &Connection,
    name: &str,
    version: i64,
    description: Option<&str>,
    actor: &str,
) -> Result<ModelVersion> {
    let before = get_version(conn, name, version)?;
    conn.execute(
        "UPDATE model_versions SET description = ?1, last_updated_time = ?2 WHERE name = ?3 AND version = ?4",
        params![description, now_ms(), name, version],
    )?;
    let after = get_version(conn, name, version)?;
    audit::change(conn, actor, "update_model_version", audit::version(name, version), Some(&before), Some(&after))?;
    Ok(after)
}

/// Soft delete: the row stays (numbers are never reused) until `gc` removes it for good.
/// Aliases that pointed at the version are removed, as in MLflow.
pub fn delete_version(conn: &Connection, name: &str, version: i64, actor: &str) -> Result<()> {
    let before = get_version(conn, name, version)?;
    let now = now_ms();
    conn.execute("DELETE FROM registered_model_aliases WHERE name = ?1 AND version = ?2", params![name, version])?;
    conn.execute(
        "UPDATE model_versions SET current_stage = ?1, deleted_time = ?2, last_updated_time = ?2 WHERE name = ?3 AND version = ?4",
        params![DELETED_STAGE, now, name, version],
    )?;
    touch_model(conn, name, now)?;
    audit::change(conn, actor, "delete_model_version", audit::version(name, version), Some(&before), None)
}

pub fn transition_stage(
    conn: &Connection,
    name: &str,
    version: i64,
    stage: &str,
    archive_existing: bool,
    actor: &str,
) -> Result<ModelVersion> {
    let stage = canonical_stage(stage)?;
    let before = get_version(conn, name, version)?;
    let now = now_ms();
    if archive_existing && matches!(stage, "Staging" | "Production") {
        let others: Vec<i64> = conn
            .prepare("SELECT version FROM model_versions WHERE name = ?1 AND current_stage = ?2 AND version != ?3")?
            .query_map(params![name, stage, version], |r| r.get(0))?
            .collect::<super::conn::Result<_>>()?;
        for other in others {
            let prev = get_version(conn, name, other)?;
            conn.execute(
                "UPDATE model_versions SET current_stage = 'Archived', last_updated_time = ?1 WHERE name = ?2 AND version = ?3",
                params![now, name, other],
            )?;
            let next = get_version(conn, name, other)?;
            audit::change(conn, actor, "transition_stage", audit::version(name, other), Some(&prev), Some(&next))?;
        }
    }
    conn.execute(
        "UPDATE model_versions SET current_stage = ?1, last_updated_time = ?2 WHERE name = ?3 AND version = ?4",
        params![stage, now, name, version],
    )?;
    touch_model(conn, name, now)?;
    let after = get_version(conn, name, version)?;
    audit::change(conn, actor, "transition_stage", audit::version(name, version), Some(&before), Some(&after))?;
    Ok(after)
}

pub fn set_version_tag(conn: &Connection, name: &str, version: i64, tag: &KeyValue, actor: &str) -> Result<()> {
    let before = get_version(conn, name, version)?;
    conn.execute(
        "INSERT INTO model_version_tags (name, version, key, value) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (name, version, key) DO UPDATE SET value = excluded.value",
        params![name, version, tag.key, tag.value],
    )?;
    conn.execute(
        "UPDATE model_versions SET last_updated_time = ?1 WHERE name = ?2 AND version = ?3",
        params![now_ms(), name, version],
    )?;
    let after = get_version(conn, name, version)?;
    audit::change(conn, actor, "set_model_version_tag", audit::version(name, version), Some(&before), Some(&after))
}

pub fn delete_version_tag(conn: &Connection, name: &str, version: i64, key: &str, actor: &str) -> Result<()> {
    let before = get_version(conn, name, version)?;
    let n = conn.execute(
        "DELETE FROM model_version_tags WHERE name = ?1 AND version = ?2 AND key = ?3",
        params![name, version, key],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("No tag with key '{key}' on model version {name}/{version}")));
    }
    let after = get_version(conn, name, version)?;
    audit::change(conn, actor, "delete_model_version_tag", audit::version(name, version), Some(&before), Some(&after))
}

pub fn validate_alias(alias: &str) -> Result<()> {
    match validate::alias_problem(alias) {
        Some(why) => Err(StoreError::InvalidParameter(format!("Invalid alias name '{alias}': {why}"))),
        None => Ok(()),
    }
}

pub fn set_alias(conn: &Connection, name: &str, alias: &str, version: i64, actor: &str) -> Result<()> {
    validate_alias(alias)?;
    let target = get_version(conn, name, version)?;
    let previous: Option<i64> = conn
        .query_row(
            "SELECT version FROM registered_model_aliases WHERE name = ?1 AND alias = ?2",
            params![name, alias],
            |r| r.get(0),
        )
        .optional()?;
    conn.execute(
        "INSERT INTO registered_model_aliases (name, alias, version) VALUES (?1, ?2, ?3)
         ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version",
        params![name, alias, version],
    )?;
    touch_model(conn, name, now_ms())?;
    let before = previous.map(|v| serde_json::json!({ "alias": alias, "version": v.to_string() }));
    let after = serde_json::json!({ "alias": alias, "version": target.version });
    audit::record(conn, actor, "set_alias", "registered_model", name, Some(version), before, Some(after))
}

pub fn delete_alias(conn: &Connection, name: &str, alias: &str, actor: &str) -> Result<()> {
    require_model(conn, name)?;
    let previous: Option<i64> = conn
        .query_row(
            "SELECT version FROM registered_model_aliases WHERE name = ?1 AND alias = ?2",
            params![name, alias],
            |r| r.get(0),
        )
        .optional()?;
    let Some(version) = previous else {
        return Err(StoreError::InvalidParameter(format!("Registered model alias {alias} not found.")));
    };
    conn.execute("DELETE FROM registered_model_aliases WHERE name = ?1 AND alias = ?2", params![name, alias])?;
    touch_model(conn, name, now_ms())?;
    let before = serde_json::json!({ "alias": alias, "version": version.to_string() });
    audit::record(conn, actor, "delete_alias", "registered_model", name, Some(version), Some(before), None)
}

pub fn search_versions(conn: &Connection, req: &RegistrySearch) -> Result<Page<ModelVersion>> {
    let limit = validate::max_results(req.max_results, 10_000, 200_000)?;
    let offset = page_token::decode(req.page_token.as_deref())?;
    let clauses = parse_filter(req.filter.as_deref().unwrap_or(""))?;
    let mut sql = Sql::default();
    sql.push(&format!("SELECT {MV_COLUMNS} FROM model_versions v WHERE v.current_stage != '{DELETED_STAGE}'"));
    sql.visible(&req.visible, "registered_model", "v.name");
    for c in &clauses {
        sql.push(" AND ");
        match (c.kind, c.key.as_str()) {
            (Kind::Attribute, "name") => query::string_comparison(&mut sql, "v.name", c)?,
            (Kind::Attribute, "run_id") => query::string_comparison(&mut sql, "v.run_id", c)?,
            (Kind::Attribute, "source_path" | "source") => query::string_comparison(&mut sql, "v.source", c)?,
            (Kind::Attribute, "model_id") => query::string_comparison(&mut sql, "v.model_id", c)?,
            (Kind::Attribute, "current_stage") => query::string_comparison(&mut sql, "v.current_stage", c)?,
            (Kind::Attribute, "version_number") => query::numeric_comparison(&mut sql, "v.version", c)?,
            (Kind::Tag, _) if prompt_exclusion(c).is_some() => {
                let excluded = prompt_exclusion(c).unwrap_or("true");
                sql.push("NOT EXISTS (SELECT 1 FROM model_version_tags t WHERE t.name = v.name AND t.version = v.version AND t.key = ")
                    .arg(IS_PROMPT_TAG.to_string())
                    .push(" AND t.value = ")
                    .arg(excluded.to_string())
                    .push(") AND NOT EXISTS (SELECT 1 FROM registered_model_tags t WHERE t.name = v.name AND t.key = ")
                    .arg(IS_PROMPT_TAG.to_string())
                    .push(" AND t.value = ")
                    .arg(excluded.to_string())
                    .push(")");
            }
            (Kind::Tag, _) => {
                let negate = c.op == crate::search::Op::IsNull;
                sql.push(if negate { "NOT EXISTS (" } else { "EXISTS (" });
                sql.push(
                    "SELECT 1 FROM model_version_tags t WHERE t.name = v.name AND t.version = v.version AND t.key = ",
                )
                .arg(c.key.clone());
                if !matches!(c.op, crate::search::Op::IsNull | crate::search::Op::IsNotNull) {
                    sql.push(" AND ");
                    query::string_comparison(&mut sql, "t.value", c)?;
                }
                sql.push(")");
            }
            _ => {
                return Err(StoreError::InvalidParameter(format!(
                    "invalid filter on model versions: '{}' (use name, version_number, run_id, source_path, tags.<key>)",
                    c.key
                )));
            }
        }
    }
    sql.push(" ORDER BY ");
    // MLflow's default order for version searches: most recently updated first.
    let default_order = ["last_updated_timestamp DESC".to_string()];
    let order_by = if req.order_by.is_empty() { &default_order[..] } else { &req.order_by[..] };
    query::push_order(&mut sql, order_by, "model versions", |kind, key| match (kind, key) {
        (Kind::Attribute, "name") => Some("v.name"),
        (Kind::Attribute, "version_number") => Some("v.version"),
        (Kind::Attribute, "creation_timestamp") => Some("v.creation_time"),
        (Kind::Attribute, "timestamp" | "last_updated_timestamp") => Some("v.last_updated_time"),
        _ => None,
    })?;
    sql.push("v.name ASC, v.version DESC");
    let mut page = sql.page(conn, limit, offset, row_to_version)?;
    fill_versions(conn, &mut page.items)?;
    Ok(page)
}
