//! Streaming readers for CSV and Parquet files. Each column is accumulated as it is read into
//! only what the drift tests need: its finite numbers (nulls, NaN and +-inf dropped and counted)
//! or, once a value is not a number, counts per distinct string. Rows are never kept.

mod csv;
mod parquet;

use std::collections::HashMap;
use std::path::Path;

use crate::MonitorError;
use crate::typing::DeclaredTypes;

/// How pandas would type the column: what Evidently's inference starts from. The variants are
/// ordered: a column only ever moves up (`Empty < Integer < Float < Text`), which is also how
/// profiles of two parts of a file combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// Nothing but nulls so far.
    Empty,
    /// Every value an integer (pandas `int64` if there are no nulls, else `float64`).
    Integer,
    /// Numbers, some not integers (pandas `float64`).
    Float,
    /// Strings or booleans (pandas `object`, `bool` or `category`).
    Text,
}

/// One column of one file, as accumulated.
#[derive(Debug, Clone)]
pub struct ColumnValues {
    pub name: String,
    pub kind: SourceKind,
    /// Finite numbers, in file order (only while `kind` is numeric).
    pub numbers: Vec<f64>,
    /// Counts per value (only once `kind` is `Text`).
    pub strings: HashMap<String, u64>,
    /// Nulls, NaN and infinities: dropped before any test.
    pub nulls: u64,
    /// Set when a numeric column was refused at its source (an unsupported Parquet type).
    pub unsupported: Option<String>,
}

impl ColumnValues {
    pub fn new(name: String) -> ColumnValues {
        ColumnValues {
            name,
            kind: SourceKind::Empty,
            numbers: Vec::new(),
            strings: HashMap::new(),
            nulls: 0,
            unsupported: None,
        }
    }

    pub fn push_null(&mut self) {
        self.nulls += 1;
    }

    /// A number; NaN and infinities count as nulls (Evidently replaces +-inf by NaN and drops
    /// it), but still make an integer column a float one, as they do in pandas.
    pub fn push_number(&mut self, v: f64, integer: bool) {
        match self.kind {
            SourceKind::Text => {
                if v.is_finite() {
                    *self.strings.entry(number_key(v)).or_insert(0) += 1;
                } else {
                    self.nulls += 1;
                }
                return;
            }
            SourceKind::Empty | SourceKind::Integer if integer => self.kind = SourceKind::Integer,
            _ => self.kind = SourceKind::Float,
        }
        if v.is_finite() {
            self.numbers.push(v);
        } else {
            self.nulls += 1;
        }
    }

    /// A string value: the column becomes categorical from here on, and the numbers seen so
    /// far become their shortest text.
    pub fn push_text(&mut self, s: &str) {
        if self.kind != SourceKind::Text {
            self.become_text();
        }
        match self.strings.get_mut(s) {
            Some(c) => *c += 1,
            None => {
                self.strings.insert(s.to_string(), 1);
            }
        }
    }

    fn become_text(&mut self) {
        for v in std::mem::take(&mut self.numbers) {
            *self.strings.entry(number_key(v)).or_insert(0) += 1;
        }
        self.kind = SourceKind::Text;
    }

    /// Whether pandas would give this column an integer dtype: integers only, no nulls.
    pub fn is_integer_dtype(&self) -> bool {
        self.kind == SourceKind::Integer && self.nulls == 0
    }
}

/// The text of a number used as a category: integral values print as integers, so that 1
/// and 1.0 are one category (as they are one dictionary key in Python).
pub fn number_key(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 9.0e15 { format!("{}", v as i64) } else { format!("{v}") }
}

/// What a reader feeds, value by value: [`ColumnValues`] for drift, a profile builder for
/// profiles and validation. Readers decide nulls and pandas typing; sinks only accumulate.
pub trait ColumnSink {
    /// What every column's sink is made from (sketch sizes for profiles).
    type Config: Sync;
    fn for_column(name: String, config: &Self::Config) -> Self;
    fn push_null(&mut self);
    /// A number; `integer` when the source typed it as an integer.
    fn push_number(&mut self, v: f64, integer: bool);
    fn push_text(&mut self, s: &str);
    /// Marks the column as having a type no test reads (dates, binary, nested Parquet types).
    fn set_unsupported(&mut self, type_name: String);
    fn is_unsupported(&self) -> bool;
}

impl ColumnSink for ColumnValues {
    type Config = ();
    fn for_column(name: String, _config: &()) -> Self {
        ColumnValues::new(name)
    }
    fn push_null(&mut self) {
        ColumnValues::push_null(self)
    }
    fn push_number(&mut self, v: f64, integer: bool) {
        ColumnValues::push_number(self, v, integer)
    }
    fn push_text(&mut self, s: &str) {
        ColumnValues::push_text(self, s)
    }
    fn set_unsupported(&mut self, type_name: String) {
        self.unsupported = Some(type_name);
    }
    fn is_unsupported(&self) -> bool {
        self.unsupported.is_some()
    }
}

/// Receives progress while a file is read: `done` of `total` units (bytes or rows).
pub trait Progress: Sync {
    fn update(&self, done: u64, total: u64);
}

/// A progress sink that ignores everything.
pub struct NoProgress;

impl Progress for NoProgress {
    fn update(&self, _done: u64, _total: u64) {}
}

/// Reads a whole file (CSV or Parquet, by extension), keeping only `columns` when given, with
/// every value typed as pandas types it.
pub fn read_file(
    path: &Path,
    columns: Option<&[String]>,
    progress: &dyn Progress,
) -> Result<Vec<ColumnValues>, MonitorError> {
    read_file_into(path, columns, &DeclaredTypes::default(), &(), progress)
}

/// Reads a whole file into any [`ColumnSink`], one per column, in file order. CSV columns
/// that `types` declares categorical are read as the text they hold, as pandas reads them
/// with `dtype=str` (null markers still mean null); Parquet values keep their stored type,
/// and typing turns numbers into categories.
pub fn read_file_into<S: ColumnSink>(
    path: &Path,
    columns: Option<&[String]>,
    types: &DeclaredTypes,
    config: &S::Config,
    progress: &dyn Progress,
) -> Result<Vec<S>, MonitorError> {
    let ext = path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "csv" => csv::read(path, columns, types, config, progress),
        "parquet" | "pq" => parquet::read(path, columns, config, progress),
        _ => Err(MonitorError::UnknownFormat(path.to_path_buf())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_then_float_then_text() {
        let mut c = ColumnValues::new("x".into());
        c.push_number(1.0, true);
        assert!(c.is_integer_dtype());
        c.push_number(f64::INFINITY, false);
        assert_eq!(c.kind, SourceKind::Float);
        assert_eq!((c.numbers.len(), c.nulls), (1, 1));
        c.push_text("a");
        assert_eq!(c.kind, SourceKind::Text);
        assert_eq!(c.strings.get("1"), Some(&1));
        assert_eq!(c.strings.get("a"), Some(&1));
        assert!(c.numbers.is_empty());
    }

    #[test]
    fn number_keys_unify_integral_floats() {
        assert_eq!(number_key(3.0), "3");
        assert_eq!(number_key(-2.5), "-2.5");
        assert_eq!(number_key(1e20), "100000000000000000000");
    }
}
