//! One window's series: the prediction log's rows, the reference and ground truth turned into
//! data quality, drift, prediction drift and performance numbers.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};
use slipway_types::{GroundTruth, MonitorSpec, MonitorWindow, Task};

use super::reference::ReferenceData;
use super::window::{Cell, WindowRows};
use crate::MonitorError;
use crate::drift::{DriftOptions, compare_typed};
use crate::performance::{self, Scores};
use crate::profile::{ColumnProfile, DatasetProfile, ProfileOptions};
use crate::read::{ColumnSink, ColumnValues, SourceKind};
use crate::stats::Method;
use crate::typing::DeclaredTypes;
use crate::validate::{Schema, ValueType, validate};

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

/// The schema the reference's features must keep: the one uploaded with the spec, else
/// `slipway validate`'s inference under the declared types; without the target either way,
/// since traffic does not carry it.
pub(super) fn reference_schema(
    columns: &[ColumnValues],
    spec: &MonitorSpec,
    types: &DeclaredTypes,
) -> Result<Schema, MonitorError> {
    let mut schema = match uploaded_schema(spec)? {
        Some(schema) => schema,
        None => Schema::infer_typed(&profile_of(columns, &|_| false), types)?,
    };
    schema.columns.retain(|c| Some(c.name.as_str()) != spec.target.as_deref());
    Ok(schema)
}

/// The column types a spec declares.
pub fn column_types(spec: &MonitorSpec) -> Result<DeclaredTypes, MonitorError> {
    DeclaredTypes::new(spec.numerical_columns.clone(), spec.categorical_columns.clone())
}

/// The schema uploaded with a spec, checked as `slipway validate --schema` checks a file.
pub fn uploaded_schema(spec: &MonitorSpec) -> Result<Option<Schema>, MonitorError> {
    let Some(value) = &spec.schema else { return Ok(None) };
    let schema: Schema = serde_json::from_value(value.clone())
        .map_err(|e| MonitorError::InvalidSchema(format!("the monitor's 'schema': {e}")))?;
    schema.check()?;
    Ok(Some(schema))
}

/// The declared types of the columns a comparison takes: a declared column the window has
/// no traffic for is not an error of the window.
fn types_among(types: &DeclaredTypes, names: &[String]) -> DeclaredTypes {
    let keep = |list: &[String]| list.iter().filter(|c| names.contains(c)).cloned().collect::<Vec<_>>();
    DeclaredTypes { numerical: keep(&types.numerical), categorical: keep(&types.categorical) }
}

/// The drift options a spec asks for; an unknown method is bad input.
pub fn drift_options(spec: &MonitorSpec) -> Result<DriftOptions, MonitorError> {
    let mut methods = HashMap::new();
    for (col, m) in &spec.column_methods {
        let method = Method::parse(m).map_err(|e| MonitorError::InvalidSpec(format!("column_methods.{col}: {e}")))?;
        methods.insert(col.clone(), method);
    }
    Ok(DriftOptions {
        methods,
        thresholds: spec.column_thresholds.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        columns: None,
        drift_share: spec.drift_share.unwrap_or(crate::drift::DEFAULT_DRIFT_SHARE),
    })
}

/// One window's series from its rows.
#[allow(clippy::too_many_arguments)]
pub(super) fn compute(
    spec: &MonitorSpec,
    reference: &ReferenceData,
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
        let types = types_among(&reference.types, &names);
        let opts = DriftOptions { columns: Some(names), ..options.clone() };
        match compare_typed(refs, current, &opts, &types) {
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
    prediction_drift(spec, &rows, &by_name, options, &reference.types, series, &mut detail);
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
fn validated(schema: &Schema, features: &[ColumnValues]) -> crate::validate::ValidationReport {
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
    types: &DeclaredTypes,
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
    let declared = types_among(types, std::slice::from_ref(&target.name));
    let types = DeclaredTypes {
        numerical: declared.numerical.iter().map(|_| "prediction".to_string()).collect(),
        categorical: declared.categorical.iter().map(|_| "prediction".to_string()).collect(),
    };
    let opts = DriftOptions { columns: Some(vec!["prediction".into()]), ..options.clone() };
    if let Ok(report) = compare_typed(vec![reference], vec![current], &opts, &types)
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
        Value::Number(n) => n.as_f64().map(crate::read::number_key),
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
