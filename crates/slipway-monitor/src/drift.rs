//! Dataset drift: every column typed, tested with its default (or overridden) method and
//! threshold, and the dataset verdict from the share of drifted columns (>= 0.5 by default).
//! Columns are tested in parallel, each one's samples dropped as soon as it is done.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use serde::Serialize;

use crate::MonitorError;
use crate::read::{ColumnValues, Progress, read_file_into};
use crate::stats::{self, ColumnType, Method, Sample};
use crate::typing::DeclaredTypes;

/// Evidently's default `drift_share`.
pub const DEFAULT_DRIFT_SHARE: f64 = 0.5;

/// Per-column overrides and the dataset rule.
#[derive(Debug, Clone)]
pub struct DriftOptions {
    pub methods: HashMap<String, Method>,
    pub thresholds: HashMap<String, f64>,
    /// Only these columns, in this order (default: every column of the current dataset).
    pub columns: Option<Vec<String>>,
    pub drift_share: f64,
}

impl Default for DriftOptions {
    fn default() -> Self {
        DriftOptions {
            methods: HashMap::new(),
            thresholds: HashMap::new(),
            columns: None,
            drift_share: DEFAULT_DRIFT_SHARE,
        }
    }
}

/// What the HTML report draws: both distributions over the same bins, as shares.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Histogram {
    Numeric { edges: Vec<f64>, reference: Vec<f64>, current: Vec<f64> },
    Categorical { labels: Vec<String>, reference: Vec<f64>, current: Vec<f64> },
}

#[derive(Debug, Clone, Serialize)]
pub struct ColumnDrift {
    pub column: String,
    #[serde(rename = "type")]
    pub column_type: ColumnType,
    pub method: Method,
    pub statistic: f64,
    pub threshold: f64,
    pub drifted: bool,
    pub reference_count: u64,
    pub current_count: u64,
    pub reference_nulls: u64,
    pub current_nulls: u64,
    #[serde(skip)]
    pub histogram: Histogram,
}

#[derive(Debug, Clone, Serialize)]
pub struct SkippedColumn {
    pub column: String,
    pub reason: String,
}

/// Every column's test and the dataset verdict; `C` is [`ColumnDrift`] for rows, and
/// carries error bounds for profiles.
#[derive(Debug, Clone, Serialize)]
pub struct DriftReport<C = ColumnDrift> {
    pub columns: Vec<C>,
    pub skipped: Vec<SkippedColumn>,
    pub number_of_columns: usize,
    pub number_of_drifted_columns: usize,
    pub share_of_drifted_columns: f64,
    pub drift_share: f64,
    pub dataset_drift: bool,
}

impl<C> DriftReport<C> {
    /// The verdict over `columns` (at least one): the dataset drifts when the share of
    /// drifted columns reaches `drift_share`.
    pub fn new(columns: Vec<C>, skipped: Vec<SkippedColumn>, drift_share: f64, drifted: impl Fn(&C) -> bool) -> Self {
        let number_of_drifted_columns = columns.iter().filter(|c| drifted(c)).count();
        let share = number_of_drifted_columns as f64 / columns.len().max(1) as f64;
        DriftReport {
            number_of_columns: columns.len(),
            number_of_drifted_columns,
            share_of_drifted_columns: share,
            drift_share,
            dataset_drift: share >= drift_share,
            columns,
            skipped,
        }
    }
}

/// Most categories a report histogram shows; the rest are summed as "other".
pub(crate) const MAX_LABELS: usize = 20;

pub(crate) fn histogram(kind: ColumnType, reference: &Sample, current: &Sample) -> Histogram {
    let share = |c: u64, n: u64| c as f64 / n as f64;
    match (kind, reference, current) {
        (
            ColumnType::Numeric,
            Sample::Numeric { sorted: a, integer: ia },
            Sample::Numeric { sorted: b, integer: ib },
        ) => {
            let edges = stats::numeric_edges(a, b, *ia && *ib);
            let (ra, rb) = (stats::binning::histogram_sorted(a, &edges), stats::binning::histogram_sorted(b, &edges));
            Histogram::Numeric {
                reference: ra.iter().map(|&c| share(c, a.len() as u64)).collect(),
                current: rb.iter().map(|&c| share(c, b.len() as u64)).collect(),
                edges,
            }
        }
        (_, Sample::Categorical { counts: a }, Sample::Categorical { counts: b }) => {
            let (na, nb) = (reference.len(), current.len());
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            let get = |m: &HashMap<String, u64>, k: &String| m.get(k).copied().unwrap_or(0);
            keys.sort_by_key(|k| std::cmp::Reverse(get(a, k) + get(b, k)));
            let mut labels = Vec::new();
            let (mut ra, mut rb) = (Vec::new(), Vec::new());
            for k in keys.iter().take(MAX_LABELS) {
                labels.push((*k).clone());
                ra.push(share(get(a, k), na));
                rb.push(share(get(b, k), nb));
            }
            if keys.len() > MAX_LABELS {
                labels.push("other".into());
                ra.push(1.0 - ra.iter().sum::<f64>());
                rb.push(1.0 - rb.iter().sum::<f64>());
            }
            Histogram::Categorical { labels, reference: ra, current: rb }
        }
        _ => Histogram::Categorical { labels: vec![], reference: vec![], current: vec![] },
    }
}

fn one_column(
    reference: ColumnValues,
    current: ColumnValues,
    options: &DriftOptions,
    types: &DeclaredTypes,
) -> Result<ColumnDrift, MonitorError> {
    let name = current.name.clone();
    let (reference_nulls, current_nulls) = (reference.nulls, current.nulls);
    let (kind, r, c) = crate::typing::samples(reference, current, types.get(&name))?;
    let method = match options.methods.get(&name) {
        Some(m) => *m,
        None => stats::default_method(kind, &r, &c),
    };
    let threshold = options.thresholds.get(&name).copied().unwrap_or(method.default_threshold());
    let statistic = stats::statistic(method, &name, &r, &c)?;
    Ok(ColumnDrift {
        drifted: method.drifted(statistic, threshold),
        histogram: histogram(kind, &r, &c),
        column: name,
        column_type: kind,
        method,
        statistic,
        threshold,
        reference_count: r.len(),
        current_count: c.len(),
        reference_nulls,
        current_nulls,
    })
}

/// Drift between two read datasets, every column's type inferred.
pub fn compare(
    reference: Vec<ColumnValues>,
    current: Vec<ColumnValues>,
    options: &DriftOptions,
) -> Result<DriftReport, MonitorError> {
    compare_typed(reference, current, options, &DeclaredTypes::default())
}

/// Drift between two read datasets, the columns in `types` taking their declared type. A
/// declared column that is not compared (absent, or outside `options.columns`) is an error.
pub fn compare_typed(
    reference: Vec<ColumnValues>,
    current: Vec<ColumnValues>,
    options: &DriftOptions,
    types: &DeclaredTypes,
) -> Result<DriftReport, MonitorError> {
    types.check_columns(
        options.columns.as_deref(),
        &[
            ("current", &|n: &str| current.iter().any(|c| c.name == n)),
            ("reference", &|n: &str| reference.iter().any(|c| c.name == n)),
        ],
    )?;
    let mut refs: HashMap<String, ColumnValues> = reference.into_iter().map(|c| (c.name.clone(), c)).collect();
    let mut curs: HashMap<String, ColumnValues> = current.iter().map(|c| (c.name.clone(), c.clone())).collect();
    let order: Vec<String> = match &options.columns {
        Some(cols) => cols.clone(),
        None => current.iter().map(|c| c.name.clone()).collect(),
    };
    drop(current);
    let mut work = Vec::new();
    let mut skipped = Vec::new();
    for name in &order {
        let cur = curs.remove(name).ok_or_else(|| MonitorError::MissingColumn(name.clone(), "current"))?;
        let rf = refs.remove(name).ok_or_else(|| MonitorError::MissingColumn(name.clone(), "reference"))?;
        match cur.unsupported.as_ref().or(rf.unsupported.as_ref()) {
            Some(t) => {
                skipped.push(SkippedColumn { column: name.clone(), reason: format!("type {t} is not drift-tested") })
            }
            None => work.push(Mutex::new(Some((rf, cur)))),
        }
    }
    if work.is_empty() {
        return Err(MonitorError::NoColumns);
    }
    let results: Vec<Mutex<Option<Result<ColumnDrift, MonitorError>>>> =
        (0..work.len()).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(work.len());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= work.len() {
                        break;
                    }
                    let taken = work[i].lock().unwrap_or_else(PoisonError::into_inner).take();
                    if let Some((rf, cur)) = taken {
                        let r = one_column(rf, cur, options, types);
                        *results[i].lock().unwrap_or_else(PoisonError::into_inner) = Some(r);
                    }
                }
            });
        }
    });
    let mut columns = Vec::with_capacity(results.len());
    for slot in results {
        match slot.into_inner().ok().flatten() {
            Some(r) => columns.push(r?),
            None => return Err(MonitorError::NoColumns),
        }
    }
    Ok(DriftReport::new(columns, skipped, options.drift_share, |c| c.drifted))
}

/// Reads both files (in parallel) and compares them. Columns declared categorical are read
/// from CSV as the text they hold ("001" stays "001").
pub fn compare_files(
    reference: &Path,
    current: &Path,
    options: &DriftOptions,
    types: &DeclaredTypes,
    reference_progress: &dyn Progress,
    current_progress: &dyn Progress,
) -> Result<DriftReport, MonitorError> {
    let wanted = options.columns.as_deref();
    let read = |path, progress| read_file_into::<ColumnValues>(path, wanted, types, &(), progress);
    let (r, c) = std::thread::scope(|s| {
        let r = s.spawn(|| read(reference, reference_progress));
        let c = read(current, current_progress);
        let r = r.join().unwrap_or(Err(MonitorError::NoColumns));
        (r, c)
    });
    compare_typed(r?, c?, options, types)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, values: impl IntoIterator<Item = f64>, integer: bool) -> ColumnValues {
        let mut c = ColumnValues::new(name.into());
        for v in values {
            c.push_number(v, integer);
        }
        c
    }

    #[test]
    fn share_and_verdict() {
        let r = vec![col("a", (0..100).map(f64::from), false), col("b", (0..100).map(f64::from), false)];
        let c = vec![col("a", (50..150).map(f64::from), false), col("b", (0..100).map(f64::from), false)];
        let report = compare(r.clone(), c.clone(), &DriftOptions::default()).unwrap();
        assert_eq!(report.number_of_drifted_columns, 1);
        assert_eq!(report.share_of_drifted_columns, 0.5);
        assert!(report.dataset_drift);
        assert_eq!(report.columns[0].method, Method::Ks);
        assert!(report.columns[0].drifted);
        assert!(!report.columns[1].drifted);

        let mut options = DriftOptions::default();
        options.methods.insert("a".into(), Method::Psi);
        options.thresholds.insert("a".into(), 100.0);
        let report = compare(r, c, &options).unwrap();
        assert_eq!(report.columns[0].method, Method::Psi);
        assert_eq!(report.columns[0].threshold, 100.0);
        assert!(!report.columns[0].drifted);
        assert!(!report.dataset_drift);
    }

    #[test]
    fn missing_columns_are_named() {
        let r = vec![col("a", [1.0], false)];
        let c = vec![col("a", [1.0], false), col("b", [1.0], false)];
        let err = compare(r, c, &DriftOptions::default()).unwrap_err();
        assert_eq!(err.to_string(), "column 'b' is missing from the reference dataset");
    }
}
