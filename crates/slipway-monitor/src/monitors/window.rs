//! The prediction log as a monitor reads it: the served rows (not shadow copies, not
//! failures) of one deployment, split into windows, each holding its features as drift
//! columns, its predictions, and the (request id, row) keys that ground truth joins on.

use std::collections::BTreeMap;

use crate::read::{ColumnValues, number_key};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType, UInt16Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;

/// One value of a logged column.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Num { value: f64, integer: bool },
    Text(String),
}

impl Cell {
    /// The value as a class label: numbers in their shortest integral form.
    pub fn key(&self) -> String {
        match self {
            Cell::Num { value, .. } => number_key(*value),
            Cell::Text(s) => s.clone(),
        }
    }

    pub fn number(&self) -> Option<f64> {
        match self {
            Cell::Num { value, .. } => Some(*value),
            Cell::Text(s) => s.parse().ok(),
        }
    }

    fn push_to(&self, col: &mut ColumnValues) {
        match self {
            Cell::Num { value, integer } => col.push_number(*value, *integer),
            Cell::Text(s) => col.push_text(s),
        }
    }
}

/// How the monitor names what the log holds.
pub struct Naming<'a> {
    /// Names for the columns of a multi-column input tensor, in order.
    pub features: Option<&'a [String]>,
    /// The output holding the prediction (default: the first output).
    pub prediction: Option<&'a str>,
    /// The output holding class probabilities.
    pub probabilities: Option<&'a str>,
}

/// The rows of one window.
pub struct WindowRows {
    pub start_ms: i64,
    /// Feature columns in the order first seen.
    pub features: Vec<ColumnValues>,
    pub keys: Vec<(String, u32)>,
    /// One per row: its prediction, if the model has such an output.
    pub predictions: Vec<Option<Cell>>,
    /// One per row: its class probabilities, if the model has them.
    pub probabilities: Vec<Option<Vec<f64>>>,
}

impl WindowRows {
    fn new(start_ms: i64) -> Self {
        WindowRows {
            start_ms,
            features: Vec::new(),
            keys: Vec::new(),
            predictions: Vec::new(),
            probabilities: Vec::new(),
        }
    }

    pub fn rows(&self) -> u64 {
        self.keys.len() as u64
    }

    fn feature(&mut self, name: &str) -> &mut ColumnValues {
        let i = match self.features.iter().position(|c| c.name == name) {
            Some(i) => i,
            None => {
                self.features.push(ColumnValues::new(name.to_string()));
                self.features.len() - 1
            }
        };
        &mut self.features[i]
    }
}

/// A column of the batch as cells: `width` values per row.
#[derive(Clone)]
struct Logged<'a> {
    values: &'a dyn Array,
    width: usize,
}

fn logged(array: &dyn Array) -> Logged<'_> {
    match array.data_type() {
        DataType::FixedSizeList(_, w) => {
            let list = array.as_fixed_size_list();
            Logged { values: list.values().as_ref(), width: (*w).max(1) as usize }
        }
        _ => Logged { values: array, width: 1 },
    }
}

fn cell(values: &dyn Array, i: usize) -> Option<Cell> {
    let num = |value: f64, integer: bool| Some(Cell::Num { value, integer });
    match values.data_type() {
        DataType::Float32 => num(f64::from(values.as_primitive::<Float32Type>().value(i)), false),
        DataType::Float64 => num(values.as_primitive::<Float64Type>().value(i), false),
        DataType::Int64 => num(values.as_primitive::<Int64Type>().value(i) as f64, true),
        DataType::Int32 => num(f64::from(values.as_primitive::<Int32Type>().value(i)), true),
        DataType::Boolean => Some(Cell::Text(values.as_boolean().value(i).to_string())),
        DataType::Utf8 => Some(Cell::Text(values.as_string::<i32>().value(i).to_string())),
        _ => None,
    }
}

/// The feature names of an input tensor `tensor` with `width` columns.
fn feature_names(tensor: &str, width: usize, naming: &Naming<'_>) -> Vec<String> {
    match naming.features {
        _ if width == 1 => vec![tensor.to_string()],
        Some(names) if names.len() == width => names.to_vec(),
        _ => (0..width).map(|j| format!("{tensor}[{j}]")).collect(),
    }
}

/// A prediction-log batch read as rows: what each served row logged. A file in the log's place
/// that is not one of ours (other columns or types) has none: it is skipped, never a panic in
/// the evaluation loop.
pub struct Served<'a> {
    ids: &'a arrow_array::StringArray,
    rows: &'a arrow_array::UInt32Array,
    ts: &'a arrow_array::TimestampMicrosecondArray,
    role: &'a arrow_array::StringArray,
    status: &'a arrow_array::UInt16Array,
    inputs: Vec<(Vec<String>, Logged<'a>)>,
    prediction: Option<&'a Logged<'a>>,
    probabilities: Option<&'a Logged<'a>>,
}

/// The batch's logged inputs and outputs, by name.
pub struct Columns<'a> {
    outputs: Vec<(String, Logged<'a>)>,
    inputs: Vec<(String, Logged<'a>)>,
}

impl<'a> Columns<'a> {
    pub fn of(batch: &'a RecordBatch) -> Columns<'a> {
        let schema = batch.schema();
        let mut inputs = Vec::new();
        let mut outputs = Vec::new();
        for (field, array) in schema.fields().iter().zip(batch.columns()) {
            if let Some(tensor) = field.name().strip_prefix("input.") {
                inputs.push((tensor.to_string(), logged(array.as_ref())));
            } else if let Some(output) = field.name().strip_prefix("output.") {
                outputs.push((output.to_string(), logged(array.as_ref())));
            }
        }
        Columns { outputs, inputs }
    }
}

impl<'a> Served<'a> {
    pub fn new(batch: &'a RecordBatch, columns: &'a Columns<'a>, naming: &Naming<'_>) -> Option<Served<'a>> {
        let column = |name: &str| batch.column_by_name(name);
        let (Some(ids), Some(rows), Some(ts), Some(role), Some(status)) = (
            column("request_id").and_then(|c| c.as_string_opt::<i32>()),
            column("row").and_then(|c| c.as_primitive_opt::<arrow_array::types::UInt32Type>()),
            column("timestamp").and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>()),
            column("role").and_then(|c| c.as_string_opt::<i32>()),
            column("status").and_then(|c| c.as_primitive_opt::<UInt16Type>()),
        ) else {
            tracing::warn!(columns = ?batch.schema().fields().iter().map(|f| f.name()).collect::<Vec<_>>(), "a prediction-log batch without the log's columns is skipped");
            return None;
        };
        let outputs = &columns.outputs;
        let prediction = match naming.prediction {
            Some(name) => outputs.iter().find(|(n, _)| n == name),
            None => outputs.first(),
        }
        .filter(|(_, l)| l.width == 1)
        .map(|(_, l)| l);
        let probabilities = match naming.probabilities {
            Some(name) => outputs.iter().find(|(n, _)| n == name),
            None => outputs.iter().find(|(n, l)| l.width >= 2 && n.contains("prob")),
        }
        .map(|(_, l)| l);
        let inputs = columns.inputs.iter().map(|(t, l)| (feature_names(t, l.width, naming), l.clone())).collect();
        Some(Served { ids, rows, ts, role, status, inputs, prediction, probabilities })
    }

    /// The rows served (not shadow copies, not failures) at `[from_ms, to_ms)`.
    pub fn rows(&self, from_ms: i64, to_ms: i64) -> impl Iterator<Item = usize> + '_ {
        (0..self.ids.len()).filter(move |&i| {
            let at = self.at_ms(i);
            at >= from_ms && at < to_ms && self.role.value(i) != "shadow" && self.status.value(i) == 200
        })
    }

    pub fn at_ms(&self, i: usize) -> i64 {
        self.ts.value(i).div_euclid(1000)
    }

    /// The request id and row within the request: what ground truth joins on.
    pub fn key(&self, i: usize) -> (String, u32) {
        (self.ids.value(i).to_string(), self.rows.value(i))
    }

    /// Row `i`'s features, named, in column order.
    pub fn features(&self, i: usize) -> impl Iterator<Item = (&str, Option<Cell>)> + '_ {
        self.inputs.iter().flat_map(move |(names, l)| {
            names.iter().enumerate().map(move |(j, name)| (name.as_str(), cell(l.values, i * l.width + j)))
        })
    }

    pub fn prediction(&self, i: usize) -> Option<Cell> {
        self.prediction.and_then(|l| cell(l.values, i))
    }

    pub fn probabilities(&self, i: usize) -> Option<Vec<f64>> {
        self.probabilities.map(|l| {
            (0..l.width).map(|j| cell(l.values, i * l.width + j).and_then(|c| c.number()).unwrap_or(f64::NAN)).collect()
        })
    }
}

/// Adds the batch's served rows with timestamps in `[from_ms, to_ms)` to their windows
/// (keyed by window start, `window_ms` long from `from_ms`).
pub fn add_batch(
    batch: &RecordBatch,
    from_ms: i64,
    to_ms: i64,
    window_ms: i64,
    naming: &Naming<'_>,
    windows: &mut BTreeMap<i64, WindowRows>,
) {
    let columns = Columns::of(batch);
    let Some(served) = Served::new(batch, &columns, naming) else { return };
    for i in served.rows(from_ms, to_ms) {
        let at_ms = served.at_ms(i);
        let start = from_ms + (at_ms - from_ms) / window_ms * window_ms;
        let w = windows.entry(start).or_insert_with(|| WindowRows::new(start));
        w.keys.push(served.key(i));
        for (name, c) in served.features(i) {
            if let Some(c) = c {
                c.push_to(w.feature(name));
            }
        }
        w.predictions.push(served.prediction(i));
        w.probabilities.push(served.probabilities(i));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{
        ArrayRef, Float32Array, Int64Array, StringArray, TimestampMicrosecondArray, UInt16Array, UInt32Array,
    };

    use super::*;

    fn naming() -> Naming<'static> {
        Naming { features: None, prediction: None, probabilities: None }
    }

    fn batch(ids: ArrayRef) -> RecordBatch {
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("request_id", ids),
            ("row", Arc::new(UInt32Array::from(vec![0, 0]))),
            ("timestamp", Arc::new(TimestampMicrosecondArray::from(vec![1_000, 2_500_000]).with_timezone("UTC"))),
            ("role", Arc::new(StringArray::from(vec!["primary", "shadow"]))),
            ("status", Arc::new(UInt16Array::from(vec![200, 200]))),
            ("input.age", Arc::new(Float32Array::from(vec![30.0, 40.0]))),
            ("output.label", Arc::new(Int64Array::from(vec![1, 0]))),
        ];
        RecordBatch::try_from_iter(columns).unwrap()
    }

    #[test]
    fn served_rows_land_in_their_window_and_shadow_copies_do_not() {
        let mut windows = BTreeMap::new();
        add_batch(&batch(Arc::new(StringArray::from(vec!["a", "b"]))), 0, 10_000, 1_000, &naming(), &mut windows);
        assert_eq!(windows.len(), 1);
        let w = &windows[&0];
        assert_eq!(w.keys, vec![("a".to_string(), 0)]);
        assert_eq!(w.features[0].name, "age");
        assert_eq!(w.features[0].numbers, vec![30.0]);
        assert_eq!(w.predictions, vec![Some(Cell::Num { value: 1.0, integer: true })]);
    }

    #[test]
    fn a_batch_with_other_column_types_is_skipped_not_a_panic() {
        let mut windows = BTreeMap::new();
        add_batch(&batch(Arc::new(Int64Array::from(vec![1, 2]))), 0, 10_000, 1_000, &naming(), &mut windows);
        assert!(windows.is_empty());
    }
}
