//! Experiments: create, read, search, rename, soft delete and tags.

use super::conn::{Connection, OptionalExtension, params};
use slipway_types::{Experiment, KeyValue, LIFECYCLE_ACTIVE, LIFECYCLE_DELETED, ViewType};

use super::query::{self, Sql};
use crate::search::{parse_filter, parse_order_by};
use crate::{Page, Result, SearchRequest, StoreError, now_ms, page_token, validate};

pub const DEFAULT_EXPERIMENT_NAME: &str = "Default";

/// Experiment "0" named "Default" must exist: clients log there when nothing else is set.
pub fn ensure_default(conn: &Connection, root: &str) -> Result<()> {
    let now = now_ms();
    conn.execute(
        "INSERT INTO experiments (experiment_id, name, artifact_location, creation_time, last_update_time)
         VALUES (0, ?1, ?2, ?3, ?3) ON CONFLICT DO NOTHING",
        params![DEFAULT_EXPERIMENT_NAME, format!("{}/0", root.trim_end_matches('/')), now],
    )?;
    Ok(())
}

pub fn parse_id(id: &str) -> Result<i64> {
    validate::experiment_id(id)?;
    id.parse().map_err(|_| StoreError::NotFound(format!("No Experiment with id={id} exists")))
}

pub fn create(conn: &Connection, root: &str, name: &str, location: Option<&str>, tags: &[KeyValue]) -> Result<String> {
    let exists: Option<i64> =
        conn.query_row("SELECT experiment_id FROM experiments WHERE name = ?1", [name], |r| r.get(0)).optional()?;
    if exists.is_some() {
        return Err(StoreError::AlreadyExists(format!("Experiment(name={name}) already exists.")));
    }
    let now = now_ms();
    let id: i64 = conn.query_row(
        "INSERT INTO experiments (name, artifact_location, creation_time, last_update_time) VALUES (?1, '', ?2, ?2)
         RETURNING experiment_id",
        params![name, now],
        |r| r.get(0),
    )?;
    let location = match location.filter(|l| !l.is_empty()) {
        Some(l) => resolve_if_local(l)?,
        None => format!("{root}/{id}"),
    };
    conn.execute("UPDATE experiments SET artifact_location = ?1 WHERE experiment_id = ?2", params![location, id])?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO experiment_tags (experiment_id, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value",
    )?;
    for t in tags {
        insert.execute(params![id, t.key, t.value])?;
    }
    Ok(id.to_string())
}

/// A relative local path made absolute against the server's working directory, as
/// `mlflow server` does (`mlflow.utils.uri.resolve_uri_if_local`): `my_loc` becomes
/// `<cwd>/my_loc` and `file:my_loc` becomes `file://<cwd>/my_loc`. Everything else — absolute
/// paths, `file:///...`, other schemes — is kept as given. The client's string is resolved on
/// the server because the server is what `mlflow server` resolves it on; a client on another
/// machine gets the server's path, exactly as with MLflow.
pub fn resolve_if_local(location: &str) -> Result<String> {
    let (scheme, rest) = match uri_scheme(location) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("file") => ("file", rest),
        Some(_) => return Ok(location.to_string()),
        None => ("", location),
    };
    // `file://host/...` and `file:/...` name absolute paths already.
    let path = if scheme.is_empty() { rest } else { rest.split(['?', '#']).next().unwrap_or("") };
    if path.starts_with('/') {
        return Ok(location.to_string());
    }
    let cwd = std::env::current_dir().map_err(|e| StoreError::Backend(format!("working directory: {e}")))?;
    let mut joined = cwd.to_string_lossy().trim_end_matches('/').to_string();
    // pathlib's join: empty and `.` segments vanish, and so does a trailing slash.
    for seg in percent_decode(path).split('/').filter(|s| !s.is_empty() && *s != ".") {
        joined.push('/');
        joined.push_str(seg);
    }
    if scheme.is_empty() {
        return Ok(joined);
    }
    let tail = &rest[path.len()..];
    Ok(format!("file://{joined}{tail}"))
}

/// The scheme of a URI as Python's `urlsplit` finds it: letters, digits, `+ - .` before the
/// first `:`, starting with a letter.
fn uri_scheme(uri: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = uri.split_once(':')?;
    let ok = scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    ok.then_some((scheme, rest))
}

/// `urllib.parse.unquote`: `%XX` escapes decoded, invalid UTF-8 replaced.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn row_to_experiment(r: &super::conn::Row) -> super::conn::Result<Experiment> {
    Ok(Experiment {
        experiment_id: r.get::<_, i64>(0)?.to_string(),
        name: r.get(1)?,
        artifact_location: r.get(2)?,
        lifecycle_stage: r.get(3)?,
        creation_time: r.get(4)?,
        last_update_time: r.get(5)?,
        tags: Vec::new(),
    })
}

const COLUMNS: &str =
    "e.experiment_id, e.name, e.artifact_location, e.lifecycle_stage, e.creation_time, e.last_update_time";

fn load_tags(conn: &Connection, exp: &mut Experiment) -> Result<()> {
    let mut stmt =
        conn.prepare_cached("SELECT key, value FROM experiment_tags WHERE experiment_id = ?1 ORDER BY key")?;
    exp.tags = stmt
        .query_map([&exp.experiment_id], |r| Ok(KeyValue { key: r.get(0)?, value: r.get(1)? }))?
        .collect::<super::conn::Result<_>>()?;
    Ok(())
}

pub fn get(conn: &Connection, id: &str) -> Result<Experiment> {
    let n = parse_id(id)?;
    let mut exp = conn
        .query_row(&format!("SELECT {COLUMNS} FROM experiments e WHERE e.experiment_id = ?1"), [n], row_to_experiment)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("No Experiment with id={id} exists")))?;
    load_tags(conn, &mut exp)?;
    Ok(exp)
}

pub fn get_by_name(conn: &Connection, name: &str) -> Result<Experiment> {
    let mut exp = conn
        .query_row(&format!("SELECT {COLUMNS} FROM experiments e WHERE e.name = ?1"), [name], row_to_experiment)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("Could not find experiment with name '{name}'")))?;
    load_tags(conn, &mut exp)?;
    Ok(exp)
}

/// Fails unless the experiment exists; returns its lifecycle stage.
pub fn lifecycle(conn: &Connection, id: &str) -> Result<(i64, String)> {
    let n = parse_id(id)?;
    let stage: Option<String> = conn
        .query_row("SELECT lifecycle_stage FROM experiments WHERE experiment_id = ?1", [n], |r| r.get(0))
        .optional()?;
    stage.map(|s| (n, s)).ok_or_else(|| StoreError::NotFound(format!("No Experiment with id={id} exists")))
}

pub fn require_active(conn: &Connection, id: &str) -> Result<(i64, String)> {
    let (n, stage) = lifecycle(conn, id)?;
    if stage != LIFECYCLE_ACTIVE {
        return Err(StoreError::InvalidParameter(format!(
            "The experiment {id} must be in the 'active' state. Current state is {stage}."
        )));
    }
    let location: String =
        conn.query_row("SELECT artifact_location FROM experiments WHERE experiment_id = ?1", [n], |r| r.get(0))?;
    Ok((n, location))
}

pub fn search(conn: &Connection, req: &SearchRequest) -> Result<Page<Experiment>> {
    let limit = validate::max_results(req.max_results, 1000, validate::MAX_RESULTS_RUNS)?;
    let offset = page_token::decode(req.page_token.as_deref())?;
    let clauses = parse_filter(req.filter.as_deref().unwrap_or(""))?;
    let order: Vec<_> = req.order_by.iter().map(|o| parse_order_by(o)).collect::<Result<_, _>>()?;

    let mut sql = Sql::default();
    sql.push(&format!("SELECT {COLUMNS} FROM experiments e WHERE "));
    sql.push(match req.view_type {
        ViewType::ActiveOnly => "e.lifecycle_stage = 'active'",
        ViewType::DeletedOnly => "e.lifecycle_stage = 'deleted'",
        ViewType::All => "1 = 1",
    });
    sql.visible(&req.visible, "experiment", "CAST(e.experiment_id AS TEXT)");
    query::experiment_filter(&mut sql, &clauses)?;
    query::experiment_order(&mut sql, &order)?;
    let mut page = sql.page(conn, limit, offset, row_to_experiment)?;
    for e in &mut page.items {
        load_tags(conn, e)?;
    }
    Ok(page)
}

pub fn rename(conn: &Connection, id: &str, new_name: &str) -> Result<()> {
    let (n, stage) = lifecycle(conn, id)?;
    if stage != LIFECYCLE_ACTIVE {
        return Err(StoreError::InvalidParameter(format!(
            "Cannot rename a non-active experiment {id}. Current state is {stage}."
        )));
    }
    let taken: Option<i64> = conn
        .query_row(
            "SELECT experiment_id FROM experiments WHERE name = ?1 AND experiment_id != ?2",
            params![new_name, n],
            |r| r.get(0),
        )
        .optional()?;
    if taken.is_some() {
        return Err(StoreError::AlreadyExists(format!("Experiment(name={new_name}) already exists.")));
    }
    conn.execute(
        "UPDATE experiments SET name = ?1, last_update_time = ?2 WHERE experiment_id = ?3",
        params![new_name, now_ms(), n],
    )?;
    Ok(())
}

/// Soft delete (or restore): the experiment and its runs change lifecycle stage together.
pub fn set_lifecycle(conn: &Connection, id: &str, delete: bool) -> Result<()> {
    let (n, _) = lifecycle(conn, id)?;
    if delete && n == 0 {
        return Err(StoreError::InvalidParameter("Cannot delete the default experiment '0'.".into()));
    }
    let (stage, deleted_time) = if delete { (LIFECYCLE_DELETED, Some(now_ms())) } else { (LIFECYCLE_ACTIVE, None) };
    conn.execute(
        "UPDATE experiments SET lifecycle_stage = ?1, last_update_time = ?2 WHERE experiment_id = ?3",
        params![stage, now_ms(), n],
    )?;
    conn.execute(
        "UPDATE runs SET lifecycle_stage = ?1, deleted_time = ?2 WHERE experiment_id = ?3",
        params![stage, deleted_time, n],
    )?;
    Ok(())
}

pub fn set_tag(conn: &Connection, id: &str, tag: &KeyValue) -> Result<()> {
    let (n, stage) = lifecycle(conn, id)?;
    if stage != LIFECYCLE_ACTIVE {
        return Err(StoreError::InvalidParameter(format!("The experiment {id} must be in the 'active' state.")));
    }
    conn.execute(
        "INSERT INTO experiment_tags (experiment_id, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value",
        params![n, tag.key, tag.value],
    )?;
    Ok(())
}

pub fn delete_tag(conn: &Connection, id: &str, key: &str) -> Result<()> {
    let (n, _) = lifecycle(conn, id)?;
    let removed = conn.execute("DELETE FROM experiment_tags WHERE experiment_id = ?1 AND key = ?2", params![n, key])?;
    if removed == 0 {
        return Err(StoreError::NotFound(format!("No tag with name: {key} in experiment with id {id}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cwd() -> String {
        std::env::current_dir().unwrap().to_string_lossy().trim_end_matches('/').to_string()
    }

    #[test]
    fn relative_local_locations_resolve_against_the_working_directory() {
        assert_eq!(resolve_if_local("my_location").unwrap(), format!("{}/my_location", cwd()));
        assert_eq!(resolve_if_local("./a//b/").unwrap(), format!("{}/a/b", cwd()));
        assert_eq!(resolve_if_local("my%20loc").unwrap(), format!("{}/my loc", cwd()));
        assert_eq!(resolve_if_local("file:rel/x").unwrap(), format!("file://{}/rel/x", cwd()));
    }

    #[test]
    fn absolute_and_remote_locations_are_kept() {
        for kept in ["/abs/path", "file:///abs", "file:/abs", "s3://bucket/p", "mlflow-artifacts:/x", "gs://b"] {
            assert_eq!(resolve_if_local(kept).unwrap(), kept);
        }
    }
}
