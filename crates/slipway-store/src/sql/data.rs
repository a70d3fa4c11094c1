//! Dataset versions: sets by name, immutable versions numbered without gaps under the set's
//! lock, tags, and aliases that each name one version. Each change writes its audit record
//! (`data_version`) in its own transaction.

use serde_json::json;
use slipway_types::{DataSet, DataVersion, DataVersionRef, KeyValue, NewDataVersion};

use super::audit;
use super::conn::{Connection, OptionalExtension, Row, params};
use crate::{Result, StoreError, now_ms};

fn invalid(message: String) -> StoreError {
    StoreError::InvalidParameter(message)
}

/// A data set's name: letters, digits, `.`, `_` and `-`, starting with a letter or digit.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 256
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!("data set name '{name}': use letters, digits, '.', '_' and '-', up to 256")))
    }
}

/// An alias: a letter or `_`, then letters, digits, `_` and `-`; never `latest`, which always
/// means the newest version.
pub fn validate_alias(alias: &str) -> Result<()> {
    let ok = alias.len() <= 256
        && alias.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && alias.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        && alias != "latest";
    if ok {
        Ok(())
    } else {
        Err(invalid(format!("alias '{alias}': a letter or '_' then letters, digits, '_' or '-'; not 'latest'")))
    }
}

pub fn validate_new(new: &NewDataVersion) -> Result<()> {
    validate_name(&new.name)?;
    if new.manifest.len() != 64 || !new.manifest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(invalid(format!("manifest '{}' is not a SHA-256", new.manifest)));
    }
    if new.message.as_ref().is_some_and(|m| m.len() > 5000) {
        return Err(invalid("message is longer than 5000 bytes".into()));
    }
    for t in &new.tags {
        validate_tag(&t.key, &t.value)?;
    }
    for a in &new.aliases {
        validate_alias(a)?;
    }
    Ok(())
}

pub fn validate_tag(key: &str, value: &str) -> Result<()> {
    if key.is_empty() || key.len() > 250 || key.chars().any(char::is_control) || value.len() > 5000 {
        return Err(invalid(format!("tag '{key}': keys of 1 to 250 characters, values up to 5000 bytes")));
    }
    Ok(())
}

fn not_found(name: &str, which: &str) -> StoreError {
    StoreError::NotFound(format!("data set '{name}' has no version '{which}'"))
}

const COLUMNS: &str = "name, version, manifest_sha256, files, bytes, rows, message, created_by, created_ms";

fn row(r: &Row) -> super::conn::Result<DataVersion> {
    let manifest: String = r.get(2)?;
    Ok(DataVersion {
        name: r.get(0)?,
        version: r.get(1)?,
        digest: DataVersion::digest_of(&manifest),
        manifest,
        files: r.get(3)?,
        bytes: r.get(4)?,
        rows: r.get(5)?,
        message: r.get(6)?,
        created_by: r.get(7)?,
        created_ms: r.get(8)?,
        tags: Vec::new(),
        aliases: Vec::new(),
    })
}

/// Fills in a version's tags and aliases.
fn complete(conn: &Connection, mut v: DataVersion) -> Result<DataVersion> {
    let mut stmt =
        conn.prepare_cached("SELECT key, value FROM data_version_tags WHERE name = ?1 AND version = ?2 ORDER BY key")?;
    v.tags = stmt
        .query_map(params![v.name.as_str(), v.version], |r| Ok(KeyValue { key: r.get(0)?, value: r.get(1)? }))?
        .collect::<super::conn::Result<Vec<_>>>()?;
    let mut stmt =
        conn.prepare_cached("SELECT alias FROM data_aliases WHERE name = ?1 AND version = ?2 ORDER BY alias")?;
    v.aliases =
        stmt.query_map(params![v.name.as_str(), v.version], |r| r.get(0))?.collect::<super::conn::Result<Vec<_>>>()?;
    Ok(v)
}

fn by_number(conn: &Connection, name: &str, version: i64) -> Result<Option<DataVersion>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM data_versions WHERE name = ?1 AND version = ?2"))?
        .query_row(params![name, version], row)
        .optional()?
        .map(|v| complete(conn, v))
        .transpose()
}

fn set_exists(conn: &Connection, name: &str) -> Result<bool> {
    Ok(conn.query_row("SELECT 1 FROM data_sets WHERE name = ?1", [name], |_| Ok(())).optional()?.is_some())
}

/// A version by number, `latest`, or an alias.
pub fn get(conn: &Connection, name: &str, which: &str) -> Result<DataVersion> {
    let number = if which == "latest" {
        conn.query_row("SELECT MAX(version) FROM data_versions WHERE name = ?1", [name], |r| {
            r.get::<_, Option<i64>>(0)
        })?
    } else if let Ok(n) = which.parse::<i64>() {
        Some(n)
    } else {
        conn.query_row("SELECT version FROM data_aliases WHERE name = ?1 AND alias = ?2", params![name, which], |r| {
            r.get(0)
        })
        .optional()?
    };
    if !set_exists(conn, name)? {
        return Err(StoreError::NotFound(format!("data set '{name}' not found")));
    }
    number.map(|n| by_number(conn, name, n)).transpose()?.flatten().ok_or_else(|| not_found(name, which))
}

pub fn versions(conn: &Connection, name: &str) -> Result<Vec<DataVersion>> {
    if !set_exists(conn, name)? {
        return Err(StoreError::NotFound(format!("data set '{name}' not found")));
    }
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {COLUMNS} FROM data_versions WHERE name = ?1 ORDER BY version DESC"))?;
    let found = stmt.query_map([name], row)?.collect::<super::conn::Result<Vec<_>>>()?;
    found.into_iter().map(|v| complete(conn, v)).collect()
}

pub fn sets(conn: &Connection) -> Result<Vec<DataSet>> {
    let mut stmt = conn.prepare_cached(
        "SELECT s.name, s.created_ms, COUNT(v.version), MAX(v.version) FROM data_sets s
         LEFT JOIN data_versions v ON v.name = s.name GROUP BY s.name, s.created_ms ORDER BY s.name",
    )?;
    let found = stmt
        .query_map(params![], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get::<_, Option<i64>>(3)?))
        })?
        .collect::<super::conn::Result<Vec<_>>>()?;
    found
        .into_iter()
        .map(|(name, created_ms, versions, latest)| {
            let latest = latest.map(|n| by_number(conn, &name, n)).transpose()?.flatten();
            Ok(DataSet { name, created_ms, versions, latest })
        })
        .collect()
}

/// `new` has passed [`validate_new`]; the caller holds the set's lock.
pub fn create(conn: &Connection, new: &NewDataVersion, actor: &str) -> Result<DataVersion> {
    let now = now_ms();
    if !set_exists(conn, &new.name)? {
        conn.execute("INSERT INTO data_sets (name, created_ms) VALUES (?1, ?2)", params![new.name.as_str(), now])?;
    }
    let version: i64 = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) + 1 FROM data_versions WHERE name = ?1",
        [new.name.as_str()],
        |r| r.get(0),
    )?;
    conn.execute(
        &format!("INSERT INTO data_versions ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
        params![
            new.name.as_str(),
            version,
            new.manifest.as_str(),
            new.files,
            new.bytes,
            new.rows,
            new.message.as_deref(),
            actor,
            now
        ],
    )?;
    for t in &new.tags {
        conn.execute(
            "INSERT INTO data_version_tags (name, version, key, value) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (name, version, key) DO UPDATE SET value = excluded.value",
            params![new.name.as_str(), version, t.key.as_str(), t.value.as_str()],
        )?;
    }
    for alias in &new.aliases {
        point_alias(conn, &new.name, alias, version)?;
    }
    let created = get(conn, &new.name, &version.to_string())?;
    audit::record(
        conn,
        actor,
        "create_data_version",
        "data_version",
        &new.name,
        Some(version),
        None,
        Some(json!(created)),
    )?;
    Ok(created)
}

fn point_alias(conn: &Connection, name: &str, alias: &str, version: i64) -> Result<()> {
    conn.execute(
        "INSERT INTO data_aliases (name, alias, version) VALUES (?1, ?2, ?3)
         ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version",
        params![name, alias, version],
    )?;
    Ok(())
}

pub fn set_alias(conn: &Connection, name: &str, alias: &str, version: i64, actor: &str) -> Result<DataVersion> {
    let target = by_number(conn, name, version)?.ok_or_else(|| not_found(name, &version.to_string()))?;
    let before: Option<i64> = conn
        .query_row("SELECT version FROM data_aliases WHERE name = ?1 AND alias = ?2", params![name, alias], |r| {
            r.get(0)
        })
        .optional()?;
    point_alias(conn, name, alias, target.version)?;
    let (b, a) =
        (before.map(|v| json!({"alias": alias, "version": v})), Some(json!({"alias": alias, "version": version})));
    audit::record(conn, actor, "set_data_alias", "data_version", name, Some(version), b, a)?;
    get(conn, name, &version.to_string())
}

pub fn delete_alias(conn: &Connection, name: &str, alias: &str, actor: &str) -> Result<()> {
    let before: Option<i64> = conn
        .query_row("SELECT version FROM data_aliases WHERE name = ?1 AND alias = ?2", params![name, alias], |r| {
            r.get(0)
        })
        .optional()?;
    let Some(version) = before else {
        return Err(StoreError::NotFound(format!("data set '{name}' has no alias '{alias}'")));
    };
    conn.execute("DELETE FROM data_aliases WHERE name = ?1 AND alias = ?2", params![name, alias])?;
    let b = Some(json!({"alias": alias, "version": version}));
    audit::record(conn, actor, "delete_data_alias", "data_version", name, Some(version), b, None)
}

pub fn set_tag(
    conn: &Connection,
    name: &str,
    version: i64,
    key: &str,
    value: &str,
    actor: &str,
) -> Result<DataVersion> {
    by_number(conn, name, version)?.ok_or_else(|| not_found(name, &version.to_string()))?;
    conn.execute(
        "INSERT INTO data_version_tags (name, version, key, value) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (name, version, key) DO UPDATE SET value = excluded.value",
        params![name, version, key, value],
    )?;
    audit::record(conn, actor, "set_data_tag", "data_version", name, Some(version), None, Some(json!({key: value})))?;
    get(conn, name, &version.to_string())
}

/// The fewest hex digits of a manifest SHA-256 a dataset digest must give to name its
/// version (MLflow's own digests are 8 hex digits long).
pub const MIN_DIGEST: usize = 8;

/// The versions a run's dataset digest names: those whose manifest SHA-256 it is, or begins
/// with when it is at least [`MIN_DIGEST`] hex digits long.
pub fn named_by_digest(conn: &Connection, digest: &str) -> Result<Vec<DataVersionRef>> {
    let hex = digest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !hex || !(MIN_DIGEST..=64).contains(&digest.len()) {
        return Ok(Vec::new());
    }
    // Hex digits are no LIKE wildcards, so the pattern is the prefix itself.
    let mut stmt = conn.prepare_cached(
        "SELECT name, version FROM data_versions WHERE manifest_sha256 LIKE ?1 ORDER BY name, version",
    )?;
    let found =
        stmt.query_map([format!("{digest}%")], |r| Ok(DataVersionRef { name: r.get(0)?, version: r.get(1)? }))?;
    Ok(found.collect::<super::conn::Result<_>>()?)
}

/// The versions whose manifest is this one (the same content added again, or published by a
/// pipeline), oldest first.
pub fn by_manifest(conn: &Connection, manifest: &str) -> Result<Vec<DataVersion>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM data_versions WHERE manifest_sha256 = ?1 ORDER BY name, version"
    ))?;
    let found = stmt.query_map([manifest], row)?.collect::<super::conn::Result<Vec<_>>>()?;
    found.into_iter().map(|v| complete(conn, v)).collect()
}
