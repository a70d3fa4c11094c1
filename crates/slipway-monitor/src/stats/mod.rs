//! Drift statistics for one column: the methods, Evidently 0.7.23's default choice among them,
//! their default thresholds, and each method applied to a pair of cleaned samples.
//!
//! A numeric sample is kept as its finite values sorted ascending (KS, Wasserstein, binning
//! and distinct counts all read that directly); a categorical sample as counts per value.

pub mod binning;
pub mod distance;
pub mod kolmogorov;
pub mod ks;
pub mod pvalue;
pub mod special;

use std::collections::{BTreeSet, HashMap};

use crate::MonitorError;

/// A drift test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Ks,
    #[serde(rename = "chisquare")]
    ChiSquare,
    Z,
    Wasserstein,
    #[serde(rename = "jensenshannon")]
    JensenShannon,
    Psi,
    KlDiv,
    Hellinger,
}

impl Method {
    pub const ALL: [Method; 8] = [
        Method::Ks,
        Method::ChiSquare,
        Method::Z,
        Method::Wasserstein,
        Method::JensenShannon,
        Method::Psi,
        Method::KlDiv,
        Method::Hellinger,
    ];

    /// The name Evidently gives the test (and the CLI accepts).
    pub fn name(self) -> &'static str {
        match self {
            Method::Ks => "ks",
            Method::ChiSquare => "chisquare",
            Method::Z => "z",
            Method::Wasserstein => "wasserstein",
            Method::JensenShannon => "jensenshannon",
            Method::Psi => "psi",
            Method::KlDiv => "kl_div",
            Method::Hellinger => "hellinger",
        }
    }

    pub fn parse(s: &str) -> Result<Method, MonitorError> {
        Method::ALL.into_iter().find(|m| m.name() == s).ok_or_else(|| MonitorError::UnknownMethod(s.to_string()))
    }

    /// P-value tests drift when the p-value is small; the rest when the distance is large.
    pub fn is_pvalue(self) -> bool {
        matches!(self, Method::Ks | Method::ChiSquare | Method::Z)
    }

    pub fn default_threshold(self) -> f64 {
        if self.is_pvalue() { 0.05 } else { 0.1 }
    }

    /// Evidently's verdict rule: ks drifts at p <= t, chisquare and z at p < t, distances at
    /// score >= t.
    pub fn drifted(self, statistic: f64, threshold: f64) -> bool {
        match self {
            Method::Ks => statistic <= threshold,
            Method::ChiSquare | Method::Z => statistic < threshold,
            Method::Wasserstein | Method::JensenShannon | Method::Psi | Method::KlDiv | Method::Hellinger => {
                statistic >= threshold
            }
        }
    }
}

/// Column kind, decided by [`crate::typing`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    Numeric,
    Categorical,
}

impl ColumnType {
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::Numeric => "numeric",
            ColumnType::Categorical => "categorical",
        }
    }
}

/// The cleaned values of one column of one dataset.
#[derive(Debug, Clone, PartialEq)]
pub enum Sample {
    /// Finite values, ascending; `integer` when the source column was integer-typed with no
    /// nulls (numpy then keeps bin widths >= 1).
    Numeric {
        sorted: Vec<f64>,
        integer: bool,
    },
    Categorical {
        counts: HashMap<String, u64>,
    },
}

impl Sample {
    pub fn len(&self) -> u64 {
        match self {
            Sample::Numeric { sorted, .. } => sorted.len() as u64,
            Sample::Categorical { counts } => counts.values().sum(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn distinct(&self) -> usize {
        match self {
            Sample::Numeric { sorted, .. } => binning::distinct_sorted(sorted),
            Sample::Categorical { counts } => counts.len(),
        }
    }
}

/// Counts of each value of the union, aligned (reference, current), in a fixed order: values
/// ascending for numeric samples, names sorted for categorical ones.
fn aligned_counts(reference: &Sample, current: &Sample) -> Vec<(u64, u64)> {
    match (reference, current) {
        (Sample::Numeric { sorted: a, .. }, Sample::Numeric { sorted: b, .. }) => {
            binning::aligned_value_counts(a, b).into_iter().map(|(_, r, c)| (r, c)).collect()
        }
        (Sample::Categorical { counts: a }, Sample::Categorical { counts: b }) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            keys.into_iter().map(|k| (a.get(k).copied().unwrap_or(0), b.get(k).copied().unwrap_or(0))).collect()
        }
        // Mixed kinds never reach here: the caller types both samples alike.
        _ => Vec::new(),
    }
}

/// Number of distinct values in reference and current together.
pub fn union_distinct(reference: &Sample, current: &Sample) -> usize {
    match (reference, current) {
        (Sample::Numeric { sorted: a, .. }, Sample::Numeric { sorted: b, .. }) => binning::union_distinct_sorted(a, b),
        _ => aligned_counts(reference, current).len(),
    }
}

/// Evidently's default test: by reference size (N <= 1000 or not), column type and the
/// number of distinct values u in both samples together.
pub fn default_method(kind: ColumnType, reference: &Sample, current: &Sample) -> Method {
    default_method_for(kind, reference.len(), union_distinct(reference, current))
}

/// [`default_method`] from the numbers it reads: the reference size N and the number u of
/// distinct values in both samples together.
pub fn default_method_for(kind: ColumnType, reference_len: u64, u: usize) -> Method {
    let small = reference_len <= 1000;
    match (kind, small) {
        (ColumnType::Numeric, true) if u > 5 => Method::Ks,
        (ColumnType::Numeric, true) if u > 2 => Method::ChiSquare,
        (ColumnType::Numeric, true) => Method::Z,
        (ColumnType::Numeric, false) if u > 5 => Method::Wasserstein,
        (ColumnType::Numeric, false) => Method::JensenShannon,
        (ColumnType::Categorical, true) if u > 2 => Method::ChiSquare,
        (ColumnType::Categorical, true) => Method::Z,
        (ColumnType::Categorical, false) => Method::JensenShannon,
    }
}

/// Evidently's `get_binned_data`: Sturges bins for a numeric column whose reference has more
/// than 20 distinct values, one bin per distinct value otherwise; percents of each sample.
pub fn binned_percents(reference: &Sample, current: &Sample, fill: bool) -> (Vec<f64>, Vec<f64>) {
    let (rc, cc): (Vec<u64>, Vec<u64>) = match (reference, current) {
        (Sample::Numeric { sorted: a, integer: ia }, Sample::Numeric { sorted: b, integer: ib })
            if binning::distinct_sorted(a) > 20 =>
        {
            let edges = numeric_edges(a, b, *ia && *ib);
            (binning::histogram_sorted(a, &edges), binning::histogram_sorted(b, &edges))
        }
        _ => aligned_counts(reference, current).into_iter().unzip(),
    };
    let mut r = binning::percents(&rc, reference.len());
    let mut c = binning::percents(&cc, current.len());
    if fill {
        binning::fill_zeros(&mut r);
        binning::fill_zeros(&mut c);
    }
    (r, c)
}

/// Sturges edges over reference and current concatenated.
pub fn numeric_edges(a: &[f64], b: &[f64], integer: bool) -> Vec<f64> {
    let lo = a[0].min(b[0]);
    let hi = a[a.len() - 1].max(b[b.len() - 1]);
    binning::sturges_edges(lo, hi, a.len() + b.len(), integer)
}

fn hellinger(reference: &Sample, current: &Sample) -> f64 {
    match (reference, current) {
        (Sample::Numeric { sorted: a, integer: ia }, Sample::Numeric { sorted: b, integer: ib }) => {
            // Evidently bins over the distinct values of the union, not over the rows.
            let keys = binning::aligned_value_counts(a, b);
            let lo = keys[0].0;
            let hi = keys[keys.len() - 1].0;
            let edges = binning::sturges_edges(lo, hi, keys.len(), *ia && *ib);
            let rc = binning::histogram_sorted(a, &edges);
            let cc = binning::histogram_sorted(b, &edges);
            distance::hellinger_from_densities(&rc, &cc, &edges)
        }
        _ => {
            let aligned = aligned_counts(reference, current);
            let (nr, nc) = (reference.len() as f64, current.len() as f64);
            let p: Vec<f64> = aligned.iter().map(|a| a.0 as f64 / nr).collect();
            let q: Vec<f64> = aligned.iter().map(|a| a.1 as f64 / nc).collect();
            distance::hellinger_from_probabilities(&p, &q)
        }
    }
}

fn z(reference: &Sample, current: &Sample) -> f64 {
    let aligned = aligned_counts(reference, current);
    let same_constant = aligned.len() == 1;
    let first = aligned.first().copied().unwrap_or((0, 0));
    pvalue::z_test(first, (reference.len(), current.len()), same_constant)
}

/// The statistic of `method` on two non-empty samples of the same kind: a p-value for ks,
/// chisquare and z, a distance for the others.
pub fn statistic(method: Method, column: &str, reference: &Sample, current: &Sample) -> Result<f64, MonitorError> {
    let numeric = |m: Method| -> Result<(&[f64], &[f64]), MonitorError> {
        match (reference, current) {
            (Sample::Numeric { sorted: a, .. }, Sample::Numeric { sorted: b, .. }) => Ok((a, b)),
            _ => Err(MonitorError::MethodNeedsNumeric { method: m.name(), column: column.into() }),
        }
    };
    Ok(match method {
        Method::Ks => {
            let (a, b) = numeric(method)?;
            ks::ks_2samp(a, b).pvalue
        }
        Method::Wasserstein => {
            let (a, b) = numeric(method)?;
            distance::wasserstein_normed(a, b)
        }
        Method::ChiSquare => pvalue::chisquare(&aligned_counts(reference, current)),
        Method::Z => z(reference, current),
        Method::JensenShannon => {
            let (r, c) = binned_percents(reference, current, false);
            distance::jensenshannon(&r, &c)
        }
        Method::Psi => {
            let (r, c) = binned_percents(reference, current, true);
            distance::psi(&r, &c)
        }
        Method::KlDiv => {
            let (r, c) = binned_percents(reference, current, true);
            distance::kl_div(&r, &c)
        }
        Method::Hellinger => hellinger(reference, current),
    })
}

#[cfg(test)]
mod tests;
