//! `slipway users|tokens|grants|roles …`: who may use a server with auth on, through the same
//! API MLflow's `AuthServiceClient` calls (users, per-user permissions, roles) and Slipway's
//! tokens API.
//! They send the mlflow client's credentials (`MLFLOW_TRACKING_USERNAME/PASSWORD`, the
//! credentials file, `MLFLOW_TRACKING_TOKEN`). Passwords are read from stdin, never from the
//! command line, where other users of the machine could see them.

use std::io::BufRead;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::client::{Api, ServerArgs};
use crate::models::{print_json, print_table, text};

const USERS: &str = "/api/2.0/mlflow/users";
const PERMISSIONS: &str = "/api/3.0/mlflow/users/permissions";
const TOKENS: &str = "/api/v1/tokens";
const ROLES: &str = "/api/3.0/mlflow/roles";

#[derive(Args)]
pub struct UsersArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: Users,
}

#[derive(Subcommand)]
enum Users {
    /// Create a user; the password (12 characters or more) is read from stdin.
    Create { name: String },
    /// List users (administrators only).
    List,
    /// Show one user.
    Show { name: String },
    /// Set a user's password, read from stdin.
    SetPassword { name: String },
    /// Make a user an administrator, or not.
    SetAdmin {
        name: String,
        #[arg(action = clap::ArgAction::Set)]
        admin: bool,
    },
    /// Delete a user, with their grants and tokens.
    Delete { name: String },
    /// Create a service account: a principal without a password that acts through tokens
    /// (`slipway tokens create NAME --for ACCOUNT`).
    CreateServiceAccount { name: String },
    /// Requests the server refused, newest first (administrators only).
    Denials {
        /// Only those of (or claiming to be) this user.
        #[arg(long)]
        user: Option<String>,
        #[arg(long, default_value_t = 50)]
        max_results: u32,
    },
}

#[derive(Args)]
pub struct TokensArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: Tokens,
}

#[derive(Subcommand)]
enum Tokens {
    /// Mint a token; it is printed once and cannot be shown again.
    Create {
        name: String,
        /// Days until it expires (at most the server's `auth_token_max_days`).
        #[arg(long)]
        days: Option<u32>,
        /// What it may do, narrower than its owner: KIND:OBJECT:LEVEL (e.g.
        /// experiment:7:READ, deployment:*:USE); repeat for several. Default: all its owner may.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Mint it for a service account (administrators only).
        #[arg(long = "for")]
        principal: Option<String>,
    },
    /// List your tokens (an administrator sees everyone's).
    List,
    /// Revoke a token at once.
    Revoke { id: String },
}

#[derive(Args)]
pub struct GrantsArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: Grants,
}

#[derive(Subcommand)]
enum Grants {
    /// Give USER a level on one object: KIND is experiment, registered_model or deployment;
    /// OBJECT its id or name, or `*` for all of them; LEVEL READ, USE, EDIT, MANAGE or DENY.
    Grant { user: String, kind: String, object: String, level: String },
    /// Take USER's grant on one object away.
    Revoke { user: String, kind: String, object: String },
    /// A user's grants (their own, and their groups').
    List { user: String },
}

#[derive(Args)]
pub struct RolesArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: Roles,
}

#[derive(Subcommand)]
enum Roles {
    /// Create a role.
    Create {
        name: String,
        #[arg(long)]
        description: Option<String>,
    },
    /// List roles with their permissions.
    List,
    /// Show one role: its permissions and members.
    Show { role: String },
    /// Delete a role; its members lose what it gave them.
    Delete { role: String },
    /// Give ROLE a level on one object (as `grants grant`); DENY beats its members' grants.
    Grant { role: String, kind: String, object: String, level: String },
    /// Take ROLE's permission on one object away.
    Revoke { role: String, kind: String, object: String },
    /// Make USER a member of ROLE.
    Assign { role: String, user: String },
    /// Take USER out of ROLE.
    Unassign { role: String, user: String },
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

pub fn users(args: UsersArgs) -> anyhow::Result<()> {
    runtime()?.block_on(run_users(args))
}

pub fn tokens(args: TokensArgs) -> anyhow::Result<()> {
    runtime()?.block_on(run_tokens(args))
}

pub fn grants(args: GrantsArgs) -> anyhow::Result<()> {
    runtime()?.block_on(run_grants(args))
}

pub fn roles(args: RolesArgs) -> anyhow::Result<()> {
    runtime()?.block_on(run_roles(args))
}

/// One line of stdin, without its line ending.
fn password_from_stdin() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("reading the password from stdin")?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        bail!("give the password on stdin, e.g. `printf '%s' \"$PASSWORD\" | slipway users create NAME`");
    }
    Ok(password)
}

fn when(v: &Value) -> String {
    v.as_i64().map_or_else(|| "-".into(), slipway_types::time::utc)
}

/// `experiment:7:READ` as the tokens API's scope.
fn scope(text: &str) -> anyhow::Result<Value> {
    // The object is what lies between the first and the last colon: names may hold colons.
    let parsed = text.split_once(':').and_then(|(kind, rest)| rest.rsplit_once(':').map(|(o, l)| (kind, o, l)));
    let Some((kind, object, level)) = parsed.filter(|(k, o, l)| !k.is_empty() && !o.is_empty() && !l.is_empty()) else {
        bail!("scope '{text}' is not KIND:OBJECT:LEVEL, e.g. experiment:7:READ");
    };
    Ok(json!({"kind": kind, "object": object, "level": level.to_ascii_uppercase()}))
}

fn done(json: bool, answer: &Value, message: String) -> anyhow::Result<()> {
    if json {
        return print_json(answer);
    }
    println!("{message}");
    Ok(())
}

async fn run_users(args: UsersArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.server.tracking_uri)?;
    let json = args.server.json;
    let user_row = |u: &Value| vec![text(&u["id"]), text(&u["username"]), text(&u["is_admin"])];
    const HEADERS: [&str; 3] = ["ID", "USERNAME", "ADMIN"];
    match args.command {
        Users::Create { name } => {
            let password = password_from_stdin()?;
            let body = json!({"username": name, "password": password});
            let v = api.call("POST", &format!("{USERS}/create"), &[], Some(body)).await?;
            done(json, &v["user"], format!("created user {name}"))
        }
        Users::List => {
            let v = api.call("GET", &format!("{USERS}/list"), &[], None).await?;
            if json {
                return print_json(&v["users"]);
            }
            print_table(&HEADERS, v["users"].as_array().into_iter().flatten().map(user_row).collect());
            Ok(())
        }
        Users::Show { name } => {
            let v = api.call("GET", &format!("{USERS}/get"), &[("username", &name)], None).await?;
            if json {
                return print_json(&v["user"]);
            }
            print_table(&HEADERS, vec![user_row(&v["user"])]);
            Ok(())
        }
        Users::SetPassword { name } => {
            let body = json!({"username": name, "password": password_from_stdin()?});
            let v = api.call("PATCH", &format!("{USERS}/update-password"), &[], Some(body)).await?;
            done(json, &v, format!("changed the password of {name}"))
        }
        Users::SetAdmin { name, admin } => {
            let body = json!({"username": name, "is_admin": admin});
            let v = api.call("PATCH", &format!("{USERS}/update-admin"), &[], Some(body)).await?;
            let what = if admin { "is now" } else { "is no longer" };
            done(json, &v, format!("{name} {what} an administrator"))
        }
        Users::Delete { name } => {
            let v = api.call("DELETE", &format!("{USERS}/delete"), &[], Some(json!({"username": name}))).await?;
            done(json, &v, format!("deleted user {name}"))
        }
        Users::CreateServiceAccount { name } => {
            let v = api.call("POST", "/api/v1/service-accounts", &[], Some(json!({"name": name}))).await?;
            done(json, &v["service_account"], format!("created service account {name}"))
        }
        Users::Denials { user, max_results } => {
            let max = max_results.to_string();
            let mut query = vec![("max_results", max.as_str())];
            if let Some(u) = &user {
                query.push(("user", u));
            }
            let v = api.call("GET", "/api/v1/access-denials", &query, None).await?;
            if json {
                return print_json(&v["denials"]);
            }
            let row = |d: &Value| {
                let request = format!("{} {}", text(&d["method"]), text(&d["path"]));
                let who = text(&d["principal"]);
                vec![when(&d["timestamp"]), who, text(&d["address"]), request, text(&d["status"]), text(&d["reason"])]
            };
            let rows = v["denials"].as_array().into_iter().flatten().map(row).collect();
            print_table(&["WHEN", "WHO", "FROM", "REQUEST", "STATUS", "WHY"], rows);
            Ok(())
        }
    }
}

async fn run_tokens(args: TokensArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.server.tracking_uri)?;
    let json = args.server.json;
    match args.command {
        Tokens::Create { name, days, scopes, principal } => {
            let mut body = json!({"name": name});
            if let Some(days) = days {
                body["expires_in_days"] = json!(days);
            }
            if !scopes.is_empty() {
                body["scopes"] = Value::Array(scopes.iter().map(|s| scope(s)).collect::<anyhow::Result<_>>()?);
            }
            if let Some(p) = principal {
                body["principal"] = json!(p);
            }
            let v = api.call("POST", TOKENS, &[], Some(body)).await?;
            if json {
                return print_json(&v);
            }
            println!("{}", text(&v["secret"]));
            let t = &v["token"];
            eprintln!(
                "token {} for {}, expires {}: shown once; use it as MLFLOW_TRACKING_TOKEN",
                text(&t["id"]),
                text(&t["principal"]),
                when(&t["expires_ms"])
            );
            Ok(())
        }
        Tokens::List => {
            let v = api.call("GET", TOKENS, &[], None).await?;
            if json {
                return print_json(&v["tokens"]);
            }
            let row = |t: &Value| {
                let scopes = t["scopes"].as_array().into_iter().flatten();
                let scopes: Vec<String> = scopes
                    .map(|s| format!("{}:{}:{}", text(&s["kind"]), text(&s["object"]), text(&s["level"])))
                    .collect();
                vec![
                    text(&t["id"]),
                    text(&t["name"]),
                    text(&t["principal"]),
                    scopes.join(","),
                    when(&t["expires_ms"]),
                    when(&t["last_used_ms"]),
                    when(&t["revoked_ms"]),
                ]
            };
            let headers = ["ID", "NAME", "OWNER", "SCOPES", "EXPIRES", "LAST USED", "REVOKED"];
            print_table(&headers, v["tokens"].as_array().into_iter().flatten().map(row).collect());
            Ok(())
        }
        Tokens::Revoke { id } => {
            let v = api.call("DELETE", &format!("{TOKENS}/{id}"), &[], None).await?;
            done(json, &v, format!("revoked token {id}"))
        }
    }
}

async fn run_grants(args: GrantsArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.server.tracking_uri)?;
    let json = args.server.json;
    match args.command {
        Grants::Grant { user, kind, object, level } => {
            let level = level.to_ascii_uppercase();
            let body = json!({"username": user, "resource_type": kind, "resource_id": object, "permission": level});
            let v = api.call("POST", &format!("{PERMISSIONS}/grant"), &[], Some(body)).await?;
            done(json, &v, format!("{user} has {level} on {kind} {object}"))
        }
        Grants::Revoke { user, kind, object } => {
            let body = json!({"username": user, "resource_type": kind, "resource_id": object});
            let v = api.call("POST", &format!("{PERMISSIONS}/revoke"), &[], Some(body)).await?;
            done(json, &v, format!("revoked {user}'s grant on {kind} {object}"))
        }
        Grants::List { user } => {
            let v = api.call("GET", &format!("{PERMISSIONS}/list"), &[("username", &user)], None).await?;
            if json {
                return print_json(&v);
            }
            let row = |g: &Value| {
                // Grants of the user's own are held through a personal group.
                let group = g["role_name"].as_str().filter(|n| !n.starts_with("__user_"));
                let via = group.unwrap_or("-").to_string();
                vec![text(&g["resource_type"]), text(&g["resource_pattern"]), text(&g["permission"]), via]
            };
            let rows = v["permissions"].as_array().into_iter().flatten().map(row).collect();
            print_table(&["KIND", "OBJECT", "LEVEL", "VIA GROUP"], rows);
            Ok(())
        }
    }
}

/// A role by name (or by id, as digits), as the API returns it.
async fn find_role(api: &Api, role: &str) -> anyhow::Result<Value> {
    let v = api.call("GET", &format!("{ROLES}/list"), &[], None).await?;
    let roles = v["roles"].as_array().cloned().unwrap_or_default();
    roles
        .into_iter()
        .find(|r| r["name"].as_str() == Some(role) || role.parse::<i64>().is_ok_and(|id| r["id"].as_i64() == Some(id)))
        .with_context(|| format!("role '{role}' not found"))
}

fn permission_row(p: &Value) -> Vec<String> {
    vec![text(&p["id"]), text(&p["resource_type"]), text(&p["resource_pattern"]), text(&p["permission"])]
}

async fn run_roles(args: RolesArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.server.tracking_uri)?;
    let json = args.server.json;
    match args.command {
        Roles::Create { name, description } => {
            let body = json!({"workspace": "default", "name": name, "description": description});
            let v = api.call("POST", &format!("{ROLES}/create"), &[], Some(body)).await?;
            done(json, &v["role"], format!("created role {name} ({})", text(&v["role"]["id"])))
        }
        Roles::List => {
            let v = api.call("GET", &format!("{ROLES}/list"), &[], None).await?;
            if json {
                return print_json(&v["roles"]);
            }
            let row = |r: &Value| {
                let n = r["permissions"].as_array().map_or(0, Vec::len);
                vec![text(&r["id"]), text(&r["name"]), n.to_string(), text(&r["description"])]
            };
            let rows = v["roles"].as_array().into_iter().flatten().map(row).collect();
            print_table(&["ID", "NAME", "PERMISSIONS", "DESCRIPTION"], rows);
            Ok(())
        }
        Roles::Show { role } => {
            let r = find_role(&api, &role).await?;
            let id = text(&r["id"]);
            let members = api.call("GET", &format!("{ROLES}/users/list"), &[("role_id", &id)], None).await?;
            if json {
                return print_json(&json!({"role": r, "assignments": members["assignments"]}));
            }
            println!("role {} ({id}): {}", text(&r["name"]), text(&r["description"]));
            let rows = r["permissions"].as_array().into_iter().flatten().map(permission_row).collect();
            print_table(&["ID", "KIND", "OBJECT", "LEVEL"], rows);
            let users: Vec<String> =
                members["assignments"].as_array().into_iter().flatten().map(|a| text(&a["user_id"])).collect();
            println!("member user ids: {}", if users.is_empty() { "-".into() } else { users.join(", ") });
            Ok(())
        }
        Roles::Delete { role } => {
            let id = find_role(&api, &role).await?["id"].clone();
            let v = api.call("DELETE", &format!("{ROLES}/delete"), &[], Some(json!({"role_id": id}))).await?;
            done(json, &v, format!("deleted role {role}"))
        }
        Roles::Grant { role, kind, object, level } => {
            let id = find_role(&api, &role).await?["id"].clone();
            let level = level.to_ascii_uppercase();
            let body = json!({"role_id": id, "resource_type": kind, "resource_pattern": object, "permission": level});
            let v = api.call("POST", &format!("{ROLES}/permissions/add"), &[], Some(body)).await?;
            done(json, &v["role_permission"], format!("role {role} has {level} on {kind} {object}"))
        }
        Roles::Revoke { role, kind, object } => {
            let r = find_role(&api, &role).await?;
            let found = r["permissions"].as_array().into_iter().flatten().find(|p| {
                p["resource_type"].as_str() == Some(kind.as_str()) && p["resource_pattern"].as_str() == Some(&object)
            });
            let Some(p) = found else { bail!("role '{role}' has no permission on {kind} {object}") };
            let body = json!({"role_permission_id": p["id"]});
            let v = api.call("DELETE", &format!("{ROLES}/permissions/remove"), &[], Some(body)).await?;
            done(json, &v, format!("revoked role {role}'s permission on {kind} {object}"))
        }
        Roles::Assign { role, user } => {
            let id = find_role(&api, &role).await?["id"].clone();
            let body = json!({"role_id": id, "username": user});
            let v = api.call("POST", &format!("{ROLES}/assign"), &[], Some(body)).await?;
            done(json, &v["assignment"], format!("{user} has role {role}"))
        }
        Roles::Unassign { role, user } => {
            let id = find_role(&api, &role).await?["id"].clone();
            let body = json!({"role_id": id, "username": user});
            let v = api.call("DELETE", &format!("{ROLES}/unassign"), &[], Some(body)).await?;
            done(json, &v, format!("{user} no longer has role {role}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_from_kind_object_level() {
        assert_eq!(scope("experiment:7:read").unwrap(), json!({"kind": "experiment", "object": "7", "level": "READ"}));
        assert_eq!(scope("*:*:MANAGE").unwrap(), json!({"kind": "*", "object": "*", "level": "MANAGE"}));
        assert_eq!(scope("registered_model:a:b:EDIT").unwrap()["object"], "a:b");
        assert!(scope("experiment:7").is_err());
        assert!(scope("experiment::READ").is_err());
    }
}
