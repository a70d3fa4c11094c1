//! Parquet, read in record batches of the wanted columns only. Arrow types map to pandas'
//! dtypes the way `pyarrow.Table.to_pandas` maps them: integers (float64 once they have
//! nulls), floats, booleans, strings and dictionary-encoded strings (pandas `category`).
//! Other types (dates, timestamps, binary, nested) are not drift-tested and are marked.

use std::fs::File;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::{ColumnSink, ColumnValues, Progress, number_key};
use crate::MonitorError;

/// Appends one Arrow array's values to a column.
fn push_array<S: ColumnSink>(col: &mut S, array: &ArrayRef) {
    macro_rules! ints {
        ($t:ty) => {
            for v in array.as_primitive::<$t>().iter() {
                match v {
                    Some(v) => col.push_number(v as f64, true),
                    None => col.push_null(),
                }
            }
        };
    }
    macro_rules! floats {
        ($t:ty) => {
            for v in array.as_primitive::<$t>().iter() {
                match v {
                    Some(v) => col.push_number(f64::from(v), false),
                    None => col.push_null(),
                }
            }
        };
    }
    match array.data_type() {
        DataType::Int8 => ints!(Int8Type),
        DataType::Int16 => ints!(Int16Type),
        DataType::Int32 => ints!(Int32Type),
        DataType::Int64 => ints!(Int64Type),
        DataType::UInt8 => ints!(UInt8Type),
        DataType::UInt16 => ints!(UInt16Type),
        DataType::UInt32 => ints!(UInt32Type),
        DataType::UInt64 => ints!(UInt64Type),
        DataType::Float32 => floats!(Float32Type),
        DataType::Float64 => floats!(Float64Type),
        DataType::Float16 => {
            for v in array.as_primitive::<Float16Type>().iter() {
                match v {
                    Some(v) => col.push_number(v.to_f64(), false),
                    None => col.push_null(),
                }
            }
        }
        DataType::Boolean => {
            for v in array.as_boolean().iter() {
                match v {
                    Some(true) => col.push_text("True"),
                    Some(false) => col.push_text("False"),
                    None => col.push_null(),
                }
            }
        }
        DataType::Utf8 => push_strings(col, array.as_string::<i32>().iter()),
        DataType::LargeUtf8 => push_strings(col, array.as_string::<i64>().iter()),
        DataType::Utf8View => push_strings(col, array.as_string_view().iter()),
        DataType::Dictionary(_, _) => {
            let dict = array.as_any_dictionary();
            let values = dict.values();
            // Decode the (small) dictionary once, then count by key.
            let mut decoded = ColumnValues::new(String::new());
            let labels: Vec<Option<String>> = (0..values.len())
                .map(|i| {
                    let one = values.slice(i, 1);
                    decoded.strings.clear();
                    decoded.numbers.clear();
                    decoded.nulls = 0;
                    push_array::<ColumnValues>(&mut decoded, &one);
                    decoded.strings.keys().next().cloned().or_else(|| decoded.numbers.first().map(|v| number_key(*v)))
                })
                .collect();
            let keys = dict.normalized_keys();
            for (i, k) in keys.iter().enumerate() {
                match (dict.is_null(i), labels.get(*k).and_then(|l| l.as_deref())) {
                    (false, Some(label)) => col.push_text(label),
                    _ => col.push_null(),
                }
            }
        }
        other => col.set_unsupported(other.to_string()),
    }
}

fn push_strings<'a, S: ColumnSink>(col: &mut S, values: impl Iterator<Item = Option<&'a str>>) {
    for v in values {
        match v {
            Some(s) => col.push_text(s),
            None => col.push_null(),
        }
    }
}

pub fn read<S: ColumnSink>(
    path: &Path,
    columns: Option<&[String]>,
    config: &S::Config,
    progress: &dyn Progress,
) -> Result<Vec<S>, MonitorError> {
    let pq_err = |e: parquet::errors::ParquetError| MonitorError::Parquet { path: path.into(), message: e.to_string() };
    let file = File::open(path).map_err(|source| MonitorError::Io { path: path.into(), source })?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(pq_err)?;
    let total = builder.metadata().file_metadata().num_rows().max(0) as u64;
    let schema = builder.schema().clone();
    // pandas stores a non-default index as `__index_level_N__`; it is not data.
    let keep: Vec<usize> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.name().starts_with("__index_level_"))
        .filter(|(_, f)| columns.is_none_or(|want| want.iter().any(|w| w == f.name())))
        .map(|(i, _)| i)
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), keep.iter().copied());
    let reader = builder.with_projection(mask).with_batch_size(65_536).build().map_err(pq_err)?;
    let mut cols: Vec<S> = keep.iter().map(|&i| S::for_column(schema.field(i).name().clone(), config)).collect();
    let mut done = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| MonitorError::Parquet { path: path.into(), message: e.to_string() })?;
        for (col, array) in cols.iter_mut().zip(batch.columns()) {
            if !col.is_unsupported() {
                push_array(col, array);
            }
        }
        done += batch.num_rows() as u64;
        progress.update(done, total);
    }
    Ok(cols)
}
