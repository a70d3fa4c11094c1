//! Request extractors that answer bad input in MLflow's error format, not axum's plain text.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use serde_path_to_error::Segment;

use crate::error::ApiError;

/// The largest JSON request body accepted (dataset profiles may reach 16 MiB).
pub const MAX_JSON_BODY: usize = 32 << 20;

/// A JSON body parsed into `T`; an empty body counts as `{}` (the client sends none for some
/// DELETE and PATCH calls).
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let body = axum::body::to_bytes(req.into_body(), MAX_JSON_BODY).await.map_err(|_| {
            ApiError::invalid(format!("request body is larger than the limit of {MAX_JSON_BODY} bytes"))
                .with_status(StatusCode::PAYLOAD_TOO_LARGE)
        })?;
        parse_json(&body).map(JsonBody)
    }
}

/// Parses straight into `T` (no intermediate JSON tree: a 1000-metric batch would build one).
/// Syntax errors are BAD_REQUEST; well-formed JSON of the wrong shape is INVALID_PARAMETER_VALUE.
pub fn parse_json<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    let text: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { body };
    if text.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::new(slipway_types::ErrorCode::BadRequest, "request body must be a JSON object"));
    }
    serde_json::from_slice(text).map_err(|e| match e.classify() {
        // Well-formed JSON of the wrong shape: parse it again, this time tracking the path, to
        // name the field and value as MLflow does. Only failed requests pay for the second pass.
        serde_json::error::Category::Data => match serde_json::from_slice::<Value>(text) {
            Ok(tree) => shape_error::<T>(&tree),
            Err(_) => ApiError::invalid("invalid request body"),
        },
        _ => ApiError::new(slipway_types::ErrorCode::BadRequest, format!("malformed JSON request body: {e}")),
    })
}

/// The error MLflow's server gives for the first field of `tree` that does not fit `T`.
fn shape_error<T: DeserializeOwned>(tree: &Value) -> ApiError {
    let Err(e) = serde_path_to_error::deserialize::<_, T>(tree) else {
        return ApiError::invalid("invalid request body: it does not fit the request's shape");
    };
    let segments: Vec<&Segment> = e.path().iter().collect();
    let path = mlflow_path(&segments);
    // serde names a missing non-optional field only in its message; MLflow names it in full.
    let inner = e.inner().to_string();
    if let Some(field) = inner.strip_prefix("missing field `").and_then(|r| r.split('`').next()) {
        let full = if path.is_empty() { field.to_string() } else { format!("{path}.{field}") };
        return ApiError::missing(&full);
    }
    // Fields MLflow has no words for (our own API's strict shapes) keep serde's description of
    // the request, which names only what the client sent and what was expected.
    let shape_only = inner.starts_with("unknown field") || inner.starts_with("unknown variant");
    match (path.is_empty() || shape_only, value_at(tree, &segments)) {
        (false, Some(value)) => invalid_value(&path, value),
        _ => ApiError::invalid(format!("invalid request body: {inner}")),
    }
}

/// `metrics[0].timestamp`: map keys joined by dots, list positions in brackets, as MLflow's
/// handlers name nested fields.
fn mlflow_path(segments: &[&Segment]) -> String {
    let mut out = String::new();
    for seg in segments {
        match seg {
            Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    out
}

fn value_at<'a>(tree: &'a Value, segments: &[&Segment]) -> Option<&'a Value> {
    segments.iter().try_fold(tree, |v, seg| match seg {
        Segment::Map { key } => v.get(key.as_str()),
        Segment::Seq { index } => v.get(*index),
        Segment::Enum { .. } | Segment::Unknown => Some(v),
    })
}

/// MLflow's message for a value of the wrong type: `invalid_value(...)` with the hint and the
/// pointer to the docs that `_validate_param_against_schema` adds, word for word.
pub fn invalid_value(path: &str, value: &Value) -> ApiError {
    ApiError::invalid(format!(
        "Invalid value {} for parameter '{path}' supplied:  Hint: Value was of type '{}'. \
         See the API docs for more information about request parameters.",
        python_json(value),
        python_type(value)
    ))
}

/// The name Python gives the type `json.loads` makes of this value.
fn python_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// `json.dumps(v, sort_keys=True, separators=(",", ":"))`: compact, keys sorted (serde_json's
/// map is ordered by key), non-ASCII escaped as `\uXXXX` as Python's default does.
fn python_json(v: &Value) -> String {
    let mut out = String::new();
    for c in v.to_string().chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

/// Query parameters parsed into `T`; repeated keys become lists, as the MLflow client sends
/// them for GET calls. Values stay strings, and the wire types in `slipway_types::json` accept
/// strings for numbers and booleans.
pub struct QueryArgs<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryArgs<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let mut map = Map::new();
        for (k, v) in form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()) {
            let v = Value::String(v.into_owned());
            match map.get_mut(k.as_ref()) {
                Some(Value::Array(items)) => items.push(v),
                Some(prev) => {
                    let first = prev.take();
                    *prev = Value::Array(vec![first, v]);
                }
                None => {
                    map.insert(k.into_owned(), v);
                }
            }
        }
        let tree = Value::Object(map);
        T::deserialize(&tree).map(QueryArgs).map_err(|_| shape_error::<T>(&tree))
    }
}

/// Proto repeated fields sent as a query string arrive as one string when there is one value.
pub fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    use serde::Deserialize;
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    })
}

/// A page of results serialised straight to the response bytes as
/// `{"<field>": [...], "next_page_token": "..."}`, without building a JSON tree first: large
/// pages (25,000 metric points) would otherwise cost several copies of themselves in memory.
pub struct Paged<T> {
    pub field: &'static str,
    pub items: Vec<T>,
    pub next_page_token: Option<String>,
}

impl<T> Paged<T> {
    pub fn respond(field: &'static str, page: slipway_store::Page<T>) -> axum::response::Response
    where
        T: serde::Serialize,
    {
        use axum::response::IntoResponse;
        axum::Json(Paged { field, items: page.items, next_page_token: page.next_page_token }).into_response()
    }
}

impl<T: serde::Serialize> serde::Serialize for Paged<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry(self.field, &self.items)?;
        if let Some(t) = &self.next_page_token {
            m.serialize_entry("next_page_token", t)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        key: String,
        #[serde(default, deserialize_with = "slipway_types::json::de_opt_i64")]
        timestamp: Option<i64>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: Option<String>,
        #[serde(default)]
        metrics: Vec<Inner>,
    }

    fn message(body: &str) -> String {
        match parse_json::<Outer>(&Bytes::from(body.to_string())) {
            Ok(v) => panic!("accepted {body}: {v:?}"),
            Err(e) => e.error.message,
        }
    }

    #[test]
    fn wrong_types_are_named_in_mlflow_words() {
        assert_eq!(
            message(r#"{"name": 123}"#),
            "Invalid value 123 for parameter 'name' supplied:  Hint: Value was of type 'int'. \
             See the API docs for more information about request parameters."
        );
        assert!(message(r#"{"metrics": "foo"}"#).starts_with("Invalid value \"foo\" for parameter 'metrics' supplied"));
        assert!(
            message(
                r#"{"metrics": [{"key": "a", "timestamp": 1}, {"key": "b", "timestamp": [1, {"z": 1, "a": "é"}]}]}"#
            )
            .starts_with(
                "Invalid value [1,{\"a\":\"\\u00e9\",\"z\":1}] for parameter 'metrics[1].timestamp' supplied:  \
                     Hint: Value was of type 'list'."
            )
        );
        assert!(message(r#"{"name": 9.5}"#).contains("Value was of type 'float'"));
        assert!(message(r#"{"name": true}"#).starts_with("Invalid value true for parameter 'name'"));
    }

    #[test]
    fn missing_nested_fields_are_named_by_position() {
        assert!(
            message(r#"{"metrics": [{"timestamp": 1}]}"#)
                .starts_with("Missing value for required parameter 'metrics[0].key'.")
        );
    }

    #[test]
    fn shapes_mlflow_has_no_words_for_keep_the_parser_description_without_positions() {
        let m = message(r#"{"name": "x", "nope": 1}"#);
        assert!(m.starts_with("invalid request body: unknown field `nope`"), "{m}");
        assert!(!m.contains("line"), "{m}");
    }

    #[test]
    fn syntax_errors_stay_bad_requests() {
        let e = parse_json::<Outer>(&Bytes::from_static(b"{\"name\": ")).unwrap_err();
        assert_eq!(e.error.error_code, slipway_types::ErrorCode::BadRequest);
    }
}
