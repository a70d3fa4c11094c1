//! Auth on: who may call, with what credentials, and what each is refused, through the real app.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use slipway_artifacts::Artifacts;
use slipway_auth::Level;
use slipway_auth::password::Argon2Params;
use slipway_server::auth::{Auth, AuthConfig};
use slipway_server::{AppState, build_app};
use slipway_store::auth::{AuthStore, Grantee, NewPrincipal, NewToken, ObjectKind, PrincipalKind};
use slipway_store::sqlite::SqliteStore;
use tower::ServiceExt;

const API: &str = "/api/2.0/mlflow";
const ADMIN_PASSWORD: &str = "admin-password-123";
const ALICE_PASSWORD: &str = "alice-password-123";

struct World {
    router: axum::Router,
    auth: Arc<Auth>,
    store: Arc<SqliteStore>,
    _dir: tempfile::TempDir,
}

/// Cheap hashes: the tests count them, they do not time them.
fn quick() -> Argon2Params {
    Argon2Params { m_kib: 8192, t: 1, p: 1 }
}

async fn world(default_permission: Option<Level>) -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("db.sqlite"), "mlflow-artifacts:", 2).unwrap());
    let artifacts = Artifacts::local(dir.path().join("artifacts")).unwrap();
    let config = AuthConfig { default_permission, argon2: quick(), ..AuthConfig::default() };
    let auth = Arc::new(Auth::new(store.clone(), config));
    let admin = NewPrincipal {
        kind: PrincipalKind::User,
        name: "admin".into(),
        password_hash: Some(slipway_auth::password::hash(ADMIN_PASSWORD, quick())),
        is_admin: true,
    };
    store.create_principal(admin, "test".into()).await.unwrap();
    let mut state = AppState::new(store.clone(), artifacts, None);
    state.auth = Some(auth.clone());
    World { router: build_app(state), auth, store, _dir: dir }
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

async fn send(
    w: &World,
    method: Method,
    uri: &str,
    auth: &[&str],
    body: Value,
) -> (StatusCode, Value, axum::http::HeaderMap) {
    let mut req = Request::builder().method(method).uri(uri).header("content-type", "application/json");
    for a in auth {
        req = req.header("authorization", *a);
    }
    let req = req.header("x-slipway-actor", "mallory").body(Body::from(body.to_string())).unwrap();
    let resp = w.router.clone().oneshot(req).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    let value =
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, value, headers)
}

async fn as_(w: &World, who: &str, method: Method, uri: &str, body: Value) -> (StatusCode, Value) {
    let (s, b, _) = send(w, method, uri, &[who], body).await;
    (s, b)
}

async fn add_alice(w: &World) -> String {
    let admin = basic("admin", ADMIN_PASSWORD);
    let body = json!({"username": "alice", "password": ALICE_PASSWORD});
    let (s, b) = as_(w, &admin, Method::POST, &format!("{API}/users/create"), body).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["user"]["username"], "alice");
    assert_eq!(b["user"]["is_admin"], false);
    basic("alice", ALICE_PASSWORD)
}

/// Alice's permission on every object of a kind (`slipway_auth::Permission::as_i64`).
async fn grant_alice(w: &World, kind: ObjectKind, permission: i64) {
    w.store.set_grant(Grantee::Principal("alice".into()), kind, "*".into(), permission, "t".into()).await.unwrap();
}

#[tokio::test]
async fn anonymous_callers_get_401_with_a_challenge_and_public_routes_stay_open() {
    let w = world(None).await;
    let (s, b, h) = send(&w, Method::GET, &format!("{API}/experiments/get?experiment_id=0"), &[], json!({})).await;
    assert_eq!(s, 401, "{b}");
    assert_eq!(b["error_code"], "UNAUTHENTICATED");
    assert!(h["www-authenticate"].to_str().unwrap().starts_with("Basic realm="));
    // Unknown paths need credentials as well: nothing is learnt about routes anonymously.
    let (s, _, _) = send(&w, Method::GET, "/api/2.0/mlflow/no-such-route", &[], json!({})).await;
    assert_eq!(s, 401);
    for open in ["/health", "/version", "/api/3.0/mlflow/server-info"] {
        let (s, b, _) = send(&w, Method::GET, open, &[], json!({})).await;
        assert_eq!(s, 200, "{open}: {b}");
    }
    let (s, _, _) = send(&w, Method::GET, "/metrics", &[], json!({})).await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn malformed_credentials_are_refused_without_echo() {
    let w = world(None).await;
    let uri = format!("{API}/experiments/search");
    let garbage = [
        "Basic !!!!",                 // not base64
        "Basic YWxpY2U=",             // no colon
        "Basic YWxpY2UAOnNlY3JldA==", // a NUL in the user
        "Basic",                      // nothing
        "Digest username=\"alice\"",  // another scheme
        "Bearer not a token",         // spaces
    ];
    for value in garbage {
        let (s, b, _) = send(&w, Method::POST, &uri, &[value], json!({})).await;
        assert_eq!(s, 401, "{value}: {b}");
        assert!(!b.to_string().contains("alice"), "{b}");
    }
    let huge = format!("Basic {}", "A".repeat(9000));
    let (s, _, _) = send(&w, Method::POST, &uri, &[&huge], json!({})).await;
    assert_eq!(s, 401);
    let admin = basic("admin", ADMIN_PASSWORD);
    let (s, b, _) = send(&w, Method::POST, &uri, &[&admin, &admin], json!({})).await;
    assert_eq!(s, 400, "two authorization headers: {b}");
}

#[tokio::test]
async fn permissions_follow_star_grants_and_the_default_and_the_actor_is_the_principal() {
    let w = world(None).await;
    let admin = basic("admin", ADMIN_PASSWORD);
    let alice = add_alice(&w).await;
    let get = format!("{API}/experiments/get?experiment_id=0");
    let delete = format!("{API}/experiments/delete");

    // No grant and no default permission: nothing, not even the default experiment, which
    // answers as a missing one would.
    let (s, b) = as_(&w, &alice, Method::GET, &get, json!({})).await;
    assert_eq!((s.as_u16(), b["error_code"].as_str()), (404, Some("RESOURCE_DOES_NOT_EXIST")), "{b}");
    // READ on every experiment: reads, but no changes.
    grant_alice(&w, ObjectKind::Experiment, 1).await;
    assert_eq!(as_(&w, &alice, Method::GET, &get, json!({})).await.0, 200);
    let tag = json!({"experiment_id": "0", "key": "k", "value": "v"});
    assert_eq!(
        as_(&w, &alice, Method::POST, &format!("{API}/experiments/set-experiment-tag"), tag.clone()).await.0,
        403
    );
    // EDIT: changes; deleting still needs MANAGE.
    grant_alice(&w, ObjectKind::Experiment, 3).await;
    assert_eq!(as_(&w, &alice, Method::POST, &format!("{API}/experiments/set-experiment-tag"), tag).await.0, 200);
    assert_eq!(as_(&w, &alice, Method::POST, &delete, json!({"experiment_id": "0"})).await.0, 403);
    // DENY beats everything, the default included.
    grant_alice(&w, ObjectKind::Experiment, -1).await;
    assert_eq!(as_(&w, &alice, Method::GET, &get, json!({})).await.0, 404);
    // Registry and deployments are other kinds: nothing there.
    let model = format!("{API}/registered-models/get?name=m");
    assert_eq!(as_(&w, &alice, Method::GET, &model, json!({})).await.0, 404);
    // Admin-only routes.
    assert_eq!(as_(&w, &alice, Method::GET, "/metrics", json!({})).await.0, 403);
    assert_eq!(as_(&w, &alice, Method::GET, &format!("{API}/users/list"), json!({})).await.0, 403);
    assert_eq!(as_(&w, &admin, Method::GET, &format!("{API}/users/list"), json!({})).await.0, 200);

    // The audit log names the authenticated principal, whatever X-Slipway-Actor claims.
    let (s, b) = as_(&w, &admin, Method::POST, &format!("{API}/registered-models/create"), json!({"name": "m"})).await;
    assert_eq!(s, 200, "{b}");
    let (_, log) = as_(&w, &admin, Method::GET, "/api/v1/audit?name=m", json!({})).await;
    assert_eq!(log["records"][0]["actor"], "admin", "{log}");
}

#[tokio::test]
async fn a_default_permission_is_a_floor_for_authenticated_callers_only() {
    let w = world(Some(Level::Read)).await;
    let alice = add_alice(&w).await;
    let get = format!("{API}/experiments/get?experiment_id=0");
    assert_eq!(as_(&w, &alice, Method::GET, &get, json!({})).await.0, 200);
    let (s, _, _) = send(&w, Method::GET, &get, &[], json!({})).await;
    assert_eq!(s, 401);
    let tag = json!({"experiment_id": "0", "key": "k", "value": "v"});
    assert_eq!(as_(&w, &alice, Method::POST, &format!("{API}/experiments/set-experiment-tag"), tag).await.0, 403);
}

#[tokio::test]
async fn an_unknown_user_costs_one_hash_like_a_wrong_password_and_failures_are_throttled() {
    let w = world(Some(Level::Read)).await;
    add_alice(&w).await;
    let uri = format!("{API}/experiments/search");
    let hashes = || w.auth.hashes.load(Ordering::Relaxed);
    let before = hashes();
    let (s, b) = as_(&w, &basic("alice", "wrong-password-1"), Method::POST, &uri, json!({})).await;
    assert_eq!(s, 401);
    let wrong = b["message"].clone();
    assert_eq!(hashes() - before, 1);
    let (s, b) = as_(&w, &basic("nobody", "wrong-password-1"), Method::POST, &uri, json!({})).await;
    assert_eq!(s, 401);
    assert_eq!(hashes() - before, 2, "an unknown user is verified against a dummy hash");
    assert_eq!(b["message"], wrong, "the same answer for both");

    // A correct password is verified once, then served from the cache.
    let alice = basic("alice", ALICE_PASSWORD);
    for _ in 0..3 {
        assert_eq!(as_(&w, &alice, Method::POST, &uri, json!({})).await.0, 200);
    }
    assert_eq!(hashes() - before, 3);

    // Ten failures for one name, then it is refused before any hash, even with the right password.
    for _ in 0..9 {
        as_(&w, &basic("alice", "wrong-password-2"), Method::POST, &uri, json!({})).await;
    }
    let at_limit = hashes();
    let (s, b, h) = send(&w, Method::POST, &uri, &[&basic("alice", "another-wrong-3")], json!({})).await;
    assert_eq!(s, 429, "{b}");
    assert!(h.contains_key("retry-after"));
    assert_eq!(hashes(), at_limit, "a throttled attempt computes no hash");
    // Another user is not locked out by alice's failures.
    assert_eq!(as_(&w, &basic("admin", ADMIN_PASSWORD), Method::POST, &uri, json!({})).await.0, 200);
}

#[tokio::test]
async fn tokens_authenticate_as_bearer_or_password_and_stop_when_revoked_or_expired() {
    let w = world(None).await;
    let alice = add_alice(&w).await;
    grant_alice(&w, ObjectKind::Experiment, 3).await;
    let (s, b) = as_(&w, &alice, Method::POST, "/api/v1/tokens", json!({"name": "ci", "expires_in_days": 7})).await;
    assert_eq!(s, 200, "{b}");
    let secret = b["secret"].as_str().unwrap().to_string();
    let id = b["token"]["id"].as_str().unwrap().to_string();
    assert!(!b["token"].to_string().contains(&secret), "the secret is shown once, beside the record");
    let search = format!("{API}/experiments/search");
    assert_eq!(as_(&w, &format!("Bearer {secret}"), Method::POST, &search, json!({})).await.0, 200);
    assert_eq!(as_(&w, &basic("token", &secret), Method::POST, &search, json!({})).await.0, 200);
    assert_eq!(as_(&w, &basic("alice", &secret), Method::POST, &search, json!({})).await.0, 200);
    assert_eq!(as_(&w, &basic("admin", &secret), Method::POST, &search, json!({})).await.0, 401, "not admin's token");
    // A tampered secret fails.
    let mut tampered = secret.clone();
    tampered.pop();
    tampered.push(if secret.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(as_(&w, &format!("Bearer {tampered}"), Method::POST, &search, json!({})).await.0, 401);
    // Too long a life is refused.
    let (s, _) = as_(&w, &alice, Method::POST, "/api/v1/tokens", json!({"name": "x", "expires_in_days": 91})).await;
    assert_eq!(s, 400);

    // Revoked: refused at once.
    assert_eq!(as_(&w, &alice, Method::DELETE, &format!("/api/v1/tokens/{id}"), json!({})).await.0, 200);
    let (s, b) = as_(&w, &format!("Bearer {secret}"), Method::POST, &search, json!({})).await;
    assert_eq!(s, 401, "{b}");

    // Expired: refused.
    let alice_id = w.store.principal("alice".into()).await.unwrap().id;
    let minted = slipway_auth::token::mint();
    let old = NewToken {
        id: minted.id.clone(),
        principal_id: alice_id,
        name: "old".into(),
        secret_sha256: slipway_auth::hex(&minted.digest),
        scopes_json: r#"[{"kind":"*","object":"*","level":"MANAGE"}]"#.into(),
        expires_ms: 1,
    };
    w.store.create_token(old, "t".into()).await.unwrap();
    let (s, b) = as_(&w, &format!("Bearer {}", minted.token()), Method::POST, &search, json!({})).await;
    assert_eq!((s.as_u16(), b["message"].as_str()), (401, Some("this token has expired")));
}

#[tokio::test]
async fn a_token_does_only_what_its_scopes_and_its_owner_allow_and_never_widens_itself() {
    let w = world(None).await;
    let alice = add_alice(&w).await;
    grant_alice(&w, ObjectKind::Experiment, 3).await;
    let read_only = json!({"name": "ro", "scopes": [{"kind": "experiment", "object": "*", "level": "READ"}]});
    let (s, b) = as_(&w, &alice, Method::POST, "/api/v1/tokens", read_only).await;
    assert_eq!(s, 200, "{b}");
    let ro = format!("Bearer {}", b["secret"].as_str().unwrap());
    assert_eq!(as_(&w, &ro, Method::POST, &format!("{API}/experiments/search"), json!({})).await.0, 200);
    let tag = json!({"experiment_id": "0", "key": "k", "value": "v"});
    let set = as_(&w, &ro, Method::POST, &format!("{API}/experiments/set-experiment-tag"), tag).await;
    assert_eq!(set.0, 403, "the owner may, the token may not");
    let create = as_(&w, &ro, Method::POST, &format!("{API}/experiments/create"), json!({"name": "x"})).await;
    assert_eq!(create.0, 403, "nor may it create");
    // Minting a wider token with it is refused; a narrower one is fine.
    let wider = json!({"name": "w", "scopes": [{"kind": "*", "object": "*", "level": "MANAGE"}]});
    assert_eq!(as_(&w, &ro, Method::POST, "/api/v1/tokens", wider).await.0, 403);
    let same = json!({"name": "s", "scopes": [{"kind": "experiment", "object": "*", "level": "READ"}]});
    assert_eq!(as_(&w, &ro, Method::POST, "/api/v1/tokens", same).await.0, 200);
    // A token with MANAGE scope cannot exceed its owner's EDIT either.
    let (_, b) = as_(&w, &alice, Method::POST, "/api/v1/tokens", json!({"name": "all"})).await;
    let all = format!("Bearer {}", b["secret"].as_str().unwrap());
    let delete_default = json!({"experiment_id": "0"});
    assert_eq!(as_(&w, &all, Method::POST, &format!("{API}/experiments/delete"), delete_default).await.0, 403);
    // Admin scope is not given to a non-admin's token, nor does it make one admin.
    let admin_scope = json!({"name": "a", "scopes": [{"kind": "admin", "object": "*", "level": "MANAGE"}]});
    let (_, b) = as_(&w, &alice, Method::POST, "/api/v1/tokens", admin_scope).await;
    let adm = format!("Bearer {}", b["secret"].as_str().unwrap());
    assert_eq!(as_(&w, &adm, Method::GET, "/metrics", json!({})).await.0, 403);
}

#[tokio::test]
async fn users_see_and_change_only_themselves_unless_admin() {
    let w = world(None).await;
    let admin = basic("admin", ADMIN_PASSWORD);
    let alice = add_alice(&w).await;
    let (s, b) = as_(&w, &alice, Method::GET, &format!("{API}/users/current"), json!({})).await;
    assert_eq!((s.as_u16(), b["user"]["username"].as_str()), (200, Some("alice")));
    assert_eq!(as_(&w, &alice, Method::GET, &format!("{API}/users/get?username=alice"), json!({})).await.0, 200);
    assert_eq!(as_(&w, &alice, Method::GET, &format!("{API}/users/get?username=admin"), json!({})).await.0, 403);
    let change = format!("{API}/users/update-password");
    // Self-service needs the current password.
    let no_current = json!({"username": "alice", "password": "a-new-password-1"});
    assert_eq!(as_(&w, &alice, Method::PATCH, &change, no_current).await.0, 400);
    let wrong_current =
        json!({"username": "alice", "password": "a-new-password-1", "current_password": "nope-nope-nope"});
    assert_eq!(as_(&w, &alice, Method::PATCH, &change, wrong_current).await.0, 400);
    let other = json!({"username": "admin", "password": "a-new-password-1"});
    assert_eq!(as_(&w, &alice, Method::PATCH, &change, other).await.0, 403);
    let short = json!({"username": "alice", "password": "short", "current_password": ALICE_PASSWORD});
    assert_eq!(as_(&w, &alice, Method::PATCH, &change, short).await.0, 400);
    let ok = json!({"username": "alice", "password": "a-new-password-1", "current_password": ALICE_PASSWORD});
    assert_eq!(as_(&w, &alice, Method::PATCH, &change, ok).await.0, 200);
    // The old password stops working at once, cached or not.
    assert_eq!(as_(&w, &alice, Method::GET, &format!("{API}/users/current"), json!({})).await.0, 401);
    let alice = basic("alice", "a-new-password-1");
    assert_eq!(as_(&w, &alice, Method::GET, &format!("{API}/users/current"), json!({})).await.0, 200);
    // Admins: promote, and may not delete themselves.
    let promote = json!({"username": "alice", "is_admin": true});
    assert_eq!(as_(&w, &admin, Method::PATCH, &format!("{API}/users/update-admin"), promote).await.0, 200);
    assert_eq!(as_(&w, &alice, Method::GET, &format!("{API}/users/list"), json!({})).await.0, 200);
    let (s, _) = as_(&w, &admin, Method::DELETE, &format!("{API}/users/delete"), json!({"username": "admin"})).await;
    assert_eq!(s, 400);
    let (s, _) = as_(&w, &admin, Method::DELETE, &format!("{API}/users/delete"), json!({"username": "alice"})).await;
    assert_eq!(s, 200);
    assert_eq!(as_(&w, &alice, Method::GET, &format!("{API}/users/current"), json!({})).await.0, 401);
}

/// Grants on single objects: what alice may see and do, and what leaks nothing.
#[tokio::test]
async fn grants_on_single_objects_decide_and_searches_show_only_what_may_be_read() {
    let w = world(None).await;
    let admin = basic("admin", ADMIN_PASSWORD);
    let alice = add_alice(&w).await;
    let mut exp = Vec::new();
    for name in ["team-a", "team-b"] {
        let (s, b) = as_(&w, &admin, Method::POST, &format!("{API}/experiments/create"), json!({"name": name})).await;
        assert_eq!(s, 200, "{b}");
        exp.push(b["experiment_id"].as_str().unwrap().to_string());
    }
    let (a, b) = (exp[0].clone(), exp[1].clone());
    let run_in = |e: &str| json!({"experiment_id": e, "start_time": 1});
    let (_, r) = as_(&w, &admin, Method::POST, &format!("{API}/runs/create"), run_in(&b)).await;
    let b_run = r["run"]["info"]["run_id"].as_str().unwrap().to_string();
    w.store
        .set_grant(Grantee::Principal("alice".into()), ObjectKind::Experiment, a.clone(), 1, "t".into())
        .await
        .unwrap();

    // Search: only team-a, and the count and pages say nothing of team-b.
    let (s, found) = as_(&w, &alice, Method::POST, &format!("{API}/experiments/search"), json!({})).await;
    assert_eq!(s, 200);
    let names: Vec<_> = found["experiments"].as_array().unwrap().iter().map(|e| e["name"].clone()).collect();
    assert_eq!(names, [json!("team-a")]);
    // Reads of team-a; nothing of team-b, existing or not, and the same refusal either way.
    assert_eq!(
        as_(&w, &alice, Method::GET, &format!("{API}/experiments/get?experiment_id={a}"), json!({})).await.0,
        200
    );
    let hidden = as_(&w, &alice, Method::GET, &format!("{API}/experiments/get?experiment_id={b}"), json!({})).await;
    let missing = as_(&w, &alice, Method::GET, &format!("{API}/experiments/get?experiment_id=999"), json!({})).await;
    assert_eq!((hidden.0.as_u16(), missing.0.as_u16()), (404, 404));
    assert_eq!(hidden.1["error_code"], "RESOURCE_DOES_NOT_EXIST");
    assert_eq!(hidden.1["message"], format!("experiment '{b}' does not exist"));
    assert_eq!(missing.1["message"], "experiment '999' does not exist", "hidden and missing read alike");
    let by_name = |name: &str| format!("{API}/experiments/get-by-name?experiment_name={name}");
    let hidden = as_(&w, &alice, Method::GET, &by_name("team-b"), json!({})).await;
    let missing = as_(&w, &alice, Method::GET, &by_name("team-z"), json!({})).await;
    assert_eq!((hidden.0.as_u16(), missing.0.as_u16()), (404, 404));
    assert_eq!(as_(&w, &alice, Method::GET, &format!("{API}/runs/get?run_id={b_run}"), json!({})).await.0, 404);
    let history = format!("{API}/metrics/get-history-bulk-interval?run_ids={b_run}&metric_key=m");
    assert_eq!(as_(&w, &alice, Method::GET, &history, json!({})).await.0, 404);
    // runs/search drops the ids alice may not read, as if they did not exist.
    let (s, runs) =
        as_(&w, &alice, Method::POST, &format!("{API}/runs/search"), json!({"experiment_ids": [b.clone()]})).await;
    assert_eq!((s.as_u16(), runs.clone()), (200, json!({})));
    let (s, _) =
        as_(&w, &alice, Method::POST, &format!("{API}/runs/search"), json!({"experiment_ids": [a.clone(), b.clone()]}))
            .await;
    assert_eq!(s, 200);
    // Artifacts of team-b, plainly, encoded, or by climbing out of team-a.
    for path in
        [format!("{b}/{b_run}/artifacts/x"), format!("%3{}/x", &b[..1]), format!("{a}/../{b}/{b_run}/artifacts/x")]
    {
        let uri = format!("/api/2.0/mlflow-artifacts/artifacts/{path}");
        let (s, body) = as_(&w, &alice, Method::GET, &uri, json!({})).await;
        assert!(s == 403 || s == 400 || s == 404, "{uri}: {s} {body}");
    }
    // READ is not EDIT: no runs in team-a yet.
    assert_eq!(as_(&w, &alice, Method::POST, &format!("{API}/runs/create"), run_in(&a)).await.0, 403);
    w.store
        .set_grant(Grantee::Principal("alice".into()), ObjectKind::Experiment, a.clone(), 3, "t".into())
        .await
        .unwrap();
    let (s, r) = as_(&w, &alice, Method::POST, &format!("{API}/runs/create"), run_in(&a)).await;
    assert_eq!(s, 200, "{r}");
    let a_run = r["run"]["info"]["run_id"].as_str().unwrap().to_string();
    let batch = json!({"run_id": a_run, "metrics": [{"key": "m", "value": 1.0, "timestamp": 1, "step": 0}]});
    assert_eq!(as_(&w, &alice, Method::POST, &format!("{API}/runs/log-batch"), batch).await.0, 200);
    let into_b = json!({"run_id": b_run, "metrics": [{"key": "m", "value": 1.0, "timestamp": 1, "step": 0}]});
    assert_eq!(as_(&w, &alice, Method::POST, &format!("{API}/runs/log-batch"), into_b).await.0, 404);

    // What alice creates, she manages: she may delete it, and it shows in her search.
    let (s, c) = as_(&w, &alice, Method::POST, &format!("{API}/experiments/create"), json!({"name": "mine"})).await;
    assert_eq!(s, 200, "{c}");
    let mine = c["experiment_id"].as_str().unwrap().to_string();
    assert_eq!(
        as_(&w, &alice, Method::POST, &format!("{API}/experiments/delete"), json!({"experiment_id": mine})).await.0,
        200
    );

    // Registry: her model only; she cannot register team-b's run into it.
    as_(&w, &admin, Method::POST, &format!("{API}/registered-models/create"), json!({"name": "theirs"})).await;
    let (s, _) =
        as_(&w, &alice, Method::POST, &format!("{API}/registered-models/create"), json!({"name": "ours"})).await;
    assert_eq!(s, 200);
    let (_, models) = as_(&w, &alice, Method::GET, &format!("{API}/registered-models/search"), json!({})).await;
    let names: Vec<_> = models["registered_models"].as_array().unwrap().iter().map(|m| m["name"].clone()).collect();
    assert_eq!(names, [json!("ours")]);
    let steal = json!({"name": "ours", "source": format!("runs:/{b_run}/model"), "run_id": b_run});
    let (s, body) = as_(&w, &alice, Method::POST, &format!("{API}/model-versions/create"), steal).await;
    assert_eq!(s, 404, "{body}");
    let theirs = as_(&w, &alice, Method::GET, &format!("{API}/registered-models/get?name=theirs"), json!({})).await;
    assert_eq!(theirs.0, 404);
}

/// A reader of one experiment reaches no artifact of another, however the path is spelled: a
/// real file of team-b's is the bait, and no answer may carry it or write beside it.
#[tokio::test]
async fn artifacts_of_another_experiment_stay_out_of_reach_by_any_spelling() {
    let w = world(None).await;
    let admin = basic("admin", ADMIN_PASSWORD);
    let alice = add_alice(&w).await;
    let mut exp = Vec::new();
    let mut runs = Vec::new();
    for name in ["art-a", "art-b"] {
        let (_, b) = as_(&w, &admin, Method::POST, &format!("{API}/experiments/create"), json!({"name": name})).await;
        let e = b["experiment_id"].as_str().unwrap().to_string();
        let (_, r) =
            as_(&w, &admin, Method::POST, &format!("{API}/runs/create"), json!({"experiment_id": e, "start_time": 1}))
                .await;
        runs.push(r["run"]["info"]["run_id"].as_str().unwrap().to_string());
        exp.push(e);
    }
    let (a, b, a_run, b_run) = (&exp[0], &exp[1], &runs[0], &runs[1]);
    let secret = "team-b-secret-4711";
    let bait = format!("/api/2.0/mlflow-artifacts/artifacts/{b}/{b_run}/artifacts/secret.txt");
    let put = Request::builder().method(Method::PUT).uri(&bait).header("authorization", &admin);
    let resp = w.router.clone().oneshot(put.body(Body::from(secret)).unwrap()).await.unwrap();
    assert_eq!(resp.status(), 200);
    w.store
        .set_grant(Grantee::Principal("alice".into()), ObjectKind::Experiment, a.clone(), 3, "t".into())
        .await
        .unwrap();

    let climb = format!("{a}/../{b}/{b_run}/artifacts/secret.txt");
    let encoded = climb.replace('/', "%2F");
    let dots = format!("{a}/%2E%2E/{b}/{b_run}/artifacts/secret.txt");
    let proxied = "/api/2.0/mlflow-artifacts/artifacts";
    let reads = [
        bait.clone(),
        format!("{proxied}/{climb}"),
        format!("{proxied}/{encoded}"),
        format!("{proxied}/{dots}"),
        format!("{proxied}/{a}/%2e%2e%2f{b}/{b_run}/artifacts/secret.txt"),
        format!("{proxied}?path={b}/{b_run}/artifacts"),
        format!("{proxied}?path={}", climb.replace("/secret.txt", "")),
        format!("{proxied}?path=..%2F{b}"),
        format!("/get-artifact?run_id={a_run}&path=../../{b}/{b_run}/artifacts/secret.txt"),
        format!("/get-artifact?run_id={a_run}&path=%2E%2E/%2E%2E/{b}/{b_run}/artifacts/secret.txt"),
        format!("/get-artifact?run_id={b_run}&path=secret.txt"),
        format!("{API}/artifacts/list?run_id={a_run}&path=../../{b}"),
        format!("{API}/artifacts/list?run_id={b_run}"),
    ];
    for uri in reads {
        let (s, body, _) = send(&w, Method::GET, &uri, &[&alice], json!({})).await;
        assert!(!body.to_string().contains(secret), "{uri} leaked the file: {s} {body}");
        // Refusals may repeat the path that was sent, never what lies there; a listing is a 200.
        assert!([400, 403, 404].contains(&s.as_u16()), "{uri}: {s} {body}");
    }
    // Nor can she write beside it through her own experiment's path.
    for path in [climb.clone(), encoded.clone(), dots.clone()] {
        let uri = format!("{proxied}/{path}");
        let put = Request::builder().method(Method::PUT).uri(&uri).header("authorization", &alice);
        let resp = w.router.clone().oneshot(put.body(Body::from("overwritten")).unwrap()).await.unwrap();
        assert!([400, 403, 404].contains(&resp.status().as_u16()), "{uri}: {}", resp.status());
    }
    let (s, body, _) = send(&w, Method::GET, &bait, &[&admin], json!({})).await;
    assert_eq!((s.as_u16(), body), (200, Value::String(secret.into())), "the file is untouched");
    // Her own experiment's artifacts work, so the refusals above are not a broken proxy.
    let own = format!("{proxied}/{a}/{a_run}/artifacts/notes.txt");
    let put = Request::builder().method(Method::PUT).uri(&own).header("authorization", &alice);
    assert_eq!(w.router.clone().oneshot(put.body(Body::from("mine")).unwrap()).await.unwrap().status(), 200);
    assert_eq!(send(&w, Method::GET, &own, &[&alice], json!({})).await.1, Value::String("mine".into()));
}

#[tokio::test]
async fn lineage_and_the_audit_log_show_a_reader_only_what_they_may_read() {
    let w = world(None).await;
    let admin = basic("admin", ADMIN_PASSWORD);
    let alice = add_alice(&w).await;
    let post = |uri: String, body: Value| {
        let admin = admin.clone();
        let w = &w;
        async move {
            let (s, b) = as_(w, &admin, Method::POST, &uri, body).await;
            assert_eq!(s, 200, "{uri}: {b}");
            b
        }
    };
    let exp = post(format!("{API}/experiments/create"), json!({"name": "secret"})).await["experiment_id"].clone();
    let run = post(format!("{API}/runs/create"), json!({"experiment_id": exp})).await["run"]["info"]["run_id"].clone();
    post(format!("{API}/runs/log-parameter"), json!({"run_id": run, "key": "lr", "value": "0.1"})).await;
    for model in ["shared", "hidden"] {
        post(format!("{API}/registered-models/create"), json!({"name": model})).await;
        let source = format!("runs:/{}/model", run.as_str().unwrap());
        post(format!("{API}/model-versions/create"), json!({"name": model, "source": source, "run_id": run})).await;
    }
    w.store
        .set_grant(Grantee::Principal("alice".into()), ObjectKind::RegisteredModel, "shared".into(), 1, "t".into())
        .await
        .unwrap();

    // The version is hers to read, the run's experiment is not: its side is left out.
    let (s, l) = as_(&w, &alice, Method::GET, "/api/v1/lineage?name=shared&version=1", json!({})).await;
    assert_eq!(s, 200, "{l}");
    assert_eq!((l["redacted"].clone(), l["run_id"].clone()), (json!(true), run.clone()));
    assert!(l["params"].as_array().unwrap().is_empty() && l["experiment_id"].is_null(), "{l}");
    let (s, _) = as_(&w, &alice, Method::GET, "/api/v1/lineage?name=hidden&version=1", json!({})).await;
    assert_eq!(s, 404, "another model's lineage answers as a missing one");
    let (s, page) = as_(&w, &alice, Method::GET, "/ui/lineage/shared/1", json!({})).await;
    assert_eq!(s, 200);
    assert!(page.as_str().unwrap().contains("left out") && !page.as_str().unwrap().contains("0.1"));
    w.store
        .set_grant(
            Grantee::Principal("alice".into()),
            ObjectKind::Experiment,
            exp.as_str().unwrap().into(),
            1,
            "t".into(),
        )
        .await
        .unwrap();
    let (_, l) = as_(&w, &alice, Method::GET, "/api/v1/lineage?name=shared&version=1", json!({})).await;
    assert!(l.get("redacted").is_none(), "{l}");
    assert_eq!(l["params"][0]["value"], "0.1");

    // The audit log: hers are the records of what she may read, counted and paged as such.
    let all = |who: String| {
        let w = &w;
        async move {
            let (mut names, mut token) = (Vec::new(), String::new());
            loop {
                let uri = format!("/api/v1/audit?max_results=1&page_token={token}");
                let (s, b) = as_(w, &who, Method::GET, &uri, json!({})).await;
                assert_eq!(s, 200, "{b}");
                names.extend(b["records"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_string()));
                match b["next_page_token"].as_str() {
                    Some(t) => token = t.to_string(),
                    None => return names,
                }
            }
        }
    };
    let hers = all(alice.clone()).await;
    assert!(!hers.is_empty() && hers.iter().all(|n| n == "shared"), "{hers:?}");
    let everything = all(admin.clone()).await;
    assert!(everything.contains(&"hidden".to_string()) && everything.contains(&"alice".to_string()), "{everything:?}");
    let (s, page) = as_(&w, &alice, Method::GET, "/ui/audit", json!({})).await;
    let page = page.as_str().unwrap().to_string();
    assert!(s == 200 && page.contains("shared") && !page.contains("hidden"), "{s}: {page}");
    let (_, probe) = as_(&w, &alice, Method::GET, "/api/v1/audit?name=hidden", json!({})).await;
    assert_eq!(probe["records"], json!([]), "naming a hidden model finds nothing");

    // A token scoped to one model does not search the log.
    let scopes = json!([{"kind": "registered_model", "object": "shared", "level": "READ"}]);
    let (s, t) = as_(&w, &alice, Method::POST, "/api/v1/tokens", json!({"name": "narrow", "scopes": scopes})).await;
    assert_eq!(s, 200, "{t}");
    let bearer = format!("Bearer {}", t["secret"].as_str().unwrap());
    let (s, b) = as_(&w, &bearer, Method::GET, "/api/v1/audit", json!({})).await;
    assert_eq!((s, b["error_code"].as_str()), (StatusCode::FORBIDDEN, Some("PERMISSION_DENIED")), "{b}");
}

#[tokio::test]
async fn refused_requests_are_recorded_for_an_administrator_to_read() {
    let w = world(None).await;
    let admin = basic("admin", ADMIN_PASSWORD);
    let alice = add_alice(&w).await;
    let (s, _) = as_(&w, &basic("alice", "wrong-password-1"), Method::GET, "/api/v1/audit", json!({})).await;
    assert_eq!(s, 401);
    let (s, _) = as_(&w, &alice, Method::GET, "/metrics", json!({})).await;
    assert_eq!(s, 403);
    let (s, _) = as_(&w, &alice, Method::GET, &format!("{API}/experiments/get?experiment_id=0"), json!({})).await;
    assert_eq!(s, 404, "hidden as missing, and still a refusal");
    let (s, _) = as_(&w, "Basic !!!", Method::GET, "/api/v1/audit", json!({})).await;
    assert_eq!(s, 401);
    // A user reads no one's refusals: that is refused, and recorded, too.
    let (s, _) = as_(&w, &alice, Method::GET, "/api/v1/access-denials", json!({})).await;
    assert_eq!(s, 403);

    // Written off the request path: wait for the writer, then read them newest first.
    let mut seen = Vec::new();
    for _ in 0..200 {
        let (s, b) = as_(&w, &admin, Method::GET, "/api/v1/access-denials?user=alice", json!({})).await;
        assert_eq!(s, 200, "{b}");
        seen = b["denials"].as_array().unwrap().clone();
        if seen.len() >= 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let summary: Vec<(i64, &str)> =
        seen.iter().map(|d| (d["status"].as_i64().unwrap(), d["path"].as_str().unwrap())).collect();
    assert_eq!(
        summary,
        [
            (403, "/api/v1/access-denials"),
            (404, "/api/2.0/mlflow/experiments/get"),
            (403, "/metrics"),
            (401, "/api/v1/audit"),
        ]
    );
    assert!(seen[3]["reason"].as_str().unwrap().contains("invalid"), "{}", seen[3]);
    let (_, all) = as_(&w, &admin, Method::GET, "/api/v1/access-denials", json!({})).await;
    let malformed = all["denials"].as_array().unwrap().iter().find(|d| d["principal"].is_null()).cloned();
    assert_eq!(malformed.map(|d| d["reason"].clone()), Some(json!("malformed credentials")));
}

#[tokio::test]
async fn graphql_answers_with_what_the_caller_may_read() {
    let w = world(None).await;
    let admin = basic("admin", ADMIN_PASSWORD);
    let alice = add_alice(&w).await;
    let mut runs = Vec::new();
    let mut experiments = Vec::new();
    for name in ["hers", "theirs"] {
        let (_, e) = as_(&w, &admin, Method::POST, &format!("{API}/experiments/create"), json!({"name": name})).await;
        let exp = e["experiment_id"].as_str().unwrap().to_string();
        let (_, r) = as_(&w, &admin, Method::POST, &format!("{API}/runs/create"), json!({"experiment_id": exp})).await;
        let run = r["run"]["info"]["run_id"].as_str().unwrap().to_string();
        let point = json!({"run_id": run, "key": "loss", "value": 0.5, "timestamp": 1, "step": 0});
        let (s, b) = as_(&w, &admin, Method::POST, &format!("{API}/runs/log-metric"), point).await;
        assert_eq!(s, 200, "{b}");
        experiments.push(exp);
        runs.push(run);
    }
    w.store
        .set_grant(Grantee::Principal("alice".into()), ObjectKind::Experiment, experiments[0].clone(), 1, "t".into())
        .await
        .unwrap();
    let ask = |op: &str, field: &str, vars: Value| {
        let query = format!("query {op}($data: X) {{ {field} {{ x }} }}");
        json!({"operationName": op, "query": query, "variables": vars})
    };
    let gql = |body: Value| {
        let (w, alice) = (&w, alice.clone());
        async move {
            let (s, b) = as_(w, &alice, Method::POST, "/graphql", body).await;
            assert_eq!(s, 200, "{b}");
            b
        }
    };
    let mine = gql(ask("GetRun", "mlflowGetRun", json!({"data": {"runId": runs[0]}}))).await;
    assert_eq!(mine["data"]["mlflowGetRun"]["run"]["info"]["runUuid"], runs[0], "{mine}");
    let theirs = gql(ask("GetRun", "mlflowGetRun", json!({"data": {"runId": runs[1]}}))).await;
    assert!(theirs["data"]["mlflowGetRun"].is_null(), "{theirs}");
    assert_eq!(theirs["errors"][0]["message"], format!("Run with id={} not found", runs[1]));
    let e = json!({"input": {"experimentId": experiments[1]}});
    let hidden = gql(ask("MlflowGetExperimentQuery", "mlflowGetExperiment", e)).await;
    assert!(hidden["data"]["mlflowGetExperiment"].is_null(), "{hidden}");
    let both = json!({"data": {"experimentIds": experiments}});
    let found = gql(ask("SearchRuns", "mlflowSearchRuns", both)).await;
    let ids: Vec<&Value> =
        found["data"]["mlflowSearchRuns"]["runs"].as_array().unwrap().iter().map(|r| &r["info"]["runUuid"]).collect();
    assert_eq!(ids, [&json!(runs[0])], "{found}");
    let history = json!({"data": {"runIds": runs, "metricKey": "loss"}});
    let points = gql(ask("GetMetricHistoryBulkInterval", "mlflowGetMetricHistoryBulkInterval", history)).await;
    let of: Vec<&Value> = points["data"]["mlflowGetMetricHistoryBulkInterval"]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["runId"])
        .collect();
    assert_eq!(of, [&json!(runs[0])], "{points}");
}
