//! What the caller may do: the decision for routes that need a level, on the object the
//! request names (found by `target`), with the extra objects it names, the searches' row
//! filter, the hidden-as-missing answers and the creator's MANAGE grant.

use std::sync::atomic::Ordering;

use axum::extract::Request;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use slipway_auth::token;
use slipway_auth::{Level, Permission};
use slipway_store::auth::{Child, Grantee, ObjectKind};
use slipway_types::ErrorCode;
use slipway_types::serving::ReadableDeployments;

use super::policy::Need;
use super::target::{self, Target};
use super::{Auth, Caller};
use crate::error::ApiError;

/// Setting, reading and deleting a registered model's alias.
const ALIAS: &str = "/api/2.0/mlflow/registered-models/alias";

impl Auth {
    pub(super) fn default(&self) -> Option<Level> {
        self.config.default_permission
    }

    /// Needs that name no object: public, authenticated, admin, READ on every kind.
    pub(super) fn decide(&self, need: Need, caller: &Caller) -> Result<(), ApiError> {
        let allowed = match need {
            Need::Public | Need::Authenticated => true,
            Need::Admin => caller.is_admin(),
            Need::Unlisted => false,
            Need::Level(kind, level) => caller.level_on(kind, "*", self.default()) >= Some(level),
            Need::ReadAll => {
                ObjectKind::ALL.iter().all(|&k| caller.level_on(k, "*", self.default()) >= Some(Level::Read))
            }
        };
        if allowed {
            return Ok(());
        }
        let what = match need {
            Need::Admin => "this needs an administrator".to_string(),
            Need::Level(kind, level) => format!("this needs {} on {}s", level.as_str(), kind.as_str()),
            _ => "this needs READ on experiments, registered models and deployments".to_string(),
        };
        Err(self.denied(what))
    }

    pub(super) fn denied(&self, what: String) -> ApiError {
        self.denials.fetch_add(1, Ordering::Relaxed);
        ApiError::new(ErrorCode::PermissionDenied, format!("permission denied: {what}"))
    }

    /// Whether `caller` holds `level` on the target (of `kind`). Without READ on it the answer
    /// is 404, as for an object that does not exist, so nobody learns what exists from a
    /// different refusal; with READ but too little, 403.
    pub(super) async fn check(
        &self,
        caller: &Caller,
        kind: ObjectKind,
        level: Level,
        target: &Target,
    ) -> Result<(), ApiError> {
        let objects = match target {
            Target::Object(key) => vec![(key.clone(), target_name(kind, target, key))],
            Target::Child(child) => vec![(self.parent(child).await?, target_name(kind, target, ""))],
            Target::Runs(runs) => {
                let mut parents = Vec::with_capacity(runs.len());
                for r in runs {
                    let child = Target::Child(Child::Run(r.clone()));
                    parents.push((self.parent(&Child::Run(r.clone())).await?, target_name(kind, &child, "")));
                }
                parents
            }
            Target::Open => return Ok(()),
            Target::ExperimentIds | Target::Search | Target::Create | Target::Kind => {
                vec![("*".to_string(), format!("{}s", kind.as_str()))]
            }
        };
        let named = matches!(target, Target::Object(_) | Target::Child(_) | Target::Runs(_));
        for (object, name) in objects {
            let held = caller.level_on(kind, &object, self.default());
            if held >= Some(level) {
                continue;
            }
            if named && held.is_none() {
                self.denials.fetch_add(1, Ordering::Relaxed);
                return Err(ApiError::new(ErrorCode::ResourceDoesNotExist, format!("{name} does not exist")));
            }
            return Err(self.denied(format!("this needs {} on {name}", level.as_str())));
        }
        Ok(())
    }

    /// The parent whose permissions a child has; `*` for a child that does not exist, so only
    /// a caller who may act on every object reaches the handler's own answer.
    pub(super) async fn parent(&self, child: &Child) -> Result<String, ApiError> {
        let fixed = matches!(child, Child::Run(_) | Child::LoggedModel(_));
        if fixed && let Some(parent) = self.memos.parents.get(child) {
            return Ok(parent);
        }
        match self.store.parent_of(child.clone()).await? {
            Some(parent) => {
                if fixed {
                    self.memos.parents.insert(child.clone(), parent.clone());
                }
                Ok(parent)
            }
            None => Ok("*".to_string()),
        }
    }

    /// The object-level half of the decision for `Need::Level` routes: finds the target (from
    /// the path, the query, the body's ids), checks it and what the request names besides, and
    /// prepares the request for its handler.
    pub(super) async fn authorize(
        &self,
        caller: &Caller,
        kind: ObjectKind,
        level: Level,
        req: Request,
        path: &str,
    ) -> Result<Flow, ApiError> {
        let method = req.method().clone();
        let plan = target::plan(kind, &method, path);
        let query: Vec<(String, String)> =
            form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()).into_owned().collect();
        let (mut req, body) = if target::needs_body(&method, &plan, kind, path) {
            let (parts, body) = req.into_parts();
            let bytes = axum::body::to_bytes(body, crate::extract::MAX_JSON_BODY).await.map_err(|_| {
                ApiError::invalid("request body is larger than the limit")
                    .with_status(axum::http::StatusCode::PAYLOAD_TOO_LARGE)
            })?;
            (Request::from_parts(parts, axum::body::Body::from(bytes.clone())), Some(bytes))
        } else {
            (req, None)
        };
        let ids: target::BodyIds = body.as_deref().and_then(|b| serde_json::from_slice(b).ok()).unwrap_or_default();
        let found = match plan {
            target::Plan::Ready(t) => t,
            target::Plan::Lookup(from) => target::resolve(from, &query, &ids),
        };
        if ids.sends_server_token() && !caller.is_admin() {
            return Err(self.denied("an alert rule with token_env needs an administrator".into()));
        }
        let level = if kind == ObjectKind::RegisteredModel && path == ALIAS && method != Method::GET {
            self.alias_level(level, &query, &ids).await?
        } else {
            level
        };
        if let Some((other_kind, other)) = target::also_read(kind, path, &ids) {
            self.check(caller, other_kind, Level::Read, &other).await?;
        }
        match found {
            Target::Search => {
                // A token scoped to single objects does not search: what it may see is named.
                if caller.token.as_ref().is_some_and(|(_, s)| token::allows(s, kind.as_str(), "*") < Some(Level::Read))
                {
                    return Err(self.denied(format!("this token cannot search {}s", kind.as_str())));
                }
                req.extensions_mut().insert(caller.visibility(self.default()));
                if kind == ObjectKind::Deployment {
                    let (caller, default) = (caller.clone(), self.default());
                    let readable = move |name: &str| caller.level_on(kind, name, default) >= Some(Level::Read);
                    req.extensions_mut().insert(ReadableDeployments(std::sync::Arc::new(readable)));
                }
                Ok(Flow::Forward(req, None))
            }
            Target::ExperimentIds => self.only_readable_experiments(caller, level, req, body).await,
            Target::Create => {
                if caller.token.as_ref().is_some_and(|(_, s)| token::allows(s, kind.as_str(), "*") < Some(Level::Edit))
                {
                    return Err(self.denied(format!("this token cannot create {}s", kind.as_str())));
                }
                Ok(Flow::Forward(req, Some(Created { kind, name: ids.name })))
            }
            other => {
                self.check(caller, kind, level, &other).await?;
                Ok(Flow::Forward(req, None))
            }
        }
    }

    /// Moving or removing an alias a deployment serves changes what it serves: that needs
    /// MANAGE on the model, not the EDIT other alias changes need.
    async fn alias_level(
        &self,
        level: Level,
        query: &[(String, String)],
        ids: &target::BodyIds,
    ) -> Result<Level, ApiError> {
        let q = |key: &str| query.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        let (Some(model), Some(alias)) =
            (q("name").or_else(|| ids.name.clone()), q("alias").or_else(|| ids.alias.clone()))
        else {
            return Ok(level);
        };
        let followers = self.store.alias_followers(model, alias).await?;
        Ok(if followers.is_empty() { level } else { level.max(Level::Manage) })
    }

    /// Drops the experiment ids the caller may not read from a search body, as MLflow's auth
    /// app does before the query; when none is left the answer is the empty one.
    pub(super) async fn only_readable_experiments(
        &self,
        caller: &Caller,
        level: Level,
        req: Request,
        body: Option<axum::body::Bytes>,
    ) -> Result<Flow, ApiError> {
        let Some(mut value) = body.and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok()) else {
            return Ok(Flow::Forward(req, None));
        };
        let Some(ids) = value.get_mut("experiment_ids").and_then(serde_json::Value::as_array_mut) else {
            return Ok(Flow::Forward(req, None));
        };
        let asked = ids.len();
        ids.retain(|id| {
            let id = id.as_str().map(str::to_string).unwrap_or_else(|| id.to_string());
            caller.level_on(ObjectKind::Experiment, &id, self.default()) >= Some(level)
        });
        if asked > 0 && ids.is_empty() {
            return Ok(Flow::Answer(axum::Json(serde_json::json!({})).into_response()));
        }
        let (parts, _) = req.into_parts();
        Ok(Flow::Forward(Request::from_parts(parts, axum::body::Body::from(value.to_string())), None))
    }

    /// Gives the creator of an object MANAGE on it, as MLflow does.
    pub(super) async fn grant_creator(&self, caller: &Caller, created: Created, resp: Response) -> Response {
        if caller.access.principal.is_admin || !resp.status().is_success() {
            return resp;
        }
        let (parts, body) = resp.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
            return ApiError::from(slipway_types::MlflowError::internal()).into_response();
        };
        let key = match created.kind {
            ObjectKind::Experiment => serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("experiment_id").and_then(|i| i.as_str()).map(str::to_string)),
            ObjectKind::RegisteredModel | ObjectKind::Deployment => created.name,
        };
        if let Some(key) = key {
            let grantee = Grantee::Principal(caller.name().to_string());
            let manage = Permission::Level(Level::Manage).as_i64();
            if let Err(e) = self.store.set_grant(grantee, created.kind, key, manage, caller.name().to_string()).await {
                tracing::error!(error = %e, "the creator's MANAGE grant was not recorded");
            }
        }
        Response::from_parts(parts, axum::body::Body::from(bytes))
    }
}

/// How a refusal names what was asked for: only what the caller sent.
fn target_name(kind: ObjectKind, target: &Target, key: &str) -> String {
    match target {
        Target::Child(Child::Run(id)) => format!("run '{id}'"),
        Target::Child(Child::LoggedModel(id)) => format!("logged model '{id}'"),
        Target::Child(Child::ExperimentName(name)) => format!("experiment '{name}'"),
        Target::Child(Child::Monitor(name)) => format!("monitor '{name}'"),
        Target::Child(Child::LabelQueue(name)) => format!("labeling queue '{name}'"),
        _ => format!("{} '{key}'", kind.as_str().replace('_', " ")),
    }
}

/// What the middleware does with an authorized request.
pub(super) enum Flow {
    /// Hand it to its handler; grant its creator MANAGE afterwards.
    Forward(Request, Option<Created>),
    /// Answer it here (a search over nothing the caller may read).
    Answer(Response),
}

pub(super) struct Created {
    kind: ObjectKind,
    name: Option<String>,
}
