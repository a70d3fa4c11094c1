//! Tensors as serving moves them: a shape and row-major values of one element type, with the
//! names each protocol gives that type. Requests are decoded into these and outputs extracted
//! into them, so batching, encoding and the prediction log see one representation.

use std::fmt;

/// An element type, as ONNX Runtime, the Open Inference Protocol and MLflow signatures name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Elem {
    Bool,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    F32,
    F64,
    Str,
}

impl Elem {
    /// The Open Inference Protocol datatype.
    pub fn v2_name(self) -> &'static str {
        match self {
            Elem::Bool => "BOOL",
            Elem::I8 => "INT8",
            Elem::I16 => "INT16",
            Elem::I32 => "INT32",
            Elem::I64 => "INT64",
            Elem::U8 => "UINT8",
            Elem::U16 => "UINT16",
            Elem::U32 => "UINT32",
            Elem::U64 => "UINT64",
            Elem::F32 => "FP32",
            Elem::F64 => "FP64",
            Elem::Str => "BYTES",
        }
    }

    pub fn from_v2(name: &str) -> Option<Elem> {
        Some(match name {
            "BOOL" => Elem::Bool,
            "INT8" => Elem::I8,
            "INT16" => Elem::I16,
            "INT32" => Elem::I32,
            "INT64" => Elem::I64,
            "UINT8" => Elem::U8,
            "UINT16" => Elem::U16,
            "UINT32" => Elem::U32,
            "UINT64" => Elem::U64,
            "FP32" => Elem::F32,
            "FP64" => Elem::F64,
            "BYTES" => Elem::Str,
            _ => return None,
        })
    }

    /// An MLflow signature type: column types (`double`, `long`, ...) and numpy dtypes of
    /// tensor specs (`float32`, `int64`, ...).
    pub fn from_mlflow(name: &str) -> Option<Elem> {
        Some(match name {
            "boolean" | "bool" => Elem::Bool,
            "integer" | "int32" => Elem::I32,
            "long" | "int64" => Elem::I64,
            "int8" => Elem::I8,
            "int16" => Elem::I16,
            "uint8" => Elem::U8,
            "uint16" => Elem::U16,
            "uint32" => Elem::U32,
            "uint64" => Elem::U64,
            "float" | "float32" => Elem::F32,
            "double" | "float64" => Elem::F64,
            "string" | "str" | "object" => Elem::Str,
            _ => return None,
        })
    }

    /// Bytes per element in the binary tensor extension (strings are length-prefixed).
    pub fn width(self) -> Option<usize> {
        Some(match self {
            Elem::Bool | Elem::I8 | Elem::U8 => 1,
            Elem::I16 | Elem::U16 => 2,
            Elem::I32 | Elem::U32 | Elem::F32 => 4,
            Elem::I64 | Elem::U64 | Elem::F64 => 8,
            Elem::Str => return None,
        })
    }

    pub fn is_float(self) -> bool {
        matches!(self, Elem::F32 | Elem::F64)
    }
}

impl fmt::Display for Elem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.v2_name())
    }
}

/// Row-major values of one element type.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    Bool(Vec<bool>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
    U64(Vec<u64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Str(Vec<String>),
}

impl Data {
    pub fn with_capacity(elem: Elem, n: usize) -> Data {
        match elem {
            Elem::Bool => Data::Bool(Vec::with_capacity(n)),
            Elem::I8 => Data::I8(Vec::with_capacity(n)),
            Elem::I16 => Data::I16(Vec::with_capacity(n)),
            Elem::I32 => Data::I32(Vec::with_capacity(n)),
            Elem::I64 => Data::I64(Vec::with_capacity(n)),
            Elem::U8 => Data::U8(Vec::with_capacity(n)),
            Elem::U16 => Data::U16(Vec::with_capacity(n)),
            Elem::U32 => Data::U32(Vec::with_capacity(n)),
            Elem::U64 => Data::U64(Vec::with_capacity(n)),
            Elem::F32 => Data::F32(Vec::with_capacity(n)),
            Elem::F64 => Data::F64(Vec::with_capacity(n)),
            Elem::Str => Data::Str(Vec::with_capacity(n)),
        }
    }

    pub fn elem(&self) -> Elem {
        match self {
            Data::Bool(_) => Elem::Bool,
            Data::I8(_) => Elem::I8,
            Data::I16(_) => Elem::I16,
            Data::I32(_) => Elem::I32,
            Data::I64(_) => Elem::I64,
            Data::U8(_) => Elem::U8,
            Data::U16(_) => Elem::U16,
            Data::U32(_) => Elem::U32,
            Data::U64(_) => Elem::U64,
            Data::F32(_) => Elem::F32,
            Data::F64(_) => Elem::F64,
            Data::Str(_) => Elem::Str,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Data::Bool(v) => v.len(),
            Data::I8(v) => v.len(),
            Data::I16(v) => v.len(),
            Data::I32(v) => v.len(),
            Data::I64(v) => v.len(),
            Data::U8(v) => v.len(),
            Data::U16(v) => v.len(),
            Data::U32(v) => v.len(),
            Data::U64(v) => v.len(),
            Data::F32(v) => v.len(),
            Data::F64(v) => v.len(),
            Data::Str(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `other`, which must hold the same element type.
    pub fn extend(&mut self, other: &Data) -> bool {
        macro_rules! ext {
            ($($var:ident),*) => {
                match (self, other) {
                    $( (Data::$var(a), Data::$var(b)) => { a.extend_from_slice(b); true } )*
                    _ => false,
                }
            };
        }
        ext!(Bool, I8, I16, I32, I64, U8, U16, U32, U64, F32, F64, Str)
    }

    /// The values in `range`, as a new vector of the same type.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Data {
        macro_rules! sl {
            ($($var:ident),*) => {
                match self { $( Data::$var(v) => Data::$var(v[range].to_vec()), )* }
            };
        }
        sl!(Bool, I8, I16, I32, I64, U8, U16, U32, U64, F32, F64, Str)
    }

    /// One value as JSON, floats widened so JSON shows the digits Python would print.
    pub fn json_at(&self, i: usize) -> serde_json::Value {
        use serde_json::Value;
        fn float(x: f64) -> Value {
            // JSON has no NaN or infinity; MLflow's client writes them as these strings.
            if x.is_nan() {
                Value::from("NaN")
            } else if x.is_infinite() {
                Value::from(if x > 0.0 { "Infinity" } else { "-Infinity" })
            } else {
                Value::from(x)
            }
        }
        match self {
            Data::Bool(v) => Value::from(v[i]),
            Data::I8(v) => Value::from(v[i]),
            Data::I16(v) => Value::from(v[i]),
            Data::I32(v) => Value::from(v[i]),
            Data::I64(v) => Value::from(v[i]),
            Data::U8(v) => Value::from(v[i]),
            Data::U16(v) => Value::from(v[i]),
            Data::U32(v) => Value::from(v[i]),
            Data::U64(v) => Value::from(v[i]),
            Data::F32(v) => float(f64::from(v[i])),
            Data::F64(v) => float(v[i]),
            Data::Str(v) => Value::from(v[i].as_str()),
        }
    }
}

/// A tensor: its shape (the first dimension is rows) and row-major values.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Data,
}

impl Tensor {
    pub fn new(shape: Vec<usize>, data: Data) -> Tensor {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Tensor { shape, data }
    }

    pub fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    /// Values per row.
    pub fn row_width(&self) -> usize {
        self.shape.iter().skip(1).product()
    }
}

/// A named tensor, as a request supplies it and a model returns it. A classifier's ZipMap
/// output arrives as one probability per class per row, with the class labels beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct Named {
    pub name: String,
    pub tensor: Tensor,
    pub classes: Option<Data>,
}

impl Named {
    pub fn new(name: impl Into<String>, tensor: Tensor) -> Named {
        Named { name: name.into(), tensor, classes: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for e in [
            Elem::Bool,
            Elem::I8,
            Elem::I16,
            Elem::I32,
            Elem::I64,
            Elem::U8,
            Elem::U16,
            Elem::U32,
            Elem::U64,
            Elem::F32,
            Elem::F64,
            Elem::Str,
        ] {
            assert_eq!(Elem::from_v2(e.v2_name()), Some(e));
            assert_eq!(Data::with_capacity(e, 0).elem(), e);
        }
        assert_eq!(Elem::from_mlflow("double"), Some(Elem::F64));
        assert_eq!(Elem::from_v2("FP16"), None);
    }

    #[test]
    fn extend_and_slice_keep_types() {
        let mut a = Data::F32(vec![1.0, 2.0]);
        assert!(a.extend(&Data::F32(vec![3.0])));
        assert!(!a.extend(&Data::I64(vec![3])));
        assert_eq!(a.slice(1..3), Data::F32(vec![2.0, 3.0]));
        assert_eq!(Data::F32(vec![f32::NAN]).json_at(0), serde_json::json!("NaN"));
        assert_eq!(Data::F32(vec![0.1]).json_at(0), serde_json::json!(f64::from(0.1f32)));
    }
}
