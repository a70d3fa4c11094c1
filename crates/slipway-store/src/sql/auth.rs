//! Principals, groups, grants and API tokens in SQL. Each mutation bumps `auth_state.epoch`
//! and appends its audit record in its own transaction; password hashes and token digests
//! never reach the audit log.

use serde_json::json;

use super::audit;
use super::conn::{Connection, OptionalExtension, Row, params};
use crate::auth::{
    Access, Child, DENIALS_KEPT_MS, Denial, DenialQuery, Grant, Grantee, Group, GroupUpdate, Membership, NewPrincipal,
    NewToken, ObjectKind, Principal, PrincipalKind, PrincipalUpdate, TokenRecord,
};
use crate::{Result, StoreError, now_ms};

const PRINCIPAL_COLUMNS: &str = "principal_id, kind, name, is_admin, disabled, password_hash, created_ms";
const TOKEN_COLUMNS: &str = "t.token_id, t.principal_id, p.name, t.name, t.secret_sha256, t.scopes_json, \
     t.created_ms, t.expires_ms, t.last_used_ms, t.revoked_ms";

/// The name of a principal's personal group: MLflow's synthetic per-user role.
fn personal_group(principal_id: i64) -> String {
    format!("__user_{principal_id}__")
}

fn principal_not_found(name: &str) -> StoreError {
    StoreError::NotFound(format!("user '{name}' not found"))
}

pub fn validate_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 256 {
        return Err(StoreError::InvalidParameter(format!("{what} must be 1 to 256 bytes long")));
    }
    if name.chars().any(|c| c.is_control()) || name.contains(':') {
        return Err(StoreError::InvalidParameter(format!("{what} must not contain ':' or control characters")));
    }
    Ok(())
}

/// A token's name: free text, but one line.
fn validate_label(what: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
        return Err(StoreError::InvalidParameter(format!("{what} must be 1 to 256 bytes long, on one line")));
    }
    Ok(())
}

pub fn bump_epoch(conn: &Connection) -> Result<()> {
    conn.execute("UPDATE auth_state SET epoch = epoch + 1 WHERE id = 1", params![])?;
    Ok(())
}

pub fn epoch(conn: &Connection) -> Result<u64> {
    Ok(conn.query_row("SELECT epoch FROM auth_state WHERE id = 1", params![], |r| r.get::<_, i64>(0))? as u64)
}

type PrincipalRow = (i64, String, String, i64, i64, Option<String>, i64);

fn row_to_principal(r: &Row) -> super::conn::Result<PrincipalRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
}

fn decode_principal(
    (id, kind, name, is_admin, disabled, password_hash, created_ms): PrincipalRow,
) -> Result<Principal> {
    let kind = PrincipalKind::parse(&kind)
        .ok_or_else(|| StoreError::Backend(format!("principal {id} has unknown kind '{kind}'")))?;
    Ok(Principal { id, kind, name, is_admin: is_admin != 0, disabled: disabled != 0, password_hash, created_ms })
}

/// What the audit log shows of a principal: never its hash.
fn snapshot(p: &Principal) -> serde_json::Value {
    json!({"id": p.id, "kind": p.kind, "name": p.name, "is_admin": p.is_admin, "disabled": p.disabled,
           "has_password": p.password_hash.is_some()})
}

fn find_principal(conn: &Connection, name: &str) -> Result<Option<Principal>> {
    conn.prepare_cached(&format!("SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE name = ?1"))?
        .query_row([name], row_to_principal)
        .optional()?
        .map(decode_principal)
        .transpose()
}

pub fn principal(conn: &Connection, name: &str) -> Result<Principal> {
    find_principal(conn, name)?.ok_or_else(|| principal_not_found(name))
}

pub fn principal_by_id(conn: &Connection, id: i64) -> Result<Principal> {
    conn.prepare_cached(&format!("SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE principal_id = ?1"))?
        .query_row([id], row_to_principal)
        .optional()?
        .map(decode_principal)
        .transpose()?
        .ok_or_else(|| StoreError::NotFound(format!("user {id} not found")))
}

pub fn list_principals(conn: &Connection) -> Result<Vec<Principal>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {PRINCIPAL_COLUMNS} FROM principals ORDER BY principal_id"))?;
    let rows = stmt.query_map(params![], row_to_principal)?.collect::<super::conn::Result<Vec<_>>>()?;
    rows.into_iter().map(decode_principal).collect()
}

pub fn create_principal(conn: &Connection, new: &NewPrincipal, actor: &str) -> Result<Principal> {
    if find_principal(conn, &new.name)?.is_some() {
        return Err(StoreError::AlreadyExists(format!("user '{}' already exists", new.name)));
    }
    let now = now_ms();
    let id: i64 = conn.query_row(
        "INSERT INTO principals (kind, name, is_admin, disabled, password_hash, created_ms)
         VALUES (?1, ?2, ?3, 0, ?4, ?5) RETURNING principal_id",
        params![new.kind.as_str(), new.name.as_str(), i64::from(new.is_admin), new.password_hash.as_deref(), now],
        |r| r.get(0),
    )?;
    conn.execute(
        "INSERT INTO auth_groups (name, description, personal_of, created_ms) VALUES (?1, NULL, ?2, ?3)",
        params![personal_group(id), id, now],
    )?;
    bump_epoch(conn)?;
    let created = principal_by_id(conn, id)?;
    audit::record(conn, actor, "create", new.kind.as_str(), &new.name, None, None, Some(snapshot(&created)))?;
    Ok(created)
}

pub fn update_principal(conn: &Connection, name: &str, update: &PrincipalUpdate, actor: &str) -> Result<()> {
    let before = principal(conn, name)?;
    conn.execute(
        "UPDATE principals SET password_hash = COALESCE(?2, password_hash), is_admin = COALESCE(?3, is_admin),
         disabled = COALESCE(?4, disabled) WHERE principal_id = ?1",
        params![
            before.id,
            update.password_hash.as_deref(),
            update.is_admin.map(i64::from),
            update.disabled.map(i64::from)
        ],
    )?;
    bump_epoch(conn)?;
    let after = principal_by_id(conn, before.id)?;
    let action = if update.password_hash.is_some() { "update_password" } else { "update" };
    audit::record(
        conn,
        actor,
        action,
        before.kind.as_str(),
        name,
        None,
        Some(snapshot(&before)),
        Some(snapshot(&after)),
    )
}

pub fn rehash_password(conn: &Connection, id: i64, old: &str, new: &str) -> Result<()> {
    conn.execute(
        "UPDATE principals SET password_hash = ?3 WHERE principal_id = ?1 AND password_hash = ?2",
        params![id, old, new],
    )?;
    Ok(())
}

pub fn delete_principal(conn: &Connection, name: &str, actor: &str) -> Result<()> {
    let before = principal(conn, name)?;
    // Memberships, grants of the personal group and tokens go with it (ON DELETE CASCADE).
    conn.execute("DELETE FROM auth_groups WHERE personal_of = ?1", [before.id])?;
    conn.execute("DELETE FROM principals WHERE principal_id = ?1", [before.id])?;
    bump_epoch(conn)?;
    audit::record(conn, actor, "delete", before.kind.as_str(), name, None, Some(snapshot(&before)), None)
}

fn row_to_grant(r: &Row) -> super::conn::Result<(i64, i64, String, String, String, i64)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
}

fn decode_grant(
    (id, group_id, group_name, kind, pattern, permission): (i64, i64, String, String, String, i64),
) -> Result<Grant> {
    let kind =
        ObjectKind::parse(&kind).ok_or_else(|| StoreError::Backend(format!("grant {id} has unknown kind '{kind}'")))?;
    Ok(Grant { id, group_id, group_name, kind, pattern, permission })
}

pub fn access(conn: &Connection, principal_id: i64) -> Result<Access> {
    let principal = principal_by_id(conn, principal_id)?;
    let mut stmt = conn.prepare_cached(
        "SELECT group_id FROM auth_groups WHERE personal_of = ?1
         UNION SELECT group_id FROM group_members WHERE principal_id = ?1",
    )?;
    let mut group_ids =
        stmt.query_map([principal_id], |r| r.get::<_, i64>(0))?.collect::<super::conn::Result<Vec<_>>>()?;
    group_ids.sort_unstable();
    let mut stmt = conn.prepare_cached(
        "SELECT g.grant_id, g.group_id, a.name, g.kind, g.pattern, g.permission
         FROM grants g JOIN auth_groups a ON a.group_id = g.group_id
         WHERE g.group_id IN (SELECT group_id FROM auth_groups WHERE personal_of = ?1
                              UNION SELECT group_id FROM group_members WHERE principal_id = ?1)
         ORDER BY g.grant_id",
    )?;
    let rows = stmt.query_map([principal_id], row_to_grant)?.collect::<super::conn::Result<Vec<_>>>()?;
    let grants = rows.into_iter().map(decode_grant).collect::<Result<Vec<_>>>()?;
    Ok(Access { principal, group_ids, grants, epoch: epoch(conn)? })
}

fn grantee_group(conn: &Connection, grantee: &Grantee) -> Result<(i64, String)> {
    let found = match grantee {
        Grantee::Principal(name) => {
            let p = principal(conn, name)?;
            conn.query_row("SELECT group_id, name FROM auth_groups WHERE personal_of = ?1", [p.id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?
        }
        Grantee::Group(name) => conn
            .query_row("SELECT group_id, name FROM auth_groups WHERE name = ?1", [name.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?,
        Grantee::GroupId(id) => find_group_row(conn, *id)?.map(|(id, name, _)| (id, name)),
    };
    found.ok_or_else(|| match grantee {
        Grantee::Principal(name) => principal_not_found(name),
        Grantee::Group(name) => StoreError::NotFound(format!("group '{name}' not found")),
        Grantee::GroupId(id) => group_not_found(*id),
    })
}

/// The name a grant's holder goes by in messages and the audit log: the user's for a
/// personal group.
fn grantee_label(grantee: &Grantee, group_name: &str) -> String {
    match grantee {
        Grantee::Principal(n) => n.clone(),
        Grantee::Group(_) | Grantee::GroupId(_) => group_name.to_string(),
    }
}

const GRANT_SELECT: &str = "SELECT g.grant_id, g.group_id, a.name, g.kind, g.pattern, g.permission
     FROM grants g JOIN auth_groups a ON a.group_id = g.group_id";

fn grant_row(conn: &Connection, group_id: i64, kind: ObjectKind, pattern: &str) -> Result<Option<Grant>> {
    conn.query_row(
        &format!("{GRANT_SELECT} WHERE g.group_id = ?1 AND g.kind = ?2 AND g.pattern = ?3"),
        params![group_id, kind.as_str(), pattern],
        row_to_grant,
    )
    .optional()?
    .map(decode_grant)
    .transpose()
}

/// Writes the grantee's permission on an object; `replace` says whether an earlier one may
/// be overwritten (else it is AlreadyExists).
fn put_grant(
    conn: &Connection,
    grantee: &Grantee,
    kind: ObjectKind,
    pattern: &str,
    permission: i64,
    actor: &str,
    replace: bool,
) -> Result<Grant> {
    if pattern.is_empty() || pattern.len() > 1024 {
        return Err(StoreError::InvalidParameter("resource must be 1 to 1024 bytes long".into()));
    }
    let (group_id, group_name) = grantee_group(conn, grantee)?;
    let label = grantee_label(grantee, &group_name);
    match grant_row(conn, group_id, kind, pattern)? {
        Some(_) if !replace => {
            return Err(StoreError::AlreadyExists(format!(
                "'{label}' already has a permission on {} '{pattern}'",
                kind.as_str()
            )));
        }
        // Granted as it was: nothing changes, so no epoch moves and no record is written.
        Some(same) if same.permission == permission => return Ok(same),
        _ => {}
    }
    conn.execute(
        "INSERT INTO grants (group_id, kind, pattern, permission) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (group_id, kind, pattern) DO UPDATE SET permission = excluded.permission",
        params![group_id, kind.as_str(), pattern, permission],
    )?;
    bump_epoch(conn)?;
    let grant = grant_row(conn, group_id, kind, pattern)?
        .ok_or_else(|| StoreError::Backend("a grant just written cannot be read back".into()))?;
    let after = json!({"grantee": label, "kind": kind, "resource": pattern, "permission": permission});
    audit::record(conn, actor, "grant", "grant", &label, None, None, Some(after))?;
    Ok(grant)
}

pub fn set_grant(
    conn: &Connection,
    grantee: &Grantee,
    kind: ObjectKind,
    pattern: &str,
    permission: i64,
    actor: &str,
) -> Result<Grant> {
    put_grant(conn, grantee, kind, pattern, permission, actor, true)
}

pub fn add_grant(
    conn: &Connection,
    grantee: &Grantee,
    kind: ObjectKind,
    pattern: &str,
    permission: i64,
    actor: &str,
) -> Result<Grant> {
    put_grant(conn, grantee, kind, pattern, permission, actor, false)
}

pub fn remove_grant(conn: &Connection, grantee: &Grantee, kind: ObjectKind, pattern: &str, actor: &str) -> Result<()> {
    let (group_id, group_name) = grantee_group(conn, grantee)?;
    let label = grantee_label(grantee, &group_name);
    let removed = conn.execute(
        "DELETE FROM grants WHERE group_id = ?1 AND kind = ?2 AND pattern = ?3",
        params![group_id, kind.as_str(), pattern],
    )?;
    if removed == 0 {
        return Err(StoreError::NotFound(format!("'{label}' has no permission on {} '{pattern}'", kind.as_str())));
    }
    bump_epoch(conn)?;
    let before = json!({"grantee": label, "kind": kind, "resource": pattern});
    audit::record(conn, actor, "revoke", "grant", &label, None, Some(before), None)
}

pub fn grant(conn: &Connection, grant_id: i64) -> Result<Grant> {
    conn.query_row(&format!("{GRANT_SELECT} WHERE g.grant_id = ?1"), [grant_id], row_to_grant)
        .optional()?
        .map(decode_grant)
        .transpose()?
        .ok_or_else(|| StoreError::NotFound(format!("role permission {grant_id} not found")))
}

fn grant_snapshot(g: &Grant) -> serde_json::Value {
    json!({"id": g.id, "grantee": g.group_name, "kind": g.kind, "resource": g.pattern, "permission": g.permission})
}

pub fn update_grant(conn: &Connection, grant_id: i64, permission: i64, actor: &str) -> Result<Grant> {
    let before = grant(conn, grant_id)?;
    conn.execute("UPDATE grants SET permission = ?2 WHERE grant_id = ?1", params![grant_id, permission])?;
    bump_epoch(conn)?;
    let after = grant(conn, grant_id)?;
    let (b, a) = (Some(grant_snapshot(&before)), Some(grant_snapshot(&after)));
    audit::record(conn, actor, "grant", "grant", &before.group_name, None, b, a)?;
    Ok(after)
}

pub fn delete_grant(conn: &Connection, grant_id: i64, actor: &str) -> Result<()> {
    let before = grant(conn, grant_id)?;
    conn.execute("DELETE FROM grants WHERE grant_id = ?1", [grant_id])?;
    bump_epoch(conn)?;
    audit::record(conn, actor, "revoke", "grant", &before.group_name, None, Some(grant_snapshot(&before)), None)
}

/// Personal groups' names begin so; no named group may.
const PERSONAL_PREFIX: &str = "__user_";

fn group_not_found(id: i64) -> StoreError {
    StoreError::NotFound(format!("role {id} not found"))
}

pub fn validate_group_name(name: &str) -> Result<()> {
    validate_name("role name", name)?;
    if name.starts_with(PERSONAL_PREFIX) {
        return Err(StoreError::InvalidParameter(format!(
            "role names beginning with '{PERSONAL_PREFIX}' are kept for users' own permissions"
        )));
    }
    Ok(())
}

fn validate_description(description: Option<&str>) -> Result<()> {
    match description {
        Some(d) if d.len() > 4096 => Err(StoreError::InvalidParameter("description must be at most 4096 bytes".into())),
        _ => Ok(()),
    }
}

type GroupRow = (i64, String, Option<String>);

fn find_group_row(conn: &Connection, id: i64) -> Result<Option<GroupRow>> {
    Ok(conn
        .query_row(
            "SELECT group_id, name, description FROM auth_groups WHERE group_id = ?1 AND personal_of IS NULL",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?)
}

fn grants_of(conn: &Connection, group_id: i64) -> Result<Vec<Grant>> {
    let mut stmt = conn.prepare_cached(&format!("{GRANT_SELECT} WHERE g.group_id = ?1 ORDER BY g.grant_id"))?;
    let rows = stmt.query_map([group_id], row_to_grant)?.collect::<super::conn::Result<Vec<_>>>()?;
    rows.into_iter().map(decode_grant).collect()
}

fn with_grants(conn: &Connection, (id, name, description): GroupRow) -> Result<Group> {
    Ok(Group { id, name, description, grants: grants_of(conn, id)? })
}

pub fn group(conn: &Connection, id: i64) -> Result<Group> {
    let row = find_group_row(conn, id)?.ok_or_else(|| group_not_found(id))?;
    with_grants(conn, row)
}

fn group_rows(conn: &Connection, sql: &str, key: &dyn rusqlite::ToSql) -> Result<Vec<Group>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt
        .query_map([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<super::conn::Result<Vec<GroupRow>>>()?;
    rows.into_iter().map(|row| with_grants(conn, row)).collect()
}

pub fn list_groups(conn: &Connection) -> Result<Vec<Group>> {
    group_rows(
        conn,
        "SELECT group_id, name, description FROM auth_groups WHERE personal_of IS NULL AND ?1 = 1 ORDER BY name",
        &1i64,
    )
}

pub fn groups_named(conn: &Connection, names: &[String]) -> Result<Vec<Group>> {
    let mut found = Vec::new();
    for name in names {
        found.extend(group_rows(
            conn,
            "SELECT group_id, name, description FROM auth_groups WHERE name = ?1 AND personal_of IS NULL",
            name,
        )?);
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found.dedup_by_key(|g| g.id);
    Ok(found)
}

fn group_snapshot(g: &Group) -> serde_json::Value {
    json!({"id": g.id, "name": g.name, "description": g.description})
}

fn name_taken(conn: &Connection, name: &str) -> Result<bool> {
    Ok(conn.query_row("SELECT 1 FROM auth_groups WHERE name = ?1", [name], |_| Ok(())).optional()?.is_some())
}

pub fn create_group(conn: &Connection, name: &str, description: Option<&str>, actor: &str) -> Result<Group> {
    validate_group_name(name)?;
    validate_description(description)?;
    if name_taken(conn, name)? {
        return Err(StoreError::AlreadyExists(format!("role '{name}' already exists")));
    }
    let id: i64 = conn.query_row(
        "INSERT INTO auth_groups (name, description, personal_of, created_ms) VALUES (?1, ?2, NULL, ?3)
         RETURNING group_id",
        params![name, description, now_ms()],
        |r| r.get(0),
    )?;
    bump_epoch(conn)?;
    let created = group(conn, id)?;
    audit::record(conn, actor, "create", "group", name, None, None, Some(group_snapshot(&created)))?;
    Ok(created)
}

pub fn update_group(conn: &Connection, id: i64, update: &GroupUpdate, actor: &str) -> Result<Group> {
    let before = group(conn, id)?;
    if let Some(name) = update.name.as_deref().filter(|n| *n != before.name) {
        validate_group_name(name)?;
        if name_taken(conn, name)? {
            return Err(StoreError::AlreadyExists(format!("role '{name}' already exists")));
        }
    }
    validate_description(update.description.as_deref())?;
    conn.execute(
        "UPDATE auth_groups SET name = COALESCE(?2, name), description = COALESCE(?3, description)
         WHERE group_id = ?1",
        params![id, update.name.as_deref(), update.description.as_deref()],
    )?;
    bump_epoch(conn)?;
    let after = group(conn, id)?;
    let (b, a) = (Some(group_snapshot(&before)), Some(group_snapshot(&after)));
    audit::record(conn, actor, "update", "group", &after.name, None, b, a)?;
    Ok(after)
}

pub fn delete_group(conn: &Connection, id: i64, actor: &str) -> Result<()> {
    let before = group(conn, id)?;
    // Its grants and memberships go with it (ON DELETE CASCADE).
    conn.execute("DELETE FROM auth_groups WHERE group_id = ?1", [id])?;
    bump_epoch(conn)?;
    audit::record(conn, actor, "delete", "group", &before.name, None, Some(group_snapshot(&before)), None)
}

fn membership(conn: &Connection, group_id: i64, principal_id: i64) -> Result<Option<Membership>> {
    Ok(conn
        .query_row(
            "SELECT membership_id, group_id, principal_id FROM group_members WHERE group_id = ?1 AND principal_id = ?2",
            params![group_id, principal_id],
            |r| Ok(Membership { id: r.get(0)?, group_id: r.get(1)?, principal_id: r.get(2)? }),
        )
        .optional()?)
}

pub fn add_member(conn: &Connection, group_id: i64, name: &str, actor: &str) -> Result<Membership> {
    let g = group(conn, group_id)?;
    let p = principal(conn, name)?;
    if membership(conn, group_id, p.id)?.is_some() {
        return Err(StoreError::AlreadyExists(format!("user '{name}' already has role '{}'", g.name)));
    }
    conn.execute("INSERT INTO group_members (group_id, principal_id) VALUES (?1, ?2)", params![group_id, p.id])?;
    bump_epoch(conn)?;
    let m = membership(conn, group_id, p.id)?
        .ok_or_else(|| StoreError::Backend("a membership just written cannot be read back".into()))?;
    audit::record(conn, actor, "assign", "group", &g.name, None, None, Some(json!({"member": name})))?;
    Ok(m)
}

pub fn remove_member(conn: &Connection, group_id: i64, name: &str, actor: &str) -> Result<()> {
    let g = group(conn, group_id)?;
    let p = principal(conn, name)?;
    let removed =
        conn.execute("DELETE FROM group_members WHERE group_id = ?1 AND principal_id = ?2", params![group_id, p.id])?;
    if removed == 0 {
        return Err(StoreError::NotFound(format!("user '{name}' does not have role '{}'", g.name)));
    }
    bump_epoch(conn)?;
    audit::record(conn, actor, "unassign", "group", &g.name, None, Some(json!({"member": name})), None)
}

pub fn members(conn: &Connection, group_id: i64) -> Result<Vec<Membership>> {
    group(conn, group_id)?;
    let mut stmt = conn.prepare_cached(
        "SELECT membership_id, group_id, principal_id FROM group_members WHERE group_id = ?1 ORDER BY membership_id",
    )?;
    let rows = stmt
        .query_map([group_id], |r| Ok(Membership { id: r.get(0)?, group_id: r.get(1)?, principal_id: r.get(2)? }))?
        .collect::<super::conn::Result<Vec<_>>>()?;
    Ok(rows)
}

pub fn groups_of(conn: &Connection, name: &str) -> Result<Vec<Group>> {
    let p = principal(conn, name)?;
    group_rows(
        conn,
        "SELECT a.group_id, a.name, a.description FROM group_members m JOIN auth_groups a ON a.group_id = m.group_id
         WHERE m.principal_id = ?1 AND a.personal_of IS NULL ORDER BY a.name",
        &p.id,
    )
}

type TokenRow = (String, i64, String, String, String, String, i64, i64, Option<i64>, Option<i64>);

fn row_to_token(r: &Row) -> super::conn::Result<TokenRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?))
}

fn decode_token(
    (
        id,
        principal_id,
        principal_name,
        name,
        secret_sha256,
        scopes_json,
        created_ms,
        expires_ms,
        last_used_ms,
        revoked_ms,
    ): TokenRow,
) -> TokenRecord {
    TokenRecord {
        id,
        principal_id,
        principal_name,
        name,
        secret_sha256,
        scopes_json,
        created_ms,
        expires_ms,
        last_used_ms,
        revoked_ms,
    }
}

/// What the audit log shows of a token: never its digest.
fn token_snapshot(t: &TokenRecord) -> serde_json::Value {
    json!({"id": t.id, "principal": t.principal_name, "name": t.name, "scopes": t.scopes_json,
           "expires_ms": t.expires_ms, "revoked_ms": t.revoked_ms})
}

fn find_token(conn: &Connection, id: &str) -> Result<Option<TokenRecord>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens t JOIN principals p ON p.principal_id = t.principal_id
             WHERE t.token_id = ?1"
        ))?
        .query_row([id], row_to_token)
        .optional()?
        .map(decode_token))
}

pub fn token(conn: &Connection, id: &str) -> Result<TokenRecord> {
    find_token(conn, id)?.ok_or_else(|| StoreError::NotFound(format!("token '{id}' not found")))
}

pub fn list_tokens(conn: &Connection, principal_id: Option<i64>) -> Result<Vec<TokenRecord>> {
    let select = format!(
        "SELECT {TOKEN_COLUMNS} FROM api_tokens t JOIN principals p ON p.principal_id = t.principal_id
         WHERE t.principal_id = ?1 OR ?2 = 1 ORDER BY t.created_ms DESC, t.token_id"
    );
    let mut stmt = conn.prepare_cached(&select)?;
    let every = i64::from(principal_id.is_none());
    let rows = stmt
        .query_map(params![principal_id.unwrap_or(0), every], row_to_token)?
        .collect::<super::conn::Result<Vec<_>>>()?;
    Ok(rows.into_iter().map(decode_token).collect())
}

pub fn create_token(conn: &Connection, new: &NewToken, actor: &str) -> Result<TokenRecord> {
    validate_label("token name", &new.name)?;
    principal_by_id(conn, new.principal_id)?;
    if find_token(conn, &new.id)?.is_some() {
        return Err(StoreError::AlreadyExists(format!("token '{}' already exists", new.id)));
    }
    conn.execute(
        "INSERT INTO api_tokens (token_id, principal_id, name, secret_sha256, scopes_json, created_ms, expires_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            new.id.as_str(),
            new.principal_id,
            new.name.as_str(),
            new.secret_sha256.as_str(),
            new.scopes_json.as_str(),
            now_ms(),
            new.expires_ms
        ],
    )?;
    bump_epoch(conn)?;
    let created = token(conn, &new.id)?;
    audit::record(conn, actor, "create", "token", &created.id, None, None, Some(token_snapshot(&created)))?;
    Ok(created)
}

pub fn revoke_token(conn: &Connection, id: &str, actor: &str) -> Result<()> {
    let before = token(conn, id)?;
    if before.revoked_ms.is_some() {
        return Ok(());
    }
    conn.execute("UPDATE api_tokens SET revoked_ms = ?2 WHERE token_id = ?1", params![id, now_ms()])?;
    bump_epoch(conn)?;
    let after = token(conn, id)?;
    audit::record(conn, actor, "revoke", "token", id, None, Some(token_snapshot(&before)), Some(token_snapshot(&after)))
}

pub fn touch_token(conn: &Connection, id: &str, now: i64) -> Result<()> {
    conn.execute("UPDATE api_tokens SET last_used_ms = ?2 WHERE token_id = ?1", params![id, now])?;
    Ok(())
}

pub fn parent_of(conn: &Connection, child: &Child) -> Result<Option<String>> {
    let one = |sql: &str, key: &str| -> Result<Option<String>> {
        Ok(conn.query_row(sql, [key], |r| r.get::<_, String>(0)).optional()?)
    };
    match child {
        Child::Run(id) => one("SELECT CAST(experiment_id AS TEXT) FROM runs WHERE run_uuid = ?1", id),
        Child::LoggedModel(id) => one("SELECT CAST(experiment_id AS TEXT) FROM logged_models WHERE model_id = ?1", id),
        Child::ExperimentName(name) => one("SELECT CAST(experiment_id AS TEXT) FROM experiments WHERE name = ?1", name),
        Child::Monitor(name) => {
            let Some(spec) = one("SELECT spec_json FROM monitors WHERE name = ?1", name)? else {
                return Ok(None);
            };
            let spec: slipway_types::MonitorSpec = serde_json::from_str(&spec)
                .map_err(|e| StoreError::Backend(format!("stored spec of monitor '{name}' does not parse: {e}")))?;
            Ok(Some(spec.deployment))
        }
        Child::LabelQueue(name) => one("SELECT deployment FROM label_queues WHERE name = ?1", name),
    }
}

pub fn alias_followers(conn: &Connection, model: &str, alias: &str) -> Result<Vec<String>> {
    let follows = |a: &Option<String>| a.as_deref() == Some(alias);
    Ok(super::deployments::list(conn)?
        .into_iter()
        .filter(|d| {
            let spec = &d.spec;
            spec.model == model
                && (follows(&spec.alias)
                    || spec.canary.as_ref().is_some_and(|s| follows(&s.alias))
                    || spec.shadow.as_ref().is_some_and(|s| follows(&s.alias)))
        })
        .map(|d| d.spec.name)
        .collect())
}

pub fn record_denials(conn: &Connection, denials: &[Denial]) -> Result<()> {
    for d in denials {
        conn.execute(
            "INSERT INTO access_denials (timestamp, principal, token_id, address, method, path, status, reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                d.timestamp,
                d.principal.as_deref(),
                d.token_id.as_deref(),
                d.address.as_deref(),
                d.method.as_str(),
                d.path.as_str(),
                d.status,
                d.reason.as_str()
            ],
        )?;
    }
    conn.execute("DELETE FROM access_denials WHERE timestamp < ?1", [now_ms() - DENIALS_KEPT_MS])?;
    Ok(())
}

pub fn denials(conn: &Connection, q: &DenialQuery) -> Result<crate::Page<Denial>> {
    let limit = crate::validate::max_results(q.max_results, 100, 10_000)?;
    let offset = crate::page_token::decode(q.page_token.as_deref())?;
    let mut sql = super::query::Sql::default();
    sql.push(
        "SELECT id, timestamp, principal, token_id, address, method, path, status, reason FROM access_denials \
         WHERE 1 = 1",
    );
    if let Some(p) = &q.principal {
        sql.push(" AND principal = ").arg(p.clone());
    }
    if let Some(since) = q.since {
        sql.push(" AND timestamp >= ").arg(since);
    }
    if let Some(until) = q.until {
        sql.push(" AND timestamp < ").arg(until);
    }
    sql.push(" ORDER BY id DESC");
    sql.page(conn, limit, offset, |r| {
        Ok(Denial {
            id: r.get(0)?,
            timestamp: r.get(1)?,
            principal: r.get(2)?,
            token_id: r.get(3)?,
            address: r.get(4)?,
            method: r.get(5)?,
            path: r.get(6)?,
            status: r.get(7)?,
            reason: r.get(8)?,
        })
    })
}
