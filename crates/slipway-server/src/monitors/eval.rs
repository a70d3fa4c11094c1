//! Evaluating a monitor: which windows need (re)computing, reading their rows from the
//! prediction log, and turning rows, the reference and ground truth into a window's series.
//!
//! A window `[start, start + W)` is computed once it has ended, and computed again while its
//! data may still be arriving (until `SETTLE_MS` after its end: segments are uploaded when
//! they roll) and whenever labels for the deployment arrived after it was computed. The
//! latest `LOOKBACK_WINDOWS` windows are considered; older ones stay as they were stored.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use slipway_artifacts::{ArtifactPath, sanitize};
use slipway_monitor::drift::{DriftOptions, compare};
use slipway_monitor::performance::{self, Scores};
use slipway_monitor::profile::{ColumnProfile, DatasetProfile, ProfileOptions};
use slipway_monitor::read::{ColumnSink, ColumnValues, NoProgress, SourceKind, read_file};
use slipway_monitor::stats::Method;
use slipway_monitor::validate::{Schema, ValueType, validate};
use slipway_types::{GroundTruth, Monitor, MonitorSpec, MonitorWindow, Task};

use super::log::{Cell, Naming, WindowRows, add_batch};
use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// Windows looked at on each evaluation, the latest first.
pub const LOOKBACK_WINDOWS: i64 = 168;
/// How long after its end a window is still recomputed: the prediction log uploads a
/// segment when it rolls (every minute by default), so late rows land within this.
pub const SETTLE_MS: i64 = 90_000;

/// A reference dataset read into drift columns, and the schema inferred from it, for one
/// resolved file.
#[derive(Clone)]
pub struct Loaded {
    pub columns: Arc<Vec<ColumnValues>>,
    pub schema: Arc<Schema>,
}

struct LoadedReference {
    key: String,
    loaded: Loaded,
}

/// The profile of drift columns. A number counts as an integer where the schema wants
/// integers and it is integral: models take integer features as float tensors.
fn profile_of(columns: &[ColumnValues], integers: &dyn Fn(&str) -> bool) -> DatasetProfile {
    let options = ProfileOptions::default();
    let profiles = columns
        .iter()
        .map(|c| {
            let mut p = ColumnProfile::new(c.name.clone(), &options);
            let want_integers = integers(&c.name);
            for &v in &c.numbers {
                p.push_number(v, c.kind == SourceKind::Integer || (want_integers && v.fract() == 0.0));
            }
            for (text, n) in &c.strings {
                for _ in 0..*n {
                    p.push_text(text);
                }
            }
            for _ in 0..c.nulls {
                p.push_null();
            }
            p
        })
        .collect();
    DatasetProfile::from_columns(profiles)
}

/// The schema the reference's features must keep: `slipway validate`'s inference, without
/// the target, which traffic does not carry.
fn reference_schema(columns: &[ColumnValues], target: Option<&str>) -> Schema {
    let mut schema = Schema::infer(&profile_of(columns, &|_| false));
    schema.columns.retain(|c| Some(c.name.as_str()) != target);
    schema
}

/// The references read so far, by monitor.
#[derive(Default)]
pub struct References {
    loaded: Mutex<HashMap<String, LoadedReference>>,
}

fn internal(what: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %what, "monitor evaluation failed");
    ApiError::new(slipway_types::ErrorCode::InternalError, what.to_string())
}

fn artifact_path(text: &str) -> ApiResult<ArtifactPath> {
    Ok(sanitize(&text.replace('%', "%25"))?)
}

/// Where the monitor's reference file is in the artifact store.
async fn resolve(state: &AppState, spec: &MonitorSpec) -> ApiResult<ArtifactPath> {
    let run_file = |run_id: String, path: String| async move {
        let run = state.store.get_run(run_id).await?;
        let root = crate::artifacts::locate(state, &run.info.artifact_uri)?;
        Ok::<_, ApiError>(root.join(&artifact_path(&path)?))
    };
    if let Some(uri) = &spec.reference.uri {
        if state.artifacts.owns(uri) {
            return crate::artifacts::locate(state, uri);
        }
        let rest = uri.strip_prefix("runs:/").unwrap_or(uri);
        let (run_id, path) = rest
            .split_once('/')
            .ok_or_else(|| ApiError::invalid(format!("reference uri '{uri}' must be runs:/<run_id>/<path>")))?;
        return run_file(run_id.to_string(), path.to_string()).await;
    }
    let path = spec.reference.run_artifact.clone().unwrap_or_default();
    let deployment = state.store.get_deployment(spec.deployment.clone()).await?.spec;
    let version = match (&deployment.alias, &deployment.version) {
        (Some(alias), _) => state.store.get_model_version_by_alias(deployment.model.clone(), alias.clone()).await?,
        (None, Some(v)) => state.store.get_model_version(deployment.model.clone(), v.clone()).await?,
        (None, None) => return Err(ApiError::invalid("the deployment names no version")),
    };
    let run_id = version.run_id.filter(|r| !r.is_empty()).ok_or_else(|| {
        ApiError::invalid(format!(
            "version {} of '{}' has no run, so 'reference.run_artifact' cannot be found; use 'reference.uri'",
            version.version, deployment.model
        ))
    })?;
    run_file(run_id, path).await
}

impl References {
    /// The monitor's reference, read once per file (and again when the monitor changes).
    async fn get(&self, state: &AppState, m: &Monitor) -> ApiResult<Loaded> {
        let path = resolve(state, &m.spec).await?;
        let key = format!("{path}@{}", m.last_updated_timestamp);
        if let Ok(loaded) = self.loaded.lock()
            && let Some(r) = loaded.get(&m.spec.name)
            && r.key == key
        {
            return Ok(r.loaded.clone());
        }
        let text = path.to_string();
        let download = state.artifacts.get_stream(&path).await.map_err(|e| match e {
            slipway_artifacts::ArtifactError::NotFound(_) => {
                ApiError::invalid(format!("the reference file '{text}' is not in the artifact store"))
            }
            other => other.into(),
        })?;
        let ext = if text.to_ascii_lowercase().ends_with(".parquet") { "parquet" } else { "csv" };
        let local = std::env::temp_dir().join(format!("slipway-reference-{}.{ext}", uuid::Uuid::new_v4().simple()));
        let mut file = tokio::fs::File::create(&local).await.map_err(internal)?;
        let mut stream = download.stream;
        let copied = async {
            use futures::TryStreamExt;
            use tokio::io::AsyncWriteExt;
            while let Some(chunk) = stream.try_next().await.map_err(internal)? {
                file.write_all(&chunk).await.map_err(internal)?;
            }
            file.flush().await.map_err(internal)
        }
        .await;
        let read = match copied {
            Ok(()) => {
                let (p, target) = (local.clone(), m.spec.target.clone());
                tokio::task::spawn_blocking(move || {
                    read_file(&p, None, &NoProgress).map(|columns| {
                        let schema = reference_schema(&columns, target.as_deref());
                        Loaded { columns: Arc::new(columns), schema: Arc::new(schema) }
                    })
                })
                .await
                .map_err(internal)
            }
            Err(e) => Err(e),
        };
        let _ = tokio::fs::remove_file(&local).await;
        let loaded =
            read?.map_err(|e| ApiError::invalid(format!("the reference file '{text}' cannot be read: {e}")))?;
        if let Ok(mut cache) = self.loaded.lock() {
            cache.insert(m.spec.name.clone(), LoadedReference { key, loaded: loaded.clone() });
        }
        Ok(loaded)
    }

    pub fn forget(&self, monitor: &str) {
        if let Ok(mut loaded) = self.loaded.lock() {
            loaded.remove(monitor);
        }
    }
}

/// The drift options a spec asks for; an unknown method is bad input.
pub fn drift_options(spec: &MonitorSpec) -> ApiResult<DriftOptions> {
    let mut methods = HashMap::new();
    for (col, m) in &spec.column_methods {
        let method = Method::parse(m).map_err(|e| ApiError::invalid(format!("column_methods.{col}: {e}")))?;
        methods.insert(col.clone(), method);
    }
    Ok(DriftOptions {
        methods,
        thresholds: spec.column_thresholds.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        columns: None,
        drift_share: spec.drift_share.unwrap_or(slipway_monitor::drift::DEFAULT_DRIFT_SHARE),
    })
}

/// Evaluates every window of `m` that needs it, up to the last one ended by `now_ms`; returns
/// the windows it stored.
pub async fn evaluate(
    state: &AppState,
    references: &References,
    m: &Monitor,
    now_ms: i64,
) -> ApiResult<Vec<MonitorWindow>> {
    let spec = &m.spec;
    let w = spec.window_ms().max(1);
    let last_end = now_ms.div_euclid(w) * w;
    let first = last_end - LOOKBACK_WINDOWS * w;
    let stored: HashMap<i64, MonitorWindow> = state
        .store
        .list_monitor_windows(spec.name.clone(), first, last_end)
        .await?
        .into_iter()
        .map(|x| (x.start_ms, x))
        .collect();
    let labels_at = state.store.ground_truth_updated(spec.deployment.clone()).await?.unwrap_or(i64::MIN);
    let needed: Vec<i64> = (0..LOOKBACK_WINDOWS)
        .map(|i| first + i * w)
        .filter(|start| match stored.get(start) {
            None => true,
            Some(x) => x.computed_at < x.end_ms + SETTLE_MS || labels_at >= x.computed_at,
        })
        .collect();
    let (Some(&from), Some(&last)) = (needed.first(), needed.last()) else { return Ok(Vec::new()) };
    let to = last + w;

    let reference = references.get(state, m).await?;
    let naming = Naming {
        features: spec.features.as_deref(),
        prediction: spec.prediction.as_deref(),
        probabilities: spec.probabilities.as_deref(),
    };
    let mut rows: BTreeMap<i64, WindowRows> = BTreeMap::new();
    let segments = slipway_predlog::list_segments_between(&state.artifacts, &spec.deployment, from * 1000, to * 1000)
        .await
        .map_err(internal)?;
    for path in segments {
        let batches = slipway_predlog::read_segment(&state.artifacts, &path).await.map_err(internal)?;
        for b in &batches {
            add_batch(b, from, to, w, &naming, &mut rows);
        }
    }
    let options = drift_options(spec)?;
    let mut out = Vec::new();
    for start in needed {
        let window = rows.remove(&start);
        let ids: Vec<String> = match &window {
            Some(r) => {
                let unique: HashSet<&str> = r.keys.iter().map(|(id, _)| id.as_str()).collect();
                unique.into_iter().map(str::to_string).collect()
            }
            None => Vec::new(),
        };
        let labels = if ids.is_empty() {
            Vec::new()
        } else {
            state.store.get_ground_truth(spec.deployment.clone(), ids).await?
        };
        let (spec2, reference, options) = (spec.clone(), reference.clone(), options.clone());
        let computed = tokio::task::spawn_blocking(move || {
            compute(&spec2, &reference, &options, start, w, window, labels, slipway_store::now_ms())
        })
        .await
        .map_err(internal)?;
        state.store.put_monitor_window(computed.clone()).await?;
        out.push(computed);
    }
    Ok(out)
}

/// One window's series from its rows.
#[allow(clippy::too_many_arguments)]
fn compute(
    spec: &MonitorSpec,
    reference: &Loaded,
    options: &DriftOptions,
    start: i64,
    w: i64,
    rows: Option<WindowRows>,
    labels: Vec<GroundTruth>,
    now_ms: i64,
) -> MonitorWindow {
    let mut window = MonitorWindow {
        monitor: spec.name.clone(),
        start_ms: start,
        end_ms: start + w,
        rows: 0,
        series: BTreeMap::new(),
        drift: None,
        computed_at: now_ms,
    };
    let Some(rows) = rows.filter(|r| r.rows() > 0) else {
        window.series.insert("rows".into(), 0.0);
        return window;
    };
    window.rows = rows.rows();
    let series = &mut window.series;
    series.insert("rows".into(), rows.rows() as f64);
    let by_name: HashMap<&str, &ColumnValues> = reference.columns.iter().map(|c| (c.name.as_str(), c)).collect();

    quality(&rows.features, &by_name, series);
    let mut detail = serde_json::Map::new();
    let validation = validated(&reference.schema, &rows.features);
    series.insert("quality.violations".into(), validation.number_of_violations as f64);
    detail.insert("validation".into(), serde_json::to_value(&validation.violations).unwrap_or(Value::Null));
    let (present, missing): (Vec<&ColumnValues>, Vec<&ColumnValues>) =
        rows.features.iter().partition(|c| by_name.contains_key(c.name.as_str()));
    if !missing.is_empty() {
        let names: Vec<&str> = missing.iter().map(|c| c.name.as_str()).collect();
        detail.insert("missing_from_reference".into(), json!(names));
    }
    if !present.is_empty() {
        let names: Vec<String> = present.iter().map(|c| c.name.clone()).collect();
        let refs: Vec<ColumnValues> =
            names.iter().filter_map(|n| by_name.get(n.as_str()).map(|c| (*c).clone())).collect();
        let current: Vec<ColumnValues> = present.into_iter().cloned().collect();
        let opts = DriftOptions { columns: Some(names), ..options.clone() };
        match compare(refs, current, &opts) {
            Ok(report) => {
                series.insert("drift.share".into(), report.share_of_drifted_columns);
                series.insert("drift.dataset".into(), f64::from(u8::from(report.dataset_drift)));
                series.insert("drift.drifted_columns".into(), report.number_of_drifted_columns as f64);
                for c in &report.columns {
                    series.insert(format!("feature.{}.drift", c.column), c.statistic);
                    series.insert(format!("feature.{}.drifted", c.column), f64::from(u8::from(c.drifted)));
                }
                detail.insert("features".into(), serde_json::to_value(&report).unwrap_or(Value::Null));
            }
            Err(e) => drop(detail.insert("error".into(), json!(e.to_string()))),
        }
    }

    let task = spec.task.unwrap_or_else(|| match rows.predictions.iter().flatten().next() {
        Some(Cell::Num { integer: false, .. }) => Task::Regression,
        _ => Task::Classification,
    });
    prediction_drift(spec, &rows, &by_name, options, series, &mut detail);
    performance(task, &rows, &labels, series);
    window.drift = Some(Value::Object(detail));
    window
}

/// Shares of values that are not finite, outside the reference's range, or categories the
/// reference never had.
fn quality(features: &[ColumnValues], reference: &HashMap<&str, &ColumnValues>, series: &mut BTreeMap<String, f64>) {
    for c in features {
        let total = c.numbers.len() as u64 + c.strings.values().sum::<u64>() + c.nulls;
        if total == 0 {
            continue;
        }
        let share = |n: u64| n as f64 / total as f64;
        series.insert(format!("feature.{}.non_finite_share", c.name), share(c.nulls));
        let Some(r) = reference.get(c.name.as_str()) else { continue };
        if c.kind == SourceKind::Text || r.kind == SourceKind::Text {
            let new: u64 = c.strings.iter().filter(|(k, _)| !r.strings.contains_key(*k)).map(|(_, n)| n).sum();
            series.insert(format!("feature.{}.new_category_share", c.name), share(new));
        } else if let (Some(lo), Some(hi)) =
            (r.numbers.iter().copied().reduce(f64::min), r.numbers.iter().copied().reduce(f64::max))
        {
            let out = c.numbers.iter().filter(|v| **v < lo || **v > hi).count() as u64;
            series.insert(format!("feature.{}.out_of_range_share", c.name), share(out));
        }
    }
}

/// The window's features checked against the reference's schema (only the features the
/// window has: a reference column the model does not take is not a fault of the traffic).
fn validated(schema: &Schema, features: &[ColumnValues]) -> slipway_monitor::validate::ValidationReport {
    let mut schema = schema.clone();
    schema.columns.retain(|c| features.iter().any(|f| f.name == c.name));
    schema.allow_extra_columns = true;
    let integers = |name: &str| schema.columns.iter().any(|c| c.name == name && c.value_type == ValueType::Integer);
    validate(&schema, &profile_of(features, &integers))
}

/// The predictions' distribution against the reference's target column.
fn prediction_drift(
    spec: &MonitorSpec,
    rows: &WindowRows,
    reference: &HashMap<&str, &ColumnValues>,
    options: &DriftOptions,
    series: &mut BTreeMap<String, f64>,
    detail: &mut serde_json::Map<String, Value>,
) {
    let Some(target) = spec.target.as_deref().and_then(|t| reference.get(t)) else { return };
    let mut current = ColumnValues::new("prediction".into());
    for c in rows.predictions.iter().flatten() {
        match c {
            Cell::Num { value, integer } => current.push_number(*value, *integer),
            Cell::Text(s) => current.push_text(s),
        }
    }
    if current.numbers.is_empty() && current.strings.is_empty() {
        return;
    }
    let mut reference = (*target).clone();
    reference.name = "prediction".into();
    let opts = DriftOptions { columns: Some(vec!["prediction".into()]), ..options.clone() };
    if let Ok(report) = compare(vec![reference], vec![current], &opts)
        && let Some(c) = report.columns.first()
    {
        series.insert("prediction.drift".into(), c.statistic);
        series.insert("prediction.drifted".into(), f64::from(u8::from(c.drifted)));
        detail.insert("prediction".into(), serde_json::to_value(c).unwrap_or(Value::Null));
    }
}

/// The label a request gave for one of its rows: a bare value labels row 0.
fn label_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => n.as_f64().map(slipway_monitor::read::number_key),
        _ => None,
    }
}

/// Performance on the rows whose labels are known.
fn performance(task: Task, rows: &WindowRows, labels: &[GroundTruth], series: &mut BTreeMap<String, f64>) {
    let by_id: HashMap<&str, &[Value]> = labels.iter().map(|g| (g.request_id.as_str(), g.labels.as_slice())).collect();
    let mut ys: Vec<String> = Vec::new();
    let mut ps: Vec<String> = Vec::new();
    let mut yn: Vec<f64> = Vec::new();
    let mut pn: Vec<f64> = Vec::new();
    let mut probs: Vec<f64> = Vec::new();
    let mut width: Option<usize> = None;
    let mut all_probs = true;
    for (i, (id, row)) in rows.keys.iter().enumerate() {
        let (Some(given), Some(Some(pred))) = (by_id.get(id.as_str()), rows.predictions.get(i)) else { continue };
        let Some(label) = given.get(*row as usize) else { continue };
        match task {
            Task::Classification => {
                let Some(y) = label_text(label) else { continue };
                ys.push(y);
                ps.push(pred.key());
                match rows.probabilities.get(i).and_then(Option::as_ref) {
                    Some(p) if width.is_none_or(|k| k == p.len()) => {
                        width = Some(p.len());
                        probs.extend_from_slice(p);
                    }
                    _ => all_probs = false,
                }
            }
            Task::Regression => {
                let (Some(y), Some(p)) = (label.as_f64(), pred.number()) else { continue };
                yn.push(y);
                pn.push(p);
            }
        }
    }
    match task {
        Task::Classification => {
            series.insert("performance.labelled_rows".into(), ys.len() as f64);
            // The probability columns follow the model's class order: sorted, as
            // scikit-learn's `classes_` are.
            let mut classes: Vec<String> = ys.iter().chain(&ps).cloned().collect();
            classes.sort_by(|a, b| match (a.parse::<f64>(), b.parse::<f64>()) {
                (Ok(x), Ok(y)) => x.total_cmp(&y),
                _ => a.cmp(b),
            });
            classes.dedup();
            let scores = match width {
                Some(k) if all_probs && k == classes.len() => Some(Scores { classes: &classes, probabilities: &probs }),
                _ => None,
            };
            if let Some(m) = performance::classification(&ys, &ps, scores) {
                series.insert("performance.accuracy".into(), m.accuracy);
                series.insert("performance.precision".into(), m.precision);
                series.insert("performance.recall".into(), m.recall);
                series.insert("performance.f1".into(), m.f1);
                if let Some(auc) = m.roc_auc {
                    series.insert("performance.roc_auc".into(), auc);
                }
            }
        }
        Task::Regression => {
            series.insert("performance.labelled_rows".into(), yn.len() as f64);
            if let Some(m) = performance::regression(&yn, &pn) {
                series.insert("performance.mae".into(), m.mae);
                series.insert("performance.rmse".into(), m.rmse);
                series.insert("performance.r2".into(), m.r2);
            }
        }
    }
}
