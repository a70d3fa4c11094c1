//! Who is making a request, for the audit log. With auth on, the authenticated principal; the
//! caller's own claims are ignored. With auth off, the HTTP Basic
//! user name the MLflow client sends when `MLFLOW_TRACKING_USERNAME` is set, else the
//! `X-Slipway-Actor` header, else "anonymous": a name, not an identity.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use slipway_auth::credentials::{self, Credentials};

pub struct Actor(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Actor {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(caller) = parts.extensions.get::<crate::auth::Caller>() {
            return Ok(Actor(caller.name().to_string()));
        }
        let values = parts.headers.get_all(AUTHORIZATION);
        let basic = match credentials::parse(values.iter().map(|v| v.as_bytes())) {
            Ok(Some(Credentials::Basic { user, .. })) => Some(user),
            _ => None,
        };
        let header = || {
            parts
                .headers
                .get("x-slipway-actor")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .filter(|s| !s.is_empty())
        };
        let name = basic.or_else(header).unwrap_or_else(|| "anonymous".to_string());
        Ok(Actor(name.chars().take(256).collect()))
    }
}
