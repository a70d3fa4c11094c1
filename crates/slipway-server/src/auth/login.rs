//! Who is calling: passwords (throttled, cached per epoch, one bounded hash per attempt, the
//! same for unknown users) and tokens (digest, expiry, revocation, owner).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use slipway_auth::credentials::Credentials;
use slipway_auth::password::{self, Verified};
use slipway_auth::token::{self, Scope};
use slipway_store::StoreError;
use slipway_store::auth::{Access, NewPrincipal, Principal, PrincipalKind};
use slipway_types::ErrorCode;

use super::memo::KnownToken;
use super::oidc::Oidc;
use super::{Auth, Caller, MAX_WAITING_HASHES, unauthenticated};
use crate::error::ApiError;

impl Auth {
    /// Hashes a new password on the blocking pool, under the same bound as verifications.
    pub async fn hash_password(&self, password: &str) -> Result<String, ApiError> {
        password::check_new(password).map_err(|e| ApiError::invalid(e.to_string()))?;
        let _permit = self.hashing.acquire().await.map_err(|_| unavailable())?;
        let (password, params) = (password.to_string(), self.config.argon2);
        tokio::task::spawn_blocking(move || password::hash(&password, params)).await.map_err(|_| unavailable())
    }

    /// Verifies a password (always exactly one hash computation, known user or not).
    pub(super) async fn verify(&self, password: &str, stored: Option<String>) -> Result<Verified, ApiError> {
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
            Credentials::Bearer(t) => match &self.oidc {
                // A JWT (three dot-separated parts) from the provider; tokens of ours have none.
                Some(oidc) if token::parse(&t).is_none() && t.split('.').count() == 3 => self.by_jwt(oidc, &t).await,
                _ => self.by_token(&t, None).await,
            },
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

    /// A bearer JWT from the OpenID provider: its user, made on first sight. A name a local
    /// account (one with a password) or a service account holds is refused, never merged.
    pub(super) async fn by_jwt(&self, oidc: &Oidc, presented: &str) -> Result<Caller, ApiError> {
        let claims = oidc.verify(presented).await.map_err(|e| {
            self.denials.fetch_add(1, Ordering::Relaxed);
            unauthenticated(&format!("invalid bearer token: {e}"))
        })?;
        self.oidc_caller(oidc, &claims).await
    }

    /// A browser session: the ID token the provider issued this server at login, kept in the
    /// session cookie until it expires.
    pub(super) async fn by_session(&self, oidc: &Oidc, presented: &str) -> Result<Caller, ApiError> {
        let claims = oidc
            .verify_id_token(presented)
            .await
            .map_err(|e| unauthenticated(&format!("your session has ended ({e}): log in again")))?;
        self.oidc_caller(oidc, &claims).await
    }

    /// The provider's user a verified token names, made on first sight, with the grants of
    /// the groups it says the user is in.
    pub(super) async fn oidc_caller(
        &self,
        oidc: &Oidc,
        claims: &slipway_auth::jwt::Claims,
    ) -> Result<Caller, ApiError> {
        let name = oidc.username(claims);
        let principal =
            self.made_on_first_sight(&name, PrincipalKind::User, &format!("oidc {}", oidc.config().issuer)).await?;
        if principal.password_hash.is_some() || principal.kind != PrincipalKind::User {
            return Err(unauthenticated(&format!(
                "'{name}' is a local account here; a token from the OpenID provider cannot act as it"
            )));
        }
        let epoch = self.store.auth_epoch().await?;
        let mut access = self.access_of(principal.id, epoch).await?;
        if access.principal.disabled {
            return Err(unauthenticated("this account is disabled"));
        }
        let groups = oidc.groups(claims);
        if !groups.is_empty() {
            access = self.with_claimed_groups(access, groups).await?;
        }
        Ok(Caller { access, token: None })
    }

    /// `access` widened by the grants of the groups an OpenID token names, those that exist
    /// here: the provider decides membership, this server what each group may do. Remembered
    /// per principal and list of groups at the epoch `access` was read at.
    async fn with_claimed_groups(&self, access: Arc<Access>, groups: Vec<String>) -> Result<Arc<Access>, ApiError> {
        let key = (access.principal.id, groups);
        if let Some(a) = self.memos.claimed.get(&key).filter(|a| a.epoch == access.epoch) {
            return Ok(a);
        }
        let mut widened = (*access).clone();
        for group in self.store.groups_named(key.1.clone()).await? {
            if !widened.group_ids.contains(&group.id) {
                widened.group_ids.push(group.id);
                widened.grants.extend(group.grants);
            }
        }
        widened.group_ids.sort_unstable();
        let widened = Arc::new(widened);
        self.memos.claimed.insert(key, widened.clone());
        Ok(widened)
    }

    /// The principal `name`, made (without a password, not admin) if there is none; when two
    /// requests or replicas make it at once, one does and both get it.
    pub(super) async fn made_on_first_sight(
        &self,
        name: &str,
        kind: PrincipalKind,
        actor: &str,
    ) -> Result<Principal, StoreError> {
        match self.store.principal(name.into()).await {
            Err(StoreError::NotFound(_)) => {
                let new = NewPrincipal { kind, name: name.into(), password_hash: None, is_admin: false };
                match self.store.create_principal(new, actor.into()).await {
                    Err(StoreError::AlreadyExists(_)) => self.store.principal(name.into()).await,
                    made => made,
                }
            }
            found => found,
        }
    }

    pub(super) async fn by_token(&self, presented: &str, owner: Option<&str>) -> Result<Caller, ApiError> {
        let Some((id, secret)) = token::parse(presented) else {
            return Err(unauthenticated("invalid token"));
        };
        let epoch = self.store.auth_epoch().await?;
        let known = match self.memos.tokens.get(&id.to_string()).filter(|k| k.epoch == epoch) {
            Some(k) => k,
            None => {
                let record = match self.store.token(id.to_string()).await {
                    Ok(r) => r,
                    Err(StoreError::NotFound(_)) => return Err(unauthenticated("invalid token")),
                    Err(e) => return Err(e.into()),
                };
                let scopes: Vec<Scope> = serde_json::from_str(&record.scopes_json)
                    .map_err(|e| StoreError::Backend(format!("token {id} has unreadable scopes: {e}")))?;
                let known = KnownToken { record: Arc::new(record), scopes: Arc::new(scopes), epoch };
                self.memos.tokens.insert(id.to_string(), known.clone());
                known
            }
        };
        let record = &known.record;
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
        let access = self.access_of(record.principal_id, epoch).await?;
        if access.principal.disabled {
            return Err(unauthenticated("this account is disabled"));
        }
        let last = self.memos.touched.get(&record.id).or(record.last_used_ms);
        if last.is_none_or(|t| now - t > 60_000) {
            // Bookkeeping; the request does not wait on it or fail with it.
            self.memos.touched.insert(record.id.clone(), now);
            let (store, id) = (self.store.clone(), record.id.clone());
            tokio::spawn(async move {
                if let Err(e) = store.touch_token(id, now).await {
                    tracing::debug!(error = %e, "recording a token's use failed");
                }
            });
        }
        Ok(Caller { access, token: Some((record.id.clone(), known.scopes.clone())) })
    }

    /// A principal's access at `epoch`: remembered until anything about auth changes.
    pub(super) async fn access_of(&self, principal_id: i64, epoch: u64) -> Result<Arc<Access>, ApiError> {
        if let Some(a) = self.memos.access.get(&principal_id).filter(|a| a.epoch == epoch) {
            return Ok(a);
        }
        let access = Arc::new(self.store.access(principal_id).await?);
        self.memos.access.insert(principal_id, access.clone());
        Ok(access)
    }

    pub(super) async fn by_password(
        &self,
        user: &str,
        password: &str,
        address: Option<IpAddr>,
    ) -> Result<Caller, ApiError> {
        let epoch = self.store.auth_epoch().await?;
        if let Some(id) = self.verified.get(user, password, epoch) {
            let access = self.access_of(id, epoch).await?;
            if access.epoch == epoch {
                return Ok(Caller { access, token: None });
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
                let access = self.access_of(principal.id, epoch).await?;
                self.verified.insert(user, password, access.epoch, principal.id);
                Ok(Caller { access, token: None })
            }
        }
    }
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
