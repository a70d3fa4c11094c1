//! Labeling queues fed from their deployment's prediction log (docs/design/data.md). A pass
//! reads the rows served since the queue was last fed (less [`SETTLE_MS`](super::SETTLE_MS):
//! segments are uploaded when they roll, so late rows land within it) and offers the queue the
//! rows its mode picks:
//! - `sample`: a share `rate` of the rows, picked by a hash of the queue, request id and row,
//!   so a row read again is picked the same way again;
//! - `margin`: rows whose two highest class probabilities lie closer than `threshold`;
//! - `flagged`: rows a monitor of the deployment flags: a value its schema refuses (a type,
//!   range, category or null it does not allow).
//!
//! Offering is idempotent (an item is kept once per request and row), so the settling tail read
//! twice offers nothing twice, and nothing is written on the request path.

use serde_json::{Map, Value, json};
use slipway_store::sql::{MAX_LABEL_ITEMS_OFFERED as MAX_OFFERED, MAX_LABEL_ROW as MAX_ROW};
use slipway_types::{LabelQueue, Monitor, NewLabelItem};

use super::window::{Cell, Columns, Naming, Served};
use super::{Monitors, SETTLE_MS};
use crate::MonitorError;
use crate::validate::{ColumnSchema, Schema, ValueType};

/// How a queue picks the rows it is offered.
enum Pick {
    Sample(f64),
    Margin(f64),
    Flagged(Vec<Schema>),
}

impl Monitors {
    /// Feeds one queue now (after a pass in progress ends); how many items were new.
    pub async fn feed_now(&self, queue: &LabelQueue) -> Result<u64, MonitorError> {
        let _pass = self.pass.lock().await;
        self.feed(queue, slipway_store::now_ms()).await
    }

    /// Feeds every queue a deployment's predictions route to (part of the leader's pass).
    pub(super) async fn feed_all(&self) {
        let queues = match self.store.list_label_queues().await {
            Ok(queues) => queues,
            Err(e) => return tracing::warn!(error = %e, "cannot list labeling queues"),
        };
        for q in queues.iter().filter(|q| q.mode != "manual") {
            if let Err(e) = self.feed(q, slipway_store::now_ms()).await {
                tracing::warn!(queue = %q.name, error = %e, "labeling queue not fed");
            }
        }
    }

    async fn feed(&self, q: &LabelQueue, now_ms: i64) -> Result<u64, MonitorError> {
        let monitors: Vec<Monitor> =
            self.store.list_monitors().await?.into_iter().filter(|m| m.spec.deployment == q.deployment).collect();
        let pick = match (q.mode.as_str(), q.rate, q.threshold) {
            ("sample", Some(rate), _) => Pick::Sample(rate),
            ("margin", _, Some(threshold)) => Pick::Margin(threshold),
            ("flagged", _, _) => {
                let mut schemas = Vec::new();
                for m in &monitors {
                    match self.references.get(self.store.as_ref(), &self.artifacts, m).await {
                        Ok(reference) => schemas.push((*reference.schema).clone()),
                        Err(e) => {
                            tracing::warn!(queue = %q.name, monitor = %m.spec.name, error = %e, "monitor's schema not read; its flags are left out")
                        }
                    }
                }
                // Nothing to flag with yet: the rows wait (fed_ms stays) until a monitor can.
                if schemas.is_empty() {
                    return Ok(0);
                }
                Pick::Flagged(schemas)
            }
            _ => return Ok(0),
        };
        // Rows are named as the deployment's first monitor names them, else by tensor.
        let spec = monitors.first().map(|m| &m.spec);
        let naming = Naming {
            features: spec.and_then(|s| s.features.as_deref()),
            prediction: spec.and_then(|s| s.prediction.as_deref()),
            probabilities: spec.and_then(|s| s.probabilities.as_deref()),
        };
        let from = q.fed_ms.map_or(q.created_ms, |fed| (fed - SETTLE_MS).max(q.created_ms));
        let log = |e: slipway_predlog::PredlogError| MonitorError::PredictionLog(e.to_string());
        let segments =
            slipway_predlog::list_segments_between(&self.artifacts, &q.deployment, from * 1000, now_ms * 1000)
                .await
                .map_err(log)?;
        // One segment at a time, so memory holds one segment's picks however far behind the
        // queue is; a segment that cannot be read is skipped, not a queue stuck behind it.
        let mut added = 0;
        for path in segments {
            let batches = match slipway_predlog::read_segment(&self.artifacts, &path).await {
                Ok(batches) => batches,
                Err(e) => {
                    tracing::warn!(queue = %q.name, segment = %path, error = %e, "prediction-log segment skipped");
                    continue;
                }
            };
            let mut items = Vec::new();
            for batch in &batches {
                let columns = Columns::of(batch);
                let Some(served) = Served::new(batch, &columns, &naming) else { continue };
                items.extend(served.rows(from, now_ms).filter_map(|i| offered(&q.name, &pick, &served, i)));
            }
            for chunk in items.chunks(MAX_OFFERED) {
                added += self.store.offer_label_items(q.name.clone(), chunk.to_vec()).await?;
            }
        }
        self.store.set_label_queue_fed(q.name.clone(), now_ms).await?;
        Ok(added)
    }
}

/// Row `i` as an item, when the queue picks it.
fn offered(queue: &str, pick: &Pick, served: &Served<'_>, i: usize) -> Option<NewLabelItem> {
    let (request_id, row) = served.key(i);
    if i64::from(row) > MAX_ROW {
        return None;
    }
    let features: Vec<(&str, Option<Cell>)> = served.features(i).collect();
    let picked = match pick {
        Pick::Sample(rate) => share(queue, &request_id, row) < *rate,
        Pick::Margin(threshold) => served.probabilities(i).and_then(|p| margin(&p)).is_some_and(|m| m < *threshold),
        Pick::Flagged(schemas) => schemas.iter().any(|s| refuses(s, &features)),
    };
    if !picked {
        return None;
    }
    let inputs: Map<String, Value> = features.iter().map(|(name, c)| (name.to_string(), to_json(c.as_ref()))).collect();
    let mut prediction = json!({ "value": to_json(served.prediction(i).as_ref()) });
    if let Some(p) = served.probabilities(i) {
        prediction["probabilities"] = json!(p.iter().map(|x| x.is_finite().then_some(*x)).collect::<Vec<_>>());
    }
    Some(NewLabelItem { request_id, row: i64::from(row), inputs: Value::Object(inputs), prediction: Some(prediction) })
}

/// Where a row falls in [0, 1): FNV-1a over the queue, request id and row, so the same row is
/// picked (or not) on every read, by every replica.
fn share(queue: &str, request_id: &str, row: u32) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes = queue.bytes().chain([0]).chain(request_id.bytes()).chain([0]).chain(row.to_le_bytes());
    for b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// The gap between the two highest class probabilities; none for fewer than two classes or a
/// missing value.
fn margin(p: &[f64]) -> Option<f64> {
    if p.len() < 2 || p.iter().any(|x| !x.is_finite()) {
        return None;
    }
    let mut sorted = p.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    Some(sorted[0] - sorted[1])
}

/// Whether a schema refuses one of the row's values. A column the row does not log is left
/// to the window's validation, which reports it once rather than on every row.
fn refuses(schema: &Schema, features: &[(&str, Option<Cell>)]) -> bool {
    schema.columns.iter().any(|c| match features.iter().find(|(name, _)| *name == c.name) {
        Some((_, value)) => refuses_value(c, value.as_ref()),
        None => false,
    })
}

fn refuses_value(c: &ColumnSchema, value: Option<&Cell>) -> bool {
    let outside = |key: String| c.allowed_values.as_ref().is_some_and(|allowed| !allowed.contains(&key));
    match value {
        None => !c.nullable,
        Some(Cell::Num { value, .. }) if !value.is_finite() => !c.nullable,
        Some(Cell::Num { value, integer }) => {
            (c.value_type == ValueType::Integer && !integer && value.fract() != 0.0)
                || c.min.is_some_and(|min| *value < min)
                || c.max.is_some_and(|max| *value > max)
                || outside(crate::read::number_key(*value))
        }
        Some(Cell::Text(text)) => {
            matches!(c.value_type, ValueType::Integer | ValueType::Float) || outside(text.clone())
        }
    }
}

fn to_json(c: Option<&Cell>) -> Value {
    match c {
        Some(Cell::Num { value, integer: true }) if value.fract() == 0.0 && value.abs() < 9.0e15 => {
            json!(*value as i64)
        }
        Some(Cell::Num { value, .. }) if value.is_finite() => json!(value),
        Some(Cell::Text(t)) => json!(t),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_is_stable_spread_and_differs_between_queues() {
        assert_eq!(share("q", "req", 3), share("q", "req", 3));
        assert_ne!(share("q", "req", 3), share("other", "req", 3));
        let picked = (0..10_000).filter(|i| share("q", &format!("r{i}"), 0) < 0.1).count();
        assert!((800..1200).contains(&picked), "{picked} of 10,000 at a rate of 0.1");
    }

    #[test]
    fn the_margin_is_the_gap_between_the_two_likeliest_classes() {
        assert_eq!(margin(&[0.2, 0.5, 0.3]).map(|m| (m * 100.0).round()), Some(20.0));
        assert_eq!(margin(&[1.0]), None);
        assert_eq!(margin(&[0.5, f64::NAN]), None);
    }

    #[test]
    fn a_schema_flags_values_out_of_range_category_or_type_and_unexpected_nulls() {
        let column = |name: &str, value_type, min, max, allowed: Option<Vec<&str>>| ColumnSchema {
            name: name.into(),
            value_type,
            required: true,
            nullable: false,
            max_null_fraction: None,
            min,
            max,
            allowed_values: allowed.map(|a| a.into_iter().map(String::from).collect()),
        };
        let schema = Schema {
            format: crate::validate::SCHEMA_FORMAT.into(),
            allow_extra_columns: false,
            column_types: Default::default(),
            columns: vec![
                column("age", ValueType::Float, Some(0.0), Some(120.0), None),
                column("plan", ValueType::String, None, None, Some(vec!["basic", "pro"])),
            ],
        };
        let num = |value| Some(Cell::Num { value, integer: false });
        let text = |t: &str| Some(Cell::Text(t.into()));
        assert!(!refuses(&schema, &[("age", num(30.0)), ("plan", text("pro"))]));
        assert!(refuses(&schema, &[("age", num(130.0)), ("plan", text("pro"))]));
        assert!(refuses(&schema, &[("age", num(30.0)), ("plan", text("gold"))]));
        assert!(refuses(&schema, &[("age", text("old")), ("plan", text("pro"))]));
        assert!(refuses(&schema, &[("age", None), ("plan", text("pro"))]));
        assert!(refuses(&schema, &[("age", num(f64::NAN))]));
        // A column the log does not hold is the window's to report, not every row's.
        assert!(!refuses(&schema, &[("age", num(30.0))]));
    }
}
