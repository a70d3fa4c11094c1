//! MLflow's user API (`/api/2.0/mlflow/users/*`, as `AuthServiceClient` calls it) and Slipway's
//! own tokens and service accounts (`/api/v1/tokens`, `/api/v1/service-accounts`).
//!
//! The middleware has let through only what the policy allows (admin for most of these);
//! the handlers add the per-record rules: a user reads and changes only their own record
//! unless admin, and a token mints only narrower, shorter-lived tokens.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::{delete, get, patch, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use slipway_auth::Level;
use slipway_auth::token::{self, Scope};
use slipway_store::auth::{NewPrincipal, NewToken, Principal, PrincipalKind, PrincipalUpdate, TokenRecord};
use slipway_types::ErrorCode;

use super::{Auth, Caller, permissions, roles};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryArgs};

pub fn routes(auth: Arc<Auth>) -> Router {
    let users = "/api/2.0/mlflow/users";
    Router::new()
        .route(&format!("{users}/create"), post(create_user))
        .route(&format!("{users}/get"), get(get_user))
        .route(&format!("{users}/list"), get(list_users))
        .route(&format!("{users}/current"), get(current_user))
        .route(&format!("{users}/update-password"), patch(update_password))
        .route(&format!("{users}/update-admin"), patch(update_admin))
        .route(&format!("{users}/delete"), delete(delete_user))
        .route("/api/3.0/mlflow/users/permissions/grant", post(permissions::grant))
        .route("/api/3.0/mlflow/users/permissions/revoke", post(permissions::revoke))
        .route("/api/3.0/mlflow/users/permissions/get", get(permissions::get))
        .route("/api/3.0/mlflow/users/permissions/list", get(permissions::list))
        .route("/api/3.0/mlflow/users/current/permissions", get(permissions::current))
        .route("/api/3.0/mlflow/users/roles/list", get(roles::of_user))
        .route("/api/3.0/mlflow/roles/create", post(roles::create))
        .route("/api/3.0/mlflow/roles/get", get(roles::get))
        .route("/api/3.0/mlflow/roles/list", get(roles::list))
        .route("/api/3.0/mlflow/roles/update", patch(roles::update))
        .route("/api/3.0/mlflow/roles/delete", delete(roles::delete))
        .route("/api/3.0/mlflow/roles/permissions/add", post(roles::add_permission))
        .route("/api/3.0/mlflow/roles/permissions/remove", delete(roles::remove_permission))
        .route("/api/3.0/mlflow/roles/permissions/list", get(roles::list_permissions))
        .route("/api/3.0/mlflow/roles/permissions/update", patch(roles::update_permission))
        .route("/api/3.0/mlflow/roles/assign", post(roles::assign))
        .route("/api/3.0/mlflow/roles/unassign", delete(roles::unassign))
        .route("/api/3.0/mlflow/roles/users/list", get(roles::users))
        .route("/api/v1/tokens", post(create_token).get(list_tokens))
        .route("/api/v1/tokens/{id}", delete(revoke_token))
        .route("/api/v1/service-accounts", post(create_service_account))
        .route("/api/v1/access-denials", get(access_denials))
        .with_state(auth)
}

fn user_json(p: &Principal) -> Value {
    json!({"id": p.id, "username": p.name, "is_admin": p.is_admin})
}

fn only_self_or_admin(caller: &Caller, username: &str) -> ApiResult<()> {
    if caller.is_admin() || caller.name() == username {
        Ok(())
    } else {
        Err(ApiError::new(ErrorCode::PermissionDenied, "permission denied: only an administrator may see other users"))
    }
}

#[derive(Deserialize)]
struct Credentials {
    username: Option<String>,
    password: Option<String>,
}

async fn create_user(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
    JsonBody(req): JsonBody<Credentials>,
) -> ApiResult<Json<Value>> {
    let (Some(username), Some(password)) = (req.username.filter(|u| !u.is_empty()), req.password) else {
        return Err(ApiError::invalid("Username and password cannot be empty."));
    };
    let hash = auth.hash_password(&password).await?;
    let new = NewPrincipal { kind: PrincipalKind::User, name: username, password_hash: Some(hash), is_admin: false };
    let created = auth.store.create_principal(new, caller.name().to_string()).await?;
    Ok(Json(json!({"user": user_json(&created)})))
}

#[derive(Deserialize)]
struct ByName {
    username: Option<String>,
}

fn username(arg: Option<String>) -> ApiResult<String> {
    arg.filter(|u| !u.is_empty()).ok_or_else(|| ApiError::missing("username"))
}

async fn get_user(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
    QueryArgs(q): QueryArgs<ByName>,
) -> ApiResult<Json<Value>> {
    let name = username(q.username)?;
    only_self_or_admin(&caller, &name)?;
    Ok(Json(json!({"user": user_json(&auth.store.principal(name).await?)})))
}

/// Users with their roles, as MLflow lists them.
async fn list_users(State(auth): State<Arc<Auth>>) -> ApiResult<Json<Value>> {
    let mut users = Vec::new();
    for p in auth.store.list_principals().await?.iter().filter(|p| p.kind == PrincipalKind::User) {
        let mut u = user_json(p);
        u["roles"] = auth.store.groups_of(p.name.clone()).await?.iter().map(roles::role_json).collect();
        users.push(u);
    }
    Ok(Json(json!({"users": users})))
}

async fn current_user(Extension(caller): Extension<Caller>) -> Json<Value> {
    Json(json!({"user": user_json(&caller.access.principal), "is_basic_auth": true}))
}

#[derive(Deserialize)]
struct NewPassword {
    username: Option<String>,
    password: Option<String>,
    current_password: Option<String>,
}

async fn update_password(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
    JsonBody(req): JsonBody<NewPassword>,
) -> ApiResult<Json<Value>> {
    let name = username(req.username)?;
    let password = req.password.ok_or_else(|| ApiError::missing("password"))?;
    only_self_or_admin(&caller, &name)?;
    if caller.name() == name {
        // A stolen session or token must not be enough to take the account over.
        let current = req
            .current_password
            .filter(|c| !c.is_empty())
            .ok_or_else(|| ApiError::invalid("Current password is required when changing your own password."))?;
        let stored = caller.access.principal.password_hash.clone();
        if auth.verify(&current, stored).await? == slipway_auth::password::Verified::Mismatch {
            return Err(ApiError::invalid("Current password does not match."));
        }
        if current == password {
            return Err(ApiError::invalid("New password must differ from the current password."));
        }
    }
    let hash = auth.hash_password(&password).await?;
    let update = PrincipalUpdate { password_hash: Some(hash), ..Default::default() };
    auth.store.update_principal(name, update, caller.name().to_string()).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct AdminFlag {
    username: Option<String>,
    is_admin: Option<Value>,
}

async fn update_admin(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
    JsonBody(req): JsonBody<AdminFlag>,
) -> ApiResult<Json<Value>> {
    let name = username(req.username)?;
    let is_admin = match req.is_admin {
        Some(Value::Bool(b)) => b,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
        Some(_) => return Err(ApiError::invalid("is_admin must be true or false")),
        None => return Err(ApiError::missing("is_admin")),
    };
    let update = PrincipalUpdate { is_admin: Some(is_admin), ..Default::default() };
    auth.store.update_principal(name, update, caller.name().to_string()).await?;
    Ok(Json(json!({})))
}

async fn delete_user(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
    QueryArgs(q): QueryArgs<ByName>,
    JsonBody(body): JsonBody<ByName>,
) -> ApiResult<Json<Value>> {
    let name = username(q.username.or(body.username))?;
    if name == caller.name() {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            "Users cannot delete their own account. Ask another admin to delete this user instead.",
        ));
    }
    auth.store.delete_principal(name, caller.name().to_string()).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTokenRequest {
    name: Option<String>,
    scopes: Option<Vec<Scope>>,
    expires_in_days: Option<u32>,
    /// Mint for another principal (a service account): administrators only.
    principal: Option<String>,
}

/// What is shown of a token: never its secret or digest.
fn token_json(t: &TokenRecord) -> Value {
    let scopes: Value = serde_json::from_str(&t.scopes_json).unwrap_or(Value::Null);
    json!({"id": t.id, "name": t.name, "principal": t.principal_name, "scopes": scopes,
           "created_ms": t.created_ms, "expires_ms": t.expires_ms, "last_used_ms": t.last_used_ms,
           "revoked_ms": t.revoked_ms})
}

/// A token that may do everything its owner may, administration included if the owner may.
fn full_scopes(admin: bool) -> Vec<Scope> {
    let mut scopes = vec![Scope { kind: token::ANY.into(), object: token::ANY.into(), level: Level::Manage }];
    if admin {
        scopes.push(Scope::admin());
    }
    scopes
}

async fn create_token(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
    JsonBody(req): JsonBody<NewTokenRequest>,
) -> ApiResult<Json<Value>> {
    let name = req.name.filter(|n| !n.is_empty()).ok_or_else(|| ApiError::missing("name"))?;
    let max_days = auth.config.token_max_days;
    let days = req.expires_in_days.unwrap_or(30.min(max_days));
    if days == 0 || days > max_days {
        return Err(ApiError::invalid(format!("expires_in_days must be 1 to {max_days} (the server's maximum)")));
    }
    let owner = match req.principal {
        Some(other) if other != caller.name() => {
            if !caller.is_admin() {
                return Err(ApiError::new(
                    ErrorCode::PermissionDenied,
                    "permission denied: only an administrator may mint tokens for others",
                ));
            }
            auth.store.principal(other).await?
        }
        _ => caller.access.principal.clone(),
    };
    let scopes = req.scopes.unwrap_or_else(|| full_scopes(owner.is_admin));
    if scopes.is_empty() {
        return Err(ApiError::invalid("scopes must name at least one scope"));
    }
    if let Some(bad) = scopes.iter().find(|s| {
        !(s.kind == token::ANY
            || s.kind == token::ADMIN_KIND
            || slipway_store::auth::ObjectKind::parse(&s.kind).is_some())
    }) {
        return Err(ApiError::invalid(format!(
            "unknown scope kind '{}': use *, admin, experiment, registered_model or deployment",
            bad.kind
        )));
    }
    let now = slipway_store::now_ms();
    let mut expires_ms = now + i64::from(days) * 86_400_000;
    if let Some((parent_id, parent_scopes)) = &caller.token {
        // A token minted with a token gets no more than that token has, for no longer.
        if !token::narrows(&scopes, parent_scopes) {
            return Err(ApiError::new(
                ErrorCode::PermissionDenied,
                "permission denied: a token cannot mint a token with wider scopes",
            ));
        }
        let parent = auth.store.token(parent_id.clone()).await?;
        expires_ms = expires_ms.min(parent.expires_ms);
    }
    let minted = token::mint();
    let scopes_json = serde_json::to_string(&scopes).map_err(|e| ApiError::invalid(e.to_string()))?;
    let new = NewToken {
        id: minted.id.clone(),
        principal_id: owner.id,
        name,
        secret_sha256: slipway_auth::hex(&minted.digest),
        scopes_json,
        expires_ms,
    };
    let record = auth.store.create_token(new, caller.name().to_string()).await?;
    Ok(Json(json!({"token": token_json(&record), "secret": minted.token()})))
}

#[derive(Deserialize)]
struct ListTokens {
    #[serde(default, deserialize_with = "slipway_types::json::de_opt_bool")]
    all: Option<bool>,
}

async fn list_tokens(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
    QueryArgs(q): QueryArgs<ListTokens>,
) -> ApiResult<Json<Value>> {
    let whose = if q.all == Some(true) && caller.is_admin() { None } else { Some(caller.access.principal.id) };
    let tokens: Vec<Value> = auth.store.list_tokens(whose).await?.iter().map(token_json).collect();
    Ok(Json(json!({"tokens": tokens})))
}

async fn revoke_token(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let record = auth.store.token(id.clone()).await?;
    if record.principal_id != caller.access.principal.id && !caller.is_admin() {
        // Others' tokens are not even confirmed to exist.
        return Err(ApiError::new(ErrorCode::ResourceDoesNotExist, format!("token '{id}' not found")));
    }
    auth.store.revoke_token(id, caller.name().to_string()).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewServiceAccount {
    name: Option<String>,
}

async fn create_service_account(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
    JsonBody(req): JsonBody<NewServiceAccount>,
) -> ApiResult<Json<Value>> {
    if !caller.is_admin() {
        return Err(ApiError::new(ErrorCode::PermissionDenied, "permission denied: this needs an administrator"));
    }
    let name = req.name.filter(|n| !n.is_empty()).ok_or_else(|| ApiError::missing("name"))?;
    let new = NewPrincipal { kind: PrincipalKind::ServiceAccount, name, password_hash: None, is_admin: false };
    let created = auth.store.create_principal(new, caller.name().to_string()).await?;
    Ok(Json(json!({"service_account": {"id": created.id, "name": created.name}})))
}

#[derive(Deserialize)]
struct DenialArgs {
    user: Option<String>,
    #[serde(default, deserialize_with = "slipway_types::json::de_opt_i64")]
    since: Option<i64>,
    #[serde(default, deserialize_with = "slipway_types::json::de_opt_i64")]
    until: Option<i64>,
    #[serde(default, deserialize_with = "slipway_types::json::de_opt_i64")]
    max_results: Option<i64>,
    page_token: Option<String>,
}

/// Refused requests, newest first (administrators only): who, from where, what and why.
async fn access_denials(
    State(auth): State<Arc<Auth>>,
    QueryArgs(q): QueryArgs<DenialArgs>,
) -> ApiResult<axum::response::Response> {
    let query = slipway_store::auth::DenialQuery {
        principal: q.user,
        since: q.since,
        until: q.until,
        max_results: q.max_results,
        page_token: q.page_token,
    };
    Ok(crate::extract::Paged::respond("denials", auth.store.denials(query).await?))
}
