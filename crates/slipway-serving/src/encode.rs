//! Model outputs to the JSON that MLflow's scoring server and KServe V1 answer with.
//! MLflow's onnx flavor returns a DataFrame (one column per output, each reshaped to one
//! value per row) for tabular input and a dict of arrays for tensor input; a ZipMap column
//! holds `{class: probability}` dicts, whose keys JSON turns into strings.

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use crate::decode::Layout;
use crate::tensor::{Data, Named};

/// One value, floats widened so JSON shows the digits Python would print (as `json_at`).
struct At<'a>(&'a Data, usize);

impl Serialize for At<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        fn float<S: Serializer>(x: f64, s: S) -> Result<S::Ok, S::Error> {
            // JSON has no NaN or infinity; MLflow's client writes them as these strings.
            if x.is_nan() {
                s.serialize_str("NaN")
            } else if x.is_infinite() {
                s.serialize_str(if x > 0.0 { "Infinity" } else { "-Infinity" })
            } else {
                s.serialize_f64(x)
            }
        }
        let i = self.1;
        match self.0 {
            Data::Bool(v) => s.serialize_bool(v[i]),
            Data::I8(v) => s.serialize_i8(v[i]),
            Data::I16(v) => s.serialize_i16(v[i]),
            Data::I32(v) => s.serialize_i32(v[i]),
            Data::I64(v) => s.serialize_i64(v[i]),
            Data::U8(v) => s.serialize_u8(v[i]),
            Data::U16(v) => s.serialize_u16(v[i]),
            Data::U32(v) => s.serialize_u32(v[i]),
            Data::U64(v) => s.serialize_u64(v[i]),
            Data::F32(v) => float(f64::from(v[i]), s),
            Data::F64(v) => float(v[i], s),
            Data::Str(v) => s.serialize_str(&v[i]),
        }
    }
}

/// An output with its ZipMap class labels as JSON object keys (JSON turns keys into strings),
/// made once per response rather than once per row.
struct Out<'a> {
    named: &'a Named,
    keys: Option<Vec<String>>,
}

impl<'a> Out<'a> {
    fn new(named: &'a Named) -> Out<'a> {
        let keys = named.classes.as_ref().map(|classes| {
            (0..classes.len())
                .map(|c| match classes {
                    Data::Str(v) => v[c].clone(),
                    other => other.json_at(c).to_string(),
                })
                .collect()
        });
        Out { named, keys }
    }
}

/// One row of one output: a scalar, a list, or a ZipMap dict.
struct Cell<'a> {
    out: &'a Out<'a>,
    row: usize,
}

impl Serialize for Cell<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = &self.out.named.tensor;
        let width = t.row_width();
        if let Some(keys) = &self.out.keys {
            let n = width.min(keys.len());
            let mut m = s.serialize_map(Some(n))?;
            for (c, key) in keys.iter().take(n).enumerate() {
                m.serialize_entry(key, &At(&t.data, self.row * width + c))?;
            }
            return m.end();
        }
        if width == 1 && t.shape.len() <= 2 {
            return At(&t.data, self.row).serialize(s);
        }
        Nested { data: &t.data, start: self.row * width, dims: &t.shape[1..] }.serialize(s)
    }
}

/// Values from `start` as nested lists of `dims`.
struct Nested<'a> {
    data: &'a Data,
    start: usize,
    dims: &'a [usize],
}

impl Serialize for Nested<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Some((n, rest)) = self.dims.split_first() else { return At(self.data, self.start).serialize(s) };
        let step: usize = rest.iter().product();
        let mut seq = s.serialize_seq(Some(*n))?;
        for i in 0..*n {
            seq.serialize_element(&Nested { data: self.data, start: self.start + i * step, dims: rest })?;
        }
        seq.end()
    }
}

/// The whole of one output as nested lists of its shape (ZipMap: a list of dicts).
struct Whole<'a>(&'a Out<'a>);

impl Serialize for Whole<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = &self.0.named.tensor;
        if self.0.keys.is_none() {
            return Nested { data: &t.data, start: 0, dims: &t.shape }.serialize(s);
        }
        let mut seq = s.serialize_seq(Some(t.rows()))?;
        for row in 0..t.rows() {
            seq.serialize_element(&Cell { out: self.0, row })?;
        }
        seq.end()
    }
}

/// One record per row: `{output: cell, ...}`.
struct Record<'a> {
    outs: &'a [Out<'a>],
    row: usize,
}

impl Serialize for Record<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.outs.len()))?;
        for out in self.outs {
            m.serialize_entry(&out.named.name, &Cell { out, row: self.row })?;
        }
        m.end()
    }
}

/// `{"predictions": ...}` as `mlflow models serve` answers for the onnx flavor, serialised
/// straight from the tensors.
pub struct Mlflow<'a> {
    outs: Vec<Out<'a>>,
    rows: usize,
    layout: Layout,
}

pub fn mlflow(outputs: &[Named], rows: usize, layout: Layout) -> Mlflow<'_> {
    Mlflow { outs: outputs.iter().map(Out::new).collect(), rows, layout }
}

impl Serialize for Mlflow<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Predictions<'a>(&'a Mlflow<'a>);
        impl Serialize for Predictions<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let outs = &self.0.outs;
                match self.0.layout {
                    Layout::Records => {
                        let mut seq = s.serialize_seq(Some(self.0.rows))?;
                        for row in 0..self.0.rows {
                            seq.serialize_element(&Record { outs, row })?;
                        }
                        seq.end()
                    }
                    Layout::Tensors => {
                        let mut m = s.serialize_map(Some(outs.len()))?;
                        for out in outs {
                            m.serialize_entry(&out.named.name, &Whole(out))?;
                        }
                        m.end()
                    }
                }
            }
        }
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry("predictions", &Predictions(self))?;
        m.end()
    }
}

/// KServe V1: `{"predictions": [...]}`, the first output per row (a classifier's label,
/// a regressor's value).
pub struct V1<'a> {
    first: Option<Out<'a>>,
    rows: usize,
}

pub fn v1(outputs: &[Named], rows: usize) -> V1<'_> {
    V1 { first: outputs.first().map(Out::new), rows }
}

impl Serialize for V1<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Rows<'a>(&'a V1<'a>);
        impl Serialize for Rows<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let Some(out) = &self.0.first else { return s.serialize_seq(Some(0))?.end() };
                let mut seq = s.serialize_seq(Some(self.0.rows))?;
                for row in 0..self.0.rows {
                    seq.serialize_element(&Cell { out, row })?;
                }
                seq.end()
            }
        }
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry("predictions", &Rows(self))?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Tensor;
    use serde_json::{Value, json};

    fn mlflow(outputs: &[Named], rows: usize, layout: Layout) -> Value {
        serde_json::to_value(super::mlflow(outputs, rows, layout)).unwrap()
    }

    fn v1(outputs: &[Named], rows: usize) -> Value {
        serde_json::to_value(super::v1(outputs, rows)).unwrap()
    }

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
