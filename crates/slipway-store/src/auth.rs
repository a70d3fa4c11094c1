//! The store's auth face: principals (users and service accounts), groups, grants and API
//! tokens, and the epoch that tells caches when any of them changed.
//!
//! [`AuthStore`] is apart from [`crate::MetadataStore`], as [`crate::import::ImportStore`] is:
//! only the server's auth layer and the CLI's bootstrap use it. The store keeps what was
//! decided (hashes, digests, permission numbers); computing and checking them is
//! `slipway-auth`'s job. Every mutation that changes who someone is or what they may do bumps
//! the epoch in its own transaction and writes its audit record there too (never a hash).

use async_trait::async_trait;
use serde::Serialize;

use crate::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    User,
    ServiceAccount,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::ServiceAccount => "service_account",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(PrincipalKind::User),
            "service_account" => Some(PrincipalKind::ServiceAccount),
            _ => None,
        }
    }
}

/// A user or service account. `id` is what MLflow's auth API calls the user's `id`.
#[derive(Clone, PartialEq, Eq)]
pub struct Principal {
    pub id: i64,
    pub kind: PrincipalKind,
    pub name: String,
    pub is_admin: bool,
    pub disabled: bool,
    /// A PHC argon2id string, or a werkzeug hash imported from MLflow; `None` for service
    /// accounts and users without a password.
    pub password_hash: Option<String>,
    pub created_ms: i64,
}

impl std::fmt::Debug for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Principal")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("is_admin", &self.is_admin)
            .field("disabled", &self.disabled)
            .field("password_hash", &self.password_hash.as_ref().map(|_| "***"))
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct NewPrincipal {
    pub kind: PrincipalKind,
    pub name: String,
    pub password_hash: Option<String>,
    pub is_admin: bool,
}

/// What [`AuthStore::update_principal`] changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct PrincipalUpdate {
    pub password_hash: Option<String>,
    pub is_admin: Option<bool>,
    pub disabled: Option<bool>,
}

/// The kinds of object permissions are granted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    Experiment,
    RegisteredModel,
    Deployment,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 3] = [ObjectKind::Experiment, ObjectKind::RegisteredModel, ObjectKind::Deployment];

    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Experiment => "experiment",
            ObjectKind::RegisteredModel => "registered_model",
            ObjectKind::Deployment => "deployment",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One group's permission on one object (`pattern` its id or name) or every object of a kind
/// (`*`). `permission` is `slipway_auth::Permission::as_i64`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub id: i64,
    pub group_id: i64,
    pub group_name: String,
    pub kind: ObjectKind,
    pub pattern: String,
    pub permission: i64,
}

/// Whose grant: a principal's own (its personal group) or a named group's.
#[derive(Debug, Clone)]
pub enum Grantee {
    Principal(String),
    Group(String),
    GroupId(i64),
}

/// A named group (MLflow's role) and its grants. Principals' personal groups are not among
/// them: they hold direct grants and have no members to manage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub id: i64,
    pub name: String,
    pub description: Option<String>,
    pub grants: Vec<Grant>,
}

/// What [`AuthStore::update_group`] changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct GroupUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
}

/// A principal's membership of a group (MLflow's role assignment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub id: i64,
    pub group_id: i64,
    pub principal_id: i64,
}

/// Everything one principal may do, read in one snapshot: the principal, its groups and the
/// grants of all of them, and the epoch they were read at.
#[derive(Debug, Clone)]
pub struct Access {
    pub principal: Principal,
    pub group_ids: Vec<i64>,
    pub grants: Vec<Grant>,
    pub epoch: u64,
}

/// A request the auth layer refused: who (as claimed, when authentication failed), from
/// where, what and why. `id` is 0 until stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Denial {
    pub id: i64,
    pub timestamp: i64,
    pub principal: Option<String>,
    pub token_id: Option<String>,
    pub address: Option<String>,
    pub method: String,
    pub path: String,
    pub status: i64,
    pub reason: String,
}

/// Filters over the refused requests, combined with AND; newest first.
#[derive(Debug, Clone, Default)]
pub struct DenialQuery {
    pub principal: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub max_results: Option<i64>,
    pub page_token: Option<String>,
}

/// How long refused requests are kept.
pub const DENIALS_KEPT_MS: i64 = 90 * 24 * 3600 * 1000;

/// An API token as stored: its secret only as a SHA-256 digest (hex).
#[derive(Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    pub principal_id: i64,
    pub principal_name: String,
    pub name: String,
    pub secret_sha256: String,
    pub scopes_json: String,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub last_used_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
}

impl std::fmt::Debug for TokenRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRecord")
            .field("id", &self.id)
            .field("principal", &self.principal_name)
            .field("name", &self.name)
            .field("expires_ms", &self.expires_ms)
            .field("revoked_ms", &self.revoked_ms)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct NewToken {
    pub id: String,
    pub principal_id: i64,
    pub name: String,
    pub secret_sha256: String,
    pub scopes_json: String,
    pub expires_ms: i64,
}

/// An object whose permissions are its parent's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Child {
    /// A run, by id: its experiment.
    Run(String),
    /// A logged model, by id: its experiment.
    LoggedModel(String),
    /// An experiment, by name: its id.
    ExperimentName(String),
    /// A monitor, by name: the deployment it watches.
    Monitor(String),
    /// A labeling queue, by name: the deployment whose predictions it labels.
    LabelQueue(String),
}

#[async_trait]
pub trait AuthStore: Send + Sync {
    /// The current epoch; it grows with every auth mutation.
    async fn auth_epoch(&self) -> Result<u64>;

    /// Creates a principal and its personal group.
    async fn create_principal(&self, new: NewPrincipal, actor: String) -> Result<Principal>;
    async fn principal(&self, name: String) -> Result<Principal>;
    async fn principal_by_id(&self, id: i64) -> Result<Principal>;
    async fn list_principals(&self) -> Result<Vec<Principal>>;
    async fn update_principal(&self, name: String, update: PrincipalUpdate, actor: String) -> Result<()>;
    /// Replaces a password hash with a stronger one of the same password, at login; does
    /// nothing if the hash changed meanwhile. Not a change of who anyone is: no epoch bump.
    async fn rehash_password(&self, principal_id: i64, old_hash: String, new_hash: String) -> Result<()>;
    /// Deletes a principal with its personal group, grants and tokens.
    async fn delete_principal(&self, name: String, actor: String) -> Result<()>;

    /// The principal, its groups and their grants.
    async fn access(&self, principal_id: i64) -> Result<Access>;
    /// Sets the grantee's permission on an object (or `*`), replacing an earlier one.
    async fn set_grant(
        &self,
        grantee: Grantee,
        kind: ObjectKind,
        pattern: String,
        permission: i64,
        actor: String,
    ) -> Result<Grant>;
    /// Removes the grantee's grant on an object; NotFound when there is none.
    async fn remove_grant(&self, grantee: Grantee, kind: ObjectKind, pattern: String, actor: String) -> Result<()>;
    /// Adds a grant the grantee does not have yet on that object; AlreadyExists if it does.
    async fn add_grant(
        &self,
        grantee: Grantee,
        kind: ObjectKind,
        pattern: String,
        permission: i64,
        actor: String,
    ) -> Result<Grant>;
    async fn grant(&self, grant_id: i64) -> Result<Grant>;
    async fn update_grant(&self, grant_id: i64, permission: i64, actor: String) -> Result<Grant>;
    async fn delete_grant(&self, grant_id: i64, actor: String) -> Result<()>;

    async fn create_group(&self, name: String, description: Option<String>, actor: String) -> Result<Group>;
    async fn group(&self, group_id: i64) -> Result<Group>;
    async fn list_groups(&self) -> Result<Vec<Group>>;
    /// The groups of these names that exist, in name order (an OpenID token's groups claim).
    async fn groups_named(&self, names: Vec<String>) -> Result<Vec<Group>>;
    async fn update_group(&self, group_id: i64, update: GroupUpdate, actor: String) -> Result<Group>;
    /// Deletes a group with its grants and memberships.
    async fn delete_group(&self, group_id: i64, actor: String) -> Result<()>;
    /// Makes a principal a member of a group; AlreadyExists if it is one.
    async fn add_member(&self, group_id: i64, principal: String, actor: String) -> Result<Membership>;
    async fn remove_member(&self, group_id: i64, principal: String, actor: String) -> Result<()>;
    async fn members(&self, group_id: i64) -> Result<Vec<Membership>>;
    /// The groups a principal is a member of.
    async fn groups_of(&self, principal: String) -> Result<Vec<Group>>;

    async fn create_token(&self, new: NewToken, actor: String) -> Result<TokenRecord>;
    async fn token(&self, id: String) -> Result<TokenRecord>;
    /// Tokens of one principal, or all of them; newest first.
    async fn list_tokens(&self, principal_id: Option<i64>) -> Result<Vec<TokenRecord>>;
    async fn revoke_token(&self, id: String, actor: String) -> Result<()>;
    /// Records a use; callers write at most about once a minute per token.
    async fn touch_token(&self, id: String, now_ms: i64) -> Result<()>;

    /// The id or name of the object whose permissions `child` has; `None` when there is no
    /// such child.
    async fn parent_of(&self, child: Child) -> Result<Option<String>>;

    /// Stores refused requests, and drops those older than [`DENIALS_KEPT_MS`].
    async fn record_denials(&self, denials: Vec<Denial>) -> Result<()>;
    async fn denials(&self, query: DenialQuery) -> Result<crate::Page<Denial>>;

    /// The deployments that serve `alias` of registered model `model` (as primary, canary or
    /// shadow): moving or removing that alias changes what they serve.
    async fn alias_followers(&self, model: String, alias: String) -> Result<Vec<String>>;
}
