//! One value of a request into a typed tensor buffer: JSON values, CSV text and numbers
//! already parsed, each converted to the model's element type as numpy's `astype` would,
//! with nulls allowed only where the signature says a column is optional.

use serde_json::Value;

use crate::tensor::{Data, Elem};

/// One cell of a tabular request: a JSON value, or CSV text.
#[derive(Clone, Copy)]
pub(super) enum Cell<'a> {
    Json(&'a Value),
    Text(&'a str),
    /// A number parsed straight from the body (only for float inputs; see `fast`).
    Num(f64),
}

/// Appends one value to `data`, converting it to the model's element type.
pub(super) fn push(data: &mut Data, cell: Cell<'_>, required: bool) -> Result<(), String> {
    match cell {
        Cell::Json(v) => push_json(data, v, required),
        Cell::Text(s) => push_text(data, s, required),
        Cell::Num(x) => push_float(data, x),
    }
}

fn float_word(s: &str) -> Option<f64> {
    match s {
        "NaN" | "nan" => Some(f64::NAN),
        "Infinity" | "inf" | "+inf" => Some(f64::INFINITY),
        "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// One JSON value of a tensor (never null).
pub(crate) fn push_scalar(data: &mut Data, v: &Value) -> Result<(), String> {
    push_json(data, v, true)
}

pub(super) fn push_json(data: &mut Data, v: &Value, required: bool) -> Result<(), String> {
    let elem = data.elem();
    if v.is_null() {
        if elem.is_float() && !required {
            return push_float(data, f64::NAN);
        }
        return Err("null is not allowed here".into());
    }
    match elem {
        Elem::F32 | Elem::F64 => {
            // Parse as f64 then narrow, as numpy's astype does: parsing straight to f32 can
            // round differently by one ulp and flip a label at a threshold.
            let x = match v {
                Value::Number(n) => n.as_f64().ok_or("not a finite number")?,
                Value::String(s) => float_word(s).ok_or_else(|| format!("expected a number, got \"{s}\""))?,
                other => return Err(format!("expected a number, got {other}")),
            };
            push_float(data, x)
        }
        Elem::Str => match v {
            Value::String(s) => {
                if let Data::Str(out) = data {
                    out.push(s.clone());
                }
                Ok(())
            }
            other => Err(format!("expected a string, got {other}")),
        },
        Elem::Bool => match v {
            Value::Bool(b) => {
                if let Data::Bool(out) = data {
                    out.push(*b);
                }
                Ok(())
            }
            other => Err(format!("expected true or false, got {other}")),
        },
        _ => {
            let n = match v {
                Value::Number(n) => n,
                other => return Err(format!("expected an integer, got {other}")),
            };
            let i = match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => i128::from(i),
                (None, Some(u), _) => i128::from(u),
                (None, None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => f as i128,
                _ => return Err(format!("expected an integer, got {n}")),
            };
            push_int(data, i)
        }
    }
}

fn push_text(data: &mut Data, s: &str, required: bool) -> Result<(), String> {
    let elem = data.elem();
    if s.is_empty() && elem != Elem::Str {
        if elem.is_float() && !required {
            return push_float(data, f64::NAN);
        }
        return Err("an empty value is not allowed here".into());
    }
    match elem {
        Elem::F32 | Elem::F64 => {
            let x = s
                .trim()
                .parse::<f64>()
                .ok()
                .or_else(|| float_word(s.trim()))
                .ok_or_else(|| format!("expected a number, got \"{s}\""))?;
            push_float(data, x)
        }
        Elem::Str => {
            if let Data::Str(out) = data {
                out.push(s.to_string());
            }
            Ok(())
        }
        Elem::Bool => {
            let b = match s.trim() {
                "true" | "True" | "TRUE" | "1" => true,
                "false" | "False" | "FALSE" | "0" => false,
                other => return Err(format!("expected true or false, got \"{other}\"")),
            };
            if let Data::Bool(out) = data {
                out.push(b);
            }
            Ok(())
        }
        _ => {
            let t = s.trim();
            let i = t
                .parse::<i128>()
                .ok()
                .or_else(|| t.parse::<f64>().ok().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15).map(|f| f as i128))
                .ok_or_else(|| format!("expected an integer, got \"{s}\""))?;
            push_int(data, i)
        }
    }
}

fn push_float(data: &mut Data, x: f64) -> Result<(), String> {
    match data {
        Data::F32(v) => v.push(x as f32),
        Data::F64(v) => v.push(x),
        _ => return Err("expected a number".into()),
    }
    Ok(())
}

fn push_int(data: &mut Data, i: i128) -> Result<(), String> {
    macro_rules! put {
        ($v:expr, $t:ty) => {
            $v.push(<$t>::try_from(i).map_err(|_| format!("{i} does not fit in {}", stringify!($t)))?)
        };
    }
    match data {
        Data::I8(v) => put!(v, i8),
        Data::I16(v) => put!(v, i16),
        Data::I32(v) => put!(v, i32),
        Data::I64(v) => put!(v, i64),
        Data::U8(v) => put!(v, u8),
        Data::U16(v) => put!(v, u16),
        Data::U32(v) => put!(v, u32),
        Data::U64(v) => put!(v, u64),
        _ => return Err("expected an integer".into()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_parsed_wide_then_narrowed() {
        let mut d = Data::with_capacity(Elem::F32, 1);
        push_json(&mut d, &serde_json::json!(0.1), true).unwrap();
        assert_eq!(d, Data::F32(vec![0.1f64 as f32]));
        assert!(push_json(&mut d, &serde_json::json!("abc"), true).unwrap_err().contains("\"abc\""));
        assert!(push_json(&mut d, &Value::Null, true).is_err());
        push_json(&mut d, &Value::Null, false).unwrap();
    }

    #[test]
    fn integers_are_range_checked() {
        let mut d = Data::with_capacity(Elem::I8, 1);
        assert!(push_json(&mut d, &serde_json::json!(300), true).unwrap_err().contains("i8"));
        assert!(push_json(&mut d, &serde_json::json!(1.5), true).is_err());
        push_json(&mut d, &serde_json::json!(2.0), true).unwrap();
        assert_eq!(d, Data::I8(vec![2]));
    }
}
