//! Monitors, their evaluated windows, ground truth and alert firings. A monitor is one row
//! holding the validated `MonitorSpec` as JSON (like deployments), audited in the same
//! transaction as the change; windows and alert events go with their monitor.

use std::collections::BTreeMap;

use super::conn::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;
use slipway_types::{AlertEvent, AlertStatus, GroundTruth, Monitor, MonitorSpec, MonitorWindow};

use super::audit;
use crate::{Result, StoreError, now_ms};

fn not_found(name: &str) -> StoreError {
    StoreError::NotFound(format!("monitor '{name}' not found"))
}

fn encode<T: Serialize>(what: &str, v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(format!("encode {what}: {e}")))
}

fn decode<T: DeserializeOwned>(what: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Backend(format!("stored {what} does not parse: {e}")))
}

const MONITOR_COLUMNS: &str = "name, spec_json, creation_timestamp, last_updated_timestamp";

fn monitor_row(r: &super::conn::Row) -> super::conn::Result<(String, String, i64, i64)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn to_monitor((name, spec_json, created, updated): (String, String, i64, i64)) -> Result<Monitor> {
    let mut spec: MonitorSpec = decode(&format!("spec of monitor '{name}'"), &spec_json)?;
    spec.name = name;
    Ok(Monitor { spec, creation_timestamp: created, last_updated_timestamp: updated })
}

fn find(conn: &Connection, name: &str) -> Result<Option<Monitor>> {
    conn.prepare_cached(&format!("SELECT {MONITOR_COLUMNS} FROM monitors WHERE name = ?1"))?
        .query_row([name], monitor_row)
        .optional()?
        .map(to_monitor)
        .transpose()
}

pub fn get(conn: &Connection, name: &str) -> Result<Monitor> {
    find(conn, name)?.ok_or_else(|| not_found(name))
}

pub fn list(conn: &Connection) -> Result<Vec<Monitor>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {MONITOR_COLUMNS} FROM monitors ORDER BY name"))?;
    let rows = stmt.query_map(params![], monitor_row)?.collect::<super::conn::Result<Vec<_>>>()?;
    rows.into_iter().map(to_monitor).collect()
}

/// `spec` has passed `validate::monitor`.
pub fn create(conn: &Connection, spec: &MonitorSpec, actor: &str) -> Result<Monitor> {
    if find(conn, &spec.name)?.is_some() {
        return Err(StoreError::AlreadyExists(format!("monitor '{}' already exists", spec.name)));
    }
    let now = now_ms();
    conn.execute(
        "INSERT INTO monitors (name, spec_json, creation_timestamp, last_updated_timestamp) VALUES (?1, ?2, ?3, ?3)",
        params![spec.name, encode("monitor spec", spec)?, now],
    )?;
    let created = Monitor { spec: spec.clone(), creation_timestamp: now, last_updated_timestamp: now };
    audit::change(conn, actor, "create_monitor", audit::monitor(&spec.name), None, Some(&created))?;
    Ok(created)
}

/// Replaces the whole spec; the windows already evaluated stay (they were right for the spec
/// they were computed with) until they are evaluated again.
pub fn update(conn: &Connection, spec: &MonitorSpec, actor: &str) -> Result<Monitor> {
    let before = get(conn, &spec.name)?;
    let updated = now_ms().max(before.last_updated_timestamp + 1);
    conn.execute(
        "UPDATE monitors SET spec_json = ?1, last_updated_timestamp = ?2 WHERE name = ?3",
        params![encode("monitor spec", spec)?, updated, spec.name],
    )?;
    let after =
        Monitor { spec: spec.clone(), creation_timestamp: before.creation_timestamp, last_updated_timestamp: updated };
    audit::change(conn, actor, "update_monitor", audit::monitor(&spec.name), Some(&before), Some(&after))?;
    Ok(after)
}

/// Removes the monitor with its windows and alert events.
pub fn delete(conn: &Connection, name: &str, actor: &str) -> Result<()> {
    let before = get(conn, name)?;
    conn.execute("DELETE FROM monitors WHERE name = ?1", [name])?;
    audit::change(conn, actor, "delete_monitor", audit::monitor(name), Some(&before), None)
}

pub fn put_window(conn: &Connection, w: &MonitorWindow) -> Result<()> {
    get(conn, &w.monitor)?;
    let drift = w.drift.as_ref().map(|d| encode("drift report", d)).transpose()?;
    conn.execute(
        "INSERT INTO monitor_windows (monitor, start_ms, end_ms, rows, series_json, drift_json, computed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (monitor, start_ms) DO UPDATE SET end_ms = excluded.end_ms, rows = excluded.rows,
             series_json = excluded.series_json, drift_json = excluded.drift_json, computed_at = excluded.computed_at",
        params![w.monitor, w.start_ms, w.end_ms, w.rows as i64, encode("series", &w.series)?, drift, w.computed_at],
    )?;
    Ok(())
}

/// The windows starting in `[from_ms, to_ms)`, oldest first.
pub fn windows(conn: &Connection, monitor: &str, from_ms: i64, to_ms: i64) -> Result<Vec<MonitorWindow>> {
    get(conn, monitor)?;
    let mut stmt = conn.prepare_cached(
        "SELECT start_ms, end_ms, rows, series_json, drift_json, computed_at FROM monitor_windows
         WHERE monitor = ?1 AND start_ms >= ?2 AND start_ms < ?3 ORDER BY start_ms",
    )?;
    let rows = stmt
        .query_map(params![monitor, from_ms, to_ms], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
        })?
        .collect::<super::conn::Result<Vec<(i64, i64, i64, String, Option<String>, i64)>>>()?;
    rows.into_iter()
        .map(|(start_ms, end_ms, rows, series, drift, computed_at)| {
            let series: BTreeMap<String, f64> = decode("series", &series)?;
            let drift = drift.map(|d| decode("drift report", &d)).transpose()?;
            Ok(MonitorWindow {
                monitor: monitor.to_string(),
                start_ms,
                end_ms,
                rows: rows.max(0) as u64,
                series,
                drift,
                computed_at,
            })
        })
        .collect()
}

/// Stores every label set (replacing earlier ones for the same request); all or nothing.
pub fn put_ground_truth(conn: &Connection, deployment: &str, labels: &[GroundTruth]) -> Result<u64> {
    let now = now_ms();
    let mut stmt = conn.prepare_cached(
        "INSERT INTO ground_truth (deployment, request_id, labels_json, received_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (deployment, request_id) DO UPDATE SET labels_json = excluded.labels_json,
             received_ms = excluded.received_ms",
    )?;
    for g in labels {
        stmt.execute(params![deployment, g.request_id, encode("labels", &g.labels)?, now])?;
    }
    Ok(labels.len() as u64)
}

/// The labels known for these requests (requests without labels are left out).
pub fn ground_truth(conn: &Connection, deployment: &str, request_ids: &[String]) -> Result<Vec<GroundTruth>> {
    let mut stmt =
        conn.prepare_cached("SELECT labels_json FROM ground_truth WHERE deployment = ?1 AND request_id = ?2")?;
    let mut out = Vec::new();
    for id in request_ids {
        if let Some(json) = stmt.query_row(params![deployment, id], |r| r.get::<_, String>(0)).optional()? {
            out.push(GroundTruth { request_id: id.clone(), labels: decode("labels", &json)? });
        }
    }
    Ok(out)
}

/// When labels for this deployment last arrived.
pub fn ground_truth_updated(conn: &Connection, deployment: &str) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT MAX(received_ms) FROM ground_truth WHERE deployment = ?1")?
        .query_row([deployment], |r| r.get::<_, Option<i64>>(0))?)
}

const ALERT_COLUMNS: &str = "id, monitor, rule, window_start_ms, series, value, threshold, fired_at, status, attempts, \
                             last_error, delivered_at";

fn alert_row(r: &super::conn::Row) -> super::conn::Result<AlertEvent> {
    Ok(AlertEvent {
        id: r.get(0)?,
        monitor: r.get(1)?,
        rule: r.get(2)?,
        window_start_ms: r.get(3)?,
        series: r.get(4)?,
        value: r.get(5)?,
        threshold: r.get(6)?,
        fired_at: r.get(7)?,
        status: {
            let text: String = r.get(8)?;
            AlertStatus::parse(&text)
                .ok_or_else(|| super::conn::DbError::Column(8, format!("unknown alert status '{text}'")))?
        },
        attempts: r.get(9)?,
        last_error: r.get(10)?,
        delivered_at: r.get(11)?,
    })
}

/// Records a firing unless this rule already fired for this window: the stored event when
/// it is new, `None` when it was a duplicate.
pub fn record_alert(conn: &Connection, e: &AlertEvent) -> Result<Option<AlertEvent>> {
    get(conn, &e.monitor)?;
    let inserted: Option<i64> = conn
        .query_row(
            "INSERT INTO alert_events (monitor, rule, window_start_ms, series, value, threshold, fired_at, status, attempts)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0) ON CONFLICT (monitor, rule, window_start_ms) DO NOTHING
             RETURNING id",
            params![e.monitor, e.rule, e.window_start_ms, e.series, e.value, e.threshold, e.fired_at, e.status.as_str()],
            |r| r.get(0),
        )
        .optional()?;
    let Some(id) = inserted else { return Ok(None) };
    Ok(Some(
        conn.prepare_cached(&format!("SELECT {ALERT_COLUMNS} FROM alert_events WHERE id = ?1"))?
            .query_row([id], alert_row)?,
    ))
}

/// One statement, so two takers cannot both win: the row is replaced only when its lease
/// expired or is the taker's own.
pub fn take_lease(conn: &Connection, name: &str, holder: &str, ttl_ms: i64) -> Result<bool> {
    let now = now_ms();
    let taken: Option<String> = conn
        .query_row(
            "INSERT INTO leases (name, holder, expires_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_ms = excluded.expires_ms
             WHERE leases.expires_ms < ?4 OR leases.holder = excluded.holder
             RETURNING holder",
            params![name, holder, now + ttl_ms.max(1), now],
            |r| r.get(0),
        )
        .optional()?;
    Ok(taken.is_some())
}

pub fn release_lease(conn: &Connection, name: &str, holder: &str) -> Result<()> {
    conn.execute("DELETE FROM leases WHERE name = ?1 AND holder = ?2", params![name, holder])?;
    Ok(())
}

pub fn update_alert(
    conn: &Connection,
    id: i64,
    status: AlertStatus,
    attempts: u32,
    last_error: Option<&str>,
    delivered_at: Option<i64>,
) -> Result<()> {
    let n = conn.execute(
        "UPDATE alert_events SET status = ?1, attempts = ?2, last_error = ?3, delivered_at = ?4 WHERE id = ?5",
        params![status.as_str(), attempts, last_error, delivered_at, id],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("alert event {id} not found")));
    }
    Ok(())
}

/// A monitor's alert events, oldest first.
pub fn alerts(conn: &Connection, monitor: &str) -> Result<Vec<AlertEvent>> {
    get(conn, monitor)?;
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {ALERT_COLUMNS} FROM alert_events WHERE monitor = ?1 ORDER BY id"))?;
    Ok(stmt.query_map([monitor], alert_row)?.collect::<super::conn::Result<Vec<_>>>()?)
}

/// Events whose delivery has not finished (after a restart they are retried).
pub fn pending_alerts(conn: &Connection) -> Result<Vec<AlertEvent>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {ALERT_COLUMNS} FROM alert_events WHERE status = 'pending' ORDER BY id"))?;
    Ok(stmt.query_map(params![], alert_row)?.collect::<super::conn::Result<Vec<_>>>()?)
}
