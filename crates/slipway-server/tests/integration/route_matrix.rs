//! The route x role matrix: every route the router answers, against every kind of caller, with
//! the answer each should get, checked through the auth middleware.
//!
//! The routes come from the router itself (its paths, and the methods each answers in a 405's
//! `Allow`), so a route the auth table lacks, or a table entry no route has, fails here. The
//! middleware runs in front of a stand-in handler that answers 418: a cell is `ok` when the
//! request reached it, so handlers never run and no cell changes the state the next one sees.
//! The expected answers follow from the roles' grants below, not from the middleware's code;
//! the matrix is written to `docs/auth-routes.md` and must match it (`SLIPWAY_BLESS=1`
//! rewrites the file after a deliberate change).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::json;
use slipway_artifacts::Artifacts;
use slipway_auth::password::Argon2Params;
use slipway_auth::{Level, Permission};
use slipway_server::auth::policy::{self, Need};
use slipway_server::auth::target::{self, BodyIds, Plan, Target};
use slipway_server::auth::{Auth, AuthConfig};
use slipway_server::{AppState, routes};
use slipway_serving::cache::{Cache, CacheConfig};
use slipway_serving::metrics::Metrics;
use slipway_serving::{Serving, ServingConfig};
use slipway_store::auth::{AuthStore, Grantee, NewPrincipal, NewToken, ObjectKind, PrincipalKind};
use slipway_store::sqlite::SqliteStore;
use slipway_store::{MetadataStore, NewLoggedModel, NewRun};
use tower::ServiceExt;

const TEAM: &str = "team";
const PASSWORD: &str = "matrix-password-123";
/// The alias the team's deployment serves.
const ALIAS: &str = "champion";

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Anonymous,
    /// Authenticated, with no grant.
    NoGrant,
    /// This level on the team's experiment, registered model and deployment.
    Granted(Level),
    /// READ on every object of every kind, DENY on the team's.
    Denied,
    Admin,
    /// The MANAGE user's token, expired.
    Expired,
    /// The MANAGE user's token, revoked.
    Revoked,
    /// The MANAGE user's token scoped to READ on the team's experiment alone.
    Narrow,
}

const ROLES: [Role; 11] = [
    Role::Anonymous,
    Role::NoGrant,
    Role::Granted(Level::Read),
    Role::Granted(Level::Use),
    Role::Granted(Level::Edit),
    Role::Granted(Level::Manage),
    Role::Denied,
    Role::Admin,
    Role::Expired,
    Role::Revoked,
    Role::Narrow,
];

impl Role {
    fn column(self) -> String {
        match self {
            Role::Anonymous => "anonymous".into(),
            Role::NoGrant => "no grant".into(),
            Role::Granted(l) => l.as_str().into(),
            Role::Denied => "DENY".into(),
            Role::Admin => "admin".into(),
            Role::Expired => "expired token".into(),
            Role::Revoked => "revoked token".into(),
            Role::Narrow => "narrow token".into(),
        }
    }

    fn user(self) -> &'static str {
        match self {
            Role::Granted(Level::Read) => "reader",
            Role::Granted(Level::Use) => "invoker",
            Role::Granted(Level::Edit) => "editor",
            Role::Granted(Level::Manage) | Role::Expired | Role::Revoked | Role::Narrow => "manager",
            Role::Denied => "denied",
            Role::Admin => "admin",
            Role::Anonymous | Role::NoGrant => "nobody",
        }
    }

    /// The level this caller holds on `object` of `kind` (`*`: on every one).
    fn level(self, kind: ObjectKind, object: &str, team_experiment: &str) -> Option<Level> {
        let team = object == team_key(kind, team_experiment);
        match self {
            Role::Admin => Some(Level::Manage),
            Role::Granted(l) if team => Some(l),
            Role::Denied if !team => Some(Level::Read),
            Role::Narrow if kind == ObjectKind::Experiment && team => Some(Level::Read),
            _ => None,
        }
    }

    /// Whether a token caps this caller to the named objects (no searches, no creations).
    fn named_only(self) -> bool {
        self == Role::Narrow
    }
}

fn team_key(kind: ObjectKind, experiment: &str) -> &str {
    if kind == ObjectKind::Experiment { experiment } else { TEAM }
}

struct Fixture {
    store: Arc<SqliteStore>,
    auth: Arc<Auth>,
    state: AppState,
    experiment: String,
    run: String,
    logged_model: String,
    credentials: BTreeMap<Role, String>,
    _dir: tempfile::TempDir,
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("db.sqlite"), "mlflow-artifacts:", 2).unwrap());
    let artifacts = Artifacts::local(dir.path().join("artifacts")).unwrap();
    let quick = Argon2Params { m_kib: 8192, t: 1, p: 1 };
    let auth = Arc::new(Auth::new(store.clone(), AuthConfig { argon2: quick, ..AuthConfig::default() }));

    let experiment = store.create_experiment(TEAM.into(), None, vec![]).await.unwrap();
    let new_run =
        NewRun { experiment_id: experiment.clone(), user_id: None, run_name: None, start_time: None, tags: vec![] };
    let run = store.create_run(new_run).await.unwrap().info.run_id;
    let logged = NewLoggedModel { experiment_id: experiment.clone(), name: Some("m".into()), ..Default::default() };
    let logged_model = store.create_logged_model(logged).await.unwrap().info.model_id;
    store.create_registered_model(TEAM.into(), None, vec![], "t".into()).await.unwrap();
    let deployment = serde_json::from_value(json!({"name": TEAM, "model": TEAM, "alias": ALIAS})).unwrap();
    store.create_deployment(deployment, "t".into()).await.unwrap();
    let monitor = serde_json::from_value(
        json!({"name": TEAM, "deployment": TEAM, "reference": {"run_artifact": "reference.csv"}}),
    )
    .unwrap();
    store.create_monitor(monitor, "t".into()).await.unwrap();
    store.create_label_queue(queue(TEAM, TEAM), "t".into()).await.unwrap();

    let mut credentials = BTreeMap::new();
    let users = [Role::NoGrant, Role::Granted(Level::Read), Role::Granted(Level::Use)];
    let users =
        users.into_iter().chain([Role::Granted(Level::Edit), Role::Granted(Level::Manage), Role::Denied, Role::Admin]);
    for role in users {
        let user = role.user();
        let principal = NewPrincipal {
            kind: PrincipalKind::User,
            name: user.into(),
            password_hash: Some(slipway_auth::password::hash(PASSWORD, quick)),
            is_admin: role == Role::Admin,
        };
        store.create_principal(principal, "t".into()).await.unwrap();
        let grant = |kind, key: &str, p: Permission| {
            store.set_grant(Grantee::Principal(user.into()), kind, key.into(), p.as_i64(), "t".into())
        };
        for kind in ObjectKind::ALL {
            let team = team_key(kind, &experiment);
            match role {
                Role::Granted(l) => {
                    grant(kind, team, Permission::Level(l)).await.unwrap();
                }
                Role::Denied => {
                    grant(kind, "*", Permission::Level(Level::Read)).await.unwrap();
                    grant(kind, team, Permission::Deny).await.unwrap();
                }
                _ => {}
            }
        }
        credentials.insert(role, basic(user, PASSWORD));
    }
    let manager = store.principal("manager".into()).await.unwrap().id;
    let token = |name: &str, scopes: serde_json::Value, expires_ms: i64| {
        let minted = slipway_auth::token::mint();
        let new = NewToken {
            id: minted.id.clone(),
            principal_id: manager,
            name: name.into(),
            secret_sha256: slipway_auth::hex(&minted.digest),
            scopes_json: scopes.to_string(),
            expires_ms,
        };
        (new, format!("Bearer {}", minted.token()))
    };
    let all = json!([{"kind": "*", "object": "*", "level": "MANAGE"}]);
    let later = slipway_store::now_ms() + 3_600_000;
    let (expired, expired_bearer) = token("expired", all.clone(), 1);
    let (revoked, revoked_bearer) = token("revoked", all, later);
    let (narrow, narrow_bearer) =
        token("narrow", json!([{"kind": "experiment", "object": experiment, "level": "READ"}]), later);
    for t in [expired, narrow] {
        store.create_token(t, "t".into()).await.unwrap();
    }
    let revoked_id = revoked.id.clone();
    store.create_token(revoked, "t".into()).await.unwrap();
    store.revoke_token(revoked_id, "t".into()).await.unwrap();
    credentials.insert(Role::Expired, expired_bearer);
    credentials.insert(Role::Revoked, revoked_bearer);
    credentials.insert(Role::Narrow, narrow_bearer);

    let mut state = AppState::new(store.clone(), artifacts.clone(), Some(serving(store.clone(), artifacts, &dir)));
    state.auth = Some(auth.clone());
    // The MLflow UI's routes exist when its bundle is found.
    std::fs::create_dir(dir.path().join("bundle")).unwrap();
    std::fs::write(dir.path().join("bundle/index.html"), "<html></html>").unwrap();
    state.mlflow_ui = Some(slipway_ui::mlflow::Bundle::open(&dir.path().join("bundle")).unwrap());
    Fixture { store, auth, state, experiment, run, logged_model, credentials, _dir: dir }
}

fn serving(store: Arc<SqliteStore>, artifacts: Artifacts, dir: &tempfile::TempDir) -> Arc<Serving> {
    let metrics = Arc::new(Metrics::default());
    let workers = Arc::new(slipway_serving::batch::Workers::start(1, metrics.clone()).unwrap());
    let config = CacheConfig {
        memory_budget: 1 << 20,
        scratch_dir: dir.path().join("scratch"),
        onnxruntime_lib: None,
        limits: Default::default(),
        sessions: 1,
        min_charge: 0,
    };
    let source = Arc::new(slipway_serving::source::StoreSource { store, artifacts: Artifacts::clone(&artifacts) });
    let cache = Arc::new(Cache::new(config, source, workers, metrics.clone()));
    Arc::new(Serving::new(cache, metrics, ServingConfig::default(), None))
}

/// The router's path patterns, read off its `Debug` (axum lists no routes otherwise).
fn router_paths(router: &axum::Router) -> BTreeSet<String> {
    let text = format!("{router:?}");
    let mut paths = BTreeSet::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("): \"") {
        let after = &rest[at + 4..];
        let end = after.find('"').unwrap_or(0);
        let path = &after[..end];
        let named_by_id = rest[..at].rsplit("RouteId(").next().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
        if named_by_id && path.starts_with('/') && !path.contains("__private__axum") && !path.starts_with("/ajax-api") {
            paths.insert(path.to_string());
        }
        rest = &after[end..];
    }
    paths
}

/// A concrete path for a pattern, naming the fixture's objects.
fn instantiate(f: &Fixture, pattern: &str) -> String {
    let artifact = format!("{}/{}/artifacts/x", f.experiment, f.run);
    pattern
        .split('/')
        .map(|segment| match segment {
            "{model_id}" => f.logged_model.clone(),
            "{*path}" if pattern.starts_with("/api/2.0/mlflow-artifacts/") => artifact.clone(),
            "{*path}" | "{*name}" => "x.js".into(),
            "{v}" | "{version}" => "1".into(),
            "{key}" => "k".into(),
            "{start_ms}" => "0".into(),
            "{id}" => "0123456789ab".into(),
            "{run_id}" => "p1".into(),
            s if s.starts_with('{') => TEAM.into(),
            s => s.into(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn query(f: &Fixture) -> String {
    format!(
        "experiment_id={e}&run_id={r}&run_ids={r}&name={TEAM}&experiment_name={TEAM}&alias={ALIAS}&path={e}%2F{r}%2Fartifacts",
        e = f.experiment,
        r = f.run
    )
}

fn body(f: &Fixture) -> serde_json::Value {
    json!({
        "experiment_id": f.experiment,
        "experiment_ids": [f.experiment],
        "run_id": f.run,
        "name": TEAM,
        "alias": ALIAS,
        "model": TEAM,
        "deployment": TEAM,
    })
}

/// What the request names, as a reader of the table would say it.
fn target_of(f: &Fixture, kind: ObjectKind, method: &Method, path: &str) -> (Target, Option<(ObjectKind, Target)>) {
    let ids: BodyIds = serde_json::from_value(body(f)).unwrap();
    let q: Vec<(String, String)> = form_urlencoded::parse(query(f).as_bytes()).into_owned().collect();
    let found = match target::plan(kind, method, path) {
        Plan::Ready(t) => t,
        Plan::Lookup(from) => target::resolve(from, &q, &ids),
    };
    // Reads carry no body, so they name nothing besides.
    let also = if method == Method::GET { None } else { target::also_read(kind, path, &ids) };
    (found, also)
}

/// The answer `role` should get.
fn expected(f: &Fixture, role: Role, method: &Method, path: &str, need: Need) -> String {
    let ok = "ok".to_string();
    match role {
        Role::Expired | Role::Revoked => return "401".into(),
        Role::Anonymous => return if need == Need::Public { ok } else { "401".into() },
        _ => {}
    }
    let level = |kind, object: &str| role.level(kind, object, &f.experiment);
    let named = |kind: ObjectKind, t: &Target, want: Level| -> Option<String> {
        // Every object the fixture names is the team's (runs and monitors through their parent).
        let object = match t {
            Target::Object(key) => key.clone(),
            _ => team_key(kind, &f.experiment).to_string(),
        };
        match level(kind, &object) {
            Some(held) if held >= want => None,
            Some(_) => Some("403".into()),
            None => Some("404".into()),
        }
    };
    match need {
        Need::Public | Need::Authenticated => ok,
        Need::Admin => {
            if role == Role::Admin {
                ok
            } else {
                "403".into()
            }
        }
        Need::ReadAll => {
            if ObjectKind::ALL.iter().all(|&k| level(k, "*") >= Some(Level::Read)) {
                ok
            } else {
                "403".into()
            }
        }
        Need::Unlisted => "unlisted".into(),
        Need::Level(kind, want) => {
            // Moving an alias a deployment serves changes what it serves.
            let moves_served_alias = path == "/api/2.0/mlflow/registered-models/alias" && method != Method::GET;
            let want = if moves_served_alias { Level::Manage } else { want };
            let (found, also) = target_of(f, kind, method, path);
            if let Some((other, t)) = also
                && let Some(refused) = named(other, &t, Level::Read)
            {
                return refused;
            }
            match found {
                Target::Object(_) | Target::Child(_) | Target::Runs(_) => named(kind, &found, want).unwrap_or(ok),
                Target::Kind => {
                    if level(kind, "*") >= Some(want) {
                        ok
                    } else {
                        "403".into()
                    }
                }
                Target::Search | Target::Create if role.named_only() => "403".into(),
                Target::Search | Target::Create | Target::Open => ok,
                Target::ExperimentIds => {
                    if level(kind, &f.experiment) >= Some(want) {
                        ok
                    } else {
                        "{}".into()
                    }
                }
            }
        }
    }
}

async fn answer(gate: &axum::Router, method: &Method, uri: &str, credentials: Option<&String>, body: &str) -> String {
    let mut req = Request::builder().method(method.clone()).uri(uri).header("content-type", "application/json");
    if let Some(c) = credentials {
        req = req.header("authorization", c.as_str());
    }
    let resp = gate.clone().oneshot(req.body(Body::from(body.to_string())).unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    match status.as_u16() {
        418 => "ok".into(),
        200 if bytes.as_ref() == b"{}" => "{}".into(),
        s @ (401 | 403 | 404 | 405) => s.to_string(),
        s => format!("{s}: {}", String::from_utf8_lossy(&bytes)),
    }
}

fn need_text(need: Need) -> String {
    match need {
        Need::Public => "public".into(),
        Need::Authenticated => "authenticated".into(),
        Need::Level(kind, level) => format!("{} on {}", level.as_str(), kind.as_str().replace('_', " ")),
        Need::ReadAll => "READ on all".into(),
        Need::Admin => "admin".into(),
        Need::Unlisted => "unlisted".into(),
    }
}

#[tokio::test]
async fn every_route_answers_every_role_as_the_table_says() {
    let f = fixture().await;
    let router = routes(f.state.clone());

    // The routes and their methods, from the router.
    let paths = router_paths(&router);
    assert!(paths.len() > 100 && paths.contains("/health"), "the router's paths were not read: {paths:?}");
    let mut routed: BTreeSet<(String, String)> = BTreeSet::new();
    for pattern in &paths {
        let uri = instantiate(&f, pattern);
        let resp = router.clone().oneshot(Request::builder().method("TRACE").uri(&uri).body(Body::empty()).unwrap());
        let resp = resp.await.unwrap();
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED, "{uri} (from {pattern}) is not routed as itself");
        let allow = resp.headers().get("allow").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        for m in allow.split(',').filter(|m| !m.is_empty() && *m != "HEAD") {
            routed.insert((m.to_string(), pattern.clone()));
        }
    }
    let listed: BTreeSet<(String, String)> = policy::ROUTES
        .iter()
        .flat_map(|(methods, pattern, _)| methods.split('|').map(|m| (m.to_string(), pattern.to_string())))
        .collect();
    let missing: Vec<_> = routed.difference(&listed).collect();
    assert!(missing.is_empty(), "routes the auth table lacks (they answer nobody): {missing:?}");
    let stale: Vec<_> = listed.difference(&routed).collect();
    assert!(stale.is_empty(), "table entries no route has: {stale:?}");

    // Every route against every role, through the middleware in front of a stand-in handler.
    let gate = axum::Router::new()
        .fallback(|| async { StatusCode::IM_A_TEAPOT })
        .layer(axum::middleware::from_fn_with_state(f.auth.clone(), slipway_server::auth::require));
    let body = body(&f).to_string();
    let mut doc = String::from(
        "# Who may call what\n\nGenerated by `crates/slipway-server/tests/integration/route_matrix.rs` from the \
         router and `auth::policy::ROUTES`; every cell is checked against the running middleware. Roles hold \
         their level on one experiment, registered model and deployment (`team`); DENY is READ on everything \
         with DENY on `team`'s; the tokens are the MANAGE user's (the narrow one scoped to READ on the \
         experiment). The team's deployment serves the model's `champion` alias, so moving it needs MANAGE. `ok`: the \
         request reaches its handler (searches and lists then show only what the caller may read); 404: \
         the object is hidden as a missing one; `{}`: a search over ids the caller may not read answers \
         empty.\n\n| route | needs |",
    );
    for role in ROLES {
        doc.push_str(&format!(" {} |", role.column()));
    }
    doc.push_str("\n|---|---|");
    doc.push_str(&"---|".repeat(ROLES.len()));
    doc.push('\n');
    let mut wrong = Vec::new();
    let mut cells = 0;
    for &(methods, pattern, need) in policy::ROUTES {
        for m in methods.split('|') {
            let method = Method::from_bytes(m.as_bytes()).unwrap();
            let path = instantiate(&f, pattern);
            let uri = format!("{path}?{}", query(&f));
            doc.push_str(&format!("| `{m} {pattern}` | {} |", need_text(need)));
            for role in ROLES {
                let want = expected(&f, role, &method, &path, need);
                let got = answer(&gate, &method, &uri, f.credentials.get(&role), &body).await;
                if got != want {
                    wrong.push(format!("{m} {pattern} as {}: expected {want}, got {got}", role.column()));
                }
                doc.push_str(&format!(" {want} |"));
                cells += 1;
            }
            doc.push('\n');
        }
    }
    assert!(wrong.is_empty(), "{} of {cells} cells differ:\n{}", wrong.len(), wrong.join("\n"));

    // Requests the table lacks reach no handler, whoever asks.
    let admin = f.credentials.get(&Role::Admin);
    assert_eq!(answer(&gate, &Method::GET, "/api/2.0/mlflow/experiments/bogus", admin, "").await, "404");
    assert_eq!(answer(&gate, &Method::POST, "/health", admin, "").await, "405");
    assert_eq!(answer(&gate, &Method::GET, "/api/9.9/unknown", None, "").await, "401");

    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/auth-routes.md");
    if std::env::var_os("SLIPWAY_BLESS").is_some() {
        std::fs::write(file, &doc).unwrap();
    }
    let committed = std::fs::read_to_string(file).unwrap_or_default();
    assert!(
        committed == doc,
        "docs/auth-routes.md is not the current matrix; rerun with SLIPWAY_BLESS=1 and review the diff"
    );
    drop(f.store);
}

/// Lists of deployments, monitors and labeling queues show each caller only what it may read,
/// as searches do.
#[tokio::test]
async fn deployment_and_monitor_lists_show_only_readable_ones() {
    let f = fixture().await;
    let other = serde_json::from_value(json!({"name": "other", "model": TEAM, "version": "1"})).unwrap();
    f.store.create_deployment(other, "t".into()).await.unwrap();
    let watch = json!({"name": "watch", "deployment": "other", "reference": {"run_artifact": "reference.csv"}});
    f.store.create_monitor(serde_json::from_value(watch).unwrap(), "t".into()).await.unwrap();
    f.store.create_label_queue(queue("review", "other"), "t".into()).await.unwrap();
    let app = slipway_server::build_app(f.state.clone());
    let names = |list: &'static str, role: Role| list_names(app.clone(), f.credentials.get(&role).cloned(), list);
    let deployments = "/api/v1/deployments";
    assert_eq!(names(deployments, Role::Admin).await, ["other", "team"]);
    assert_eq!(names(deployments, Role::Granted(Level::Read)).await, ["team"]);
    assert_eq!(names(deployments, Role::Denied).await, ["other"], "READ on every deployment but DENY on team's");
    assert!(names(deployments, Role::NoGrant).await.is_empty());
    let monitors = "/api/v1/monitors";
    assert_eq!(names(monitors, Role::Admin).await, ["team", "watch"]);
    assert_eq!(names(monitors, Role::Granted(Level::Use)).await, ["team"]);
    assert_eq!(names(monitors, Role::Denied).await, ["watch"]);
    let queues = "/api/v1/labeling";
    assert_eq!(names(queues, Role::Admin).await, ["review", "team"]);
    assert_eq!(names(queues, Role::Granted(Level::Use)).await, ["team"]);
    assert_eq!(names(queues, Role::Denied).await, ["review"]);
    // Slipway's pages list the same: a deployment's or monitor's name shows only to its readers.
    let page = |path: &'static str, role: Role| {
        let (app, credentials) = (app.clone(), f.credentials.get(&role).cloned());
        async move {
            let mut req = Request::builder().uri(path);
            if let Some(c) = credentials {
                req = req.header("authorization", c);
            }
            let resp = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
            String::from_utf8(axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap().to_vec()).unwrap()
        }
    };
    for path in ["/ui/deployments", "/ui/monitors"] {
        let (admin, reader) = (page(path, Role::Admin).await, page(path, Role::Granted(Level::Read)).await);
        assert!(admin.contains(">other<") && !reader.contains(">other<"), "{path}: {reader}");
    }
    let watched = page("/ui/monitors", Role::Denied).await;
    assert!(watched.contains("watch") && !watched.contains("/ui/monitors/team"), "{watched}");
    let labelling = page("/ui/labeling", Role::Granted(Level::Read)).await;
    assert!(labelling.contains("/ui/labeling/team") && !labelling.contains("review"), "{labelling}");

    // Refusals are counted on /metrics, which only an administrator may read.
    let denied = |role: Role| {
        let mut req = Request::builder().uri("/metrics");
        if let Some(c) = f.credentials.get(&role) {
            req = req.header("authorization", c.as_str());
        }
        app.clone().oneshot(req.body(Body::empty()).unwrap())
    };
    assert_eq!(denied(Role::Granted(Level::Manage)).await.unwrap().status(), StatusCode::FORBIDDEN);
    let resp = denied(Role::Admin).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let text = String::from_utf8(axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap().to_vec()).unwrap();
    let count = |name: &str| -> f64 {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in {text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(count("slipway_auth_denied_total") >= 1.0, "the refusal above was counted");
    assert!(count("slipway_auth_password_checks_total") >= 2.0, "the manager's and the admin's passwords");
}

/// The names a list answers with (`/api/v1/<things>` answers `{"<things>": [...]}`).
fn queue(name: &str, deployment: &str) -> slipway_types::LabelQueue {
    serde_json::from_value(json!({"name": name, "deployment": deployment, "mode": "manual", "lease_seconds": 60}))
        .unwrap()
}

async fn list_names(app: axum::Router, credentials: Option<String>, list: &str) -> Vec<String> {
    let mut req = Request::builder().uri(list);
    if let Some(c) = credentials {
        req = req.header("authorization", c);
    }
    let resp = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{list}");
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let key = match list.rsplit('/').next() {
        Some("labeling") => "queues",
        other => other.unwrap_or(""),
    };
    let items = value[key].as_array().cloned().unwrap_or_default();
    items.iter().map(|i| i["name"].as_str().unwrap_or("").to_string()).collect()
}

/// The doors to data versions outside the data routes ask what the data routes ask: a data
/// version's manifest (whose hash opens its files) through lineage, and a new version through a
/// labeling queue's export, need READ and EDIT on every experiment, not just on the queue's
/// deployment.
#[tokio::test]
async fn data_versions_are_reached_only_with_the_data_routes_permissions() {
    let f = fixture().await;
    let app = slipway_server::build_app(f.state.clone());
    let send = |method: Method, path: &'static str, body: Option<serde_json::Value>, role: Role| {
        let (app, credentials) = (app.clone(), f.credentials.get(&role).cloned());
        async move {
            let mut req = Request::builder().method(method).uri(path).header("content-type", "application/json");
            if let Some(c) = credentials {
                req = req.header("authorization", c);
            }
            let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
            app.oneshot(req.body(body).unwrap()).await.unwrap().status()
        }
    };
    let lineage = "/api/v1/lineage/datasets?data=churn@1";
    assert_eq!(send(Method::GET, lineage, None, Role::Granted(Level::Manage)).await, StatusCode::FORBIDDEN);
    assert_eq!(send(Method::GET, lineage, None, Role::Admin).await, StatusCode::NOT_FOUND, "no such data set");
    let digest = "/api/v1/lineage/datasets?digest=0123456789ab";
    assert_eq!(send(Method::GET, digest, None, Role::Granted(Level::Manage)).await, StatusCode::OK);

    let export = "/api/v1/labeling/team/export";
    let body = json!({"data_set": "churn", "aliases": ["train"]});
    let manager = send(Method::POST, export, Some(body.clone()), Role::Granted(Level::Manage)).await;
    assert_eq!(manager, StatusCode::FORBIDDEN, "MANAGE on the queue's deployment is not EDIT on data");
    // An administrator gets past permissions to the queue's own answer: nothing labelled yet.
    assert_eq!(send(Method::POST, export, Some(body), Role::Admin).await, StatusCode::BAD_REQUEST);
}
