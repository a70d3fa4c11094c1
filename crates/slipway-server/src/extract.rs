//! Request extractors that answer bad input in MLflow's error format, not axum's plain text.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

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
        serde_json::error::Category::Data => ApiError::invalid(format!("invalid request: {e}")),
        _ => ApiError::new(slipway_types::ErrorCode::BadRequest, format!("malformed JSON request body: {e}")),
    })
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
        serde_json::from_value(Value::Object(map))
            .map(QueryArgs)
            .map_err(|e| ApiError::invalid(format!("invalid query parameters: {e}")))
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
