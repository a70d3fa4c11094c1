//! Entries → one Arrow schema and record batch per segment.
//!
//! A segment holds one schema: the fixed request columns, then `input.<name>` and
//! `output.<name>` typed columns (the plain type for width 1, `fixed_size_list<type, width>`
//! otherwise). Its [`Shape`] is part of the segment key, so an entry whose columns differ
//! opens a new segment instead of failing the one that is open.

use std::sync::Arc;

use arrow_array::builder::{StringBuilder, UInt16Builder, UInt32Builder};
use arrow_array::{
    ArrayRef, BooleanArray, FixedSizeListArray, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray, TimestampMicrosecondArray,
};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::{Column, ColumnData, Entry};

/// The element type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    F32,
    F64,
    I64,
    I32,
    Bool,
    Str,
}

impl Kind {
    fn of(data: &ColumnData) -> Kind {
        match data {
            ColumnData::F32(_) => Kind::F32,
            ColumnData::F64(_) => Kind::F64,
            ColumnData::I64(_) => Kind::I64,
            ColumnData::I32(_) => Kind::I32,
            ColumnData::Bool(_) => Kind::Bool,
            ColumnData::Str(_) => Kind::Str,
        }
    }

    fn data_type(self) -> DataType {
        match self {
            Kind::F32 => DataType::Float32,
            Kind::F64 => DataType::Float64,
            Kind::I64 => DataType::Int64,
            Kind::I32 => DataType::Int32,
            Kind::Bool => DataType::Boolean,
            Kind::Str => DataType::Utf8,
        }
    }
}

/// One logged column as it appears in the file: `input.x`, its width and element type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ColumnShape {
    name: String,
    width: usize,
    kind: Kind,
}

/// The input columns, then the output columns, in the order the entry gave them.
pub(crate) type Shape = Vec<ColumnShape>;

pub(crate) fn shape_of(entry: &Entry) -> Shape {
    let shapes = |prefix: &str, cols: &[Column]| {
        cols.iter()
            .map(|c| ColumnShape { name: format!("{prefix}.{}", c.name), width: c.width, kind: Kind::of(&c.data) })
            .collect::<Vec<_>>()
    };
    let mut shape = shapes("input", &entry.inputs);
    shape.extend(shapes("output", &entry.outputs));
    shape
}

fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn item_field(kind: Kind) -> Arc<Field> {
    Arc::new(Field::new_list_field(kind.data_type(), true))
}

pub(crate) fn schema_of(shape: &Shape) -> SchemaRef {
    let mut fields = vec![
        Field::new("request_id", DataType::Utf8, false),
        Field::new("row", DataType::UInt32, false),
        Field::new("timestamp", timestamp_type(), false),
        Field::new("deployment", DataType::Utf8, false),
        Field::new("model", DataType::Utf8, false),
        Field::new("version", DataType::Utf8, false),
        Field::new("role", DataType::Utf8, false),
        Field::new("protocol", DataType::Utf8, false),
        Field::new("status", DataType::UInt16, false),
        Field::new("latency_us", DataType::UInt32, false),
    ];
    for col in shape {
        let data_type = match col.width {
            1 => col.kind.data_type(),
            // Widths were checked to fit an i32 when the entry was recorded.
            w => DataType::FixedSizeList(item_field(col.kind), w as i32),
        };
        fields.push(Field::new(col.name.clone(), data_type, false));
    }
    Arc::new(Schema::new(fields))
}

/// Column `j` of an entry, counting inputs first, then outputs.
fn column(entry: &Entry, j: usize) -> Option<&Column> {
    match j.checked_sub(entry.inputs.len()) {
        None => entry.inputs.get(j),
        Some(k) => entry.outputs.get(k),
    }
}

/// Concatenates column `j` of every entry, which all share one [`Shape`].
fn concat<'a, T: 'a + Clone>(
    entries: &'a [Entry],
    j: usize,
    pick: impl Fn(&'a ColumnData) -> Option<&'a [T]>,
) -> Result<Vec<T>, ArrowError> {
    let mut out = Vec::new();
    for e in entries {
        let values = column(e, j).and_then(|c| pick(&c.data));
        let values = values.ok_or_else(|| ArrowError::InvalidArgumentError(format!("column {j} changed type")))?;
        out.extend_from_slice(values);
    }
    Ok(out)
}

fn values_of(entries: &[Entry], j: usize, kind: Kind) -> Result<ArrayRef, ArrowError> {
    Ok(match kind {
        Kind::F32 => Arc::new(Float32Array::from(concat(entries, j, |d| match d {
            ColumnData::F32(v) => Some(v.as_slice()),
            _ => None,
        })?)),
        Kind::F64 => Arc::new(Float64Array::from(concat(entries, j, |d| match d {
            ColumnData::F64(v) => Some(v.as_slice()),
            _ => None,
        })?)),
        Kind::I64 => Arc::new(Int64Array::from(concat(entries, j, |d| match d {
            ColumnData::I64(v) => Some(v.as_slice()),
            _ => None,
        })?)),
        Kind::I32 => Arc::new(Int32Array::from(concat(entries, j, |d| match d {
            ColumnData::I32(v) => Some(v.as_slice()),
            _ => None,
        })?)),
        Kind::Bool => Arc::new(BooleanArray::from(concat(entries, j, |d| match d {
            ColumnData::Bool(v) => Some(v.as_slice()),
            _ => None,
        })?)),
        Kind::Str => {
            let mut strings: Vec<&str> = Vec::new();
            for e in entries {
                match column(e, j).map(|c| &c.data) {
                    Some(ColumnData::Str(v)) => strings.extend(v.iter().map(String::as_str)),
                    _ => return Err(ArrowError::InvalidArgumentError(format!("column {j} changed type"))),
                }
            }
            Arc::new(StringArray::from(strings))
        }
    })
}

/// One record batch holding every row of `entries`, all of which have `shape`.
pub(crate) fn build(schema: &SchemaRef, shape: &Shape, entries: &[Entry]) -> Result<RecordBatch, ArrowError> {
    let rows: usize = entries.iter().map(|e| e.rows).sum();
    let mut request_id = StringBuilder::with_capacity(rows, rows * 16);
    let mut row = UInt32Builder::with_capacity(rows);
    let mut timestamp = Vec::with_capacity(rows);
    let mut text: [StringBuilder; 5] = std::array::from_fn(|_| StringBuilder::with_capacity(rows, rows * 8));
    let mut status = UInt16Builder::with_capacity(rows);
    let mut latency = UInt32Builder::with_capacity(rows);
    for e in entries {
        for r in 0..e.rows {
            request_id.append_value(&e.request_id);
            // Rows were checked to fit a u32 when the entry was recorded.
            row.append_value(r as u32);
            timestamp.push(e.timestamp_us);
            for (builder, value) in
                text.iter_mut().zip([e.deployment.as_str(), &e.model, &e.version, e.role, e.protocol])
            {
                builder.append_value(value);
            }
            status.append_value(e.status);
            latency.append_value(e.latency_us);
        }
    }
    let [deployment, model, version, role, protocol] = text.map(|mut b| Arc::new(b.finish()) as ArrayRef);
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(request_id.finish()),
        Arc::new(row.finish()),
        Arc::new(TimestampMicrosecondArray::from(timestamp).with_timezone("UTC")),
        deployment,
        model,
        version,
        role,
        protocol,
        Arc::new(status.finish()),
        Arc::new(latency.finish()),
    ];
    for (j, col) in shape.iter().enumerate() {
        let values = values_of(entries, j, col.kind)?;
        columns.push(match col.width {
            1 => values,
            w => Arc::new(FixedSizeListArray::try_new(item_field(col.kind), w as i32, values, None)?),
        });
    }
    RecordBatch::try_new(schema.clone(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;

    fn entry(inputs: Vec<Column>) -> Entry {
        Entry {
            request_id: "r".into(),
            timestamp_us: 0,
            deployment: "d".into(),
            model: "m".into(),
            version: "1".into(),
            role: "primary",
            protocol: "v2",
            status: 200,
            latency_us: 5,
            rows: 2,
            inputs,
            outputs: vec![],
        }
    }

    #[test]
    fn width_picks_plain_or_fixed_size_list() {
        let e = entry(vec![
            Column { name: "a".into(), width: 1, data: ColumnData::I32(vec![1, 2]) },
            Column { name: "b".into(), width: 3, data: ColumnData::Str(vec!["x".into(); 6]) },
        ]);
        let shape = shape_of(&e);
        let schema = schema_of(&shape);
        assert_eq!(schema.field_with_name("input.a").unwrap().data_type(), &DataType::Int32);
        let b = schema.field_with_name("input.b").unwrap().data_type();
        assert!(matches!(b, DataType::FixedSizeList(item, 3) if item.data_type() == &DataType::Utf8), "{b}");
        let batch = build(&schema, &shape, &[e.clone(), e]).unwrap();
        assert_eq!(batch.num_rows(), 4);
        assert_eq!(batch.column_by_name("input.b").unwrap().len(), 4);
    }

    #[test]
    fn a_column_that_changed_type_is_an_error_not_a_panic() {
        let a = entry(vec![Column { name: "a".into(), width: 1, data: ColumnData::I32(vec![1, 2]) }]);
        let b = entry(vec![Column { name: "a".into(), width: 1, data: ColumnData::F32(vec![1.0, 2.0]) }]);
        let shape = shape_of(&a);
        assert!(build(&schema_of(&shape), &shape, &[a, b]).is_err());
    }
}
