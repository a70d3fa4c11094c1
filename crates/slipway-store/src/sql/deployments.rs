//! Serving deployments: one row per name holding the validated `DeploymentSpec` as JSON, so a
//! new optional spec field needs no migration. Every mutation appends its audit record (the
//! `Deployment` wire shape before and after) in the same transaction as the change.

use super::conn::{Connection, OptionalExtension, params};
use slipway_types::{Deployment, DeploymentSpec};

use super::audit;
use crate::{Result, StoreError, now_ms};

fn not_found(name: &str) -> StoreError {
    StoreError::NotFound(format!("deployment '{name}' not found"))
}

fn row_to_deployment(r: &super::conn::Row) -> super::conn::Result<(String, String, i64, i64)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn decode((name, spec_json, created, updated): (String, String, i64, i64)) -> Result<Deployment> {
    let mut spec: DeploymentSpec = serde_json::from_str(&spec_json)
        .map_err(|e| StoreError::Backend(format!("stored spec of deployment '{name}' does not parse: {e}")))?;
    // The primary key is the truth; the copy inside the JSON is only there to round-trip.
    spec.name = name;
    Ok(Deployment { spec, creation_timestamp: created, last_updated_timestamp: updated })
}

fn encode(spec: &DeploymentSpec) -> Result<String> {
    serde_json::to_string(spec).map_err(|e| StoreError::Backend(format!("encode deployment spec: {e}")))
}

fn find(conn: &Connection, name: &str) -> Result<Option<Deployment>> {
    conn.prepare_cached(
        "SELECT name, spec_json, creation_timestamp, last_updated_timestamp FROM deployments WHERE name = ?1",
    )?
    .query_row([name], row_to_deployment)
    .optional()?
    .map(decode)
    .transpose()
}

pub fn get(conn: &Connection, name: &str) -> Result<Deployment> {
    find(conn, name)?.ok_or_else(|| not_found(name))
}

pub fn list(conn: &Connection) -> Result<Vec<Deployment>> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, spec_json, creation_timestamp, last_updated_timestamp FROM deployments ORDER BY name",
    )?;
    let rows = stmt.query_map(params![], row_to_deployment)?.collect::<super::conn::Result<Vec<_>>>()?;
    rows.into_iter().map(decode).collect()
}

/// `spec` has passed `validate::deployment`.
pub fn create(conn: &Connection, spec: &DeploymentSpec, actor: &str) -> Result<Deployment> {
    if find(conn, &spec.name)?.is_some() {
        return Err(StoreError::AlreadyExists(format!("deployment '{}' already exists", spec.name)));
    }
    let now = now_ms();
    conn.execute(
        "INSERT INTO deployments (name, spec_json, creation_timestamp, last_updated_timestamp) VALUES (?1, ?2, ?3, ?3)",
        params![spec.name, encode(spec)?, now],
    )?;
    let created = Deployment { spec: spec.clone(), creation_timestamp: now, last_updated_timestamp: now };
    audit::change(conn, actor, "create_deployment", audit::deployment(&spec.name), None, Some(&created))?;
    Ok(created)
}

/// Replaces the whole spec. The update time always moves forward, even when the clock has not
/// (same millisecond, or stepped back), so "newer than what I loaded" is a safe change test.
pub fn update(conn: &Connection, spec: &DeploymentSpec, actor: &str) -> Result<Deployment> {
    let before = get(conn, &spec.name)?;
    let updated = now_ms().max(before.last_updated_timestamp + 1);
    conn.execute(
        "UPDATE deployments SET spec_json = ?1, last_updated_timestamp = ?2 WHERE name = ?3",
        params![encode(spec)?, updated, spec.name],
    )?;
    let after = Deployment {
        spec: spec.clone(),
        creation_timestamp: before.creation_timestamp,
        last_updated_timestamp: updated,
    };
    audit::change(conn, actor, "update_deployment", audit::deployment(&spec.name), Some(&before), Some(&after))?;
    Ok(after)
}

pub fn delete(conn: &Connection, name: &str, actor: &str) -> Result<()> {
    let before = get(conn, name)?;
    conn.execute("DELETE FROM deployments WHERE name = ?1", [name])?;
    audit::change(conn, actor, "delete_deployment", audit::deployment(name), Some(&before), None)
}
