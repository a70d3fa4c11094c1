//! What a request needs, from its method and path alone, decided before any body is read.
//!
//! [`ROUTES`] is the one table: every route the server answers, with the level it needs on
//! which kind of object (the object itself is found by `target`), or that it is public, for
//! any authenticated caller, for readers of everything, or for administrators. A request the
//! table does not list is [`Need::Unlisted`] and reaches no handler, so a new route is closed
//! until someone says who may call it; the route matrix test fails when the router has a
//! route this table lacks, and `docs/auth-routes.md` is the table as a reader sees it.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::http::Method;
use slipway_auth::Level::{self, Edit, Manage, Read, Use};
use slipway_store::auth::ObjectKind::{self, Deployment, Experiment, RegisteredModel};

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Anyone, with or without credentials.
    Public,
    /// Any authenticated caller; the handler checks the rest (users' own records, tokens).
    Authenticated,
    /// A level on the object of a kind the request names (on every one when it names none).
    Level(ObjectKind, Level),
    /// READ on every kind: pages and views that show all of them at once.
    ReadAll,
    /// An administrator.
    Admin,
    /// Not in the table: refused to everyone (404 for a path the table lacks, 405 for a method
    /// the path lacks) after authentication.
    Unlisted,
}

const A: Need = Need::Admin;
const ANY: Need = Need::Authenticated;
const OPEN: Need = Need::Public;
const ALL: Need = Need::ReadAll;
const fn e(level: Level) -> Need {
    Need::Level(Experiment, level)
}
const fn m(level: Level) -> Need {
    Need::Level(RegisteredModel, level)
}
const fn d(level: Level) -> Need {
    Need::Level(Deployment, level)
}

/// Every route: methods (`|`-separated), the router's path pattern, what it needs. MLflow's
/// rules where MLflow has the route: reads READ, changes EDIT, deleting and renaming MANAGE;
/// invoking a deployment USE. Creating needs EDIT, which any authenticated caller has on the
/// object not yet made (`target::Target::Create`). GET also answers HEAD.
#[rustfmt::skip]
pub const ROUTES: &[(&str, &str, Need)] = &[
    ("GET", "/", OPEN),
    ("GET", "/health", OPEN),
    ("GET", "/ping", OPEN),
    ("GET", "/version", OPEN),
    ("GET", "/static-files/{*path}", OPEN),
    ("GET", "/api/3.0/mlflow/server-info", OPEN),
    ("GET|POST", "/api/3.0/mlflow/ui-telemetry", OPEN),
    // Experiments, runs, metrics, logged models: the experiment's permissions.
    ("POST", "/api/2.0/mlflow/experiments/create", e(Edit)),
    ("GET", "/api/2.0/mlflow/experiments/get", e(Read)),
    ("GET", "/api/2.0/mlflow/experiments/get-by-name", e(Read)),
    ("GET|POST", "/api/2.0/mlflow/experiments/search", e(Read)),
    ("POST", "/api/2.0/mlflow/experiments/update", e(Manage)),
    ("POST", "/api/2.0/mlflow/experiments/delete", e(Manage)),
    ("POST", "/api/2.0/mlflow/experiments/restore", e(Manage)),
    ("POST", "/api/2.0/mlflow/experiments/set-experiment-tag", e(Edit)),
    ("POST", "/api/2.0/mlflow/experiments/delete-experiment-tag", e(Edit)),
    ("POST", "/api/2.0/mlflow/experiments/search-datasets", e(Read)),
    ("POST", "/api/2.0/mlflow/runs/create", e(Edit)),
    ("GET", "/api/2.0/mlflow/runs/get", e(Read)),
    ("POST", "/api/2.0/mlflow/runs/update", e(Edit)),
    ("POST", "/api/2.0/mlflow/runs/delete", e(Manage)),
    ("POST", "/api/2.0/mlflow/runs/restore", e(Manage)),
    ("POST", "/api/2.0/mlflow/runs/log-metric", e(Edit)),
    ("POST", "/api/2.0/mlflow/runs/log-parameter", e(Edit)),
    ("POST", "/api/2.0/mlflow/runs/set-tag", e(Edit)),
    ("POST", "/api/2.0/mlflow/runs/delete-tag", e(Edit)),
    ("POST", "/api/2.0/mlflow/runs/log-batch", e(Edit)),
    ("POST", "/api/2.0/mlflow/runs/log-model", e(Edit)),
    ("POST", "/api/2.0/mlflow/runs/log-inputs", e(Edit)),
    ("POST", "/api/2.0/mlflow/runs/outputs", e(Edit)),
    ("POST", "/api/2.0/mlflow/runs/search", e(Read)),
    ("GET", "/api/2.0/mlflow/metrics/get-history", e(Read)),
    ("GET", "/api/2.0/mlflow/metrics/get-history-bulk", e(Read)),
    ("GET", "/api/2.0/mlflow/metrics/get-history-bulk-interval", e(Read)),
    ("POST", "/api/2.0/mlflow/logged-models", e(Edit)),
    ("POST", "/api/2.0/mlflow/logged-models/search", e(Read)),
    ("GET", "/api/2.0/mlflow/logged-models/{model_id}", e(Read)),
    ("PATCH", "/api/2.0/mlflow/logged-models/{model_id}", e(Edit)),
    ("DELETE", "/api/2.0/mlflow/logged-models/{model_id}", e(Manage)),
    ("PATCH", "/api/2.0/mlflow/logged-models/{model_id}/tags", e(Edit)),
    ("DELETE", "/api/2.0/mlflow/logged-models/{model_id}/tags/{key}", e(Edit)),
    ("POST", "/api/2.0/mlflow/logged-models/{model_id}/params", e(Edit)),
    ("GET", "/api/2.0/mlflow/logged-models/{model_id}/artifacts/directories", e(Read)),
    ("GET", "/api/2.0/mlflow/logged-models/{model_id}/artifacts/files", e(Read)),
    // Artifacts: proxied locations are `<experiment id>/…`; run artifacts by run.
    ("GET", "/api/2.0/mlflow-artifacts/artifacts", e(Read)),
    ("GET", "/api/2.0/mlflow-artifacts/artifacts/", e(Read)),
    ("GET", "/api/2.0/mlflow-artifacts/artifacts/{*path}", e(Read)),
    ("PUT", "/api/2.0/mlflow-artifacts/artifacts/{*path}", e(Edit)),
    ("DELETE", "/api/2.0/mlflow-artifacts/artifacts/{*path}", e(Manage)),
    ("GET", "/api/2.0/mlflow/artifacts/list", e(Read)),
    ("GET", "/get-artifact", e(Read)),
    // Pipelines run as experiments do (their runs are tracked there).
    ("GET", "/api/v1/pipelines", e(Read)),
    ("GET", "/api/v1/pipelines/{name}/runs", e(Read)),
    ("POST", "/api/v1/pipelines/{name}/runs", e(Edit)),
    ("GET", "/api/v1/pipeline-runs/{run_id}", e(Read)),
    ("POST", "/api/v1/pipeline-runs/{run_id}/cancel", e(Edit)),
    // Dataset versions: no kind of their own yet, so the level on every experiment.
    ("GET", "/api/v1/data", e(Read)),
    ("GET", "/api/v1/data/{name}", e(Read)),
    ("POST", "/api/v1/data/{name}/versions", e(Edit)),
    ("GET", "/api/v1/data/{name}/versions/{which}", e(Read)),
    ("POST", "/api/v1/data/{name}/versions/{version}/tags", e(Edit)),
    ("PUT|DELETE", "/api/v1/data/{name}/aliases/{alias}", e(Edit)),
    // Labeling queues: reading needs READ and labelling USE (it posts ground truth) on
    // deployments, making a queue EDIT; on every deployment until queues resolve to theirs.
    ("GET", "/api/v1/labeling", d(Read)),
    ("POST", "/api/v1/labeling", d(Edit)),
    ("GET", "/api/v1/labeling/{queue}", d(Read)),
    ("POST", "/api/v1/labeling/{queue}/items", d(Use)),
    // Feeding seals this server's prediction log, as evaluating a monitor does.
    ("POST", "/api/v1/labeling/{queue}/feed", d(Edit)),
    ("GET", "/api/v1/labeling/{queue}/next", d(Use)),
    ("POST", "/api/v1/labeling/{queue}/label", d(Use)),
    ("POST", "/api/v1/labeling/{queue}/export", d(Edit)),
    // Each operation answers with what the caller may read (graphql.rs).
    ("POST", "/graphql", ANY),
    // The registry: the registered model's permissions.
    ("POST", "/api/2.0/mlflow/registered-models/create", m(Edit)),
    ("POST", "/api/2.0/mlflow/registered-models/rename", m(Manage)),
    ("PATCH", "/api/2.0/mlflow/registered-models/update", m(Edit)),
    ("DELETE", "/api/2.0/mlflow/registered-models/delete", m(Manage)),
    ("GET", "/api/2.0/mlflow/registered-models/get", m(Read)),
    ("GET", "/api/2.0/mlflow/registered-models/search", m(Read)),
    ("GET|POST", "/api/2.0/mlflow/registered-models/get-latest-versions", m(Read)),
    ("POST", "/api/2.0/mlflow/registered-models/set-tag", m(Edit)),
    ("DELETE", "/api/2.0/mlflow/registered-models/delete-tag", m(Edit)),
    ("GET", "/api/2.0/mlflow/registered-models/alias", m(Read)),
    ("POST|DELETE", "/api/2.0/mlflow/registered-models/alias", m(Edit)),
    ("POST", "/api/2.0/mlflow/model-versions/create", m(Edit)),
    ("PATCH", "/api/2.0/mlflow/model-versions/update", m(Edit)),
    ("POST", "/api/2.0/mlflow/model-versions/transition-stage", m(Edit)),
    ("DELETE", "/api/2.0/mlflow/model-versions/delete", m(Manage)),
    ("GET", "/api/2.0/mlflow/model-versions/get", m(Read)),
    ("GET", "/api/2.0/mlflow/model-versions/search", m(Read)),
    ("GET", "/api/2.0/mlflow/model-versions/get-download-uri", m(Read)),
    ("POST", "/api/2.0/mlflow/model-versions/set-tag", m(Edit)),
    ("DELETE", "/api/2.0/mlflow/model-versions/delete-tag", m(Edit)),
    ("GET", "/model-versions/get-artifact", m(Read)),
    // Deployments and what follows them: monitors, ground truth, serving.
    ("GET", "/api/v1/deployments", d(Read)),
    ("POST", "/api/v1/deployments", d(Edit)),
    ("GET", "/api/v1/deployments/{name}", d(Read)),
    ("PATCH", "/api/v1/deployments/{name}", d(Edit)),
    ("DELETE", "/api/v1/deployments/{name}", d(Manage)),
    ("POST", "/api/v1/deployments/{name}/ground-truth", d(Use)),
    ("GET", "/api/v1/monitors", d(Read)),
    ("POST", "/api/v1/monitors", d(Edit)),
    ("GET", "/api/v1/monitors/{name}", d(Read)),
    ("PUT", "/api/v1/monitors/{name}", d(Edit)),
    ("DELETE", "/api/v1/monitors/{name}", d(Manage)),
    ("GET", "/api/v1/monitors/{name}/windows", d(Read)),
    ("GET", "/api/v1/monitors/{name}/alerts", d(Read)),
    ("POST", "/api/v1/monitors/{name}/evaluate", d(Edit)),
    ("POST", "/serving/{deployment}/invocations", d(Use)),
    ("GET", "/serving/{deployment}/ping", d(Read)),
    ("GET", "/v1/models", d(Read)),
    ("GET", "/v1/models/{spec}", d(Read)),
    ("POST", "/v1/models/{spec}", d(Use)),
    ("GET", "/v2", ANY),
    ("GET", "/v2/health/live", OPEN),
    ("GET", "/v2/health/ready", OPEN),
    ("GET", "/v2/models/{m}", d(Read)),
    ("GET", "/v2/models/{m}/ready", d(Read)),
    ("POST", "/v2/models/{m}/infer", d(Use)),
    ("GET", "/v2/models/{m}/versions/{v}", d(Read)),
    ("GET", "/v2/models/{m}/versions/{v}/ready", d(Read)),
    ("POST", "/v2/models/{m}/versions/{v}/infer", d(Use)),
    // Across kinds, and the server's own.
    // Lineage needs READ on its model and leaves out a run whose experiment the caller may
    // not read; the dataset search and the audit log show only readable objects' rows.
    ("GET", "/api/v1/lineage", m(Read)),
    ("GET", "/api/v1/lineage/datasets", ANY),
    ("GET", "/api/v1/audit", ANY),
    ("POST", "/api/v1/prediction-logs/flush", A),
    ("GET", "/metrics", A),
    ("GET", "/ui", OPEN),
    ("GET", "/ui/", OPEN),
    ("GET", "/ui/assets/{*name}", OPEN),
    // Browser login through the OpenID provider (auth/browser.rs).
    ("GET", "/auth/login", OPEN),
    ("GET", "/auth/callback", OPEN),
    ("GET|POST", "/auth/logout", OPEN),
    ("GET", "/ui/deployments", d(Read)),
    ("GET", "/ui/deployments/table", d(Read)),
    ("GET", "/ui/monitors", d(Read)),
    ("GET", "/ui/monitors/{name}", d(Read)),
    ("GET", "/ui/monitors/{name}/windows/{start_ms}", d(Read)),
    ("GET", "/ui/alerts", d(Read)),
    ("GET", "/ui/audit", ANY),
    ("GET", "/ui/lineage", m(Read)),
    ("GET", "/ui/lineage/{name}/{version}", m(Read)),
    ("GET", "/ui/labeling", d(Read)),
    ("GET", "/ui/labeling/{queue}", d(Read)),
    ("GET", "/ui/pipelines", ALL),
    ("GET", "/ui/pipelines/runs/{run_id}", ALL),
    // Users, grants and tokens: the handlers let a user read and change only their own
    // record and tokens, and grant only on what they MANAGE.
    ("POST", "/api/2.0/mlflow/users/create", A),
    ("GET", "/api/2.0/mlflow/users/get", ANY),
    ("GET", "/api/2.0/mlflow/users/list", A),
    ("GET", "/api/2.0/mlflow/users/current", ANY),
    ("PATCH", "/api/2.0/mlflow/users/update-password", ANY),
    ("PATCH", "/api/2.0/mlflow/users/update-admin", A),
    ("DELETE", "/api/2.0/mlflow/users/delete", A),
    ("POST", "/api/3.0/mlflow/users/permissions/grant", ANY),
    ("POST", "/api/3.0/mlflow/users/permissions/revoke", ANY),
    ("GET", "/api/3.0/mlflow/users/permissions/get", ANY),
    ("GET", "/api/3.0/mlflow/users/permissions/list", ANY),
    ("GET", "/api/3.0/mlflow/users/current/permissions", ANY),
    ("GET", "/api/3.0/mlflow/users/roles/list", ANY),
    ("POST", "/api/3.0/mlflow/roles/create", A),
    ("GET", "/api/3.0/mlflow/roles/get", A),
    ("GET", "/api/3.0/mlflow/roles/list", A),
    ("PATCH", "/api/3.0/mlflow/roles/update", A),
    ("DELETE", "/api/3.0/mlflow/roles/delete", A),
    ("POST", "/api/3.0/mlflow/roles/permissions/add", A),
    ("DELETE", "/api/3.0/mlflow/roles/permissions/remove", A),
    ("GET", "/api/3.0/mlflow/roles/permissions/list", A),
    ("PATCH", "/api/3.0/mlflow/roles/permissions/update", A),
    ("POST", "/api/3.0/mlflow/roles/assign", A),
    ("DELETE", "/api/3.0/mlflow/roles/unassign", A),
    ("GET", "/api/3.0/mlflow/roles/users/list", A),
    ("GET|POST", "/api/v1/tokens", ANY),
    ("DELETE", "/api/v1/tokens/{id}", ANY),
    ("POST", "/api/v1/service-accounts", A),
    ("GET", "/api/v1/access-denials", A),
];

/// The path as the API router sees it: `/ajax-api/x` is `/api/x`.
pub fn canonical(path: &str) -> std::borrow::Cow<'_, str> {
    match path.strip_prefix("/ajax-api/") {
        Some(rest) => format!("/api/{rest}").into(),
        None => path.into(),
    }
}

/// What `method path` needs; `path` is canonical.
pub fn classify(method: &Method, path: &str) -> Need {
    let method = if method == Method::HEAD { "GET" } else { method.as_str() };
    match TABLE.find(path) {
        Some(rules) => rules.iter().find(|(m, _)| *m == method).map_or(Need::Unlisted, |(_, need)| *need),
        None => Need::Unlisted,
    }
}

/// The methods the table lists for `path`, for a 405's `Allow`.
pub fn methods(path: &str) -> Vec<&'static str> {
    TABLE.find(path).map(|rules| rules.iter().map(|(m, _)| *m).collect()).unwrap_or_default()
}

type Rules = Vec<(&'static str, Need)>;

/// [`ROUTES`] indexed: fixed paths by hash, patterns tried in order after them (a fixed
/// segment wins over a parameter, as in the router).
struct Table {
    fixed: HashMap<&'static str, Rules>,
    patterns: Vec<(Vec<&'static str>, Rules)>,
}

static TABLE: LazyLock<Table> = LazyLock::new(|| {
    let mut fixed: HashMap<&str, Rules> = HashMap::new();
    let mut patterns: Vec<(Vec<&str>, Rules)> = Vec::new();
    for &(methods, pattern, need) in ROUTES {
        let rules = methods.split('|').map(|m| (m, need));
        if pattern.contains('{') {
            let segments: Vec<&str> = pattern.split('/').collect();
            match patterns.iter_mut().find(|(s, _)| *s == segments) {
                Some((_, r)) => r.extend(rules),
                None => patterns.push((segments, rules.collect())),
            }
        } else {
            fixed.entry(pattern).or_default().extend(rules);
        }
    }
    Table { fixed, patterns }
});

impl Table {
    fn find(&self, path: &str) -> Option<&Rules> {
        if let Some(rules) = self.fixed.get(path) {
            return Some(rules);
        }
        let segments: Vec<&str> = path.split('/').collect();
        self.patterns.iter().find(|(pattern, _)| matches(pattern, &segments)).map(|(_, rules)| rules)
    }
}

/// `{x}` matches one non-empty segment, a last `{*x}` one or more.
fn matches(pattern: &[&str], path: &[&str]) -> bool {
    for (i, p) in pattern.iter().enumerate() {
        if p.starts_with("{*") {
            return path.len() > i && !path[i..].iter().all(|s| s.is_empty());
        }
        let Some(s) = path.get(i) else { return false };
        let ok = if p.starts_with('{') { !s.is_empty() } else { p == s };
        if !ok {
            return false;
        }
    }
    pattern.len() == path.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_decides_every_listed_route_and_refuses_the_rest() {
        let cases = [
            (Method::GET, "/health", Need::Public),
            (Method::HEAD, "/health", Need::Public),
            (Method::GET, "/static-files/js/main.js", Need::Public),
            (Method::POST, "/health", Need::Unlisted),
            (Method::GET, "/metrics", Need::Admin),
            (Method::GET, "/api/2.0/mlflow/experiments/get", e(Read)),
            (Method::POST, "/api/2.0/mlflow/runs/log-batch", e(Edit)),
            (Method::POST, "/api/2.0/mlflow/runs/delete", e(Manage)),
            (Method::GET, "/api/2.0/mlflow/logged-models/search", Need::Unlisted),
            (Method::POST, "/api/2.0/mlflow/logged-models/search", e(Read)),
            (Method::GET, "/api/2.0/mlflow/logged-models/m-1", e(Read)),
            (Method::DELETE, "/api/2.0/mlflow/logged-models/m-1/tags/k", e(Edit)),
            (Method::PUT, "/api/2.0/mlflow-artifacts/artifacts/1/r/artifacts/x", e(Edit)),
            (Method::GET, "/api/2.0/mlflow-artifacts/artifacts/", e(Read)),
            (Method::POST, "/api/2.0/mlflow/registered-models/get-latest-versions", m(Read)),
            (Method::DELETE, "/api/2.0/mlflow/registered-models/alias", m(Edit)),
            (Method::POST, "/serving/fraud/invocations", d(Use)),
            (Method::POST, "/v2/models/m/versions/1/infer", d(Use)),
            (Method::POST, "/v1/models/m:predict", d(Use)),
            (Method::GET, "/ui/deployments", d(Read)),
            (Method::GET, "/ui/pipelines", Need::ReadAll),
            (Method::GET, "/ui/audit", Need::Authenticated),
            (Method::GET, "/api/2.0/mlflow/users/current", Need::Authenticated),
            (Method::POST, "/api/2.0/mlflow/users/create", Need::Admin),
            (Method::GET, "/api/2.0/mlflow/experiments/bogus", Need::Unlisted),
            (Method::GET, "/api/9.9/unknown", Need::Unlisted),
            (Method::GET, "/serving//invocations", Need::Unlisted),
        ];
        for (method, path, need) in cases {
            assert_eq!(classify(&method, path), need, "{method} {path}");
        }
        assert_eq!(methods("/api/2.0/mlflow/registered-models/alias"), ["GET", "POST", "DELETE"]);
    }

    #[test]
    fn every_route_is_listed_once_per_method() {
        let mut seen = std::collections::HashSet::new();
        for &(methods, pattern, _) in ROUTES {
            for m in methods.split('|') {
                assert!(["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&m), "{m} {pattern}");
                assert!(seen.insert((m, pattern)), "{m} {pattern} is listed twice");
            }
        }
    }
}
