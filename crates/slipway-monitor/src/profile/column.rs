//! One column's profile, built in one streaming pass as a [`ColumnSink`] and merged with the
//! profile of another part of the same column.
//!
//! It follows [`crate::read::ColumnValues`]'s rules value for value (nulls, NaN and ±inf
//! counted as nulls; integer, float and text typing; a column that meets text becomes text and
//! its numbers become their shortest text), so drift from two profiles sees what drift from
//! the rows sees. The kind only moves up `Empty < Integer < Float < Text`, so merging takes the
//! larger one.

use serde::{Deserialize, Serialize};

use super::frequent::{self, FrequentItems, NumKey};
use super::hll::{self, HyperLogLog};
use super::moments::Moments;
use super::quantile::{self, QuantileSketch};
use crate::MonitorError;
use crate::read::{ColumnSink, SourceKind, number_key};

/// Sketch sizes. Profiles merge only with profiles of the same sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileOptions {
    /// Items per level of the quantile sketch.
    pub quantile_k: usize,
    /// Counters of the frequent-items summaries.
    pub frequent_items: usize,
    /// log2 of the HyperLogLog register count.
    pub hll_precision: u8,
}

impl Default for ProfileOptions {
    fn default() -> Self {
        ProfileOptions {
            quantile_k: quantile::DEFAULT_K,
            frequent_items: frequent::DEFAULT_CAPACITY,
            hll_precision: hll::DEFAULT_PRECISION,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnProfile {
    pub name: String,
    pub kind: SourceKind,
    /// Non-null values (finite numbers or strings).
    pub count: u64,
    /// Nulls, NaN and ±inf.
    pub nulls: u64,
    /// Set when the source type is not profiled (dates, binary, nested Parquet types).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsupported: Option<String>,
    /// Mean and M2 of the numbers (numeric kinds only).
    pub moments: Moments,
    /// Quantiles of the numbers (numeric kinds only); holds the exact min and max.
    pub quantiles: QuantileSketch,
    /// Frequent numbers (numeric kinds only); exact while the column has few distinct values.
    pub numbers: FrequentItems<NumKey>,
    /// Frequent strings (text kind only).
    pub strings: FrequentItems<String>,
    /// Distinct values.
    pub distinct: HyperLogLog,
}

impl ColumnProfile {
    pub fn new(name: String, options: &ProfileOptions) -> ColumnProfile {
        ColumnProfile {
            name,
            kind: SourceKind::Empty,
            count: 0,
            nulls: 0,
            unsupported: None,
            moments: Moments::default(),
            quantiles: QuantileSketch::new(options.quantile_k),
            numbers: FrequentItems::new(options.frequent_items),
            strings: FrequentItems::new(options.frequent_items),
            distinct: HyperLogLog::new(options.hll_precision),
        }
    }

    /// Whether pandas would give the column an integer dtype: integers only, no nulls.
    pub fn is_integer_dtype(&self) -> bool {
        self.kind == SourceKind::Integer && self.nulls == 0
    }

    pub fn is_numeric(&self) -> bool {
        matches!(self.kind, SourceKind::Integer | SourceKind::Float)
    }

    /// Nulls / (values + nulls); 0 for a column with no rows.
    pub fn null_fraction(&self) -> f64 {
        let rows = self.count + self.nulls;
        if rows == 0 { 0.0 } else { self.nulls as f64 / rows as f64 }
    }

    /// Whether the frequent items hold every value with its exact count.
    pub fn items_exact(&self) -> bool {
        if self.kind == SourceKind::Text { self.strings.is_exact() } else { self.numbers.is_exact() }
    }

    /// The number of distinct values: exact (`true`) while the frequent items are, else the
    /// HyperLogLog estimate.
    pub fn distinct_count(&self) -> (f64, bool) {
        match (self.kind, self.items_exact()) {
            (SourceKind::Text, true) => (self.strings.len() as f64, true),
            (_, true) => (self.numbers.len() as f64, true),
            (_, false) => (self.distinct.estimate(), false),
        }
    }

    pub fn min(&self) -> Option<f64> {
        self.quantiles.min()
    }

    pub fn max(&self) -> Option<f64> {
        self.quantiles.max()
    }

    fn become_text(&mut self) {
        let strings = self.numbers.map_keys(|k| number_key(k.0));
        let params = (self.quantiles.k(), self.numbers.capacity());
        if strings.is_exact() {
            // Every value is known: hash them as text, as a text column would have.
            let mut distinct = HyperLogLog::new(self.distinct.precision());
            for key in strings.counts().keys() {
                distinct.insert_hash(hll::hash_str(key));
            }
            self.distinct = distinct;
        }
        self.strings.merge(&strings);
        self.numbers = FrequentItems::new(params.1);
        self.quantiles = QuantileSketch::new(params.0);
        self.moments = Moments::default();
        self.kind = SourceKind::Text;
    }

    /// Adds the profile of another part of the same column.
    pub fn merge(&mut self, other: &ColumnProfile) -> Result<(), MonitorError> {
        let name = self.name.clone();
        let err = |m: String| MonitorError::ProfileMerge(format!("column '{name}': {m}"));
        if self.name != other.name {
            return Err(err(format!("different column '{}'", other.name)));
        }
        if self.quantiles.k() != other.quantiles.k() || self.numbers.capacity() != other.numbers.capacity() {
            return Err(err("the profiles were built with different sketch sizes".into()));
        }
        let mut other = std::borrow::Cow::Borrowed(other);
        if self.kind == SourceKind::Text && other.kind != SourceKind::Text {
            other.to_mut().become_text();
        } else if other.kind == SourceKind::Text && self.kind != SourceKind::Text {
            self.become_text();
        }
        self.distinct.merge(&other.distinct).map_err(err)?;
        self.quantiles.merge(&other.quantiles).map_err(err)?;
        self.kind = self.kind.max(other.kind);
        self.count += other.count;
        self.nulls += other.nulls;
        if self.unsupported.is_none() {
            self.unsupported.clone_from(&other.unsupported);
        }
        self.moments.merge(&other.moments);
        self.numbers.merge(&other.numbers);
        self.strings.merge(&other.strings);
        Ok(())
    }
}

impl ColumnSink for ColumnProfile {
    type Config = ProfileOptions;

    fn for_column(name: String, config: &ProfileOptions) -> Self {
        ColumnProfile::new(name, config)
    }

    fn push_null(&mut self) {
        self.nulls += 1;
    }

    fn push_number(&mut self, v: f64, integer: bool) {
        match self.kind {
            SourceKind::Text => {
                if v.is_finite() {
                    let key = number_key(v);
                    self.distinct.insert_hash(hll::hash_str(&key));
                    self.strings.insert(key.as_str());
                    self.count += 1;
                } else {
                    self.nulls += 1;
                }
                return;
            }
            SourceKind::Empty | SourceKind::Integer if integer => self.kind = SourceKind::Integer,
            _ => self.kind = SourceKind::Float,
        }
        if v.is_finite() {
            self.count += 1;
            self.moments.push(v);
            self.quantiles.insert(v);
            self.numbers.insert(&NumKey(v));
            self.distinct.insert_hash(hll::hash_f64(v));
        } else {
            self.nulls += 1;
        }
    }

    fn push_text(&mut self, s: &str) {
        if self.kind != SourceKind::Text {
            self.become_text();
        }
        self.count += 1;
        self.distinct.insert_hash(hll::hash_str(s));
        self.strings.insert(s);
    }

    fn set_unsupported(&mut self, type_name: String) {
        self.unsupported = Some(type_name);
    }

    fn is_unsupported(&self) -> bool {
        self.unsupported.is_some()
    }
}
