//! The Open Inference Protocol V2 body codec, JSON and Triton's binary tensor extension
//! (`tritonclient.http` sends binary inputs and asks for binary outputs by default): the
//! JSON header is followed by raw little-endian tensors, each `parameters.binary_data_size`
//! bytes, BYTES elements as a 4-byte length then the bytes.

use serde_json::{Map, Value, json};

use crate::ServingError;
use crate::model::OnnxModel;
use crate::tensor::{Data, Elem, Named, Tensor};

fn bad(msg: impl Into<String>) -> ServingError {
    ServingError::BadInput(msg.into())
}

/// An output the client named, and whether it wants it in binary.
#[derive(Debug, Clone)]
pub struct WantedOutput {
    pub name: String,
    pub binary: Option<bool>,
}

#[derive(Debug)]
pub struct Request {
    pub id: Option<String>,
    pub inputs: Vec<Named>,
    pub rows: usize,
    pub outputs: Option<Vec<WantedOutput>>,
    pub binary_output: bool,
}

fn binary_size(params: Option<&Value>) -> Result<Option<usize>, ServingError> {
    match params.and_then(|p| p.get("binary_data_size")) {
        None => Ok(None),
        Some(v) => v.as_u64().map(|n| Some(n as usize)).ok_or_else(|| bad("binary_data_size must be a whole number")),
    }
}

fn flat_json(v: &Value, data: &mut Data, name: &str) -> Result<(), ServingError> {
    match v {
        Value::Array(items) => items.iter().try_for_each(|x| flat_json(x, data, name)),
        scalar => {
            let n = data.len();
            crate::decode::push_scalar(data, scalar).map_err(|e| bad(format!("input '{name}', element {n}: {e}")))
        }
    }
}

fn from_le(elem: Elem, bytes: &[u8], name: &str) -> Result<Data, ServingError> {
    macro_rules! nums {
        ($t:ty, $var:ident) => {{
            const W: usize = std::mem::size_of::<$t>();
            if bytes.len() % W != 0 {
                return Err(bad(format!(
                    "input '{name}': {} binary bytes is not a whole number of {elem} values",
                    bytes.len()
                )));
            }
            Data::$var(bytes.chunks_exact(W).map(|c| <$t>::from_le_bytes(c.try_into().unwrap_or([0; W]))).collect())
        }};
    }
    Ok(match elem {
        Elem::Bool => Data::Bool(bytes.iter().map(|b| *b != 0).collect()),
        Elem::I8 => Data::I8(bytes.iter().map(|b| i8::from_le_bytes([*b])).collect()),
        Elem::I16 => nums!(i16, I16),
        Elem::I32 => nums!(i32, I32),
        Elem::I64 => nums!(i64, I64),
        Elem::U8 => Data::U8(bytes.to_vec()),
        Elem::U16 => nums!(u16, U16),
        Elem::U32 => nums!(u32, U32),
        Elem::U64 => nums!(u64, U64),
        Elem::F32 => nums!(f32, F32),
        Elem::F64 => nums!(f64, F64),
        Elem::Str => {
            let mut out = Vec::new();
            let mut rest = bytes;
            while !rest.is_empty() {
                let (len, tail) =
                    rest.split_at_checked(4).ok_or_else(|| bad(format!("input '{name}': truncated BYTES length")))?;
                let len = u32::from_le_bytes(len.try_into().unwrap_or([0; 4])) as usize;
                let (s, tail) = tail
                    .split_at_checked(len)
                    .ok_or_else(|| bad(format!("input '{name}': truncated BYTES element")))?;
                out.push(
                    String::from_utf8(s.to_vec())
                        .map_err(|_| bad(format!("input '{name}': a BYTES element is not UTF-8")))?,
                );
                rest = tail;
            }
            Data::Str(out)
        }
    })
}

fn to_le(data: &Data, out: &mut Vec<u8>) {
    macro_rules! nums {
        ($v:expr) => {
            for x in $v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        };
    }
    match data {
        Data::Bool(v) => out.extend(v.iter().map(|b| u8::from(*b))),
        Data::I8(v) => nums!(v),
        Data::I16(v) => nums!(v),
        Data::I32(v) => nums!(v),
        Data::I64(v) => nums!(v),
        Data::U8(v) => out.extend_from_slice(v),
        Data::U16(v) => nums!(v),
        Data::U32(v) => nums!(v),
        Data::U64(v) => nums!(v),
        Data::F32(v) => nums!(v),
        Data::F64(v) => nums!(v),
        Data::Str(v) => {
            for s in v {
                out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
        }
    }
}

/// Decodes an infer request for `model`. `header_len` is `Inference-Header-Content-Length`:
/// the JSON part's size when binary tensors follow it.
pub fn decode(model: &OnnxModel, body: &[u8], header_len: Option<usize>) -> Result<Request, ServingError> {
    let (json_part, mut binary) = match header_len {
        Some(n) if n > body.len() => {
            return Err(bad(format!("Inference-Header-Content-Length is {n} but the body has {} bytes", body.len())));
        }
        Some(n) => body.split_at(n),
        None => (body, &[][..]),
    };
    if json_part.iter().all(u8::is_ascii_whitespace) {
        return Err(bad("the request body is empty"));
    }
    let v: Value = serde_json::from_slice(json_part).map_err(|e| bad(format!("the request is not valid JSON: {e}")))?;
    let obj = v.as_object().ok_or_else(|| bad("the request must be a JSON object"))?;
    let id = match obj.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(bad("'id' must be a string")),
    };
    let items = obj.get("inputs").and_then(Value::as_array).ok_or_else(|| bad("'inputs' must be a list of tensors"))?;
    let mut given: Vec<Named> = Vec::with_capacity(items.len());
    for item in items {
        let t = item.as_object().ok_or_else(|| bad("each input must be an object with name, shape, datatype, data"))?;
        let name = t.get("name").and_then(Value::as_str).ok_or_else(|| bad("an input has no 'name'"))?;
        let spec = model.inputs.iter().find(|i| i.name == name).ok_or_else(|| {
            bad(format!("unknown input '{name}' (the model's inputs: {})", crate::decode::input_names(model)))
        })?;
        let datatype = t
            .get("datatype")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("input '{name}' has no 'datatype'")))?;
        let elem =
            Elem::from_v2(datatype).ok_or_else(|| bad(format!("input '{name}': unsupported datatype '{datatype}'")))?;
        if elem != spec.elem {
            return Err(bad(format!("input '{name}': the model expects {}, the request sends {datatype}", spec.elem)));
        }
        let shape: Vec<usize> = t
            .get("shape")
            .and_then(Value::as_array)
            .and_then(|s| s.iter().map(|d| d.as_u64().map(|d| d as usize)).collect::<Option<Vec<_>>>())
            .ok_or_else(|| bad(format!("input '{name}': 'shape' must be a list of whole numbers")))?;
        let count: usize = shape.iter().product();
        let data = match binary_size(t.get("parameters"))? {
            Some(size) => {
                if t.contains_key("data") {
                    return Err(bad(format!("input '{name}' has both binary_data_size and data")));
                }
                let (bytes, rest) = binary.split_at_checked(size).ok_or_else(|| {
                    bad(format!("input '{name}': binary_data_size {size} is more than the {} bytes left", binary.len()))
                })?;
                binary = rest;
                from_le(elem, bytes, name)?
            }
            None => {
                let raw = t.get("data").ok_or_else(|| bad(format!("input '{name}' has no 'data'")))?;
                let mut data = Data::with_capacity(elem, count);
                flat_json(raw, &mut data, name)?;
                data
            }
        };
        if data.len() != count {
            return Err(bad(format!("input '{name}': shape {shape:?} needs {count} values, got {}", data.len())));
        }
        let fits =
            spec.shape.len() == shape.len() && spec.shape.iter().zip(&shape).all(|(w, g)| *w < 0 || *w as usize == *g);
        if !fits {
            return Err(bad(format!("input '{name}': expected shape {:?}, got {shape:?}", spec.shape)));
        }
        if given.iter().any(|g| g.name == name) {
            return Err(bad(format!("input '{name}' is given twice")));
        }
        given.push(Named::new(name, Tensor::new(shape, data)));
    }
    if !binary.is_empty() {
        return Err(bad(format!("{} binary bytes follow the header that no input claims", binary.len())));
    }
    if let Some(missing) = model.inputs.iter().find(|i| !given.iter().any(|g| g.name == i.name)) {
        return Err(bad(format!("missing input '{}'", missing.name)));
    }
    let rows = given.first().map_or(0, |g| g.tensor.rows());
    if let Some(odd) = given.iter().find(|g| g.tensor.rows() != rows) {
        return Err(bad(format!("input '{}' has {} rows, the others {rows}", odd.name, odd.tensor.rows())));
    }
    let outputs = match obj.get("outputs") {
        None | Some(Value::Null) => None,
        Some(Value::Array(list)) => Some(
            list.iter()
                .map(|o| {
                    let name = o
                        .get("name")
                        .and_then(Value::as_str)
                        .ok_or_else(|| bad("each requested output needs a 'name'"))?;
                    if !model.outputs.iter().any(|m| m.name == name) {
                        return Err(bad(format!("unknown output '{name}'")));
                    }
                    let binary = o.get("parameters").and_then(|p| p.get("binary_data")).and_then(Value::as_bool);
                    Ok(WantedOutput { name: name.to_string(), binary })
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(_) => return Err(bad("'outputs' must be a list")),
    };
    let binary_output =
        obj.get("parameters").and_then(|p| p.get("binary_data_output")).and_then(Value::as_bool).unwrap_or(false);
    Ok(Request { id, inputs: given, rows, outputs, binary_output })
}

/// A response body, and the header length when binary tensors follow the JSON.
pub struct Encoded {
    pub body: Vec<u8>,
    pub header_len: Option<usize>,
}

pub fn encode(name: &str, version: &str, req: &Request, outputs: &[Named]) -> Encoded {
    let mut blobs: Vec<u8> = Vec::new();
    let mut list = Vec::new();
    for out in outputs {
        let binary = match &req.outputs {
            Some(wanted) => match wanted.iter().find(|w| w.name == out.name) {
                Some(w) => w.binary.unwrap_or(req.binary_output),
                None => continue,
            },
            None => req.binary_output,
        };
        let mut t = Map::new();
        t.insert("name".into(), json!(out.name));
        t.insert("datatype".into(), json!(out.tensor.data.elem().v2_name()));
        t.insert("shape".into(), json!(out.tensor.shape));
        let mut params = Map::new();
        if let Some(classes) = &out.classes {
            params.insert("classes".into(), Value::Array((0..classes.len()).map(|i| classes.json_at(i)).collect()));
        }
        if binary {
            let before = blobs.len();
            to_le(&out.tensor.data, &mut blobs);
            params.insert("binary_data_size".into(), json!(blobs.len() - before));
        } else {
            let d = &out.tensor.data;
            t.insert("data".into(), Value::Array((0..d.len()).map(|i| d.json_at(i)).collect()));
        }
        if !params.is_empty() {
            t.insert("parameters".into(), Value::Object(params));
        }
        list.push(Value::Object(t));
    }
    let mut head = Map::new();
    head.insert("model_name".into(), json!(name));
    head.insert("model_version".into(), json!(version));
    if let Some(id) = &req.id {
        head.insert("id".into(), json!(id));
    }
    head.insert("outputs".into(), Value::Array(list));
    let mut body = serde_json::to_vec(&Value::Object(head)).unwrap_or_default();
    if blobs.is_empty() {
        return Encoded { body, header_len: None };
    }
    let header_len = body.len();
    body.extend_from_slice(&blobs);
    Encoded { body, header_len: Some(header_len) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_round_trips_every_type() {
        for data in [
            Data::Bool(vec![true, false]),
            Data::I8(vec![-1, 2]),
            Data::I16(vec![-300, 2]),
            Data::I32(vec![-70000, 2]),
            Data::I64(vec![-1 << 40, 2]),
            Data::U8(vec![1, 255]),
            Data::U16(vec![1, 65535]),
            Data::U32(vec![1, 1 << 31]),
            Data::U64(vec![1, 1 << 63]),
            Data::F32(vec![0.5, -1.25]),
            Data::F64(vec![0.1, f64::MAX]),
            Data::Str(vec!["a".into(), "héllo".into(), String::new()]),
        ] {
            let mut bytes = Vec::new();
            to_le(&data, &mut bytes);
            assert_eq!(from_le(data.elem(), &bytes, "x").unwrap(), data);
        }
    }

    #[test]
    fn truncated_binary_is_refused() {
        assert!(from_le(Elem::F32, &[0, 0, 0], "x").unwrap_err().to_string().contains("'x'"));
        assert!(from_le(Elem::Str, &[5, 0, 0, 0, b'a'], "x").is_err());
    }
}
