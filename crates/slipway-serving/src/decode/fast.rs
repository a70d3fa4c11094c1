//! The bodies almost every client sends — numbers in nested lists (`dataframe_split`,
//! `instances`, `inputs`) for a model whose inputs are floats — parsed straight into one flat
//! buffer, with no JSON tree: a tree costs an allocation per row and 32 bytes per number,
//! several times the model's own run for a small model.
//!
//! This path only accepts; it never refuses. Anything it does not expect (a null, a string,
//! an object row, a ragged list, an unknown key, an escaped key) sends the body down the
//! general path in `decode`, which answers it or says precisely what is wrong. What it
//! accepts it hands to the same `from_table` and `finish_tensor` as the general path, so
//! both give one answer for one body (the property test below holds them to it).

use serde::de::IgnoredAny;

use super::{Cell, Decoded, Layout, Table, finish_tensor, from_table, layout_for, signature_columns, unnamed_columns};
use crate::ServingError;
use crate::model::OnnxModel;
use crate::tensor::{Data, Elem};

/// Numbers of a rectangular nested list, row-major, and its dimensions.
#[derive(Debug, Default, PartialEq)]
struct Flat {
    values: Vec<f64>,
    dims: Vec<usize>,
    /// The depth at which numbers were found (all must be at one depth).
    leaf: Option<usize>,
}

#[derive(Debug, PartialEq)]
enum Body {
    Split { columns: Option<Vec<String>>, data: Flat },
    Lists(Flat),
}

/// A body scanned by hand. Nested lists of numbers are the whole of a body that matters for
/// speed, and serde_json's number parsing is most of what decoding one costs; the standard
/// library's is several times faster and correctly rounded (as serde_json is with
/// `float_roundtrip`, and as Python's `json` is). Values this path skips (`params`, `index`)
/// are still checked by serde_json.
struct Scan<'t> {
    text: &'t str,
    b: &'t [u8],
    pos: usize,
}

/// Deeper lists than this go to the general path.
const MAX_DEPTH: usize = 32;

impl<'t> Scan<'t> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.pos) {
            self.pos += 1;
        }
    }

    /// Skips whitespace, then consumes `c`.
    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.b.get(self.pos) == Some(&c)).then(|| self.pos += 1)
    }

    /// Skips whitespace and peeks.
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.pos).copied()
    }

    /// A string without escapes or control characters (others go to the general path).
    fn string(&mut self) -> Option<&'t str> {
        self.eat(b'"')?;
        let start = self.pos;
        loop {
            match *self.b.get(self.pos)? {
                b'"' => break,
                b'\\' | 0..0x20 => return None,
                _ => self.pos += 1,
            }
        }
        self.pos += 1;
        Some(&self.text[start..self.pos - 1])
    }

    /// `{"key": value, ...}`, each value handed to `each` (which consumes it).
    fn object(&mut self, mut each: impl FnMut(&mut Self, &'t str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        loop {
            let key = self.string()?;
            self.eat(b':')?;
            each(self, key)?;
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => break,
                _ => return None,
            }
        }
        self.pos += 1;
        Some(())
    }

    /// Any one JSON value, checked and skipped by serde_json.
    fn skip(&mut self) -> Option<()> {
        let mut values = serde_json::Deserializer::from_str(&self.text[self.pos..]).into_iter::<IgnoredAny>();
        values.next()?.ok()?;
        self.pos += values.byte_offset();
        Some(())
    }

    fn strings(&mut self) -> Option<Vec<String>> {
        self.eat(b'[')?;
        let mut out = Vec::new();
        if self.peek()? == b']' {
            self.pos += 1;
            return Some(out);
        }
        loop {
            out.push(self.string()?.to_string());
            match self.peek()? {
                b',' => self.pos += 1,
                b']' => break,
                _ => return None,
            }
        }
        self.pos += 1;
        Some(out)
    }

    /// A nested list of numbers.
    fn lists(&mut self) -> Option<Flat> {
        let mut flat = Flat::default();
        if self.peek()? != b'[' {
            return None;
        }
        self.list(&mut flat, 0)?;
        (flat.leaf == Some(flat.dims.len())).then_some(flat)
    }

    fn list(&mut self, flat: &mut Flat, depth: usize) -> Option<()> {
        if depth >= MAX_DEPTH || flat.leaf.is_some_and(|l| l <= depth) {
            return None;
        }
        self.pos += 1;
        let mut count = 0;
        loop {
            if self.peek()? == b'[' {
                self.list(flat, depth + 1)?;
            } else {
                match flat.leaf {
                    None => flat.leaf = Some(depth + 1),
                    Some(d) if d == depth + 1 => {}
                    _ => return None,
                }
                flat.values.push(self.number()?);
            }
            count += 1;
            match self.peek()? {
                b',' => self.pos += 1,
                b']' => break,
                _ => return None,
            }
        }
        self.pos += 1;
        if flat.dims.len() <= depth {
            flat.dims.resize(depth + 1, 0);
        }
        match flat.dims[depth] {
            0 => flat.dims[depth] = count,
            n if n == count => {}
            _ => return None,
        }
        Some(())
    }

    /// A JSON number (`-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`) as a finite f64.
    fn number(&mut self) -> Option<f64> {
        let b = self.b;
        let start = self.pos;
        let mut i = start;
        let digits = |i: &mut usize| {
            let from = *i;
            while b.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i > from
        };
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        let int_start = i;
        if !digits(&mut i) || (b[int_start] == b'0' && i - int_start > 1) {
            return None;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            if !digits(&mut i) {
                return None;
            }
        }
        if let Some(b'e' | b'E') = b.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = b.get(i) {
                i += 1;
            }
            if !digits(&mut i) {
                return None;
            }
        }
        self.pos = i;
        self.text[start..i].parse::<f64>().ok().filter(|x| x.is_finite())
    }
}

/// The body, if it is one this path takes: an object with exactly one of
/// `dataframe_split` (`columns`, `data`; other keys such as `index` are ignored, as the
/// general path ignores them), `instances` or `inputs`, and at most `params` beside it.
fn parse(body: &[u8]) -> Option<Body> {
    let text = std::str::from_utf8(body).ok()?;
    let mut s = Scan { text, b: body, pos: 0 };
    let mut found = None;
    let mut params = false;
    s.object(|s, key| match key {
        "dataframe_split" if found.is_none() => {
            let (mut columns, mut data) = (None, None);
            s.object(|s, key| match key {
                "columns" if columns.is_none() => s.strings().map(|c| columns = Some(c)),
                "data" if data.is_none() => s.lists().map(|d| data = Some(d)),
                "columns" | "data" => None,
                _ => s.skip(),
            })?;
            let data = data.filter(|d| d.dims.len() == 2)?;
            found = Some(Body::Split { columns, data });
            Some(())
        }
        "instances" | "inputs" if found.is_none() => s.lists().map(|d| found = Some(Body::Lists(d))),
        "params" if !params => {
            params = true;
            s.skip()
        }
        _ => None,
    })?;
    s.ws();
    if s.pos != body.len() {
        return None;
    }
    found
}

/// The rows of a 2-D list as a table of the given column names.
fn table(names: Vec<String>, flat: &Flat) -> Option<Table<'static>> {
    let (rows, width) = (flat.dims[0], flat.dims[1]);
    if names.len() != width {
        return None;
    }
    let columns = (0..width).map(|c| (0..rows).map(|r| Cell::Num(flat.values[r * width + c])).collect()).collect();
    Some(Table { names, columns, rows })
}

/// An MLflow JSON body decoded without a JSON tree, or `None` when the general path must
/// decode it.
pub(super) fn mlflow_json(model: &OnnxModel, body: &[u8]) -> Option<Result<Decoded, ServingError>> {
    if !model.inputs.iter().all(|i| i.elem.is_float()) {
        return None;
    }
    match parse(body)? {
        Body::Split { columns, data } => {
            let names = columns.unwrap_or_else(|| unnamed_columns(model, data.dims[1]));
            Some(from_table(model, table(names, &data)?))
        }
        Body::Lists(flat) => {
            if let Some(cols) = signature_columns(model) {
                if flat.dims.len() != 2 {
                    return None;
                }
                return Some(from_table(model, table(cols.into_iter().map(|c| c.0).collect(), &flat)?));
            }
            let [spec] = model.inputs.as_slice() else { return None };
            let data = match spec.elem {
                Elem::F32 => Data::F32(flat.values.iter().map(|&x| x as f32).collect()),
                _ => Data::F64(flat.values),
            };
            let decoded = finish_tensor(spec, flat.dims, data).map(|input| {
                let rows = input.tensor.rows();
                Decoded { inputs: vec![input], rows, layout: layout_for(model, Layout::Tensors) }
            });
            Some(decoded)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(values: &[f64], dims: &[usize]) -> Flat {
        Flat { values: values.to_vec(), dims: dims.to_vec(), leaf: Some(dims.len()) }
    }

    #[test]
    fn plain_bodies_are_parsed_flat() {
        let body = br#"{"dataframe_split": {"index": [0, 1], "columns": ["a", "b"], "data": [[1, 2.5], [-3, 4e2]]}}"#;
        assert_eq!(
            parse(body),
            Some(Body::Split {
                columns: Some(vec!["a".into(), "b".into()]),
                data: flat(&[1.0, 2.5, -3.0, 400.0], &[2, 2])
            })
        );
        assert_eq!(
            parse(br#"{"inputs": [[[1], [2]]], "params": {}}"#),
            Some(Body::Lists(flat(&[1.0, 2.0], &[1, 2, 1])))
        );
        assert_eq!(parse(br#"{"instances": [1, 2, 3]}"#), Some(Body::Lists(flat(&[1.0, 2.0, 3.0], &[3]))));
        let odd = br#"{"inputs": [ [ -0.0 ,1E-7, 2.5e+3, 18446744073709551615 ] ] }"#;
        assert_eq!(parse(odd), Some(Body::Lists(flat(&[-0.0, 1e-7, 2500.0, 18446744073709551615.0], &[1, 4]))));
    }

    #[test]
    fn anything_else_goes_to_the_general_path() {
        for body in [
            &br#"{"inputs": [[1, 2], [3]]}"#[..],
            br#"{"inputs": [[1, 2], 3]}"#,
            br#"{"inputs": [1, [2]]}"#,
            br#"{"inputs": [[1, null]]}"#,
            br#"{"inputs": [["NaN"]]}"#,
            br#"{"inputs": []}"#,
            br#"{"inputs": [[]]}"#,
            br#"{"inputs": 3}"#,
            br#"{"inputs": [[1]], "instances": [[1]]}"#,
            br#"{"inputs": [[1]], "extra": 1}"#,
            br#"{"dataframe_split": {"columns": ["a"], "data": [1, 2]}}"#,
            br#"{"dataframe_split": {"columns": [1], "data": [[1]]}}"#,
            br#"{"dataframe_split": {"columns": ["a"]}}"#,
            br#"{"dataframe_records": [{"a": 1}]}"#,
            br#"{"inputs": [[1]]} x"#,
            br#"{"inp\u0075ts": [[1]]}"#,
            br#"{"inputs": [[01]]}"#,
            br#"{"inputs": [[1.]]}"#,
            br#"{"inputs": [[.5]]}"#,
            br#"{"inputs": [[+1]]}"#,
            br#"{"inputs": [[1e]]}"#,
            br#"{"inputs": [[1e999]]}"#,
            br#"{"inputs": [[1,]]}"#,
            br#"{"inputs": [[1 2]]}"#,
            b"[1]",
            b"",
        ] {
            assert_eq!(parse(body), None, "{}", String::from_utf8_lossy(body));
        }
    }

    use crate::mlmodel::{ColumnSpec, Signature, TensorSpec};
    use crate::model::InputSpec;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn input(name: &str, elem: Elem, shape: &[i64]) -> InputSpec {
        InputSpec { name: name.into(), elem, shape: shape.to_vec() }
    }

    fn columns(names: &[(&str, bool)]) -> Option<Signature> {
        Some(Signature::Columns(
            names
                .iter()
                .map(|(n, r)| ColumnSpec { name: Some(n.to_string()), elem: Some(Elem::F64), required: *r })
                .collect(),
        ))
    }

    fn models() -> Vec<OnnxModel> {
        let tensors = Some(Signature::Tensors(vec![TensorSpec { name: None, elem: Elem::F64, shape: vec![-1, -1] }]));
        vec![
            OnnxModel::declared(
                vec![input("X", Elem::F32, &[-1, 3])],
                columns(&[("a", true), ("b", true), ("c", false)]),
            ),
            OnnxModel::declared(vec![input("X", Elem::F32, &[-1, 3])], None),
            OnnxModel::declared(vec![input("X", Elem::F64, &[-1, -1])], tensors),
            OnnxModel::declared(
                vec![input("a", Elem::F32, &[-1, 1]), input("b", Elem::F32, &[-1, 1])],
                columns(&[("a", true), ("b", true)]),
            ),
            OnnxModel::declared(vec![input("X", Elem::F32, &[-1])], None),
            OnnxModel::declared(vec![input("X", Elem::F32, &[-1, 2, 1])], None),
            OnnxModel::declared(vec![input("X", Elem::I64, &[-1, 3])], None),
        ]
    }

    #[test]
    fn the_bodies_clients_send_take_this_path() {
        let m = &models()[0];
        let split = json!({"dataframe_split": {"columns": ["c", "a", "b"], "data": [[1.5, 2, 3], [4, 5, 6]]}});
        let fast = mlflow_json(m, split.to_string().as_bytes()).expect("fast path").unwrap();
        assert_eq!(fast.inputs[0].tensor.data, Data::F32(vec![2.0, 3.0, 1.5, 5.0, 6.0, 4.0]));
        assert_eq!(fast.inputs[0].tensor.shape, [2, 3]);
        let lists = json!({"inputs": [[1, 2, 3]]}).to_string();
        assert!(mlflow_json(&models()[1], lists.as_bytes()).is_some());
        assert!(mlflow_json(&models()[6], lists.as_bytes()).is_none(), "integer inputs take the general path");
    }

    fn cell() -> impl Strategy<Value = Value> {
        prop_oneof![
            8 => (-5i64..5).prop_map(Value::from),
            8 => (-1e6f64..1e6).prop_map(Value::from),
            2 => any::<f64>().prop_map(Value::from),
            1 => any::<u64>().prop_map(Value::from),
            1 => any::<i64>().prop_map(Value::from),
            1 => Just(Value::Null),
            1 => Just(Value::from("NaN")),
            1 => Just(json!([1])),
        ]
    }

    fn rows() -> impl Strategy<Value = Value> {
        (1usize..4, 1usize..5).prop_flat_map(|(n, w)| {
            prop_oneof![
                6 => prop::collection::vec(prop::collection::vec(cell(), w), n).prop_map(|r| json!(r)),
                1 => prop::collection::vec(prop::collection::vec(cell(), 1..5), n).prop_map(|r| json!(r)),
                1 => prop::collection::vec(cell(), n).prop_map(|r| json!(r)),
                1 => prop::collection::vec(prop::collection::vec(prop::collection::vec(cell(), 1), 2), n)
                    .prop_map(|r| json!(r)),
            ]
        })
    }

    fn body() -> impl Strategy<Value = Value> {
        let names = prop::sample::subsequence(vec!["a", "b", "c", "d", "0", "1"], 0..5).prop_shuffle();
        (0usize..4, rows(), names, any::<bool>(), any::<bool>()).prop_map(|(format, data, names, index, params)| {
            let mut body = match format {
                0 => json!({"dataframe_split": {"columns": names, "data": data}}),
                1 => json!({"dataframe_split": {"data": data}}),
                2 => json!({"instances": data}),
                _ => json!({"inputs": data}),
            };
            if index && let Some(split) = body.get_mut("dataframe_split") {
                split["index"] = json!([0, 1, 2]);
            }
            if params {
                body["params"] = json!({});
            }
            body
        })
    }

    #[test]
    fn both_paths_give_one_answer() {
        let models = models();
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(1024));
        let taken = std::cell::Cell::new(0);
        runner
            .run(&(body(), 0..models.len()), |(body, which)| {
                let text = body.to_string();
                if let Some(fast) = mlflow_json(&models[which], text.as_bytes()) {
                    taken.set(taken.get() + 1);
                    let general = super::super::general_json(&models[which], text.as_bytes());
                    prop_assert_eq!(format!("{fast:?}"), format!("{general:?}"), "{}", text);
                }
                Ok(())
            })
            .unwrap();
        // The comparison means something only if the fast path took a fair share of bodies.
        assert!(taken.get() > 100, "the fast path took only {} bodies", taken.get());
    }
}
