//! MLflow 3.17.2's per-user permission API (`/api/3.0/mlflow/users/permissions/*`, what
//! `AuthServiceClient.grant_user_permission` and friends call): grants on one experiment,
//! registered model or deployment, given by an administrator or by whoever MANAGEs it.

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};
use slipway_auth::{Level, Permission};
use slipway_store::auth::{Grantee, ObjectKind};
use slipway_types::ErrorCode;

use super::{Auth, Caller};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryArgs};

#[derive(Deserialize)]
pub struct GrantRequest {
    username: Option<String>,
    resource_type: Option<String>,
    resource_id: Option<Value>,
    permission: Option<String>,
}

pub(super) fn kind(resource_type: Option<String>) -> ApiResult<ObjectKind> {
    let t = resource_type.ok_or_else(|| ApiError::missing("resource_type"))?;
    ObjectKind::parse(&t).ok_or_else(|| {
        ApiError::invalid(format!("unsupported resource_type '{t}': use experiment, registered_model or deployment"))
    })
}

fn resource(id: Option<Value>) -> ApiResult<String> {
    match id {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(ApiError::missing("resource_id")),
    }
}

pub(super) fn required(v: Option<String>, name: &str) -> ApiResult<String> {
    v.filter(|s| !s.is_empty()).ok_or_else(|| ApiError::missing(name))
}

/// Administrators, and whoever MANAGEs the object, may change who else may use it.
fn may_manage(auth: &Auth, caller: &Caller, kind: ObjectKind, object: &str) -> ApiResult<()> {
    if caller.is_admin() || caller.level_on(kind, object, auth.default()) >= Some(Level::Manage) {
        Ok(())
    } else {
        Err(auth.denied(format!("this needs MANAGE on {} '{object}'", kind.as_str())))
    }
}

/// The object and user a grant or revocation names, once the caller may manage the object.
fn subject(
    auth: &Auth,
    caller: &Caller,
    resource_type: Option<String>,
    resource_id: Option<Value>,
    username: Option<String>,
) -> ApiResult<(ObjectKind, String, String)> {
    let (kind, object) = (kind(resource_type)?, resource(resource_id)?);
    let name = required(username, "username")?;
    may_manage(auth, caller, kind, &object)?;
    Ok((kind, object, name))
}

pub async fn grant(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
    JsonBody(r): JsonBody<GrantRequest>,
) -> ApiResult<Json<Value>> {
    let (kind, object, name) = subject(&auth, &caller, r.resource_type, r.resource_id, r.username)?;
    let text = required(r.permission, "permission")?;
    let permission = Permission::parse(&text).ok_or_else(|| {
        ApiError::invalid(format!("unknown permission '{text}': use READ, USE, EDIT, MANAGE, NO_PERMISSIONS or DENY"))
    })?;
    let grantee = Grantee::Principal(name);
    auth.store.set_grant(grantee, kind, object, permission.as_i64(), caller.name().to_string()).await?;
    Ok(Json(json!({})))
}

pub async fn revoke(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
    JsonBody(r): JsonBody<GrantRequest>,
) -> ApiResult<Json<Value>> {
    let (kind, object, name) = subject(&auth, &caller, r.resource_type, r.resource_id, r.username)?;
    auth.store.remove_grant(Grantee::Principal(name), kind, object, caller.name().to_string()).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct Lookup {
    username: Option<String>,
    resource_type: Option<String>,
    resource_id: Option<String>,
}

pub(super) fn self_or_admin(caller: &Caller, name: &str) -> ApiResult<()> {
    if caller.is_admin() || caller.name() == name {
        Ok(())
    } else {
        Err(ApiError::new(ErrorCode::PermissionDenied, "permission denied: only an administrator may see other users"))
    }
}

/// A user's effective permission on one object: `allowed` when it reaches USE, as MLflow's.
pub async fn get(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
    QueryArgs(q): QueryArgs<Lookup>,
) -> ApiResult<Json<Value>> {
    let name = required(q.username, "username")?;
    self_or_admin(&caller, &name)?;
    let kind = kind(q.resource_type)?;
    let object = required(q.resource_id, "resource_id")?;
    let user = auth.store.principal(name).await?;
    let access = auth.store.access(user.id).await?;
    let subject = Caller { access: Arc::new(access), token: None };
    let level = subject.level_on(kind, &object, auth.default());
    let permission = level.map_or(Permission::NoPermissions, Permission::Level);
    Ok(Json(json!({"allowed": level >= Some(Level::Use), "permission": permission.as_str()})))
}

async fn listing(auth: &Auth, name: String) -> ApiResult<Json<Value>> {
    let user = auth.store.principal(name).await?;
    let access = auth.store.access(user.id).await?;
    let permissions: Vec<Value> = access
        .grants
        .iter()
        .map(|g| {
            let permission = Permission::from_i64(g.permission).map_or("NO_PERMISSIONS", Permission::as_str);
            json!({"role_id": g.group_id, "role_name": g.group_name, "workspace": "default",
                   "resource_type": g.kind.as_str(), "resource_pattern": g.pattern, "permission": permission})
        })
        .collect();
    Ok(Json(json!({"is_admin": user.is_admin, "permissions": permissions})))
}

pub async fn list(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
    QueryArgs(q): QueryArgs<Lookup>,
) -> ApiResult<Json<Value>> {
    let name = required(q.username, "username")?;
    self_or_admin(&caller, &name)?;
    listing(&auth, name).await
}

pub async fn current(State(auth): State<Arc<Auth>>, Extension(caller): Extension<Caller>) -> ApiResult<Json<Value>> {
    listing(&auth, caller.name().to_string()).await
}
