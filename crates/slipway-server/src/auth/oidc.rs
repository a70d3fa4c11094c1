//! Bearer JWTs from an OpenID provider: its discovery document and key set fetched here, the
//! tokens checked by `slipway_auth::jwt`, their users made on first sight.
//!
//! The key set is read at start and again when a token names a key it lacks (the provider
//! rotated): one fetch at a time, and at most one per [`REFETCH_EVERY`], so a stream of tokens
//! with made-up key ids costs the provider nothing and each of them one 401.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use slipway_artifacts::tls::HttpsConnector;
use slipway_auth::jwt::{self, Alg, Claims, Expect, Jwks, JwtError};

/// How the server trusts its provider.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    pub issuer: String,
    pub audience: String,
    /// The claim naming the user; `sub` when a token lacks it.
    pub username_claim: String,
    /// The claim listing the user's groups (one string or an array of them).
    pub groups_claim: String,
    /// This server as the provider's client, for browser login (the authorization-code flow);
    /// without it browsers get the Basic challenge.
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// Algorithms a provider may sign with: the asymmetric ones (`slipway_auth::jwt::Alg` has no
/// `none` and no HMAC to choose).
const ALGORITHMS: [Alg; 9] = Alg::ALL;
/// The least time between two fetches of the key set caused by unknown key ids.
pub const REFETCH_EVERY: Duration = Duration::from_secs(30);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_DOCUMENT: usize = 1 << 20;

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

pub struct Oidc {
    config: OidcConfig,
    jwks_uri: String,
    /// Where browsers are sent to log in and where their codes are exchanged, from discovery.
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    keys: RwLock<Arc<Jwks>>,
    /// When unknown key ids last caused a fetch; held across the fetch, so only one runs.
    refetched: tokio::sync::Mutex<Option<Instant>>,
    client: HttpClient,
}

/// An issuer must be https, or http on loopback (a provider in the tests, or beside the server).
pub fn check_issuer(issuer: &str) -> Result<(), String> {
    let uri: hyper::Uri = issuer.parse().map_err(|e| format!("'{issuer}' is not a URL: {e}"))?;
    let host = uri.host().unwrap_or("");
    let loopback = matches!(host, "127.0.0.1" | "localhost" | "[::1]" | "::1");
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if loopback => Ok(()),
        _ => Err(format!("'{issuer}' must be https (http only on loopback)")),
    }
}

impl Oidc {
    /// Reads the provider's discovery document (its `issuer` must be the one configured) and
    /// its key set.
    pub async fn discover(config: OidcConfig) -> Result<Oidc, String> {
        check_issuer(&config.issuer)?;
        let https = slipway_artifacts::tls::roots().https_or_http().enable_http1().build();
        let client = Client::builder(TokioExecutor::new()).build(https);
        let discovery = format!("{}/.well-known/openid-configuration", config.issuer.trim_end_matches('/'));
        let doc: serde_json::Value = serde_json::from_slice(&fetch(&client, &discovery).await?)
            .map_err(|e| format!("{discovery} is not JSON: {e}"))?;
        if doc["issuer"].as_str() != Some(config.issuer.as_str()) {
            return Err(format!("{discovery} names issuer {} rather than {}", doc["issuer"], config.issuer));
        }
        let jwks_uri = doc["jwks_uri"].as_str().ok_or_else(|| format!("{discovery} has no jwks_uri"))?.to_string();
        check_issuer(&jwks_uri).map_err(|e| format!("jwks_uri: {e}"))?;
        let keys = Jwks::parse(&fetch(&client, &jwks_uri).await?).map_err(|e| format!("{jwks_uri}: {e}"))?;
        let endpoint = |name: &str| -> Result<Option<String>, String> {
            let Some(url) = doc[name].as_str() else { return Ok(None) };
            check_issuer(url).map_err(|e| format!("{name}: {e}"))?;
            Ok(Some(url.to_string()))
        };
        let (authorization_endpoint, token_endpoint) =
            (endpoint("authorization_endpoint")?, endpoint("token_endpoint")?);
        if config.client_id.is_some() && (authorization_endpoint.is_none() || token_endpoint.is_none()) {
            return Err(format!("{discovery} names no authorization or token endpoint, which browser login needs"));
        }
        Ok(Oidc {
            config,
            jwks_uri,
            authorization_endpoint,
            token_endpoint,
            keys: RwLock::new(Arc::new(keys)),
            refetched: tokio::sync::Mutex::new(None),
            client,
        })
    }

    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// The token's claims if the provider signed it for this server and it is current.
    pub async fn verify(&self, token: &str) -> Result<Claims, JwtError> {
        self.verify_for(token, &self.config.audience).await
    }

    /// An ID token the provider issued to this server as its client (a browser session), if
    /// browser login is configured.
    pub async fn verify_id_token(&self, token: &str) -> Result<Claims, JwtError> {
        let client = self.config.client_id.as_deref().ok_or(JwtError::Audience)?;
        self.verify_for(token, client).await
    }

    async fn verify_for(&self, token: &str, audience: &str) -> Result<Claims, JwtError> {
        let keys = self.keys();
        match jwt::verify(token, &keys, &self.expect(audience)) {
            Err(JwtError::UnknownKey { .. }) if self.refetch(&keys).await => {
                jwt::verify(token, &self.keys(), &self.expect(audience))
            }
            other => other,
        }
    }

    /// Whether browsers may log in here.
    pub fn browser_login(&self) -> bool {
        self.config.client_id.is_some()
    }

    /// Where to send a browser to log in for `attempt`, coming back to `redirect_uri`.
    pub fn authorize_url(&self, attempt: &slipway_auth::login::Attempt, redirect_uri: &str) -> Option<String> {
        let (endpoint, client) = (self.authorization_endpoint.as_deref()?, self.config.client_id.as_deref()?);
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", client)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", "openid profile email")
            .append_pair("state", &attempt.state)
            .append_pair("nonce", &attempt.nonce)
            .append_pair("code_challenge", &attempt.challenge())
            .append_pair("code_challenge_method", "S256")
            .finish();
        let joint = if endpoint.contains('?') { '&' } else { '?' };
        Some(format!("{endpoint}{joint}{query}"))
    }

    /// Exchanges a login's code for its ID token at the provider's token endpoint.
    pub async fn exchange(&self, code: &str, verifier: &str, redirect_uri: &str) -> Result<String, String> {
        let (Some(endpoint), Some(client)) = (&self.token_endpoint, &self.config.client_id) else {
            return Err("browser login is not configured".into());
        };
        // The serializer is not Send: it is done with before anything is awaited.
        let form = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "authorization_code")
                .append_pair("code", code)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("client_id", client)
                .append_pair("code_verifier", verifier);
            if let Some(secret) = &self.config.client_secret {
                form.append_pair("client_secret", secret);
            }
            form.finish()
        };
        let req = hyper::Request::post(endpoint)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(Full::new(Bytes::from(form)))
            .map_err(|e| format!("{endpoint}: {e}"))?;
        let answer: serde_json::Value = serde_json::from_slice(&send(&self.client, req, endpoint).await?)
            .map_err(|e| format!("{endpoint}: {e}"))?;
        answer["id_token"].as_str().map(str::to_owned).ok_or_else(|| format!("{endpoint} answered no id_token"))
    }

    /// The name a token's user goes by.
    pub fn username(&self, claims: &Claims) -> String {
        claims.string(&self.config.username_claim).unwrap_or(&claims.sub).to_string()
    }

    /// The groups a token says its user is in: sorted, each once, at most 100.
    pub fn groups(&self, claims: &Claims) -> Vec<String> {
        let mut groups = claims.strings(&self.config.groups_claim);
        groups.sort_unstable();
        groups.dedup();
        groups
    }

    fn keys(&self) -> Arc<Jwks> {
        self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn expect<'a>(&'a self, audience: &'a str) -> Expect<'a> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Expect::new(&self.config.issuer, audience, &ALGORITHMS, now)
    }

    /// Fetches the key set again unless that was done within [`REFETCH_EVERY`]; whether the
    /// keys are newer than `seen` afterwards (another request may have fetched them).
    async fn refetch(&self, seen: &Arc<Jwks>) -> bool {
        let mut last = self.refetched.lock().await;
        if !Arc::ptr_eq(seen, &self.keys()) {
            return true;
        }
        if last.is_some_and(|at| at.elapsed() < REFETCH_EVERY) {
            return false;
        }
        *last = Some(Instant::now());
        let fetched = fetch(&self.client, &self.jwks_uri)
            .await
            .and_then(|bytes| Jwks::parse(&bytes).map_err(|e| format!("{}: {e}", self.jwks_uri)));
        match fetched {
            Ok(keys) => {
                *self.keys.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(keys);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "the OpenID provider's keys could not be fetched again");
                false
            }
        }
    }
}

/// One GET of a small JSON document, within [`FETCH_TIMEOUT`] and [`MAX_DOCUMENT`].
async fn fetch(client: &HttpClient, url: &str) -> Result<Bytes, String> {
    let req = hyper::Request::get(url)
        .header("accept", "application/json")
        .body(Full::new(Bytes::new()))
        .map_err(|e| format!("{url}: {e}"))?;
    send(client, req, url).await
}

/// One request answered with a small body, within [`FETCH_TIMEOUT`] and [`MAX_DOCUMENT`].
async fn send(client: &HttpClient, req: hyper::Request<Full<Bytes>>, url: &str) -> Result<Bytes, String> {
    let answer = async {
        let resp = client.request(req).await.map_err(|e| format!("{url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("{url} answered {}", resp.status()));
        }
        let body = Limited::new(resp.into_body(), MAX_DOCUMENT).collect().await;
        body.map(|b| b.to_bytes()).map_err(|e| format!("{url}: {e}"))
    };
    tokio::time::timeout(FETCH_TIMEOUT, answer).await.map_err(|_| format!("{url} did not answer in time"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuers_are_https_or_loopback_http() {
        assert!(check_issuer("https://login.example.com/realms/x").is_ok());
        assert!(check_issuer("http://127.0.0.1:8080").is_ok());
        assert!(check_issuer("http://localhost:8080/").is_ok());
        assert!(check_issuer("http://login.example.com").is_err());
        assert!(check_issuer("ftp://127.0.0.1").is_err());
        assert!(check_issuer("not a url").is_err());
    }
}
