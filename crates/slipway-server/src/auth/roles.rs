//! MLflow 3.17.2's role API (`/api/3.0/mlflow/roles/*` and `users/roles/list`, what
//! `AuthServiceClient.create_role` and friends call), over Slipway's groups: a role is a named
//! group, its permissions are the group's grants, an assignment is a membership.
//!
//! Slipway has one workspace, `default`; a role names it and nothing else. Resource types are
//! the kinds Slipway grants on (`experiment`, `registered_model`, `deployment`). The middleware
//! lets only administrators through, but for `users/roles/list`, which a user may call about
//! themself.

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};
use slipway_auth::Permission;
use slipway_store::auth::{Grant, Grantee, Group, GroupUpdate, Membership};

use super::permissions::{kind, required, self_or_admin};
use super::{Auth, Caller};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryArgs};

/// The one workspace there is.
const WORKSPACE: &str = "default";

pub fn permission_json(g: &Grant) -> Value {
    let permission = Permission::from_i64(g.permission).map_or("NO_PERMISSIONS", Permission::as_str);
    json!({"id": g.id, "role_id": g.group_id, "resource_type": g.kind.as_str(),
           "resource_pattern": g.pattern, "permission": permission})
}

pub fn role_json(g: &Group) -> Value {
    let permissions: Vec<Value> = g.grants.iter().map(permission_json).collect();
    json!({"id": g.id, "name": g.name, "workspace": WORKSPACE, "description": g.description,
           "permissions": permissions})
}

fn assignment_json(m: &Membership) -> Value {
    json!({"id": m.id, "user_id": m.principal_id, "role_id": m.group_id})
}

/// An id given as a JSON number, or as digits in a string (query arguments always are).
fn id_arg(v: Option<Value>, name: &str) -> ApiResult<i64> {
    let bad = || ApiError::invalid(format!("'{name}' must be an integer"));
    match v {
        None | Some(Value::Null) => Err(ApiError::missing(name)),
        Some(Value::Number(n)) => n.as_i64().ok_or_else(bad),
        Some(Value::String(s)) => s.trim().parse().map_err(|_| bad()),
        Some(_) => Err(bad()),
    }
}

fn workspace(w: Option<String>) -> ApiResult<()> {
    match w.as_deref().map(str::trim) {
        None | Some("") => Err(ApiError::invalid("Workspace cannot be empty.")),
        Some(WORKSPACE) => Ok(()),
        Some(other) => {
            Err(ApiError::invalid(format!("workspace '{other}' does not exist: Slipway has one, 'default'")))
        }
    }
}

/// A role permission's level: MLflow's names, less NO_PERMISSIONS (a role grants something).
fn role_permission(text: Option<String>) -> ApiResult<i64> {
    let text = required(text, "permission")?;
    match Permission::parse(&text) {
        Some(p) if p != Permission::NoPermissions => Ok(p.as_i64()),
        _ => Err(ApiError::invalid(format!("unknown permission '{text}': use READ, USE, EDIT, MANAGE or DENY"))),
    }
}

#[derive(Deserialize)]
pub struct RoleRequest {
    role_id: Option<Value>,
    workspace: Option<String>,
    name: Option<String>,
    description: Option<Value>,
    username: Option<String>,
}

fn description(d: Option<Value>) -> ApiResult<Option<String>> {
    match d {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::invalid("Role description must be a string or null.")),
    }
}

pub async fn create(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
    JsonBody(r): JsonBody<RoleRequest>,
) -> ApiResult<Json<Value>> {
    let name =
        r.name.filter(|n| !n.trim().is_empty()).ok_or_else(|| ApiError::invalid("Role name cannot be empty."))?;
    workspace(r.workspace)?;
    let group = auth.store.create_group(name, description(r.description)?, caller.name().to_string()).await?;
    Ok(Json(json!({"role": role_json(&group)})))
}

pub async fn get(State(auth): State<Arc<Auth>>, QueryArgs(q): QueryArgs<RoleRequest>) -> ApiResult<Json<Value>> {
    let group = auth.store.group(id_arg(q.role_id, "role_id")?).await?;
    Ok(Json(json!({"role": role_json(&group)})))
}

/// Every role, or those of the workspace asked for (`default`, or none at all).
pub async fn list(State(auth): State<Arc<Auth>>, QueryArgs(q): QueryArgs<RoleRequest>) -> ApiResult<Json<Value>> {
    if let Some(w) = &q.workspace {
        if w.trim().is_empty() {
            return Err(ApiError::invalid("Parameter 'workspace' must be a non-empty string when provided."));
        }
        if w != WORKSPACE {
            return Ok(Json(json!({"roles": []})));
        }
    }
    let roles: Vec<Value> = auth.store.list_groups().await?.iter().map(role_json).collect();
    Ok(Json(json!({"roles": roles})))
}

pub async fn update(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
    JsonBody(r): JsonBody<RoleRequest>,
) -> ApiResult<Json<Value>> {
    let id = id_arg(r.role_id, "role_id")?;
    if r.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        return Err(ApiError::invalid("Role name cannot be empty."));
    }
    let update = GroupUpdate { name: r.name, description: description(r.description)? };
    let group = auth.store.update_group(id, update, caller.name().to_string()).await?;
    Ok(Json(json!({"role": role_json(&group)})))
}

pub async fn delete(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
    JsonBody(r): JsonBody<RoleRequest>,
) -> ApiResult<Json<Value>> {
    auth.store.delete_group(id_arg(r.role_id, "role_id")?, caller.name().to_string()).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct PermissionRequest {
    role_id: Option<Value>,
    role_permission_id: Option<Value>,
    resource_type: Option<String>,
    resource_pattern: Option<Value>,
    permission: Option<String>,
}

fn pattern(p: Option<Value>) -> ApiResult<String> {
    match p {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(ApiError::missing("resource_pattern")),
    }
}

pub async fn add_permission(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
    JsonBody(r): JsonBody<PermissionRequest>,
) -> ApiResult<Json<Value>> {
    let id = id_arg(r.role_id, "role_id")?;
    let (kind, pattern) = (kind(r.resource_type)?, pattern(r.resource_pattern)?);
    let permission = role_permission(r.permission)?;
    let grant =
        auth.store.add_grant(Grantee::GroupId(id), kind, pattern, permission, caller.name().to_string()).await?;
    Ok(Json(json!({"role_permission": permission_json(&grant)})))
}

pub async fn remove_permission(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
    JsonBody(r): JsonBody<PermissionRequest>,
) -> ApiResult<Json<Value>> {
    let id = id_arg(r.role_permission_id, "role_permission_id")?;
    auth.store.delete_grant(id, caller.name().to_string()).await?;
    Ok(Json(json!({})))
}

pub async fn list_permissions(
    State(auth): State<Arc<Auth>>,
    QueryArgs(q): QueryArgs<PermissionRequest>,
) -> ApiResult<Json<Value>> {
    let group = auth.store.group(id_arg(q.role_id, "role_id")?).await?;
    let permissions: Vec<Value> = group.grants.iter().map(permission_json).collect();
    Ok(Json(json!({"role_permissions": permissions})))
}

pub async fn update_permission(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
    JsonBody(r): JsonBody<PermissionRequest>,
) -> ApiResult<Json<Value>> {
    let id = id_arg(r.role_permission_id, "role_permission_id")?;
    let permission = role_permission(r.permission)?;
    let grant = auth.store.update_grant(id, permission, caller.name().to_string()).await?;
    Ok(Json(json!({"role_permission": permission_json(&grant)})))
}

pub async fn assign(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
    JsonBody(r): JsonBody<RoleRequest>,
) -> ApiResult<Json<Value>> {
    let (id, name) = (id_arg(r.role_id, "role_id")?, required(r.username, "username")?);
    let membership = auth.store.add_member(id, name, caller.name().to_string()).await?;
    Ok(Json(json!({"assignment": assignment_json(&membership)})))
}

pub async fn unassign(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
    JsonBody(r): JsonBody<RoleRequest>,
) -> ApiResult<Json<Value>> {
    let (id, name) = (id_arg(r.role_id, "role_id")?, required(r.username, "username")?);
    auth.store.remove_member(id, name, caller.name().to_string()).await?;
    Ok(Json(json!({})))
}

pub async fn users(State(auth): State<Arc<Auth>>, QueryArgs(q): QueryArgs<RoleRequest>) -> ApiResult<Json<Value>> {
    let members = auth.store.members(id_arg(q.role_id, "role_id")?).await?;
    Ok(Json(json!({"assignments": members.iter().map(assignment_json).collect::<Vec<_>>()})))
}

/// A user's roles: an administrator asks about anyone, a user about themself.
pub async fn of_user(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
    QueryArgs(q): QueryArgs<RoleRequest>,
) -> ApiResult<Json<Value>> {
    let name = required(q.username, "username")?;
    self_or_admin(&caller, &name)?;
    let roles: Vec<Value> = auth.store.groups_of(name).await?.iter().map(role_json).collect();
    Ok(Json(json!({"roles": roles})))
}
