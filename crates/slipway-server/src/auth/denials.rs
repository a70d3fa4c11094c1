//! Refused requests, recorded for an access audit (`GET /api/v1/access-denials`): the
//! middleware notes each refusal into a bounded queue, never waiting on it, and one task
//! writes what is queued in batches. When the queue is full a refusal is counted on
//! `/metrics` (`slipway_auth_denials_unrecorded_total`) instead of slowing the requests that
//! cause it, as a flood of bad credentials would.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::Method;
use slipway_auth::credentials::Credentials;
use slipway_auth::token;
use slipway_store::auth::{AuthStore, Denial};
use tokio::sync::mpsc;

use crate::error::ApiError;

const QUEUED: usize = 4096;
const BATCH: usize = 256;
const MAX_TEXT: usize = 1024;

/// What the middleware knows of a request when it refuses it.
pub struct Seen {
    pub address: Option<IpAddr>,
    pub method: Method,
    pub path: String,
    /// Who it is, or (authentication having failed) who it said it was.
    pub principal: Option<String>,
    pub token: Option<String>,
}

impl Seen {
    pub fn new(address: Option<IpAddr>, method: &Method, path: &str) -> Self {
        Seen { address, method: method.clone(), path: path.to_string(), principal: None, token: None }
    }

    /// The user name or token id the credentials claim, before they are checked.
    pub fn claimed(&mut self, creds: &Credentials) {
        let (user, secret) = match creds {
            Credentials::Basic { user, password } => (Some(user.as_str()), password.as_str()),
            Credentials::Bearer(t) => (None, t.as_str()),
        };
        self.token = token::parse(secret).map(|(id, _)| id.to_string());
        self.principal = user.filter(|u| *u != "token").map(str::to_string);
    }
}

pub struct DenialLog {
    queue: Option<mpsc::Sender<Denial>>,
    pub dropped: AtomicU64,
}

impl DenialLog {
    /// The queue and its writer, when there is a runtime to run the writer on.
    pub fn start(store: Arc<dyn AuthStore>) -> Self {
        let queue = tokio::runtime::Handle::try_current().ok().map(|runtime| {
            let (tx, rx) = mpsc::channel(QUEUED);
            runtime.spawn(write(store, rx));
            tx
        });
        DenialLog { queue, dropped: AtomicU64::new(0) }
    }

    pub fn note(&self, seen: &Seen, e: &ApiError) {
        let status = e.status.map_or_else(|| i64::from(e.error.error_code.http_status()), |s| i64::from(s.as_u16()));
        let clip = |s: &str| s.chars().take(MAX_TEXT).collect::<String>();
        let denial = Denial {
            id: 0,
            timestamp: slipway_store::now_ms(),
            principal: seen.principal.as_deref().map(clip),
            token_id: seen.token.clone(),
            address: seen.address.map(|a| a.to_string()),
            method: seen.method.to_string(),
            path: clip(&seen.path),
            status,
            reason: clip(&e.error.message),
        };
        let sent = self.queue.as_ref().is_some_and(|q| q.try_send(denial).is_ok());
        if !sent {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Writes queued refusals, a batch at a time, until the auth layer is gone.
async fn write(store: Arc<dyn AuthStore>, mut queue: mpsc::Receiver<Denial>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match queue.try_recv() {
                Ok(d) => batch.push(d),
                Err(_) => break,
            }
        }
        if let Err(e) = store.record_denials(batch).await {
            tracing::warn!(error = %e, "refused requests could not be recorded");
        }
    }
}
