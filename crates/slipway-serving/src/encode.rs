//! Model outputs to the JSON that MLflow's scoring server and KServe V1 answer with.
//! MLflow's onnx flavor returns a DataFrame (one column per output, each reshaped to one
//! value per row) for tabular input and a dict of arrays for tensor input; a ZipMap column
//! holds `{class: probability}` dicts, whose keys JSON turns into strings.

use serde_json::{Map, Value};

use crate::decode::Layout;
use crate::tensor::Named;

/// One row of one output: a scalar, a list, or a ZipMap dict.
fn cell(out: &Named, row: usize) -> Value {
    let width = out.tensor.row_width();
    let d = &out.tensor.data;
    if let Some(classes) = &out.classes {
        let mut m = Map::new();
        for c in 0..width.min(classes.len()) {
            let key = match classes.json_at(c) {
                Value::String(s) => s,
                other => other.to_string(),
            };
            m.insert(key, d.json_at(row * width + c));
        }
        return Value::Object(m);
    }
    if width == 1 && out.tensor.shape.len() <= 2 {
        return d.json_at(row);
    }
    nested(out, row * width, &out.tensor.shape[1..])
}

fn nested(out: &Named, start: usize, dims: &[usize]) -> Value {
    let d = &out.tensor.data;
    match dims {
        [] => d.json_at(start),
        [n] => Value::Array((0..*n).map(|i| d.json_at(start + i)).collect()),
        [n, rest @ ..] => {
            let step: usize = rest.iter().product();
            Value::Array((0..*n).map(|i| nested(out, start + i * step, rest)).collect())
        }
    }
}

/// The whole of one output as nested lists of its shape (ZipMap: a list of dicts).
fn whole(out: &Named) -> Value {
    let rows = out.tensor.rows();
    if out.classes.is_some() {
        return Value::Array((0..rows).map(|r| cell(out, r)).collect());
    }
    nested(out, 0, &out.tensor.shape)
}

/// `{"predictions": ...}` as `mlflow models serve` answers for the onnx flavor.
pub fn mlflow(outputs: &[Named], rows: usize, layout: Layout) -> Value {
    let predictions = match layout {
        Layout::Records => Value::Array(
            (0..rows).map(|r| Value::Object(outputs.iter().map(|o| (o.name.clone(), cell(o, r))).collect())).collect(),
        ),
        Layout::Tensors => Value::Object(outputs.iter().map(|o| (o.name.clone(), whole(o))).collect()),
    };
    let mut m = Map::new();
    m.insert("predictions".into(), predictions);
    Value::Object(m)
}

/// KServe V1: `{"predictions": [...]}`, the first output per row (a classifier's label,
/// a regressor's value).
pub fn v1(outputs: &[Named], rows: usize) -> Value {
    let predictions = match outputs.first() {
        Some(o) => Value::Array((0..rows).map(|r| cell(o, r)).collect()),
        None => Value::Array(Vec::new()),
    };
    let mut m = Map::new();
    m.insert("predictions".into(), predictions);
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::{Data, Tensor};
    use serde_json::json;

    fn outputs() -> Vec<Named> {
        vec![
            Named::new("output_label", Tensor::new(vec![2], Data::I64(vec![1, 0]))),
            Named {
                name: "output_probability".into(),
                tensor: Tensor::new(vec![2, 2], Data::F32(vec![0.25, 0.75, 0.5, 0.5])),
                classes: Some(Data::I64(vec![0, 1])),
            },
        ]
    }

    #[test]
    fn records_match_mlflow_for_a_zipmap_classifier() {
        assert_eq!(
            mlflow(&outputs(), 2, Layout::Records),
            json!({"predictions": [
                {"output_label": 1, "output_probability": {"0": 0.25, "1": 0.75}},
                {"output_label": 0, "output_probability": {"0": 0.5, "1": 0.5}},
            ]})
        );
    }

    #[test]
    fn tensors_are_keyed_by_output() {
        let reg = vec![Named::new("variable", Tensor::new(vec![2, 1], Data::F32(vec![1.5, 2.5])))];
        assert_eq!(mlflow(&reg, 2, Layout::Tensors), json!({"predictions": {"variable": [[1.5], [2.5]]}}));
        assert_eq!(mlflow(&reg, 2, Layout::Records), json!({"predictions": [{"variable": 1.5}, {"variable": 2.5}]}));
        let probs = vec![Named::new("p", Tensor::new(vec![1, 2], Data::F32(vec![0.25, 0.75])))];
        assert_eq!(mlflow(&probs, 1, Layout::Tensors), json!({"predictions": {"p": [[0.25, 0.75]]}}));
        assert_eq!(v1(&outputs(), 2), json!({"predictions": [1, 0]}));
    }
}
