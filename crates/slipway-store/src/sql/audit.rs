//! The append-only audit log of registry and deployment mutations. Records are written by the mutation's own
//! transaction, so a change and its record commit or roll back together; triggers in the
//! schema refuse any UPDATE or DELETE of the table.

use super::conn::{Connection, params};
use serde::Serialize;
use serde_json::Value;
use slipway_types::AuditRecord;

use super::query::Sql;
use crate::{AuditQuery, Page, Result, now_ms, page_token, validate};

/// What a change was made to.
pub struct Subject<'a> {
    object_type: &'static str,
    name: &'a str,
    version: Option<i64>,
}

pub fn model(name: &str) -> Subject<'_> {
    Subject { object_type: "registered_model", name, version: None }
}

pub fn version(name: &str, version: i64) -> Subject<'_> {
    Subject { object_type: "model_version", name, version: Some(version) }
}

pub fn deployment(name: &str) -> Subject<'_> {
    Subject { object_type: "deployment", name, version: None }
}

pub fn monitor(name: &str) -> Subject<'_> {
    Subject { object_type: "monitor", name, version: None }
}

/// Records a change with snapshots of the object before and after, as their wire shapes.
pub fn change<T: Serialize>(
    conn: &Connection,
    actor: &str,
    action: &str,
    subject: Subject,
    before: Option<&T>,
    after: Option<&T>,
) -> Result<()> {
    let json = |v: &T| serde_json::to_value(v).unwrap_or(Value::Null);
    record(conn, actor, action, subject.object_type, subject.name, subject.version, before.map(json), after.map(json))
}

#[allow(clippy::too_many_arguments)]
pub fn record(
    conn: &Connection,
    actor: &str,
    action: &str,
    object_type: &str,
    name: &str,
    version: Option<i64>,
    before: Option<Value>,
    after: Option<Value>,
) -> Result<()> {
    conn.execute(
        "INSERT INTO audit_log (timestamp, actor, action, object_type, name, version, before, after)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            now_ms(),
            actor,
            action,
            object_type,
            name,
            version.map(|v| v.to_string()),
            before.map(|v| v.to_string()),
            after.map(|v| v.to_string())
        ],
    )?;
    Ok(())
}

pub fn list(conn: &Connection, q: &AuditQuery) -> Result<Page<AuditRecord>> {
    let limit = validate::max_results(q.max_results, 100, 10_000)?;
    let offset = page_token::decode(q.page_token.as_deref())?;
    let mut sql = Sql::default();
    sql.push(
        "SELECT id, timestamp, actor, action, object_type, name, version, before, after FROM audit_log WHERE 1 = 1",
    );
    if let Some(name) = &q.name {
        sql.push(" AND name = ").arg(name.clone());
    }
    if let Some(version) = &q.version {
        sql.push(" AND version = ").arg(version.clone());
    }
    if let Some(actor) = &q.actor {
        sql.push(" AND actor = ").arg(actor.clone());
    }
    if let Some(action) = &q.action {
        sql.push(" AND action = ").arg(action.clone());
    }
    if matches!(q.visible, crate::Visibility::Groups { .. }) {
        sql.push(" AND ((object_type IN ('registered_model', 'model_version')");
        sql.visible(&q.visible, "registered_model", "audit_log.name");
        sql.push(") OR (object_type = 'deployment'");
        sql.visible(&q.visible, "deployment", "audit_log.name");
        sql.push(") OR (object_type = 'monitor' AND audit_log.name IN ");
        if q.readable_monitors.is_empty() {
            sql.push("(NULL)");
        } else {
            sql.list(&q.readable_monitors);
        }
        sql.push("))");
    }
    if let Some(since) = q.since {
        sql.push(" AND timestamp >= ").arg(since);
    }
    if let Some(until) = q.until {
        sql.push(" AND timestamp < ").arg(until);
    }
    sql.push(" ORDER BY id ASC");
    let parse = |s: Option<String>| s.and_then(|t| serde_json::from_str::<Value>(&t).ok());
    sql.page(conn, limit, offset, |r| {
        Ok(AuditRecord {
            id: r.get(0)?,
            timestamp: r.get(1)?,
            actor: r.get(2)?,
            action: r.get(3)?,
            object_type: r.get(4)?,
            name: r.get(5)?,
            version: r.get(6)?,
            before: parse(r.get(7)?),
            after: parse(r.get(8)?),
        })
    })
}
