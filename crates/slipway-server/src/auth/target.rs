//! Which object a request acts on, found from its path, its query and (for JSON calls that
//! name their object in the body) the id fields of its body, before any handler runs.
//!
//! Children are named here and resolved by the middleware through the store: runs and logged
//! models have their experiment's permissions, monitors and labeling queues their deployment's. A request that
//! names no single object needs the level on every object of its kind, except creations
//! (any authenticated caller; the creator gets MANAGE) and searches (filtered in SQL).

use axum::http::Method;
use serde::Deserialize;
use serde_json::Value;
use slipway_store::auth::{Child, ObjectKind};

/// What a request acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One object of the route's kind, by id or name.
    Object(String),
    /// An object whose permissions are its parent's.
    Child(Child),
    /// Several runs, each of which must be readable (bulk metric history).
    Runs(Vec<String>),
    /// The body's `experiment_ids`: the unreadable ones are dropped before the handler sees
    /// them, so they answer as missing ones do.
    ExperimentIds,
    /// A search or list whose rows are filtered to what the caller may read (in SQL, or for
    /// deployments and monitors by name).
    Search,
    /// Creating an object.
    Create,
    /// Any authenticated caller: the pipelines' content-addressed cache, where a blob is named
    /// by its SHA-256 (checked on upload), so only someone holding the content can name it.
    Open,
    /// Nothing names one object: the level is needed on every object of the kind.
    Kind,
}

/// Where a target's id is, when the path alone does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    /// `run_ids` or `run_id`, repeated (query).
    RunIds,
    /// `experiment_id` (query, then body).
    Experiment,
    /// `run_id` or `run_uuid` (query, then body).
    Run,
    /// `name` (query, then body).
    Name,
    /// `experiment_name` (query).
    ExperimentName,
    /// `deployment` (body): a monitor's deployment.
    Deployment,
    /// `path` (query): a listing of the artifact proxy, `<experiment id>/…`.
    ArtifactPath,
}

/// What the middleware must find out about a request, from its path alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Ready(Target),
    /// The id is in the query or the body.
    Lookup(From),
}

/// The id fields a body may name its objects by; everything else in it is skipped unread.
#[derive(Debug, Default, Deserialize)]
pub struct BodyIds {
    pub experiment_id: Option<Value>,
    pub run_id: Option<String>,
    pub run_uuid: Option<String>,
    pub name: Option<String>,
    /// A registered model's alias (setting or deleting it).
    pub alias: Option<String>,
    /// A deployment's registered model.
    pub model: Option<String>,
    /// A monitor's deployment.
    pub deployment: Option<String>,
    /// A monitor's alert rules (for their `token_env`).
    pub alerts: Option<Vec<Value>>,
}

impl BodyIds {
    /// Whether an alert rule in the body sends a token from the server's environment.
    pub fn sends_server_token(&self) -> bool {
        self.alerts.iter().flatten().any(|rule| rule.get("token_env").is_some_and(|v| !v.is_null()))
    }
}

impl BodyIds {
    fn experiment(&self) -> Option<String> {
        match &self.experiment_id {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        }
    }
}

/// `path` is canonical (`/api/…`, never `/ajax-api/…`).
pub fn plan(kind: ObjectKind, method: &Method, path: &str) -> Plan {
    let read = method == Method::GET || method == Method::HEAD;
    let segments: Vec<String> = path.split('/').skip(1).map(decode).collect();
    let seg = |i: usize| segments.get(i).map(String::as_str).unwrap_or("");
    let ready = Plan::Ready;
    match kind {
        ObjectKind::Experiment => match path {
            "/api/2.0/mlflow/experiments/create" if !read => ready(Target::Create),
            "/api/2.0/mlflow/logged-models" => Plan::Lookup(From::Experiment),
            "/api/2.0/mlflow/experiments/search" => ready(Target::Search),
            "/api/2.0/mlflow/experiments/get-by-name" => Plan::Lookup(From::ExperimentName),
            "/api/2.0/mlflow/experiments/search-datasets"
            | "/api/2.0/mlflow/runs/search"
            | "/api/2.0/mlflow/logged-models/search" => ready(Target::ExperimentIds),
            "/api/2.0/mlflow/runs/create" => Plan::Lookup(From::Experiment),
            "/api/2.0/mlflow/metrics/get-history-bulk" | "/api/2.0/mlflow/metrics/get-history-bulk-interval" => {
                Plan::Lookup(From::RunIds)
            }
            p if p.starts_with("/api/2.0/mlflow/experiments/") => Plan::Lookup(From::Experiment),
            p if p.starts_with("/api/2.0/mlflow/runs/")
                || p.starts_with("/api/2.0/mlflow/metrics/")
                || p.starts_with("/api/2.0/mlflow/artifacts/")
                || p == "/get-artifact" =>
            {
                Plan::Lookup(From::Run)
            }
            // /api/2.0/mlflow/logged-models/{id}/…
            p if p.starts_with("/api/2.0/mlflow/logged-models/") && !seg(4).is_empty() => {
                ready(Target::Child(Child::LoggedModel(seg(4).to_string())))
            }
            // /api/2.0/mlflow-artifacts/artifacts/{experiment id}/…: the proxied locations
            // experiments get (`mlflow-artifacts:/<id>`); others are not one experiment's.
            p if p.starts_with("/api/2.0/mlflow-artifacts/artifacts/") && is_id(seg(4)) => {
                ready(Target::Object(seg(4).to_string()))
            }
            p if p.starts_with("/api/2.0/mlflow-artifacts/artifacts/slipway-cache/") => ready(Target::Open),
            "/api/2.0/mlflow-artifacts/artifacts" => Plan::Lookup(From::ArtifactPath),
            _ => ready(Target::Kind),
        },
        ObjectKind::RegisteredModel => match path {
            "/api/2.0/mlflow/registered-models/create" => ready(Target::Create),
            "/api/2.0/mlflow/registered-models/search" | "/api/2.0/mlflow/model-versions/search" | "/ui/lineage" => {
                ready(Target::Search)
            }
            // /ui/lineage/{name}/{version}
            p if p.starts_with("/ui/lineage/") && !seg(2).is_empty() => ready(Target::Object(seg(2).to_string())),
            _ => Plan::Lookup(From::Name),
        },
        ObjectKind::Deployment => match (seg(0), seg(1), seg(2)) {
            ("api", "v1", "deployments") if segments.len() == 3 => {
                if read {
                    ready(Target::Search)
                } else {
                    ready(Target::Create)
                }
            }
            ("api", "v1", "deployments") => ready(Target::Object(seg(3).to_string())),
            ("api", "v1", "monitors") if segments.len() == 3 => {
                if read {
                    ready(Target::Search)
                } else {
                    Plan::Lookup(From::Deployment)
                }
            }
            ("api", "v1", "monitors") => ready(Target::Child(Child::Monitor(seg(3).to_string()))),
            // A labeling queue is its deployment's: a labeller needs USE on that one only.
            ("api", "v1", "labeling") if segments.len() == 3 => {
                if read {
                    ready(Target::Search)
                } else {
                    Plan::Lookup(From::Deployment)
                }
            }
            ("api", "v1", "labeling") => ready(Target::Child(Child::LabelQueue(seg(3).to_string()))),
            ("ui", "labeling", "") => ready(Target::Search),
            ("ui", "labeling", queue) => ready(Target::Child(Child::LabelQueue(queue.to_string()))),
            ("serving", d, _) | ("v2", "models", d) if !d.is_empty() => ready(Target::Object(d.to_string())),
            ("v1", "models", "") => ready(Target::Search),
            // Slipway's pages list what the caller may read; a monitor's pages are its deployment's.
            ("ui", "deployments", "" | "table") | ("ui", "monitors" | "alerts", "") => ready(Target::Search),
            ("ui", "monitors", name) => ready(Target::Child(Child::Monitor(name.to_string()))),
            ("v1", "models", spec) => ready(Target::Object(spec.split(':').next().unwrap_or(spec).to_string())),
            _ => ready(Target::Kind),
        },
    }
}

/// The target once the query and the body's ids are known.
pub fn resolve(from: From, query: &[(String, String)], body: &BodyIds) -> Target {
    let q = |key: &str| query.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let found = match from {
        From::RunIds => {
            let runs: Vec<String> =
                query.iter().filter(|(k, _)| k == "run_ids" || k == "run_id").map(|(_, v)| v.clone()).collect();
            return if runs.is_empty() { Target::Kind } else { Target::Runs(runs) };
        }
        From::Experiment => q("experiment_id").or_else(|| body.experiment()).map(Target::Object),
        From::Run => q("run_id")
            .or_else(|| q("run_uuid"))
            .or_else(|| body.run_id.clone())
            .or_else(|| body.run_uuid.clone())
            .map(|r| Target::Child(Child::Run(r))),
        From::Name => q("name").or_else(|| body.name.clone()).map(Target::Object),
        From::ExperimentName => q("experiment_name").map(|n| Target::Child(Child::ExperimentName(n))),
        From::Deployment => body.deployment.clone().map(Target::Object),
        From::ArtifactPath => q("path").and_then(|p| {
            let first = p.trim_start_matches('/').split('/').next().unwrap_or("").to_string();
            if first == "slipway-cache" && !p.contains("..") {
                Some(Target::Open)
            } else {
                is_id(&first).then_some(Target::Object(first))
            }
        }),
    };
    found.unwrap_or(Target::Kind)
}

/// Objects named inside a request that the caller must be able to read too: the run a new
/// model version comes from, the model a deployment serves. Nobody registers another team's
/// run, or deploys another team's model, to reach it.
pub fn also_read(kind: ObjectKind, path: &str, body: &BodyIds) -> Option<(ObjectKind, Target)> {
    match kind {
        ObjectKind::RegisteredModel if path == "/api/2.0/mlflow/model-versions/create" => {
            body.run_id.clone().map(|r| (ObjectKind::Experiment, Target::Child(Child::Run(r))))
        }
        ObjectKind::Deployment if path.starts_with("/api/v1/deployments") => {
            body.model.clone().map(|m| (ObjectKind::RegisteredModel, Target::Object(m)))
        }
        _ => None,
    }
}

/// Whether the plan needs the body's ids (JSON calls that name their object in the body).
pub fn needs_body(method: &Method, plan: &Plan, kind: ObjectKind, path: &str) -> bool {
    let body_method =
        method == Method::POST || method == Method::PATCH || method == Method::DELETE || method == Method::PUT;
    let json_route = !path.starts_with("/api/2.0/mlflow-artifacts/");
    body_method
        && json_route
        && (matches!(plan, Plan::Lookup(_) | Plan::Ready(Target::ExperimentIds | Target::Create))
            || also_read_route(kind, path))
}

fn also_read_route(kind: ObjectKind, path: &str) -> bool {
    matches!(kind, ObjectKind::Deployment)
        && (path.starts_with("/api/v1/deployments") || path.starts_with("/api/v1/monitors"))
}

fn is_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit())
}

fn decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> BodyIds {
        serde_json::from_str(json).unwrap_or_default()
    }

    #[test]
    fn paths_queries_and_bodies_name_the_object() {
        let e = ObjectKind::Experiment;
        let none = BodyIds::default();
        let q = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
        let plan_of = |kind, method: Method, path| plan(kind, &method, path);
        assert_eq!(plan_of(e, Method::POST, "/api/2.0/mlflow/experiments/create"), Plan::Ready(Target::Create));
        assert_eq!(plan_of(e, Method::POST, "/api/2.0/mlflow/runs/search"), Plan::Ready(Target::ExperimentIds));
        let get = plan_of(e, Method::GET, "/api/2.0/mlflow/experiments/get");
        let Plan::Lookup(from) = get else { panic!("{get:?}") };
        assert_eq!(resolve(from, &q(&[("experiment_id", "7")]), &none), Target::Object("7".into()));
        let Plan::Lookup(from) = plan_of(e, Method::POST, "/api/2.0/mlflow/runs/log-batch") else { panic!() };
        assert_eq!(
            resolve(from, &[], &body(r#"{"run_id": "abc", "metrics": []}"#)),
            Target::Child(Child::Run("abc".into()))
        );
        let Plan::Lookup(from) = plan_of(e, Method::POST, "/api/2.0/mlflow/runs/create") else { panic!() };
        assert_eq!(resolve(from, &[], &body(r#"{"experiment_id": 3}"#)), Target::Object("3".into()));
        assert_eq!(resolve(from, &[], &body("not json")), Target::Kind);
        assert_eq!(
            plan_of(e, Method::GET, "/api/2.0/mlflow/logged-models/m-12/artifacts/files"),
            Plan::Ready(Target::Child(Child::LoggedModel("m-12".into())))
        );
        assert_eq!(
            plan_of(e, Method::PUT, "/api/2.0/mlflow-artifacts/artifacts/%34/r/artifacts/x"),
            Plan::Ready(Target::Object("4".into())),
            "segments are decoded as the router decodes them"
        );
        assert_eq!(
            plan_of(e, Method::GET, "/api/2.0/mlflow-artifacts/artifacts/slipway-cache/x"),
            Plan::Ready(Target::Open)
        );
        let cache = q(&[("path", "slipway-cache/sha256/ab")]);
        assert_eq!(resolve(From::ArtifactPath, &cache, &none), Target::Open);
        let climb = q(&[("path", "slipway-cache/../7/r")]);
        assert_eq!(resolve(From::ArtifactPath, &climb, &none), Target::Kind);
        let list = plan_of(e, Method::GET, "/api/2.0/mlflow-artifacts/artifacts");
        assert_eq!(list, Plan::Lookup(From::ArtifactPath));
        assert_eq!(
            resolve(From::ArtifactPath, &q(&[("path", "5/r/artifacts/notes")]), &none),
            Target::Object("5".into())
        );
        assert_eq!(resolve(From::ArtifactPath, &q(&[("path", "../5")]), &none), Target::Kind);
        let Plan::Lookup(from) = plan_of(e, Method::GET, "/api/2.0/mlflow/metrics/get-history-bulk-interval") else {
            panic!()
        };
        assert_eq!(
            resolve(from, &q(&[("run_ids", "a"), ("run_ids", "b")]), &none),
            Target::Runs(vec!["a".into(), "b".into()])
        );

        let d = ObjectKind::Deployment;
        assert_eq!(plan_of(d, Method::POST, "/serving/fraud/invocations"), Plan::Ready(Target::Object("fraud".into())));
        assert_eq!(plan_of(d, Method::POST, "/v1/models/fraud:predict"), Plan::Ready(Target::Object("fraud".into())));
        assert_eq!(
            plan_of(d, Method::GET, "/v2/models/fraud/versions/2/ready"),
            Plan::Ready(Target::Object("fraud".into()))
        );
        assert_eq!(plan_of(d, Method::POST, "/api/v1/deployments"), Plan::Ready(Target::Create));
        assert_eq!(plan_of(d, Method::GET, "/api/v1/deployments"), Plan::Ready(Target::Search));
        assert_eq!(plan_of(d, Method::GET, "/v1/models"), Plan::Ready(Target::Search));
        assert_eq!(
            plan_of(d, Method::GET, "/api/v1/monitors/watch/windows"),
            Plan::Ready(Target::Child(Child::Monitor("watch".into())))
        );
        let m = ObjectKind::RegisteredModel;
        let Plan::Lookup(from) = plan_of(m, Method::DELETE, "/api/2.0/mlflow/registered-models/alias") else {
            panic!()
        };
        assert_eq!(resolve(from, &q(&[("name", "churn")]), &none), Target::Object("churn".into()));
        let mv = body(r#"{"name": "churn", "source": "runs:/r1/model", "run_id": "r1"}"#);
        assert_eq!(
            also_read(m, "/api/2.0/mlflow/model-versions/create", &mv),
            Some((ObjectKind::Experiment, Target::Child(Child::Run("r1".into()))))
        );
    }
}
