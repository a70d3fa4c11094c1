//! What a request needs, from its method and path alone, decided before any body is read.
//!
//! This first policy is per kind of object: a route needs a level on experiments, registered
//! models or deployments, and a caller holds it through `*` grants, the server's default
//! permission, or being admin. Grants on single objects come with the route table of
//! docs/design/auth.md. Anything this module does not recognise needs admin: a new route is
//! closed until someone says who may call it.

use axum::http::Method;
use slipway_auth::Level;
use slipway_store::auth::ObjectKind;

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Anyone, with or without credentials.
    Public,
    /// Any authenticated caller; the handler checks the rest (users' own records, tokens).
    Authenticated,
    /// A level on every object of a kind.
    Level(ObjectKind, Level),
    /// READ on every kind: pages and views that show all of them at once.
    ReadAll,
    /// An administrator.
    Admin,
}

/// The path as the API router sees it: `/ajax-api/x` is `/api/x`.
pub fn canonical(path: &str) -> std::borrow::Cow<'_, str> {
    match path.strip_prefix("/ajax-api/") {
        Some(rest) => format!("/api/{rest}").into(),
        None => path.into(),
    }
}

pub fn classify(method: &Method, path: &str) -> Need {
    let path = canonical(path);
    let path = path.as_ref();
    let read = method == Method::GET || method == Method::HEAD;
    if is_public(method, path) {
        return Need::Public;
    }
    if let Some(rest) =
        path.strip_prefix("/api/2.0/mlflow/users/").or_else(|| path.strip_prefix("/api/3.0/mlflow/users/"))
    {
        return match rest {
            // The handlers let a user read and change only their own record, and grant only
            // on what they MANAGE.
            "current" | "get" | "update-password" | "current/permissions" => Need::Authenticated,
            r if r.starts_with("permissions/") => Need::Authenticated,
            _ => Need::Admin,
        };
    }
    if path == "/api/v1/tokens" || path.starts_with("/api/v1/tokens/") {
        return Need::Authenticated;
    }
    let Some(kind) = kind_of(path) else {
        return match path {
            p if p == "/ui" || p.starts_with("/ui/") || p.starts_with("/api/v1/lineage") => {
                if read {
                    Need::ReadAll
                } else {
                    Need::Admin
                }
            }
            _ => Need::Admin,
        };
    };
    Need::Level(kind, level_for(method, path))
}

fn is_public(method: &Method, path: &str) -> bool {
    let read = method == Method::GET || method == Method::HEAD;
    match path {
        "/api/3.0/mlflow/ui-telemetry" => true,
        "/"
        | "/health"
        | "/ping"
        | "/version"
        | "/api/3.0/mlflow/server-info"
        | "/v2/health/live"
        | "/v2/health/ready" => read,
        p => read && (p.starts_with("/static-files/") || p.starts_with("/ui/assets/")),
    }
}

fn kind_of(path: &str) -> Option<ObjectKind> {
    const EXPERIMENT: [&str; 10] = [
        "/api/2.0/mlflow/experiments/",
        "/api/2.0/mlflow/runs/",
        "/api/2.0/mlflow/metrics/",
        "/api/2.0/mlflow/logged-models",
        "/api/2.0/mlflow/artifacts/",
        "/api/2.0/mlflow-artifacts/",
        "/api/v1/pipelines",
        "/api/v1/pipeline-runs/",
        "/get-artifact",
        "/graphql",
    ];
    const MODEL: [&str; 3] =
        ["/api/2.0/mlflow/registered-models/", "/api/2.0/mlflow/model-versions/", "/model-versions/get-artifact"];
    const DEPLOYMENT: [&str; 6] =
        ["/api/v1/deployments", "/api/v1/monitors", "/serving/", "/v1/models", "/v2/models/", "/invocations"];
    let under = |prefixes: &[&str]| prefixes.iter().any(|p| path.starts_with(p));
    if under(&EXPERIMENT) {
        Some(ObjectKind::Experiment)
    } else if under(&MODEL) {
        Some(ObjectKind::RegisteredModel)
    } else if under(&DEPLOYMENT) || path == "/v2" {
        Some(ObjectKind::Deployment)
    } else {
        None
    }
}

/// Reads need READ, invoking a model USE, deleting and renaming MANAGE, other changes EDIT
/// (MLflow's rules per route).
fn level_for(method: &Method, path: &str) -> Level {
    let last = path.rsplit('/').next().unwrap_or("");
    if method == Method::GET || method == Method::HEAD {
        return Level::Read;
    }
    if method == Method::DELETE {
        // Tags and aliases are parts of an object one may edit.
        return if path.contains("/tags/") || last == "alias" || last == "delete-tag" {
            Level::Edit
        } else {
            Level::Manage
        };
    }
    let searches = ["search", "search-datasets", "get-history-bulk-interval"];
    if searches.contains(&last) || path == "/graphql" {
        return Level::Read;
    }
    let invokes = last == "invocations"
        || last == "infer"
        || last == "ground-truth"
        || (path.starts_with("/v1/models/") && last.contains(':'));
    if invokes {
        return Level::Use;
    }
    match last {
        "delete" | "restore" | "rename" => Level::Manage,
        "update" if path.starts_with("/api/2.0/mlflow/experiments/") => Level::Manage,
        _ => Level::Edit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_get_the_level_mlflow_asks_for() {
        let cases = [
            (Method::GET, "/health", Need::Public),
            (Method::GET, "/static-files/js/main.js", Need::Public),
            (Method::POST, "/health", Need::Admin),
            (Method::GET, "/metrics", Need::Admin),
            (Method::GET, "/api/2.0/mlflow/experiments/get", Need::Level(ObjectKind::Experiment, Level::Read)),
            (Method::GET, "/ajax-api/2.0/mlflow/runs/get", Need::Level(ObjectKind::Experiment, Level::Read)),
            (Method::POST, "/api/2.0/mlflow/runs/search", Need::Level(ObjectKind::Experiment, Level::Read)),
            (Method::POST, "/api/2.0/mlflow/runs/log-batch", Need::Level(ObjectKind::Experiment, Level::Edit)),
            (Method::POST, "/api/2.0/mlflow/runs/delete", Need::Level(ObjectKind::Experiment, Level::Manage)),
            (Method::POST, "/api/2.0/mlflow/experiments/update", Need::Level(ObjectKind::Experiment, Level::Manage)),
            (
                Method::PUT,
                "/api/2.0/mlflow-artifacts/artifacts/1/r/artifacts/x",
                Need::Level(ObjectKind::Experiment, Level::Edit),
            ),
            (
                Method::DELETE,
                "/api/2.0/mlflow/registered-models/alias",
                Need::Level(ObjectKind::RegisteredModel, Level::Edit),
            ),
            (
                Method::DELETE,
                "/api/2.0/mlflow/registered-models/delete",
                Need::Level(ObjectKind::RegisteredModel, Level::Manage),
            ),
            (
                Method::POST,
                "/api/2.0/mlflow/registered-models/rename",
                Need::Level(ObjectKind::RegisteredModel, Level::Manage),
            ),
            (Method::POST, "/serving/fraud/invocations", Need::Level(ObjectKind::Deployment, Level::Use)),
            (Method::POST, "/v2/models/m/versions/1/infer", Need::Level(ObjectKind::Deployment, Level::Use)),
            (Method::POST, "/v1/models/m:predict", Need::Level(ObjectKind::Deployment, Level::Use)),
            (Method::POST, "/api/v1/deployments/d/ground-truth", Need::Level(ObjectKind::Deployment, Level::Use)),
            (Method::PUT, "/api/v1/deployments/d", Need::Level(ObjectKind::Deployment, Level::Edit)),
            (Method::DELETE, "/api/v1/deployments/d", Need::Level(ObjectKind::Deployment, Level::Manage)),
            (Method::GET, "/ui/deployments", Need::ReadAll),
            (Method::GET, "/api/v1/lineage", Need::ReadAll),
            (Method::GET, "/api/2.0/mlflow/users/current", Need::Authenticated),
            (Method::POST, "/api/2.0/mlflow/users/create", Need::Admin),
            (Method::GET, "/api/v1/audit", Need::Admin),
            (Method::POST, "/api/v1/prediction-logs/flush", Need::Admin),
            (Method::GET, "/api/9.9/unknown", Need::Admin),
        ];
        for (method, path, need) in cases {
            assert_eq!(classify(&method, path), need, "{method} {path}");
        }
    }
}
