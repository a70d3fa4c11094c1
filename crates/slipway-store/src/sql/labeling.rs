//! Labeling queues: items (one row of one prediction request each) leased to one labeller at a
//! time. Leasing and labelling run under the queue's lock, so two labellers never hold one
//! item; a lease that ran out returns its item to the queue; a label is taken once, from the
//! holder of a current lease, and becomes the deployment's ground truth for that request in the
//! same transaction.

use serde_json::Value;
use slipway_types::{GroundTruth, LabelCounts, LabelItem, LabelQueue, NewLabelItem};

use super::conn::{Connection, OptionalExtension, Row, params};
use super::{audit, monitoring};
use crate::{Result, StoreError, now_ms, validate};

const MODES: [&str; 4] = ["sample", "margin", "flagged", "manual"];
/// Items one request may offer.
pub const MAX_OFFERED: usize = 10_000;
/// The highest row of a request an item may name (a label fills the request's labels up to it).
pub const MAX_ROW: i64 = 100_000;

fn invalid(m: String) -> StoreError {
    StoreError::InvalidParameter(m)
}

pub fn validate_queue(q: &LabelQueue) -> Result<()> {
    super::data::validate_name(&q.name)
        .map_err(|_| invalid(format!("queue name '{}': letters, digits, '.', '_', '-'", q.name)))?;
    validate::deployment_name(&q.deployment)?;
    if !MODES.contains(&q.mode.as_str()) {
        return Err(invalid(format!("mode '{}': use sample, margin, flagged or manual", q.mode)));
    }
    match q.mode.as_str() {
        "sample" if !q.rate.is_some_and(|r| r > 0.0 && r <= 1.0) => {
            return Err(invalid("a sample queue needs a rate in (0, 1]".into()));
        }
        "margin" if !q.threshold.is_some_and(|t| (0.0..=1.0).contains(&t)) => {
            return Err(invalid("a margin queue needs a threshold in [0, 1]".into()));
        }
        _ => {}
    }
    if !(1..=86_400).contains(&q.lease_seconds) {
        return Err(invalid("lease_seconds must be 1 to 86400".into()));
    }
    if q.labels.len() > 1000 || q.labels.iter().any(|l| l.is_empty() || l.len() > 256) {
        return Err(invalid("labels: at most 1000, each 1 to 256 bytes".into()));
    }
    Ok(())
}

fn encode(v: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(format!("encode: {e}")))
}

fn decode(text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Backend(format!("stored JSON does not parse: {e}")))
}

fn queue_not_found(name: &str) -> StoreError {
    StoreError::NotFound(format!("labeling queue '{name}' not found"))
}

fn counts(conn: &Connection, queue: &str, now: i64) -> Result<LabelCounts> {
    let (held, labelled): (i64, i64) = conn.query_row(
        "SELECT COALESCE(SUM(CASE WHEN state = 'leased' AND lease_until_ms >= ?2 THEN 1 ELSE 0 END), 0),
                COALESCE(SUM(CASE WHEN state = 'labelled' THEN 1 ELSE 0 END), 0)
         FROM label_items WHERE queue = ?1",
        params![queue, now],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let all: i64 = conn.query_row("SELECT COUNT(*) FROM label_items WHERE queue = ?1", [queue], |r| r.get(0))?;
    Ok(LabelCounts { queued: all - held - labelled, leased: held, labelled })
}

type QueueRow = (String, String, String, Option<f64>, Option<f64>, String, i64, i64, Option<i64>);

fn queue_row(r: &Row) -> super::conn::Result<QueueRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?))
}

fn to_queue(row: QueueRow) -> Result<LabelQueue> {
    let (name, deployment, mode, rate, threshold, labels_json, lease_ms, created_ms, fed_ms) = row;
    let labels: Vec<String> = serde_json::from_str(&labels_json).map_err(|e| StoreError::Backend(e.to_string()))?;
    let counts = LabelCounts::default();
    Ok(LabelQueue {
        name,
        deployment,
        mode,
        rate,
        threshold,
        labels,
        lease_seconds: lease_ms / 1000,
        created_ms,
        fed_ms,
        counts,
    })
}

const QUEUE_COLUMNS: &str = "name, deployment, mode, rate, threshold, labels_json, lease_ms, created_ms, fed_ms";

/// Records that the queue's deployment's predictions logged before `fed_ms` were offered to it.
pub fn set_fed(conn: &Connection, name: &str, fed_ms: i64) -> Result<()> {
    let changed = conn.execute("UPDATE label_queues SET fed_ms = ?2 WHERE name = ?1", params![name, fed_ms])?;
    if changed == 0 {
        return Err(queue_not_found(name));
    }
    Ok(())
}

/// A queue's settings, without counting its items (what leasing and labelling need).
fn settings(conn: &Connection, name: &str) -> Result<LabelQueue> {
    let row = conn
        .query_row(&format!("SELECT {QUEUE_COLUMNS} FROM label_queues WHERE name = ?1"), [name], queue_row)
        .optional()?
        .ok_or_else(|| queue_not_found(name))?;
    to_queue(row)
}

/// A queue with its items counted by state.
pub fn get_queue(conn: &Connection, name: &str) -> Result<LabelQueue> {
    let mut q = settings(conn, name)?;
    q.counts = counts(conn, name, now_ms())?;
    Ok(q)
}

pub fn list_queues(conn: &Connection) -> Result<Vec<LabelQueue>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {QUEUE_COLUMNS} FROM label_queues ORDER BY name"))?;
    let rows = stmt.query_map(params![], queue_row)?.collect::<super::conn::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|r| {
            let mut q = to_queue(r)?;
            q.counts = counts(conn, &q.name, now_ms())?;
            Ok(q)
        })
        .collect()
}

pub fn create_queue(conn: &Connection, q: &LabelQueue, actor: &str) -> Result<LabelQueue> {
    if conn.query_row("SELECT 1 FROM label_queues WHERE name = ?1", [q.name.as_str()], |_| Ok(())).optional()?.is_some()
    {
        return Err(StoreError::AlreadyExists(format!("labeling queue '{}' already exists", q.name)));
    }
    conn.execute(
        "INSERT INTO label_queues (name, deployment, mode, rate, threshold, labels_json, lease_ms, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            q.name.as_str(),
            q.deployment.as_str(),
            q.mode.as_str(),
            q.rate,
            q.threshold,
            encode(&q.labels)?,
            q.lease_seconds * 1000,
            now_ms()
        ],
    )?;
    let created = get_queue(conn, &q.name)?;
    audit::record(
        conn,
        actor,
        "create_label_queue",
        "deployment",
        &q.deployment,
        None,
        None,
        Some(serde_json::json!(created)),
    )?;
    Ok(created)
}

/// Adds the items the queue lacks (by request id and row); returns how many were new.
pub fn offer(conn: &Connection, queue: &str, items: &[NewLabelItem]) -> Result<u64> {
    settings(conn, queue)?;
    let mut next: i64 =
        conn.query_row("SELECT COALESCE(MAX(item_id), 0) + 1 FROM label_items WHERE queue = ?1", [queue], |r| {
            r.get(0)
        })?;
    let now = now_ms();
    let mut added = 0;
    let mut stmt = conn.prepare_cached(
        "INSERT INTO label_items (queue, item_id, request_id, row_index, inputs_json, prediction_json, state, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', ?7) ON CONFLICT (queue, request_id, row_index) DO NOTHING",
    )?;
    for item in items {
        let prediction = item.prediction.as_ref().map(encode).transpose()?;
        let n = stmt.execute(params![
            queue,
            next,
            item.request_id.as_str(),
            item.row,
            encode(&item.inputs)?,
            prediction,
            now
        ])?;
        if n > 0 {
            next += 1;
            added += 1;
        }
    }
    Ok(added)
}

const ITEM_COLUMNS: &str = "queue, item_id, request_id, row_index, inputs_json, prediction_json, state, leased_by, \
     lease_token, lease_until_ms, label_json, labeller, labelled_ms";

fn item(r: &Row) -> super::conn::Result<(LabelItem, String, Option<String>, Option<String>)> {
    let inputs: String = r.get(4)?;
    let prediction: Option<String> = r.get(5)?;
    let label: Option<String> = r.get(10)?;
    Ok((
        LabelItem {
            queue: r.get(0)?,
            item_id: r.get(1)?,
            request_id: r.get(2)?,
            row: r.get(3)?,
            inputs: Value::Null,
            prediction: None,
            state: r.get(6)?,
            leased_by: r.get(7)?,
            lease_token: r.get(8)?,
            lease_until_ms: r.get(9)?,
            label: None,
            labeller: r.get(11)?,
            labelled_ms: r.get(12)?,
        },
        inputs,
        prediction,
        label,
    ))
}

fn find(conn: &Connection, queue: &str, item_id: i64) -> Result<Option<LabelItem>> {
    let found = conn
        .query_row(
            &format!("SELECT {ITEM_COLUMNS} FROM label_items WHERE queue = ?1 AND item_id = ?2"),
            params![queue, item_id],
            item,
        )
        .optional()?;
    found
        .map(|(mut it, inputs, prediction, label)| {
            it.inputs = decode(&inputs)?;
            it.prediction = prediction.as_deref().map(decode).transpose()?;
            it.label = label.as_deref().map(decode).transpose()?;
            Ok(it)
        })
        .transpose()
}

/// Leases the oldest item that is queued or whose lease ran out to `labeller`, with `token`,
/// until `now + lease`; `None` when there is nothing to label. The caller holds the queue's lock.
pub fn lease(conn: &Connection, queue: &str, labeller: &str, token: &str, now: i64) -> Result<Option<LabelItem>> {
    let q = settings(conn, queue)?;
    let next: Option<i64> = conn
        .query_row(
            "SELECT item_id FROM label_items WHERE queue = ?1
             AND (state = 'queued' OR (state = 'leased' AND lease_until_ms < ?2)) ORDER BY item_id LIMIT 1",
            params![queue, now],
            |r| r.get(0),
        )
        .optional()?;
    let Some(item_id) = next else { return Ok(None) };
    let until = now + q.lease_seconds * 1000;
    conn.execute(
        "UPDATE label_items SET state = 'leased', leased_by = ?3, lease_token = ?4, lease_until_ms = ?5
         WHERE queue = ?1 AND item_id = ?2",
        params![queue, item_id, labeller, token, until],
    )?;
    find(conn, queue, item_id)
}

/// Records `label` for the item whose current lease `token` is, and makes it the
/// deployment's ground truth for the item's request (at its row). The caller holds the lock.
pub fn label(
    conn: &Connection,
    queue: &str,
    item_id: i64,
    token: &str,
    label: &Value,
    labeller: &str,
) -> Result<LabelItem> {
    let q = settings(conn, queue)?;
    let it = find(conn, queue, item_id)?
        .ok_or_else(|| StoreError::NotFound(format!("labeling queue '{queue}' has no item {item_id}")))?;
    let now = now_ms();
    if it.state == "labelled" {
        return Err(StoreError::InvalidState(format!("item {item_id} is already labelled")));
    }
    let current =
        it.state == "leased" && it.lease_token.as_deref() == Some(token) && it.lease_until_ms.is_some_and(|u| u >= now);
    if !current {
        return Err(StoreError::InvalidState(format!(
            "you hold no current lease on item {item_id} (it ran out, or another labeller has it): take the next item"
        )));
    }
    if !q.labels.is_empty() && !label.as_str().is_some_and(|l| q.labels.iter().any(|x| x == l)) {
        return Err(invalid(format!("label {label} is not one of the queue's: {}", q.labels.join(", "))));
    }
    conn.execute(
        "UPDATE label_items SET state = 'labelled', label_json = ?3, labeller = ?4, labelled_ms = ?5,
         lease_token = NULL WHERE queue = ?1 AND item_id = ?2",
        params![queue, item_id, encode(label)?, labeller, now],
    )?;
    // The request's labels, one per row, with this row's filled in.
    let mut labels = monitoring::ground_truth(conn, &q.deployment, std::slice::from_ref(&it.request_id))?
        .pop()
        .map(|g| g.labels)
        .unwrap_or_default();
    let row = usize::try_from(it.row).unwrap_or(0);
    if labels.len() <= row {
        labels.resize(row + 1, Value::Null);
    }
    labels[row] = label.clone();
    monitoring::put_ground_truth(conn, &q.deployment, &[GroundTruth { request_id: it.request_id.clone(), labels }])?;
    find(conn, queue, item_id)?.ok_or_else(|| StoreError::Backend("a labelled item cannot be read back".into()))
}

/// The labelled items, oldest label first (what an export writes out).
pub fn labelled(conn: &Connection, queue: &str) -> Result<Vec<LabelItem>> {
    settings(conn, queue)?;
    let mut stmt = conn.prepare_cached(
        "SELECT item_id FROM label_items WHERE queue = ?1 AND state = 'labelled' ORDER BY labelled_ms, item_id",
    )?;
    let ids = stmt.query_map([queue], |r| r.get::<_, i64>(0))?.collect::<super::conn::Result<Vec<_>>>()?;
    ids.into_iter().filter_map(|id| find(conn, queue, id).transpose()).collect()
}
