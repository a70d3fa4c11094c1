//! Request bodies to model inputs. Every protocol's payload ends as one tensor per model
//! input, typed as the model declares it, with the rows counted; anything that does not fit
//! is a `BadInput` that names the input or column and the row.
//!
//! Two shapes of request exist. *Tabular* ones (MLflow `dataframe_split`,
//! `dataframe_records`, CSV, and rows sent to a model whose signature names columns) are
//! columns: a one-input model gets them stacked in signature order as `[rows, columns]`, the
//! way MLflow's onnx flavor feeds `DataFrame.values`; a many-input model gets each column as
//! the input of the same name. *Tensor* ones (`instances`/`inputs` as nested lists, V2, V1)
//! are nested arrays checked against the input's dimensions.

use serde_json::{Map, Value};

use crate::ServingError;
use crate::mlmodel::Signature;
use crate::model::{InputSpec, OnnxModel};
use crate::tensor::{Data, Named, Tensor};

mod cells;
mod fast;

pub(crate) use cells::push_scalar;
use cells::{Cell, push, push_json};

/// How MLflow lays out its answer: one record per row, or one entry per output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Records,
    Tensors,
}

#[derive(Debug, PartialEq)]
pub struct Decoded {
    pub inputs: Vec<Named>,
    pub rows: usize,
    pub layout: Layout,
}

fn bad(msg: impl Into<String>) -> ServingError {
    ServingError::BadInput(msg.into())
}

/// A tabular request: named columns of cells, all of the same length.
struct Table<'a> {
    names: Vec<String>,
    columns: Vec<Vec<Cell<'a>>>,
    rows: usize,
}

impl<'a> Table<'a> {
    fn column(&self, name: &str) -> Option<&[Cell<'a>]> {
        self.names.iter().position(|n| n == name).map(|i| self.columns[i].as_slice())
    }
}

/// The signature's column names and whether each is required, if it names columns.
fn signature_columns(model: &OnnxModel) -> Option<Vec<(String, bool)>> {
    match &model.signature {
        Some(Signature::Columns(cols)) if cols.iter().all(|c| c.name.is_some()) => {
            Some(cols.iter().map(|c| (c.name.clone().unwrap_or_default(), c.required)).collect())
        }
        _ => None,
    }
}

fn check_dims(spec: &InputSpec, shape: &[usize]) -> Result<(), ServingError> {
    let fits = spec.shape.len() == shape.len()
        && spec.shape.iter().zip(shape).all(|(want, got)| *want < 0 || *want as usize == *got);
    if fits {
        return Ok(());
    }
    Err(bad(format!("input '{}': expected shape {:?}, got {:?}", spec.name, spec.shape, shape)))
}

/// Columns to model inputs (see the module docs).
fn from_table(model: &OnnxModel, table: Table<'_>) -> Result<Decoded, ServingError> {
    let rows = table.rows;
    if rows == 0 {
        return Err(bad("the request has no rows"));
    }
    let wanted: Vec<(String, bool)> = match signature_columns(model) {
        Some(cols) => cols,
        None => table.names.iter().map(|n| (n.clone(), true)).collect(),
    };
    let by_name = model.inputs.len() > 1 || model.inputs.iter().all(|i| wanted.len() == 1 && wanted[0].0 == i.name);
    let mut inputs = Vec::with_capacity(model.inputs.len());
    if by_name {
        for spec in &model.inputs {
            let cells = table.column(&spec.name).ok_or_else(|| bad(format!("missing column '{}'", spec.name)))?;
            let required = wanted.iter().find(|(n, _)| n == &spec.name).is_none_or(|(_, r)| *r);
            let mut data = Data::with_capacity(spec.elem, rows);
            for (row, cell) in cells.iter().enumerate() {
                push(&mut data, *cell, required).map_err(|e| bad(format!("column '{}', row {row}: {e}", spec.name)))?;
            }
            let shape = if spec.shape.len() == 1 { vec![rows] } else { vec![rows, 1] };
            check_dims(spec, &shape)?;
            inputs.push(Named::new(spec.name.clone(), Tensor::new(shape, data)));
        }
    } else {
        let spec = &model.inputs[0];
        let mut cols = Vec::with_capacity(wanted.len());
        for (name, required) in &wanted {
            match table.column(name) {
                Some(cells) => cols.push((name.as_str(), cells, *required)),
                None if !*required && spec.elem.is_float() => {}
                None => return Err(bad(format!("missing column '{name}'"))),
            }
        }
        let mut data = Data::with_capacity(spec.elem, rows * cols.len());
        for row in 0..rows {
            for (name, cells, required) in &cols {
                push(&mut data, cells[row], *required).map_err(|e| bad(format!("column '{name}', row {row}: {e}")))?;
            }
        }
        let shape = if spec.shape.len() == 1 && cols.len() == 1 { vec![rows] } else { vec![rows, cols.len()] };
        if spec.shape.len() == 2 && spec.shape[1] > 0 && spec.shape[1] as usize != cols.len() {
            return Err(bad(format!(
                "input '{}': the model expects {} columns per row, the request has {} ({})",
                spec.name,
                spec.shape[1],
                cols.len(),
                cols.iter().map(|c| c.0).collect::<Vec<_>>().join(", ")
            )));
        }
        check_dims(spec, &shape)?;
        inputs.push(Named::new(spec.name.clone(), Tensor::new(shape, data)));
    }
    Ok(Decoded { inputs, rows, layout: layout_for(model, Layout::Records) })
}

/// MLflow's pyfunc turns any input into what the signature declares before the onnx flavor
/// sees it: a tensor signature gets arrays (one entry per output comes back), a column
/// signature a DataFrame (one record per row). Without a signature the request's own form
/// decides.
fn layout_for(model: &OnnxModel, given: Layout) -> Layout {
    match &model.signature {
        Some(Signature::Tensors(_)) => Layout::Tensors,
        Some(Signature::Columns(_)) => Layout::Records,
        None => given,
    }
}

/// Flattens a nested JSON array into `data`, returning its shape.
fn flatten(v: &Value, data: &mut Data, name: &str) -> Result<Vec<usize>, ServingError> {
    let mut shape = Vec::new();
    let mut cur = v;
    while let Value::Array(items) = cur {
        shape.push(items.len());
        match items.first() {
            Some(first) => cur = first,
            None => break,
        }
    }
    fn walk(
        v: &Value,
        depth: usize,
        shape: &[usize],
        data: &mut Data,
        name: &str,
        count: &mut usize,
    ) -> Result<(), ServingError> {
        if depth == shape.len() {
            if v.is_array() {
                return Err(bad(format!("input '{name}': ragged nested lists (deeper than the first element)")));
            }
            *count += 1;
            return push_json(data, v, true).map_err(|e| bad(format!("input '{name}', element {}: {e}", *count - 1)));
        }
        let items = v
            .as_array()
            .ok_or_else(|| bad(format!("input '{name}': ragged nested lists (expected a list at depth {depth})")))?;
        if items.len() != shape[depth] {
            return Err(bad(format!(
                "input '{name}': ragged nested lists (a list of {} where {} was expected at depth {depth})",
                items.len(),
                shape[depth]
            )));
        }
        items.iter().try_for_each(|x| walk(x, depth + 1, shape, data, name, count))
    }
    let mut count = 0;
    walk(v, 0, &shape, data, name, &mut count)?;
    Ok(shape)
}

/// A nested list for one input, checked against the input's dimensions.
fn tensor_input(spec: &InputSpec, v: &Value) -> Result<Named, ServingError> {
    let mut data = Data::with_capacity(spec.elem, 64);
    let shape = flatten(v, &mut data, &spec.name)?;
    finish_tensor(spec, shape, data)
}

/// A nested list's values and shape as the input's tensor, checked against its dimensions.
fn finish_tensor(spec: &InputSpec, mut shape: Vec<usize>, data: Data) -> Result<Named, ServingError> {
    // A one-dimensional input fed a column of single-value rows: [[1], [2]] is [1, 2].
    if spec.shape.len() == 1 && shape.len() == 2 && shape[1] == 1 {
        shape.pop();
    }
    if shape.first().is_none_or(|r| *r == 0) {
        return Err(bad(format!("input '{}': no rows", spec.name)));
    }
    check_dims(spec, &shape)?;
    Ok(Named::new(spec.name.clone(), Tensor::new(shape, data)))
}

/// Rows or named tensors (`instances`, `inputs`, V1): a list of dicts or a dict of lists is
/// tabular when the model names columns, named tensors otherwise; a bare list feeds the one
/// input.
fn from_tensors(model: &OnnxModel, v: &Value, field: &str) -> Result<Decoded, ServingError> {
    let columns = signature_columns(model).is_some();
    match v {
        Value::Array(rows) if rows.first().is_some_and(Value::is_object) => {
            records(rows, field).and_then(|t| from_table(model, t))
        }
        Value::Array(rows) if columns && rows.first().is_some_and(Value::is_array) => {
            // Rows of a column-signature model: cells in signature order.
            let names: Vec<String> = signature_columns(model).unwrap_or_default().into_iter().map(|c| c.0).collect();
            let data: Vec<&Value> = rows.iter().collect();
            split_rows(names, &data).and_then(|t| from_table(model, t))
        }
        Value::Array(_) => {
            if model.inputs.len() != 1 {
                return Err(bad(format!(
                    "'{field}' is one list but the model has {} inputs ({}); send an object keyed by input name",
                    model.inputs.len(),
                    input_names(model)
                )));
            }
            let input = tensor_input(&model.inputs[0], v)?;
            let rows = input.tensor.rows();
            Ok(Decoded { inputs: vec![input], rows, layout: layout_for(model, Layout::Tensors) })
        }
        Value::Object(map) if columns => dict_of_columns(map).and_then(|t| from_table(model, t)),
        Value::Object(map) => {
            let mut inputs = Vec::with_capacity(model.inputs.len());
            for spec in &model.inputs {
                let value = map.get(&spec.name).ok_or_else(|| {
                    bad(format!("missing input '{}' (the model's inputs: {})", spec.name, input_names(model)))
                })?;
                inputs.push(tensor_input(spec, value)?);
            }
            if let Some(unknown) = map.keys().find(|k| !model.inputs.iter().any(|i| &i.name == *k)) {
                return Err(bad(format!("unknown input '{unknown}' (the model's inputs: {})", input_names(model))));
            }
            let rows = same_rows(&inputs)?;
            Ok(Decoded { inputs, rows, layout: layout_for(model, Layout::Tensors) })
        }
        other => Err(bad(format!("'{field}' must be a list or an object, got {}", kind(other)))),
    }
}

pub fn input_names(model: &OnnxModel) -> String {
    model.inputs.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", ")
}

fn same_rows(inputs: &[Named]) -> Result<usize, ServingError> {
    let rows = inputs.first().map_or(0, |i| i.tensor.rows());
    if let Some(odd) = inputs.iter().find(|i| i.tensor.rows() != rows) {
        return Err(bad(format!("input '{}' has {} rows, the others {rows}", odd.name, odd.tensor.rows())));
    }
    Ok(rows)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn records<'a>(rows: &'a [Value], field: &str) -> Result<Table<'a>, ServingError> {
    let mut names: Vec<String> = Vec::new();
    for r in rows {
        let obj = r.as_object().ok_or_else(|| bad(format!("'{field}' mixes objects with {}", kind(r))))?;
        for k in obj.keys() {
            if !names.contains(k) {
                names.push(k.clone());
            }
        }
    }
    static NULL: Value = Value::Null;
    let columns = names.iter().map(|n| rows.iter().map(|r| Cell::Json(r.get(n).unwrap_or(&NULL))).collect()).collect();
    Ok(Table { names, columns, rows: rows.len() })
}

fn split_rows<'a>(names: Vec<String>, data: &[&'a Value]) -> Result<Table<'a>, ServingError> {
    let width = names.len();
    let mut columns: Vec<Vec<Cell<'a>>> = vec![Vec::with_capacity(data.len()); width];
    for (i, row) in data.iter().enumerate() {
        let cells = row.as_array().ok_or_else(|| bad(format!("row {i} is {}, not a list", kind(row))))?;
        if cells.len() != width {
            return Err(bad(format!("row {i} has {} values, expected {width} ({})", cells.len(), names.join(", "))));
        }
        for (c, v) in cells.iter().enumerate() {
            columns[c].push(Cell::Json(v));
        }
    }
    Ok(Table { names, columns, rows: data.len() })
}

fn dict_of_columns(map: &Map<String, Value>) -> Result<Table<'_>, ServingError> {
    let mut names = Vec::new();
    let mut columns = Vec::new();
    let mut rows = None;
    for (name, v) in map {
        let cells: Vec<Cell<'_>> = match v {
            Value::Array(items) => items.iter().map(Cell::Json).collect(),
            scalar => vec![Cell::Json(scalar)],
        };
        if *rows.get_or_insert(cells.len()) != cells.len() {
            return Err(bad(format!("column '{name}' has {} values, the others {}", cells.len(), rows.unwrap_or(0))));
        }
        names.push(name.clone());
        columns.push(cells);
    }
    Ok(Table { names, columns, rows: rows.unwrap_or(0) })
}

fn parse_json(body: &[u8]) -> Result<Value, ServingError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(bad("the request body is empty"));
    }
    serde_json::from_slice(body).map_err(|e| bad(format!("the request body is not valid JSON: {e}")))
}

/// An MLflow scoring JSON body: exactly one of `dataframe_split`, `dataframe_records`,
/// `instances`, `inputs` (and optionally `params`, which ONNX models do not take).
pub fn mlflow_json(model: &OnnxModel, body: &[u8]) -> Result<Decoded, ServingError> {
    fast::mlflow_json(model, body).unwrap_or_else(|| general_json(model, body))
}

/// `mlflow_json` for any body, through a JSON tree.
fn general_json(model: &OnnxModel, body: &[u8]) -> Result<Decoded, ServingError> {
    let v = parse_json(body)?;
    let obj = v.as_object().ok_or_else(|| bad(format!("the request body must be a JSON object, got {}", kind(&v))))?;
    const FORMATS: [&str; 4] = ["dataframe_split", "dataframe_records", "instances", "inputs"];
    let given: Vec<&str> = FORMATS.iter().copied().filter(|f| obj.contains_key(*f)).collect();
    if let Some(unknown) = obj.keys().find(|k| !FORMATS.contains(&k.as_str()) && k.as_str() != "params") {
        return Err(bad(format!("unknown field '{unknown}': the body takes one of {}", FORMATS.join(", "))));
    }
    let [format] = given.as_slice() else {
        return Err(bad(format!(
            "the body must have exactly one of {}, it has {}",
            FORMATS.join(", "),
            if given.is_empty() { "none".to_string() } else { given.join(" and ") }
        )));
    };
    let payload = &obj[*format];
    match *format {
        "dataframe_split" => {
            let split =
                payload.as_object().ok_or_else(|| bad("'dataframe_split' must be an object with columns and data"))?;
            let data = split
                .get("data")
                .and_then(Value::as_array)
                .ok_or_else(|| bad("'dataframe_split.data' must be a list of rows"))?;
            let names: Vec<String> = match split.get("columns") {
                Some(Value::Array(cols)) => cols
                    .iter()
                    .map(|c| match c {
                        Value::String(s) => Ok(s.clone()),
                        Value::Number(n) => Ok(n.to_string()),
                        other => Err(bad(format!("'dataframe_split.columns' holds {}", kind(other)))),
                    })
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err(bad("'dataframe_split.columns' must be a list of names")),
                None => unnamed_columns(model, data.first().and_then(Value::as_array).map_or(0, Vec::len)),
            };
            let rows: Vec<&Value> = data.iter().collect();
            from_table(model, split_rows(names, &rows)?)
        }
        "dataframe_records" => {
            let rows = payload.as_array().ok_or_else(|| bad("'dataframe_records' must be a list of objects"))?;
            if rows.is_empty() {
                return Err(bad("the request has no rows"));
            }
            if let Some(r) = rows.iter().find(|r| !r.is_object()) {
                return Err(bad(format!("'dataframe_records' must hold objects, found {}", kind(r))));
            }
            from_table(model, records(rows, "dataframe_records")?)
        }
        field => from_tensors(model, payload, field),
    }
}

/// Column names of a `dataframe_split` without `columns`: the signature's, else positions.
fn unnamed_columns(model: &OnnxModel, width: usize) -> Vec<String> {
    signature_columns(model)
        .map(|c| c.into_iter().map(|c| c.0).collect())
        .unwrap_or_else(|| (0..width).map(|i| i.to_string()).collect())
}

/// A CSV body with a header row.
pub fn mlflow_csv(model: &OnnxModel, body: &[u8]) -> Result<Decoded, ServingError> {
    let text = std::str::from_utf8(body).map_err(|_| bad("the CSV body is not UTF-8"))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next().ok_or_else(|| bad("the CSV body is empty: it needs a header row"))?;
    let names: Vec<String> = csv_fields(header).into_iter().map(|f| f.trim().to_string()).collect();
    let rows: Vec<Vec<String>> = lines.map(csv_fields).collect();
    let mut columns: Vec<Vec<Cell<'_>>> = vec![Vec::with_capacity(rows.len()); names.len()];
    for (i, row) in rows.iter().enumerate() {
        if row.len() != names.len() {
            return Err(bad(format!("CSV row {i} has {} fields, the header has {}", row.len(), names.len())));
        }
        for (c, f) in row.iter().enumerate() {
            columns[c].push(Cell::Text(f));
        }
    }
    from_table(model, Table { names, columns, rows: rows.len() })
}

/// Splits one CSV line (RFC 4180 quoting; no embedded newlines).
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.trim_end_matches('\r').chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// A KServe V1 `:predict` body: `{"instances": ...}` or `{"inputs": ...}`.
pub fn v1_json(model: &OnnxModel, body: &[u8]) -> Result<Decoded, ServingError> {
    let v = parse_json(body)?;
    let obj = v.as_object().ok_or_else(|| bad("the request body must be a JSON object with 'instances'"))?;
    match (obj.get("instances"), obj.get("inputs")) {
        (Some(x), None) => from_tensors(model, x, "instances"),
        (None, Some(x)) => from_tensors(model, x, "inputs"),
        _ => Err(bad("the body must have exactly one of 'instances' and 'inputs'")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Elem;

    #[test]
    fn csv_fields_follow_rfc4180() {
        assert_eq!(csv_fields("a,\"b,c\",\"d\"\"e\",\r"), ["a", "b,c", "d\"e", ""]);
    }

    #[test]
    fn nested_lists_flatten_or_are_called_ragged() {
        let mut d = Data::with_capacity(Elem::I64, 4);
        assert_eq!(flatten(&serde_json::json!([[1, 2], [3, 4]]), &mut d, "x").unwrap(), [2, 2]);
        assert_eq!(d, Data::I64(vec![1, 2, 3, 4]));
        let mut d = Data::with_capacity(Elem::I64, 4);
        let err = flatten(&serde_json::json!([[1, 2], [3]]), &mut d, "x").unwrap_err().to_string();
        assert!(err.contains("'x'") && err.contains("ragged"), "{err}");
    }
}
