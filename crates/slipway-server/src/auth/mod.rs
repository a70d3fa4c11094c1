//! Who is calling, and whether they may: the middleware in front of every route when auth is
//! on (`AppState.auth`), and the MLflow-compatible user API and native token API behind it.
//!
//! The middleware runs before routing and before any body is read: it classifies the request
//! ([`policy`]), authenticates its `Authorization` header (HTTP Basic with a password or a token
//! as the password, or a Bearer token), decides, and leaves the [`Caller`] in the request's
//! extensions, where [`crate::actor::Actor`] finds it for the audit log. The pieces that are
//! not HTTP (hashing, parsing, throttling, caching) are `slipway-auth`'s.

pub mod policy;
pub mod users;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderValue;
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use slipway_auth::cache::CredentialCache;
use slipway_auth::credentials::{self, Credentials};
use slipway_auth::limit::Throttle;
use slipway_auth::password::{self, Argon2Params, Verified};
use slipway_auth::token::{self, Scope};
use slipway_auth::{Level, Permission};
use slipway_store::StoreError;
use slipway_store::auth::{Access, AuthStore, ObjectKind};
use slipway_types::ErrorCode;
use tokio::sync::Semaphore;

use crate::error::ApiError;
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
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self { default_permission: None, token_max_days: 90, argon2: Argon2Params::default(), hash_workers: 1 }
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

    /// The caller's level on every object of `kind`: admin is MANAGE; else the best of the
    /// `*` grants and the default, none if any `*` grant is DENY; a token caps it by its scopes.
    pub fn level(&self, kind: ObjectKind, default: Option<Level>) -> Option<Level> {
        let own = if self.access.principal.is_admin {
            Some(Level::Manage)
        } else {
            let grants = self.access.grants.iter().filter(|g| g.kind == kind && g.pattern == "*");
            slipway_auth::effective(grants.filter_map(|g| Permission::from_i64(g.permission)), default)
        };
        match &self.token {
            None => own,
            Some((_, scopes)) => own.min(token::allows(scopes, kind.as_str(), "*")),
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
    pub denials: AtomicU64,
}

impl Auth {
    pub fn new(store: Arc<dyn AuthStore>, config: AuthConfig) -> Self {
        Self {
            store,
            verified: CredentialCache::new(10_000, Duration::from_secs(600)),
            by_address: Throttle::new(512 << 10, 10, Duration::from_secs(10)),
            by_user: Throttle::new(512 << 10, 10, Duration::from_secs(10)),
            dummy_hash: password::dummy_hash(config.argon2),
            hashing: Semaphore::new(config.hash_workers.max(1)),
            waiting: AtomicU64::new(0),
            hashes: AtomicU64::new(0),
            denials: AtomicU64::new(0),
            config,
        }
    }

    /// Hashes a new password on the blocking pool, under the same bound as verifications.
    pub async fn hash_password(&self, password: &str) -> Result<String, ApiError> {
        password::check_new(password).map_err(|e| ApiError::invalid(e.to_string()))?;
        let _permit = self.hashing.acquire().await.map_err(|_| unavailable())?;
        let (password, params) = (password.to_string(), self.config.argon2);
        tokio::task::spawn_blocking(move || password::hash(&password, params)).await.map_err(|_| unavailable())
    }

    /// Verifies a password (always exactly one hash computation, known user or not).
    async fn verify(&self, password: &str, stored: Option<String>) -> Result<Verified, ApiError> {
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= MAX_WAITING_HASHES as u64 {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(busy());
        }
        let permit = self.hashing.acquire().await;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        let _permit = permit.map_err(|_| unavailable())?;
        self.hashes.fetch_add(1, Ordering::Relaxed);
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.dummy_hash.clone());
        let (password, params) = (password.to_string(), self.config.argon2);
        let outcome = tokio::task::spawn_blocking(move || password::verify(&password, &stored, params))
            .await
            .map_err(|_| unavailable())?;
        match outcome {
            Ok(v) if known => Ok(v),
            Ok(_) => Ok(Verified::Mismatch),
            Err(e) => {
                tracing::warn!(error = %e, "a stored password hash cannot be verified");
                Ok(Verified::Mismatch)
            }
        }
    }

    /// Who sent `creds`, or why they are refused.
    pub async fn authenticate(&self, creds: Credentials, address: Option<IpAddr>) -> Result<Caller, ApiError> {
        match creds {
            Credentials::Bearer(t) => self.by_token(&t, None).await,
            Credentials::Basic { user, password } => {
                if token::parse(&password).is_some() {
                    // A token as the password, with user `token` or the token's owner.
                    let owner = (user != "token").then_some(user.as_str());
                    return self.by_token(&password, owner).await;
                }
                self.by_password(&user, &password, address).await
            }
        }
    }

    async fn by_token(&self, presented: &str, owner: Option<&str>) -> Result<Caller, ApiError> {
        let Some((id, secret)) = token::parse(presented) else {
            return Err(unauthenticated("invalid token"));
        };
        let record = match self.store.token(id.to_string()).await {
            Ok(r) => r,
            Err(StoreError::NotFound(_)) => return Err(unauthenticated("invalid token")),
            Err(e) => return Err(e.into()),
        };
        let valid = token::digest_hex_matches(secret, &record.secret_sha256)
            && owner.is_none_or(|o| o == record.principal_name);
        if !valid {
            return Err(unauthenticated("invalid token"));
        }
        if record.revoked_ms.is_some() {
            return Err(unauthenticated("this token was revoked"));
        }
        let now = slipway_store::now_ms();
        if record.expires_ms <= now {
            return Err(unauthenticated("this token has expired"));
        }
        let scopes: Vec<Scope> = serde_json::from_str(&record.scopes_json)
            .map_err(|e| StoreError::Backend(format!("token {id} has unreadable scopes: {e}")))?;
        let access = self.store.access(record.principal_id).await?;
        if access.principal.disabled {
            return Err(unauthenticated("this account is disabled"));
        }
        if record.last_used_ms.is_none_or(|t| now - t > 60_000) {
            // Bookkeeping; the request does not wait on it or fail with it.
            let (store, id) = (self.store.clone(), record.id.clone());
            tokio::spawn(async move {
                if let Err(e) = store.touch_token(id, now).await {
                    tracing::debug!(error = %e, "recording a token's use failed");
                }
            });
        }
        Ok(Caller { access: Arc::new(access), token: Some((record.id, Arc::new(scopes))) })
    }

    async fn by_password(&self, user: &str, password: &str, address: Option<IpAddr>) -> Result<Caller, ApiError> {
        let epoch = self.store.auth_epoch().await?;
        if let Some(id) = self.verified.get(user, password, epoch) {
            let access = self.store.access(id).await?;
            if access.epoch == epoch {
                return Ok(Caller { access: Arc::new(access), token: None });
            }
        }
        let address_key = address.map(throttle_key);
        // Throttled before any lookup or hash: a guesser learns nothing and costs nothing.
        for (throttle, key) in
            [(&self.by_user, Some(user.as_bytes().to_vec())), (&self.by_address, address_key.clone())]
        {
            if let Some(key) = key
                && let Err(wait) = throttle.check(&key)
            {
                return Err(ApiError::new(ErrorCode::RequestLimitExceeded, "too many failed logins; try again later")
                    .with_retry_after(wait));
            }
        }
        let principal = match self.store.principal(user.to_string()).await {
            Ok(p) => Some(p),
            Err(StoreError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let stored = principal.as_ref().filter(|p| !p.disabled).and_then(|p| p.password_hash.clone());
        match self.verify(password, stored.clone()).await? {
            Verified::Mismatch => {
                self.by_user.fail(user.as_bytes());
                if let Some(key) = address_key {
                    self.by_address.fail(&key);
                }
                Err(unauthenticated("invalid user name or password"))
            }
            verified => {
                let principal = principal.ok_or_else(|| unauthenticated("invalid user name or password"))?;
                if verified == Verified::MatchNeedsRehash
                    && let Some(old) = stored
                {
                    let new = self.hash_password(password).await?;
                    self.store.rehash_password(principal.id, old, new).await?;
                }
                let access = self.store.access(principal.id).await?;
                self.verified.insert(user, password, access.epoch, principal.id);
                Ok(Caller { access: Arc::new(access), token: None })
            }
        }
    }

    fn decide(&self, need: Need, caller: &Caller) -> Result<(), ApiError> {
        let allowed = match need {
            Need::Public | Need::Authenticated => true,
            Need::Admin => caller.is_admin(),
            Need::Level(kind, level) => caller.level(kind, self.config.default_permission) >= Some(level),
            Need::ReadAll => {
                ObjectKind::ALL.iter().all(|&k| caller.level(k, self.config.default_permission) >= Some(Level::Read))
            }
        };
        if allowed {
            return Ok(());
        }
        self.denials.fetch_add(1, Ordering::Relaxed);
        let what = match need {
            Need::Admin => "this needs an administrator".to_string(),
            Need::Level(kind, level) => format!("this needs {} on {}s", level.as_str(), kind.as_str()),
            _ => "this needs READ on experiments, registered models and deployments".to_string(),
        };
        Err(ApiError::new(ErrorCode::PermissionDenied, format!("permission denied: {what}")))
    }
}

/// The middleware: classify, authenticate, decide, then hand on with the [`Caller`].
pub async fn require(State(auth): State<Arc<Auth>>, mut req: Request, next: Next) -> Response {
    let need = policy::classify(req.method(), req.uri().path());
    let address = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let headers = req.headers().get_all(AUTHORIZATION);
    let parsed = credentials::parse(headers.iter().map(HeaderValue::as_bytes));
    let creds = match parsed {
        Ok(Some(c)) => c,
        Ok(None) if need == Need::Public => return next.run(req).await,
        Ok(None) => return challenge(unauthenticated("authentication required")),
        Err(credentials::Malformed::Repeated) => {
            return ApiError::new(ErrorCode::BadRequest, "send one authorization header").into_response();
        }
        Err(credentials::Malformed::Malformed) => return challenge(unauthenticated("malformed credentials")),
    };
    let caller = match auth.authenticate(creds, address).await {
        Ok(c) => c,
        Err(e) if e.error.error_code == ErrorCode::Unauthenticated => return challenge(e),
        Err(e) => return e.into_response(),
    };
    if let Err(e) = auth.decide(need, &caller) {
        tracing::info!(caller = caller.name(), method = %req.method(), path = req.uri().path(), "request denied");
        return e.into_response();
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

fn unauthenticated(message: &str) -> ApiError {
    ApiError::new(ErrorCode::Unauthenticated, message)
}

fn challenge(e: ApiError) -> Response {
    let mut resp = e.into_response();
    resp.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static(REALM));
    resp
}

fn busy() -> ApiError {
    ApiError::new(ErrorCode::TemporarilyUnavailable, "too many logins at once; try again")
        .with_retry_after(Duration::from_secs(1))
}

fn unavailable() -> ApiError {
    ApiError::new(ErrorCode::TemporarilyUnavailable, "the server is shutting down")
}

/// IPv4 addresses one by one; IPv6 by /64, what one host can hop across.
fn throttle_key(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets()[..8].to_vec(),
    }
}
