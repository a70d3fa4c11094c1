//! Drift from two profiles, without the rows: the same typing, default tests, thresholds and
//! verdicts as [`crate::drift`], with each statistic computed from the sketches.
//!
//! A side is *exact* when its profile still holds every value with its count (the frequent
//! items never dropped one, or the quantile sketch never compacted). A column whose two sides
//! are exact gets the statistic drift on the rows gives (to rounding: the Wasserstein norm
//! comes from Chan's moments instead of numpy's two-pass std). Otherwise:
//!
//! - numeric columns use the quantile sketch, whose CDF is within ε = rank_error / n of the
//!   true one everywhere. KS and Wasserstein come from the sketch CDFs, with certified bounds
//!   |D̂ - D| <= ε_r + ε_c and |Ŵ - W| <= (ε_r + ε_c)(max - min) / max(std_r, 0.001);
//!   binned tests use sketch-estimated bin counts (each share within 2ε), which bounds the
//!   Jensen-Shannon distance by sqrt(ln2 min(1, b ε_r)) + sqrt(ln2 min(1, b ε_c)) over b bins
//!   (JS is a metric, and JSD <= ln2 · total variation). PSI, KL and Hellinger take logs or
//!   square roots of small shares and have no useful worst-case bound.
//! - categorical columns use the frequent items, each count within `max_error` below its
//!   true value; the dropped remainder is one extra category.

use std::collections::HashMap;

use serde::Serialize;

use super::column::ColumnProfile;
use super::dataset::DatasetProfile;
use crate::MonitorError;
use crate::drift::{ColumnDrift, DriftOptions, DriftReport, Histogram, SkippedColumn};
use crate::read::{SourceKind, number_key};
use crate::stats::{self, ColumnType, Method, Sample, binning, distance, ks, pvalue};
use crate::typing::{DeclaredTypes, INTEGER_CARDINALITY_LIMIT, text_example};

/// The category that stands for what an inexact frequent-items summary dropped.
pub const OTHER: &str = "\u{0}other";

#[derive(Debug, Clone, Serialize)]
pub struct ProfileColumnDrift {
    #[serde(flatten)]
    pub drift: ColumnDrift,
    /// Whether the statistic is the one drift on the rows gives (to rounding).
    pub exact: bool,
    /// The KS statistic D (for ks), which `error_bound` bounds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ks_statistic: Option<f64>,
    /// A certified bound on |estimate - value from the rows| of the KS D (ks) or of the
    /// statistic (wasserstein, jensenshannon); absent where none is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_bound: Option<f64>,
}

/// Drift from profiles: the same report, each column with its error bound.
pub type ProfileDriftReport = DriftReport<ProfileColumnDrift>;

/// One numeric side: (value, weight) ascending, weights adding up to n.
pub(super) struct Numeric<'a> {
    points: Vec<(f64, u64)>,
    n: u64,
    /// Certified absolute rank error of `points` (0 when exact).
    rank_error: u64,
    profile: &'a ColumnProfile,
}

impl<'a> Numeric<'a> {
    pub(super) fn new(p: &'a ColumnProfile) -> Numeric<'a> {
        let (points, rank_error) = if p.numbers.is_exact() {
            let mut pts: Vec<(f64, u64)> = p.numbers.counts().iter().map(|(k, c)| (k.0, *c)).collect();
            pts.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
            (pts, 0)
        } else {
            (p.quantiles.weighted(), p.quantiles.rank_error())
        };
        Numeric { n: points.iter().map(|x| x.1).sum(), points, rank_error, profile: p }
    }

    fn exact(&self) -> bool {
        self.rank_error == 0
    }

    pub(super) fn eps(&self) -> f64 {
        self.rank_error as f64 / self.n as f64
    }

    fn distinct(&self) -> f64 {
        if self.exact() { self.points.len() as f64 } else { self.profile.distinct.estimate() }
    }

    fn lo(&self) -> f64 {
        self.profile.min().unwrap_or(0.0)
    }

    fn hi(&self) -> f64 {
        self.profile.max().unwrap_or(0.0)
    }

    fn integer(&self) -> bool {
        self.profile.is_integer_dtype()
    }

    /// numpy.histogram counts over `edges` (half-open bins, the last one closed).
    pub(super) fn histogram(&self, edges: &[f64]) -> Vec<u64> {
        let mut prefix = Vec::with_capacity(self.points.len() + 1);
        prefix.push(0u64);
        for p in &self.points {
            prefix.push(prefix[prefix.len() - 1] + p.1);
        }
        let below = |e: f64| prefix[self.points.partition_point(|p| p.0 < e)];
        let upto = |e: f64| prefix[self.points.partition_point(|p| p.0 <= e)];
        let nb = edges.len().saturating_sub(1);
        (0..nb).map(|i| if i + 1 == nb { upto(edges[i + 1]) } else { below(edges[i + 1]) } - below(edges[i])).collect()
    }
}

/// Counts of each value of the union, aligned, ascending.
fn aligned(a: &[(f64, u64)], b: &[(f64, u64)]) -> Vec<(f64, u64, u64)> {
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x.0 == y.0 => {
                out.push((x.0, x.1, y.1));
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x.0 < y.0 => {
                out.push((x.0, x.1, 0));
                i += 1;
            }
            (Some(x), None) => {
                out.push((x.0, x.1, 0));
                i += 1;
            }
            (_, Some(y)) => {
                out.push((y.0, 0, y.1));
                j += 1;
            }
            (None, None) => break,
        }
    }
    out
}

fn wasserstein(u: &[(f64, u64)], v: &[(f64, u64)]) -> f64 {
    let (nu, nv) = (u.iter().map(|p| p.1).sum::<u64>() as f64, v.iter().map(|p| p.1).sum::<u64>() as f64);
    let (mut total, mut gap, mut prev) = (0.0, 0.0, None::<f64>);
    let (mut cu, mut cv) = (0u64, 0u64);
    for (x, a, b) in aligned(u, v) {
        if let Some(p) = prev {
            total += gap * (x - p);
        }
        cu += a;
        cv += b;
        gap = (cu as f64 / nu - cv as f64 / nv).abs();
        prev = Some(x);
    }
    total
}

struct Estimate {
    statistic: f64,
    ks_statistic: Option<f64>,
    bound: Option<f64>,
    histogram: Histogram,
}

fn js_bound(bins: usize, r: &Numeric, c: &Numeric) -> f64 {
    let tv = |e: f64| (bins as f64 * e).min(1.0);
    (std::f64::consts::LN_2 * tv(r.eps())).sqrt() + (std::f64::consts::LN_2 * tv(c.eps())).sqrt()
}

fn numeric_statistic(method: Method, r: &Numeric, c: &Numeric) -> Estimate {
    let (lo, hi) = (r.lo().min(c.lo()), r.hi().max(c.hi()));
    let integer = r.integer() && c.integer();
    let both_exact = r.exact() && c.exact();
    let eps = r.eps() + c.eps();
    // Evidently's binning: Sturges over both samples when the reference has > 20 values.
    let binned = || -> (Vec<u64>, Vec<u64>, usize) {
        if r.distinct() > 20.0 {
            let edges = binning::sturges_edges(lo, hi, (r.n + c.n) as usize, integer);
            (r.histogram(&edges), c.histogram(&edges), edges.len() - 1)
        } else {
            let al = aligned(&r.points, &c.points);
            let bins = al.len();
            let (a, b) = al.into_iter().map(|t| (t.1, t.2)).unzip();
            (a, b, bins)
        }
    };
    let percents = |fill: bool| -> (Vec<f64>, Vec<f64>, usize) {
        let (a, b, bins) = binned();
        let (mut p, mut q) = (binning::percents(&a, r.n), binning::percents(&b, c.n));
        if fill {
            binning::fill_zeros(&mut p);
            binning::fill_zeros(&mut q);
        }
        (p, q, bins)
    };
    let (statistic, ks_statistic, bound) = match method {
        Method::Ks => {
            let k = ks::ks_2samp_weighted(&r.points, &c.points);
            (k.pvalue, Some(k.statistic), Some(eps))
        }
        Method::Wasserstein => {
            let std = r.profile.moments.population_std().unwrap_or(0.0).max(0.001);
            (wasserstein(&r.points, &c.points) / std, None, Some(eps * (hi - lo) / std))
        }
        Method::JensenShannon => {
            let (p, q, bins) = percents(false);
            (distance::jensenshannon(&p, &q), None, Some(js_bound(bins, r, c)))
        }
        Method::Psi => {
            let (p, q, _) = percents(true);
            (distance::psi(&p, &q), None, None)
        }
        Method::KlDiv => {
            let (p, q, _) = percents(true);
            (distance::kl_div(&p, &q), None, None)
        }
        Method::Hellinger => {
            let u = union_distinct(r, c);
            let edges = binning::sturges_edges(lo, hi, u.round().max(1.0) as usize, integer);
            (distance::hellinger_from_densities(&r.histogram(&edges), &c.histogram(&edges), &edges), None, None)
        }
        Method::ChiSquare | Method::Z => {
            let al: Vec<(u64, u64)> = aligned(&r.points, &c.points).into_iter().map(|t| (t.1, t.2)).collect();
            let p = if method == Method::ChiSquare {
                pvalue::chisquare(&al)
            } else {
                pvalue::z_test(al.first().copied().unwrap_or((0, 0)), (r.n, c.n), al.len() == 1)
            };
            (p, None, None)
        }
    };
    let edges = binning::sturges_edges(lo, hi, (r.n + c.n) as usize, integer);
    let share = |h: Vec<u64>, n: u64| h.into_iter().map(|x| x as f64 / n as f64).collect();
    let histogram = Histogram::Numeric {
        reference: share(r.histogram(&edges), r.n),
        current: share(c.histogram(&edges), c.n),
        edges,
    };
    Estimate { statistic, ks_statistic, bound: if both_exact { None } else { bound }, histogram }
}

fn union_distinct(r: &Numeric, c: &Numeric) -> f64 {
    if r.exact() && c.exact() {
        aligned(&r.points, &c.points).len() as f64
    } else {
        let mut h = r.profile.distinct.clone();
        match h.merge(&c.profile.distinct) {
            Ok(()) => h.estimate(),
            Err(_) => r.distinct().max(c.distinct()),
        }
    }
}

/// Counts per category (numbers as their text), and whether they are exact; what an inexact
/// summary dropped goes to [`OTHER`].
fn categorical(p: &ColumnProfile) -> (Sample, bool) {
    let (mut counts, exact, kept): (HashMap<String, u64>, bool, u64) = if p.kind == SourceKind::Text {
        (p.strings.counts().clone(), p.strings.is_exact(), p.strings.counts().values().sum())
    } else {
        let mut m = HashMap::new();
        for (k, c) in p.numbers.counts() {
            *m.entry(number_key(k.0)).or_insert(0) += c;
        }
        let kept = m.values().sum();
        (m, p.numbers.is_exact(), kept)
    };
    if kept < p.count {
        counts.insert(OTHER.into(), p.count - kept);
    }
    (Sample::Categorical { counts }, exact)
}

fn kind_name(kind: SourceKind) -> &'static str {
    match kind {
        SourceKind::Empty => "empty",
        SourceKind::Integer | SourceKind::Float => "numeric",
        SourceKind::Text => "text",
    }
}

/// Evidently's typing, from the current profile (as [`crate::typing::infer_type`]).
fn column_type(current: &ColumnProfile) -> ColumnType {
    match current.kind {
        SourceKind::Text => ColumnType::Categorical,
        SourceKind::Integer
            if current.is_integer_dtype() && current.distinct_count().0 <= INTEGER_CARDINALITY_LIMIT as f64 =>
        {
            ColumnType::Categorical
        }
        SourceKind::Integer | SourceKind::Float | SourceKind::Empty => ColumnType::Numeric,
    }
}

fn one_column(
    reference: &ColumnProfile,
    current: &ColumnProfile,
    options: &DriftOptions,
    types: &DeclaredTypes,
) -> Result<ProfileColumnDrift, MonitorError> {
    let name = current.name.clone();
    let declared = types.get(&name);
    if declared == Some(ColumnType::Numeric) {
        for (p, dataset) in [(reference, "reference"), (current, "current")] {
            if p.kind == SourceKind::Text {
                let example = text_example(p.strings.counts().keys());
                return Err(MonitorError::DeclaredNumericalHoldsText { column: name, dataset, example });
            }
        }
    }
    let kind = declared.unwrap_or_else(|| column_type(current));
    if kind == ColumnType::Numeric && (reference.kind == SourceKind::Text || current.kind == SourceKind::Text) {
        return Err(MonitorError::TypeMismatch {
            column: name,
            current: kind_name(current.kind),
            reference: kind_name(reference.kind),
        });
    }
    for (p, dataset) in [(reference, "reference"), (current, "current")] {
        if p.count == 0 {
            return Err(MonitorError::EmptyColumn { column: name, dataset });
        }
    }
    let chosen = options.methods.get(&name).copied();
    let (method, est, exact) = match kind {
        ColumnType::Numeric => {
            let (r, c) = (Numeric::new(reference), Numeric::new(current));
            let u = union_distinct(&r, &c);
            let method = chosen.unwrap_or_else(|| stats::default_method_for(kind, r.n, u.round() as usize));
            (method, numeric_statistic(method, &r, &c), r.exact() && c.exact())
        }
        ColumnType::Categorical => {
            let ((rs, re), (cs, ce)) = (categorical(reference), categorical(current));
            let method = chosen.unwrap_or_else(|| stats::default_method(kind, &rs, &cs));
            let statistic = stats::statistic(method, &name, &rs, &cs)?;
            let histogram = crate::drift::histogram(kind, &rs, &cs);
            (method, Estimate { statistic, ks_statistic: None, bound: None, histogram }, re && ce)
        }
    };
    let threshold = options.thresholds.get(&name).copied().unwrap_or(method.default_threshold());
    Ok(ProfileColumnDrift {
        drift: ColumnDrift {
            drifted: method.drifted(est.statistic, threshold),
            histogram: est.histogram,
            column: name,
            column_type: kind,
            method,
            statistic: est.statistic,
            threshold,
            reference_count: reference.count,
            current_count: current.count,
            reference_nulls: reference.nulls,
            current_nulls: current.nulls,
        },
        exact,
        ks_statistic: est.ks_statistic,
        error_bound: est.bound,
    })
}

/// Drift between two dataset profiles, column by column, as [`crate::drift::compare_typed`]
/// does it on rows (the profiles of CSV files should be read with the same `types`, so that
/// columns declared categorical keep their text).
pub fn compare_profiles(
    reference: &DatasetProfile,
    current: &DatasetProfile,
    options: &DriftOptions,
    types: &DeclaredTypes,
) -> Result<ProfileDriftReport, MonitorError> {
    types.check_columns(
        options.columns.as_deref(),
        &[("current", &|n: &str| current.column(n).is_some()), ("reference", &|n: &str| reference.column(n).is_some())],
    )?;
    let order: Vec<String> = match &options.columns {
        Some(cols) => cols.clone(),
        None => current.columns.iter().map(|c| c.name.clone()).collect(),
    };
    let mut columns = Vec::new();
    let mut skipped = Vec::new();
    for name in &order {
        let cur = current.column(name).ok_or_else(|| MonitorError::MissingColumn(name.clone(), "current"))?;
        let rf = reference.column(name).ok_or_else(|| MonitorError::MissingColumn(name.clone(), "reference"))?;
        match cur.unsupported.as_ref().or(rf.unsupported.as_ref()) {
            Some(t) => {
                skipped.push(SkippedColumn { column: name.clone(), reason: format!("type {t} is not drift-tested") })
            }
            None => columns.push(one_column(rf, cur, options, types)?),
        }
    }
    if columns.is_empty() {
        return Err(MonitorError::NoColumns);
    }
    Ok(DriftReport::new(columns, skipped, options.drift_share, |c| c.drift.drifted))
}
