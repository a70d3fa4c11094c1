//! Who is calling, and whether they may: the middleware in front of every route when auth is
//! on (`AppState.auth`), and the MLflow-compatible user API and native token API behind it.
//!
//! The middleware runs before routing and before any body is read: it classifies the request
//! ([`policy`]), authenticates its `Authorization` header (HTTP Basic with a password or a token
//! as the password, or a Bearer token), decides, and leaves the [`Caller`] in the request's
//! extensions, where [`crate::actor::Actor`] finds it for the audit log. The pieces that are
//! not HTTP (hashing, parsing, throttling, caching) are `slipway-auth`'s.

pub mod browser;
mod decide;
mod denials;
mod login;
mod memo;
pub mod oidc;
pub mod permissions;
pub mod policy;
pub mod roles;
pub mod runs;
pub mod target;
pub mod users;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderValue;
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use slipway_auth::cache::CredentialCache;
use slipway_auth::credentials;
use slipway_auth::limit::Throttle;
use slipway_auth::password::{self, Argon2Params};
use slipway_auth::token::{self, Scope};
use slipway_auth::{Level, Permission};
use slipway_store::Visibility;
use slipway_store::auth::{Access, AuthStore, ObjectKind};
use slipway_types::ErrorCode;
use tokio::sync::Semaphore;

use crate::error::ApiError;
use decide::Flow;
use policy::Need;

/// How the server authenticates and authorizes.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// The level every authenticated caller has on every object, under their grants; `None`
    /// (the default) gives nothing.
    pub default_permission: Option<Level>,
    /// The longest lifetime a token may be given.
    pub token_max_days: u32,
    pub argon2: Argon2Params,
    /// Password verifications that may run at once; past it requests wait, and past
    /// [`MAX_WAITING_HASHES`] waiting they are told to come back.
    pub hash_workers: usize,
    /// Browser cookies are `Secure`: the server speaks HTTPS.
    pub secure_cookies: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            default_permission: None,
            token_max_days: 90,
            argon2: Argon2Params::default(),
            hash_workers: 1,
            secure_cookies: false,
        }
    }
}

const MAX_WAITING_HASHES: usize = 64;
const REALM: &str = "Basic realm=\"slipway\", charset=\"UTF-8\"";

/// The authenticated caller of one request.
#[derive(Clone)]
pub struct Caller {
    pub access: Arc<Access>,
    /// The token the request came with, if it came with one: its id and scopes.
    pub token: Option<(String, Arc<Vec<Scope>>)>,
}

impl Caller {
    pub fn name(&self) -> &str {
        &self.access.principal.name
    }

    pub fn is_admin(&self) -> bool {
        self.access.principal.is_admin && self.token.as_ref().is_none_or(|(_, s)| token::allows_admin(s))
    }

    /// The caller's level on one object of `kind` (`*`: on every one): admin is MANAGE; else
    /// the best of the grants on it and on `*`, and the default, none if any of them is DENY;
    /// a token caps it by its scopes.
    pub fn level_on(&self, kind: ObjectKind, object: &str, default: Option<Level>) -> Option<Level> {
        let own = if self.access.principal.is_admin {
            Some(Level::Manage)
        } else {
            let grants =
                self.access.grants.iter().filter(|g| g.kind == kind && (g.pattern == "*" || g.pattern == object));
            slipway_auth::effective(grants.filter_map(|g| Permission::from_i64(g.permission)), default)
        };
        match &self.token {
            None => own,
            Some((_, scopes)) => own.min(token::allows(scopes, kind.as_str(), object)),
        }
    }

    /// What a search of `kind` may return to this caller.
    pub fn visibility(&self, default: Option<Level>) -> Visibility {
        if self.access.principal.is_admin {
            Visibility::All
        } else {
            Visibility::Groups { group_ids: self.access.group_ids.clone(), default_read: default >= Some(Level::Read) }
        }
    }
}

/// The auth layer's state: the store, the policy and the in-memory helpers.
pub struct Auth {
    pub store: Arc<dyn AuthStore>,
    pub config: AuthConfig,
    /// Principals whose password was verified, by user and password, at the epoch read.
    verified: CredentialCache<i64>,
    by_address: Throttle,
    by_user: Throttle,
    /// Verified against when the user is unknown, so that costs what a wrong password costs.
    dummy_hash: String,
    hashing: Semaphore,
    waiting: AtomicU64,
    /// Password verifications run (counted on both the known and the unknown-user path).
    pub hashes: AtomicU64,
    memos: memo::Memos,
    pub denials: AtomicU64,
    /// The OpenID provider whose bearer JWTs are accepted, when one is configured.
    pub oidc: Option<Arc<oidc::Oidc>>,
    /// Refused requests on their way to the store, off the request path.
    denial_log: denials::DenialLog,
}

impl Auth {
    pub fn new(store: Arc<dyn AuthStore>, config: AuthConfig) -> Self {
        Self {
            denial_log: denials::DenialLog::start(store.clone()),
            store,
            verified: CredentialCache::new(10_000, Duration::from_secs(600)),
            by_address: Throttle::new(512 << 10, 10, Duration::from_secs(10)),
            by_user: Throttle::new(512 << 10, 10, Duration::from_secs(10)),
            dummy_hash: password::dummy_hash(config.argon2),
            hashing: Semaphore::new(config.hash_workers.max(1)),
            waiting: AtomicU64::new(0),
            hashes: AtomicU64::new(0),
            memos: memo::Memos::new(),
            denials: AtomicU64::new(0),
            oidc: None,
            config,
        }
    }
}

impl Auth {
    /// The auth layer's counters, for `/metrics`.
    pub fn metric_source(self: &Arc<Self>) -> slipway_serving::serving::MetricSource {
        let auth = Arc::downgrade(self);
        Arc::new(move || {
            let Some(auth) = auth.upgrade() else { return Vec::new() };
            let counter = |name, value: &AtomicU64| slipway_serving::metrics::Gauge {
                name,
                labels: Vec::new(),
                value: value.load(std::sync::atomic::Ordering::Relaxed) as f64,
            };
            vec![
                counter("slipway_auth_denied_total", &auth.denials),
                counter("slipway_auth_password_checks_total", &auth.hashes),
                counter("slipway_auth_denials_unrecorded_total", &auth.denial_log.dropped),
            ]
        })
    }
}

/// The middleware: classify, authenticate, decide, then hand on with the [`Caller`].
pub async fn require(State(auth): State<Arc<Auth>>, req: Request, next: Next) -> Response {
    let path = policy::canonical(req.uri().path()).into_owned();
    let need = policy::classify(req.method(), &path);
    let address = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let headers = req.headers().get_all(AUTHORIZATION);
    let parsed = credentials::parse(headers.iter().map(HeaderValue::as_bytes));
    // Without an Authorization header, a browser's session cookie.
    let session = match &parsed {
        Ok(None) => auth.session_of(req.headers()),
        _ => None,
    };
    let by_cookie = session.is_some();
    let method = req.method().clone();
    let mut seen = denials::Seen::new(address, &method, req.uri().path());
    let authenticated = match (parsed, session) {
        (Ok(Some(creds)), _) => {
            seen.claimed(&creds);
            auth.authenticate(creds, address).await
        }
        (Ok(None), Some((oidc, token))) => auth.by_session(&oidc, &token).await,
        (Ok(None), None) if need == Need::Public => return next.run(req).await,
        (Ok(None), None) => return auth.login_or_challenge(&req, unauthenticated("authentication required")),
        (Err(credentials::Malformed::Repeated), _) => {
            let e = ApiError::new(ErrorCode::BadRequest, "send one authorization header");
            auth.denial_log.note(&seen, &e);
            return e.into_response();
        }
        (Err(credentials::Malformed::Malformed), _) => {
            let e = unauthenticated("malformed credentials");
            auth.denial_log.note(&seen, &e);
            return challenge(e);
        }
    };
    let caller = match authenticated {
        Ok(c) => c,
        // An ended session on an open route: the request goes on as an anonymous one.
        Err(_) if by_cookie && need == Need::Public => return next.run(req).await,
        Err(e) => {
            auth.denial_log.note(&seen, &e);
            if e.error.error_code == ErrorCode::Unauthenticated {
                return auth.login_or_challenge(&req, e);
            }
            return e.into_response();
        }
    };
    seen.principal = Some(caller.name().to_string());
    seen.token = caller.token.as_ref().map(|(id, _)| id.clone());
    if by_cookie && !req.method().is_safe() && !same_origin(req.headers()) {
        auth.denials.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let message = "a change sent with the session cookie must come from this server's own pages";
        let e = ApiError::new(ErrorCode::PermissionDenied, message);
        auth.denial_log.note(&seen, &e);
        return e.into_response();
    }
    if need == Need::Unlisted {
        return unlisted(&method, req.uri().path(), &path);
    }
    let decided = match need {
        Need::Level(kind, level) => auth.authorize(&caller, kind, level, req, &path).await,
        other => auth.decide(other, &caller).map(|()| Flow::Forward(req, None)),
    };
    let (mut req, created) = match decided {
        Ok(Flow::Forward(req, created)) => (req, created),
        Ok(Flow::Answer(resp)) => return resp,
        Err(e) => {
            tracing::info!(caller = caller.name(), %method, path, "request denied");
            if matches!(e.error.error_code, ErrorCode::PermissionDenied | ErrorCode::ResourceDoesNotExist) {
                auth.denial_log.note(&seen, &e);
            }
            return e.into_response();
        }
    };
    req.extensions_mut().insert(Reader(Some((caller.clone(), auth.default()))));
    req.extensions_mut().insert(caller.clone());
    let resp = next.run(req).await;
    if resp.status() == axum::http::StatusCode::FORBIDDEN {
        // Refused by the handler's own rule (a user's record, a grant on what they do not manage).
        let e = ApiError::new(ErrorCode::PermissionDenied, "refused by the handler");
        auth.denial_log.note(&seen, &e);
    }
    match created {
        Some(created) => auth.grant_creator(&caller, created, resp).await,
        None => resp,
    }
}

/// Whether a request's `Origin` is the server it was sent to (`Host`): what a browser sends
/// with a change made by this server's own pages, and cannot be made to send by another site's.
fn same_origin(headers: &axum::http::HeaderMap) -> bool {
    let host = headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok());
    let origin = headers.get(axum::http::header::ORIGIN).and_then(|o| o.to_str().ok());
    match (origin, host) {
        (Some(origin), Some(host)) => origin.split_once("://").is_some_and(|(_, rest)| rest == host),
        _ => false,
    }
}

impl Auth {
    /// The provider and ID token of a browser session cookie, when browser login is on.
    fn session_of(&self, headers: &axum::http::HeaderMap) -> Option<(Arc<oidc::Oidc>, String)> {
        let oidc = self.oidc.as_ref().filter(|o| o.browser_login())?;
        let token = browser::cookie(headers, browser::SESSION_COOKIE).filter(|t| !t.is_empty())?;
        Some((oidc.clone(), token.to_string()))
    }

    /// A page a browser asked for, without a session, is sent to log in (when browser login is
    /// on); anything else gets 401 with the Basic challenge.
    fn login_or_challenge(&self, req: &Request, e: ApiError) -> Response {
        let wants_page = req.method() == axum::http::Method::GET
            && req
                .headers()
                .get(axum::http::header::ACCEPT)
                .and_then(|a| a.to_str().ok())
                .is_some_and(|a| a.contains("text/html"));
        if !wants_page || !self.oidc.as_ref().is_some_and(|o| o.browser_login()) {
            return challenge(e);
        }
        let here = req.uri().path_and_query().map_or("/ui/", |p| p.as_str());
        let next: String = form_urlencoded::byte_serialize(here.as_bytes()).collect();
        let mut resp = axum::http::StatusCode::FOUND.into_response();
        if let Ok(to) = HeaderValue::from_str(&format!("/auth/login?next={next}")) {
            resp.headers_mut().insert(axum::http::header::LOCATION, to);
        }
        resp
    }
}

/// What the caller may read, for handlers that show objects of several kinds at once (lineage,
/// the audit log) and redact what it may not: from the middleware when auth is on; without
/// auth, or on a public route, everything.
#[derive(Clone, Default)]
pub struct Reader(Option<(Caller, Option<Level>)>);

impl Reader {
    pub fn may_read(&self, kind: ObjectKind, object: &str) -> bool {
        self.0.as_ref().is_none_or(|(c, default)| c.level_on(kind, object, *default) >= Some(Level::Read))
    }

    /// Whether the caller holds `level` on every object of `kind`, as a route that names no
    /// single object needs (the data routes need it on every experiment).
    pub fn holds_on_all(&self, kind: ObjectKind, level: Level) -> bool {
        self.0.as_ref().is_none_or(|(c, default)| c.level_on(kind, "*", *default) >= Some(level))
    }

    /// Everything is visible: auth off, or an administrator (not through a narrower token).
    pub fn sees_all(&self) -> bool {
        self.0.as_ref().is_none_or(|(c, _)| c.is_admin())
    }

    /// What a search of one kind may return (as [`Visible`] for the routes the table marks
    /// as searches); `None` when a token scoped to single objects of `kind` asks, as such a
    /// token does not search.
    pub fn visibility(&self, kind: ObjectKind) -> Option<Visibility> {
        match &self.0 {
            None => Some(Visibility::All),
            Some((c, default)) => {
                let searches =
                    c.token.as_ref().is_none_or(|(_, s)| token::allows(s, kind.as_str(), "*") >= Some(Level::Read));
                searches.then(|| c.visibility(*default))
            }
        }
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Reader {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<Reader>().cloned().unwrap_or_default())
    }
}

/// What a search handler may return: from the middleware when auth is on, else everything.
pub struct Visible(pub Visibility);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Visible {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Visible(parts.extensions.get::<Visibility>().cloned().unwrap_or_default()))
    }
}

/// A request the route table lacks reaches no handler: 405 on a listed path, else 404, as the
/// router would answer them.
fn unlisted(method: &axum::http::Method, path: &str, canonical: &str) -> Response {
    let allowed = policy::methods(canonical);
    if allowed.is_empty() {
        return ApiError::new(ErrorCode::EndpointNotFound, format!("no endpoint {method} {path}")).into_response();
    }
    let mut resp = ApiError::new(ErrorCode::EndpointNotFound, format!("method {method} is not allowed on {path}"))
        .with_status(axum::http::StatusCode::METHOD_NOT_ALLOWED)
        .into_response();
    if let Ok(allow) = HeaderValue::from_str(&allowed.join(",")) {
        resp.headers_mut().insert(axum::http::header::ALLOW, allow);
    }
    resp
}

fn unauthenticated(message: &str) -> ApiError {
    ApiError::new(ErrorCode::Unauthenticated, message)
}

fn challenge(e: ApiError) -> Response {
    let mut resp = e.into_response();
    resp.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static(REALM));
    resp
}
