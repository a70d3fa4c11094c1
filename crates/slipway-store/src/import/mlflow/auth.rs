//! Reading MLflow's auth database (its basic-auth app's `database_uri`, SQLite or
//! PostgreSQL) for `slipway import mlflow --auth-db`: users with their password hashes, roles
//! with their permissions and members (MLflow 3.17's RBAC tables), and the per-user
//! permission tables of earlier releases, from one snapshot.

use std::collections::{HashMap, HashSet};

use super::{Database, Result, SourceError, rows};
use crate::sql::conn::Connection;

/// A user as MLflow keeps one: `password_hash` is werkzeug's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    pub id: i64,
    pub username: String,
    pub password_hash: Option<String>,
    pub is_admin: bool,
}

/// A permission on resources of a type: `pattern` an id, a name or `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthPermission {
    pub resource_type: String,
    pub pattern: String,
    pub permission: String,
}

/// A role of the workspace read, with its permissions. `personal_of` is the user whose
/// synthetic `__user_<id>__` role it is (their direct permissions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRole {
    pub id: i64,
    pub name: String,
    pub description: Option<String>,
    pub personal_of: Option<i64>,
    pub permissions: Vec<AuthPermission>,
}

/// Everything the auth database says about who may do what.
#[derive(Debug, Default)]
pub struct AuthSnapshot {
    pub revision: Option<String>,
    pub users: Vec<AuthUser>,
    pub roles: Vec<AuthRole>,
    /// (user id, role id)
    pub assignments: Vec<(i64, i64)>,
    /// Direct permissions from the per-user tables of MLflow before its roles: (user id, permission).
    pub user_permissions: Vec<(i64, AuthPermission)>,
    /// What was left out, and why.
    pub skipped: Vec<String>,
}

/// Per-user permission tables before MLflow 3.17: (table, resource type, its resource column).
const LEGACY: [(&str, &str, &str); 2] = [
    ("experiment_permissions", "experiment", "experiment_id"),
    ("registered_model_permissions", "registered_model", "name"),
];

/// The user id in a synthetic per-user role's name, `__user_<id>__`.
fn personal_of(name: &str) -> Option<i64> {
    name.strip_prefix("__user_")?.strip_suffix("__")?.parse().ok()
}

/// Reads MLflow's auth database at `uri` (`sqlite:///basic_auth.db`, `postgresql://…`): its
/// users, and the roles of `workspace` with their permissions and members. Must be called off
/// the async runtime's threads, as [`super::MlflowSource::open`].
pub fn read(uri: &str, workspace: &str, runtime: &tokio::runtime::Handle) -> Result<AuthSnapshot> {
    let db = Database::open(uri, runtime)?;
    let conn = match &db {
        Database::Sqlite(db) => Connection::Sqlite(db),
        Database::Postgres(s) => Connection::Postgres(s),
    };
    let tables: HashSet<String> = if conn.is_postgres() {
        rows(
            &conn,
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()",
            vec![],
            |r| r.get(0),
        )?
    } else {
        rows(&conn, "SELECT name FROM sqlite_master WHERE type = 'table'", vec![], |r| r.get(0))?
    }
    .into_iter()
    .collect();
    // The auth app's migrations keep their own version table (older releases, alembic's default).
    let Some(versions) = ["alembic_version_auth", "alembic_version"].into_iter().find(|t| tables.contains(*t)) else {
        return Err(SourceError::new(format!("{uri} is not an MLflow auth database (it has no migration version)")));
    };
    if !tables.contains("users") || tables.contains("runs") {
        return Err(SourceError::new(format!(
            "{uri} is not an MLflow auth database (its tables are not users and permissions)"
        )));
    }
    let revision = rows(&conn, &format!("SELECT version_num FROM {versions}"), vec![], |r| r.get(0))?;
    let mut out = AuthSnapshot { revision: revision.into_iter().next(), ..AuthSnapshot::default() };
    out.users = rows(
        &conn,
        "SELECT id, username, password_hash, CAST(is_admin AS INTEGER) FROM users ORDER BY id",
        vec![],
        |r| {
            Ok(AuthUser {
                id: r.get(0)?,
                username: r.get(1)?,
                password_hash: r.get(2)?,
                is_admin: r.get::<_, Option<i64>>(3)?.unwrap_or(0) != 0,
            })
        },
    )?;
    if tables.contains("roles") {
        read_roles(&conn, workspace, &mut out)?;
    }
    for (table, resource_type, column) in LEGACY {
        if !tables.contains(table) {
            continue;
        }
        let sql = format!("SELECT user_id, CAST({column} AS TEXT), permission FROM {table} ORDER BY id");
        let found = rows(&conn, &sql, vec![], |r| {
            let permission =
                AuthPermission { resource_type: resource_type.into(), pattern: r.get(1)?, permission: r.get(2)? };
            Ok((r.get::<_, i64>(0)?, permission))
        })?;
        out.user_permissions.extend(found);
    }
    for table in tables.iter().filter(|t| t.ends_with("_permissions") && !LEGACY.iter().any(|l| l.0 == *t)) {
        if table == "role_permissions" {
            continue;
        }
        let n: i64 =
            rows(&conn, &format!("SELECT count(*) FROM \"{}\"", table.replace('"', "\"\"")), vec![], |r| r.get(0))?
                .into_iter()
                .next()
                .unwrap_or(0);
        if n > 0 {
            out.skipped
                .push(format!("{n} rows of {table}: Slipway grants on experiments, models and deployments only"));
        }
    }
    Ok(out)
}

fn read_roles(conn: &Connection, workspace: &str, out: &mut AuthSnapshot) -> Result<()> {
    let all = rows(conn, "SELECT id, name, workspace, description FROM roles ORDER BY id", vec![], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, Option<String>>(3)?))
    })?;
    let mut roles: HashMap<i64, AuthRole> = HashMap::new();
    let mut order = Vec::new();
    let mut elsewhere = 0;
    for (id, name, role_workspace, description) in all {
        if role_workspace != workspace {
            elsewhere += 1;
            continue;
        }
        order.push(id);
        let personal_of = personal_of(&name);
        roles.insert(id, AuthRole { id, name, description, personal_of, permissions: Vec::new() });
    }
    if elsewhere > 0 {
        out.skipped.push(format!("{elsewhere} roles of other workspaces than '{workspace}'"));
    }
    let permissions = rows(
        conn,
        "SELECT role_id, resource_type, resource_pattern, permission FROM role_permissions ORDER BY id",
        vec![],
        |r| {
            let p = AuthPermission { resource_type: r.get(1)?, pattern: r.get(2)?, permission: r.get(3)? };
            Ok((r.get::<_, i64>(0)?, p))
        },
    )?;
    for (role, p) in permissions {
        if let Some(role) = roles.get_mut(&role) {
            role.permissions.push(p);
        }
    }
    let assignments = rows(conn, "SELECT user_id, role_id FROM user_role_assignments ORDER BY id", vec![], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })?;
    out.assignments = assignments.into_iter().filter(|(_, role)| roles.contains_key(role)).collect();
    out.roles = order.into_iter().filter_map(|id| roles.remove(&id)).collect();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::personal_of;

    #[test]
    fn synthetic_roles_name_their_user() {
        assert_eq!(personal_of("__user_12__"), Some(12));
        assert_eq!(personal_of("__user_x__"), None);
        assert_eq!(personal_of("vision"), None);
        assert_eq!(personal_of("__user_12"), None);
    }
}
