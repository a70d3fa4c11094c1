//! Credentials for the pipeline runs this server starts itself: each run gets a token of the
//! service account `slipway-pipelines`, valid for a day, revoked when the run ends. The
//! account may do what it was granted and what it created (the pipeline's experiment and
//! models), nothing more.

use std::sync::Arc;

use slipway_auth::Level;
use slipway_auth::token::{self, Scope};
use slipway_store::StoreError;
use slipway_store::auth::{NewToken, PrincipalKind};

use super::Auth;

/// The service account triggered pipeline runs act as.
pub const PIPELINE_ACCOUNT: &str = "slipway-pipelines";
const RUN_TOKEN_MS: i64 = 24 * 3600 * 1000;

pub struct PipelineCredentials {
    auth: Arc<Auth>,
    principal_id: i64,
}

impl PipelineCredentials {
    /// The pipelines' service account, made on first use.
    pub async fn new(auth: Arc<Auth>) -> Result<Self, StoreError> {
        let principal =
            auth.made_on_first_sight(PIPELINE_ACCOUNT, PrincipalKind::ServiceAccount, "slipway server").await?;
        Ok(Self { auth, principal_id: principal.id })
    }
}

#[async_trait::async_trait]
impl slipway_pipeline::trigger::RunCredentials for PipelineCredentials {
    async fn issue(&self, pipeline: &str) -> Result<(String, String), String> {
        let minted = token::mint();
        let scopes = vec![Scope { kind: token::ANY.into(), object: token::ANY.into(), level: Level::Manage }];
        let new = NewToken {
            id: minted.id.clone(),
            principal_id: self.principal_id,
            name: format!("pipeline run: {pipeline}"),
            secret_sha256: slipway_auth::hex(&minted.digest),
            scopes_json: serde_json::to_string(&scopes).map_err(|e| e.to_string())?,
            expires_ms: slipway_store::now_ms() + RUN_TOKEN_MS,
        };
        self.auth.store.create_token(new, "slipway server".into()).await.map_err(|e| e.to_string())?;
        Ok((minted.token(), minted.id))
    }

    async fn revoke(&self, token_id: String) {
        if let Err(e) = self.auth.store.revoke_token(token_id, "slipway server".into()).await {
            tracing::warn!(error = %e, "a pipeline run's token was not revoked; it expires within a day");
        }
    }
}
