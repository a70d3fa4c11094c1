//! `slipway import mlflow --auth-db`: MLflow's users, roles and permissions into Slipway's
//! principals, groups and grants.
//!
//! Users keep their werkzeug password hashes (verified at their next login and rehashed with
//! argon2id then); a hash Slipway will not verify (beyond its work bounds, or malformed) is left
//! out and reported, the user imported without a password. A user Slipway already has is kept as
//! it is. Each user's synthetic `__user_<id>__` role becomes their own grants; other roles become
//! groups with their grants and members. Everything is written by name and replaced in place,
//! so a second import changes nothing.

use std::collections::HashMap;

use serde::Serialize;
use slipway_auth::Permission;
use slipway_store::StoreError;
use slipway_store::auth::{AuthStore, Grantee, NewPrincipal, ObjectKind, PrincipalKind};
use slipway_store::import::mlflow::auth::{self as source, AuthPermission, AuthSnapshot};

use crate::{Counts, Result};

/// What an auth import did; `slipway import --json` prints it under `auth`.
#[derive(Debug, Default, Serialize)]
pub struct AuthReport {
    pub source: String,
    pub schema_revision: Option<String>,
    pub users: Counts,
    pub roles: Counts,
    pub grants: u64,
    pub memberships: u64,
    /// Everything not imported, and why.
    pub skipped: Vec<String>,
}

/// Imports the MLflow auth database at `uri` (its roles of `workspace`) into `store`, the audit
/// log naming `actor`.
pub async fn import_mlflow_auth(store: &dyn AuthStore, uri: &str, workspace: &str, actor: &str) -> Result<AuthReport> {
    let (owned_uri, owned_workspace, handle) =
        (uri.to_string(), workspace.to_string(), tokio::runtime::Handle::current());
    let snapshot = tokio::task::spawn_blocking(move || source::read(&owned_uri, &owned_workspace, &handle)).await??;
    let mut report =
        AuthReport { source: uri.to_string(), schema_revision: snapshot.revision.clone(), ..Default::default() };
    report.skipped.extend(snapshot.skipped.iter().cloned());
    let names = users(store, &snapshot, actor, &mut report).await?;

    let direct = snapshot.roles.iter().filter_map(|r| Some((r.personal_of?, &r.permissions)));
    let direct = direct.flat_map(|(user, ps)| ps.iter().map(move |p| (user, p)));
    let legacy = snapshot.user_permissions.iter().map(|(user, p)| (*user, p));
    for (user, permission) in direct.chain(legacy) {
        let Some(name) = names.get(&user) else { continue };
        grant(store, Grantee::Principal(name.clone()), permission, actor, &mut report).await?;
    }

    for role in snapshot.roles.iter().filter(|r| r.personal_of.is_none()) {
        let group = match store.create_group(role.name.clone(), role.description.clone(), actor.into()).await {
            Ok(g) => {
                report.roles.created += 1;
                g
            }
            Err(StoreError::AlreadyExists(_)) => {
                report.roles.unchanged += 1;
                match store.groups_named(vec![role.name.clone()]).await?.pop() {
                    Some(g) => g,
                    None => {
                        report.roles.skipped += 1;
                        report
                            .skipped
                            .push(format!("role '{}': a user's own permissions hold that name here", role.name));
                        continue;
                    }
                }
            }
            Err(StoreError::InvalidParameter(why)) => {
                report.roles.skipped += 1;
                report.skipped.push(format!("role '{}': {why}", role.name));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        for permission in &role.permissions {
            grant(store, Grantee::GroupId(group.id), permission, actor, &mut report).await?;
        }
        let members = snapshot.assignments.iter().filter(|(_, r)| *r == role.id);
        for name in members.filter_map(|(user, _)| names.get(user)) {
            match store.add_member(group.id, name.clone(), actor.into()).await {
                Ok(_) => report.memberships += 1,
                Err(StoreError::AlreadyExists(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(report)
}

/// Creates the users Slipway lacks; the names of all it holds, by MLflow's user id.
async fn users(
    store: &dyn AuthStore,
    snapshot: &AuthSnapshot,
    actor: &str,
    report: &mut AuthReport,
) -> Result<HashMap<i64, String>> {
    let mut names = HashMap::new();
    for user in &snapshot.users {
        match store.principal(user.username.clone()).await {
            Ok(_) => {
                report.users.unchanged += 1;
                names.insert(user.id, user.username.clone());
                continue;
            }
            Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let hash = user.password_hash.clone().filter(|h| !h.is_empty());
        let usable = match hash.as_deref().map(slipway_auth::password::check_stored) {
            Some(Err(why)) => {
                report.skipped.push(format!(
                    "user '{}': password hash not kept ({why}); set one with `slipway users set-password {}`",
                    user.username, user.username
                ));
                None
            }
            _ => hash,
        };
        let new = NewPrincipal {
            kind: PrincipalKind::User,
            name: user.username.clone(),
            password_hash: usable,
            is_admin: user.is_admin,
        };
        match store.create_principal(new, actor.into()).await {
            Ok(_) | Err(StoreError::AlreadyExists(_)) => {
                report.users.created += 1;
                names.insert(user.id, user.username.clone());
            }
            Err(StoreError::InvalidParameter(why)) => {
                report.users.skipped += 1;
                report.skipped.push(format!("user '{}': {why}", user.username));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(names)
}

/// Writes one permission as a grant, or reports why it has no counterpart.
async fn grant(
    store: &dyn AuthStore,
    grantee: Grantee,
    p: &AuthPermission,
    actor: &str,
    report: &mut AuthReport,
) -> Result<()> {
    let Some(kind) = ObjectKind::parse(&p.resource_type) else {
        report.skipped.push(format!(
            "{} on {} '{}': Slipway grants on experiments, registered models and deployments only",
            p.permission, p.resource_type, p.pattern
        ));
        return Ok(());
    };
    let Some(permission) = Permission::parse(&p.permission) else {
        report.skipped.push(format!("unknown permission '{}' on {} '{}'", p.permission, p.resource_type, p.pattern));
        return Ok(());
    };
    match store.set_grant(grantee, kind, p.pattern.clone(), permission.as_i64(), actor.into()).await {
        Ok(_) => report.grants += 1,
        Err(StoreError::InvalidParameter(why) | StoreError::NotFound(why)) => {
            report.skipped.push(format!("{} on {} '{}': {why}", p.permission, p.resource_type, p.pattern));
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}
