//! Proto-JSON conventions: int64 as number or string, doubles with "NaN"/"Infinity" strings.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serializer};
use std::fmt;

/// Serialises a double as proto JSON does: non-finite values become strings.
pub fn ser_f64<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_nan() {
        s.serialize_str("NaN")
    } else if v.is_infinite() {
        s.serialize_str(if *v > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        s.serialize_f64(*v)
    }
}

struct F64Visitor;
impl<'de> Visitor<'de> for F64Visitor {
    type Value = f64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number or one of \"NaN\", \"Infinity\", \"-Infinity\"")
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        match v {
            "NaN" | "nan" => Ok(f64::NAN),
            "Infinity" | "inf" => Ok(f64::INFINITY),
            "-Infinity" | "-inf" => Ok(f64::NEG_INFINITY),
            other => other.parse().map_err(|_| E::invalid_value(de::Unexpected::Str(other), &self)),
        }
    }
}

/// Deserialises a proto double.
pub fn de_f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    d.deserialize_any(F64Visitor)
}

/// Deserialises an optional proto double.
pub fn de_opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    struct W(#[serde(deserialize_with = "de_f64")] f64);
    Ok(Option::<W>::deserialize(d)?.map(|w| w.0))
}

struct I64Visitor;
impl<'de> Visitor<'de> for I64Visitor {
    type Value = i64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an integer or a string holding one")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        if v.fract() == 0.0 && v.abs() < 9.0e18 {
            Ok(v as i64)
        } else {
            Err(E::invalid_value(de::Unexpected::Float(v), &self))
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
        v.trim().parse().map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
    }
}

/// Deserialises an optional proto int64 (number or string).
pub fn de_opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    struct W(#[serde(deserialize_with = "de_i64")] i64);
    Ok(Option::<W>::deserialize(d)?.map(|w| w.0))
}

/// Deserialises a proto int64 (number or string).
pub fn de_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    d.deserialize_any(I64Visitor)
}

/// Deserialises a proto bool, which query strings carry as "true"/"false".
pub fn de_opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum B {
        B(bool),
        S(String),
    }
    match Option::<B>::deserialize(d)? {
        None => Ok(None),
        Some(B::B(b)) => Ok(Some(b)),
        Some(B::S(s)) => match s.as_str() {
            "true" | "True" | "1" => Ok(Some(true)),
            "false" | "False" | "0" => Ok(Some(false)),
            _ => Err(de::Error::invalid_value(de::Unexpected::Str(&s), &"true or false")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct M {
        #[serde(deserialize_with = "de_f64")]
        v: f64,
        #[serde(default, deserialize_with = "de_opt_i64")]
        t: Option<i64>,
    }

    #[test]
    fn doubles_and_int64s_accept_proto_forms() {
        let m: M = serde_json::from_str(r#"{"v":"NaN","t":"12"}"#).unwrap();
        assert!(m.v.is_nan());
        assert_eq!(m.t, Some(12));
        let m: M = serde_json::from_str(r#"{"v":"-Infinity"}"#).unwrap();
        assert_eq!(m.v, f64::NEG_INFINITY);
        assert_eq!(m.t, None);
        assert!(serde_json::from_str::<M>(r#"{"v":"abc"}"#).is_err());
        assert!(serde_json::from_str::<M>(r#"{"v":1,"t":"x"}"#).is_err());
    }

    #[test]
    fn non_finite_doubles_serialise_as_strings() {
        #[derive(serde::Serialize)]
        struct O(#[serde(serialize_with = "ser_f64")] f64);
        assert_eq!(serde_json::to_string(&O(f64::INFINITY)).unwrap(), "\"Infinity\"");
        assert_eq!(serde_json::to_string(&O(1.5)).unwrap(), "1.5");
    }
}
