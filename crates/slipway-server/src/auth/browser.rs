//! Browser login through the OpenID provider, when a client id is configured: `/auth/login`
//! sends the browser to the provider (the authorization-code flow with PKCE, state and nonce in
//! a five-minute cookie scoped to `/auth`), `/auth/callback` exchanges the code for an ID token,
//! checks it (signature, issuer, our client id as audience, expiry, the attempt's nonce) and
//! keeps it as the session cookie until it expires, and `/auth/logout` drops that cookie.
//!
//! Nothing is kept on the server: any replica finishes a login another one started, and a
//! session is as good as the token in it, checked on every request like a bearer JWT (so a
//! disabled user is refused at once, and the provider's groups apply).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::header::{COOKIE, HOST, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use slipway_auth::login::Attempt;

use super::Auth;
use crate::extract::QueryArgs;

/// The session: the provider's ID token for this browser.
pub const SESSION_COOKIE: &str = "slipway_session";
/// One login attempt in flight (state, nonce, PKCE verifier, where to return).
const LOGIN_COOKIE: &str = "slipway_login";
const LOGIN_SECONDS: u64 = 300;

pub fn routes(auth: Arc<Auth>) -> Router {
    Router::new()
        .route("/auth/login", get(login))
        .route("/auth/callback", get(callback))
        .route("/auth/logout", get(logout).post(logout))
        .with_state(auth)
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(k, v)| (k == name).then_some(v))
}

fn set_cookie(name: &str, value: &str, path: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("slipway_invalid=; Max-Age=0"))
}

/// Where the provider sends the browser back: this server as the browser reached it.
fn redirect_uri(headers: &HeaderMap, secure: bool) -> String {
    let host = headers.get(HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    format!("{}://{host}/auth/callback", if secure { "https" } else { "http" })
}

fn page(status: StatusCode, title: &str, message: &str, again: bool) -> Response {
    let body = maud::html! {
        (maud::DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { (title) " · Slipway" } }
            body {
                h1 { (title) }
                p { (message) }
                @if again { p { a href="/auth/login" { "Log in" } } }
            }
        }
    };
    (status, [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")], body.into_string()).into_response()
}

fn redirect(to: &str, cookies: Vec<HeaderValue>) -> Response {
    let mut resp = StatusCode::FOUND.into_response();
    if let Ok(location) = HeaderValue::from_str(to) {
        resp.headers_mut().insert(LOCATION, location);
    }
    for c in cookies {
        resp.headers_mut().append(SET_COOKIE, c);
    }
    resp
}

#[derive(Deserialize)]
struct LoginArgs {
    next: Option<String>,
}

async fn login(State(auth): State<Arc<Auth>>, headers: HeaderMap, QueryArgs(q): QueryArgs<LoginArgs>) -> Response {
    let Some(oidc) = auth.oidc.as_ref().filter(|o| o.browser_login()) else {
        let message = "Browser login is not configured: start the server with --auth-oidc-client-id.";
        return page(StatusCode::NOT_FOUND, "No browser login", message, false);
    };
    let secure = auth.config.secure_cookies;
    let attempt = Attempt::new(q.next.as_deref().unwrap_or("/ui/"));
    let Some(url) = oidc.authorize_url(&attempt, &redirect_uri(&headers, secure)) else {
        return page(StatusCode::NOT_FOUND, "No browser login", "The provider names no authorization endpoint.", false);
    };
    redirect(&url, vec![set_cookie(LOGIN_COOKIE, &attempt.to_cookie(), "/auth", LOGIN_SECONDS, secure)])
}

#[derive(Deserialize)]
struct CallbackArgs {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

async fn callback(
    State(auth): State<Arc<Auth>>,
    headers: HeaderMap,
    QueryArgs(q): QueryArgs<CallbackArgs>,
) -> Response {
    let Some(oidc) = auth.oidc.as_ref().filter(|o| o.browser_login()) else {
        return page(StatusCode::NOT_FOUND, "No browser login", "Browser login is not configured.", false);
    };
    let refused = |why: &str| page(StatusCode::UNAUTHORIZED, "Login failed", why, true);
    if let Some(error) = q.error {
        let detail = q.error_description.unwrap_or_default();
        return refused(&format!("The provider refused the login: {error} {detail}"));
    }
    let Some(attempt) = cookie(&headers, LOGIN_COOKIE).and_then(Attempt::from_cookie) else {
        return refused("This login expired or was started in another browser.");
    };
    let (Some(code), Some(state)) = (q.code, q.state) else {
        return refused("The provider's answer lacks its code or state.");
    };
    if !attempt.matches_state(&state) {
        return refused("This answer is not for the login this browser started.");
    }
    let secure = auth.config.secure_cookies;
    let id_token = match oidc.exchange(&code, &attempt.verifier, &redirect_uri(&headers, secure)).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "exchanging a login code failed");
            return page(StatusCode::BAD_GATEWAY, "Login failed", "The provider did not exchange the code.", true);
        }
    };
    let claims = match oidc.verify_id_token(&id_token).await {
        Ok(c) if c.string("nonce") == Some(attempt.nonce.as_str()) => c,
        Ok(_) => return refused("The provider's token is not for this login (its nonce differs)."),
        Err(e) => return refused(&format!("The provider's token was refused: {e}.")),
    };
    if let Err(e) = auth.oidc_caller(oidc, &claims).await {
        return refused(&e.error.message);
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let session = set_cookie(SESSION_COOKIE, &id_token, "/", claims.exp.saturating_sub(now), secure);
    let forget = set_cookie(LOGIN_COOKIE, "", "/auth", 0, secure);
    redirect(&attempt.next, vec![session, forget])
}

async fn logout(State(auth): State<Arc<Auth>>) -> Response {
    let mut resp = page(StatusCode::OK, "Logged out", "This browser's session has ended.", true);
    resp.headers_mut().append(SET_COOKIE, set_cookie(SESSION_COOKIE, "", "/", 0, auth.config.secure_cookies));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_name_among_several_headers() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("a=1; slipway_session=xyz"));
        h.append(COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "slipway"), None);
    }
}
