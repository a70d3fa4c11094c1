//! The protocol routers. [`standalone`] is what `slipway serve` answers: one model at the
//! root (`/invocations`, `/ping`, `/health`, `/version`) plus V2, V1 and `/metrics`.
//! [`server`] is what `slipway server` mounts: deployments at `/serving/{name}/...`, and V2
//! and V1 for deployments and, lazily, any registered model. Handlers only frame: bodies go
//! to `decode`/`v2`, answers come from `Serving`, errors from the one table in the crate root.

mod v2;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use slipway_types::serving::ReadableDeployments;

use crate::decode::{self, Decoded};
use crate::serving::{Assignment, Call, Target};
use crate::source::Selector;
use crate::{Serving, ServingError, encode};

/// Which face the router shows.
#[derive(Clone)]
pub enum Mode {
    /// One deployment, served at the root under this name.
    Standalone { name: String },
    /// Deployments by name, and registered models lazily.
    Server,
}

#[derive(Clone)]
pub struct Ctx {
    pub serving: Arc<Serving>,
    pub mode: Mode,
}

impl Ctx {
    /// Where V2/V1 requests for model `m` (at `version`, if given) go.
    fn target<'a>(&'a self, m: &'a str, version: Option<&str>) -> Result<Target<'a>, ServingError> {
        let deployment = match &self.mode {
            Mode::Standalone { name } if name == m => self.serving.deployment(name),
            Mode::Standalone { .. } => {
                return Err(ServingError::NotFound(format!("no model named '{m}' is served here")));
            }
            Mode::Server => self.serving.deployment(m),
        };
        match (deployment, version) {
            (Some(_), None) => Ok(Target::Deployment(m)),
            // A version of a deployment's model: served lazily beside the deployment.
            (Some(d), Some(v)) => Ok(Target::Model { name: d.spec.model.clone(), selector: Selector::parse(v) }),
            (None, _) if matches!(self.mode, Mode::Standalone { .. }) => {
                Err(ServingError::Unavailable("the model is not loaded yet".into()))
            }
            (None, v) => {
                Ok(Target::Model { name: m.to_string(), selector: v.map_or(Selector::Latest, Selector::parse) })
            }
        }
    }
}

pub fn standalone(serving: Arc<Serving>, name: String) -> Router {
    let ctx = Ctx { serving, mode: Mode::Standalone { name } };
    Router::new()
        .route("/invocations", post(standalone_invocations))
        .route("/ping", get(standalone_ping))
        .route("/health", get(standalone_ping))
        .route("/version", get(|| async { env!("CARGO_PKG_VERSION") }))
        .merge(shared())
        .fallback(|req: axum::extract::Request| async move {
            v1_error(&ServingError::NotFound(format!("no endpoint {} {}", req.method(), req.uri().path())))
        })
        .with_state(ctx)
}

pub fn server(serving: Arc<Serving>) -> Router {
    let ctx = Ctx { serving, mode: Mode::Server };
    Router::new()
        .route("/serving/{deployment}/invocations", post(deployment_invocations))
        .route("/serving/{deployment}/ping", get(deployment_ping))
        .merge(shared())
        .with_state(ctx)
}

fn shared() -> Router<Ctx> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/v1/models", get(v1_list))
        .route("/v1/models/{spec}", get(v1_model).post(v1_predict))
        .merge(v2::routes())
}

async fn metrics(State(ctx): State<Ctx>) -> Response {
    let text = ctx.serving.render_metrics();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

/// The client's request id when it is a sane token, else a new one.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_string)
}

/// Reads the whole body, refusing more than `limit` bytes with 413.
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ServingError> {
    let too_large = || ServingError::TooLarge(format!("the request body is larger than the limit of {limit} bytes"));
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(s) = source {
            if s.is::<http_body_util::LengthLimitError>() {
                return too_large();
            }
            source = s.source();
        }
        ServingError::BadInput(format!("the request body could not be read: {e}"))
    })
}

fn add_headers(resp: &mut Response, request_id: &str, picked: Option<&Assignment>) {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-request-id", v);
    }
    if let Some(p) = picked {
        if let Ok(v) = HeaderValue::from_str(&p.loaded.model.id.version) {
            h.insert("x-slipway-model-version", v);
        }
        if let Some(d) = &p.deployment
            && let Ok(v) = HeaderValue::from_str(&d.spec.name)
        {
            h.insert("x-slipway-deployment", v);
        }
    }
}

fn with_retry(mut resp: Response, e: &ServingError) -> Response {
    if let Some(secs) = e.answer().retry_after {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

fn status_of(e: &ServingError) -> StatusCode {
    StatusCode::from_u16(e.answer().status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// MLflow's error shape.
pub fn mlflow_error(e: &ServingError) -> Response {
    let body = json!({ "error_code": e.answer().code.as_str(), "message": e.client_message() });
    with_retry((status_of(e), axum::Json(body)).into_response(), e)
}

/// The V2 and V1 error shape.
pub fn v1_error(e: &ServingError) -> Response {
    with_retry((status_of(e), axum::Json(json!({ "error": e.client_message() }))).into_response(), e)
}

/// A protocol's name (for metrics and the prediction log) and its error shape.
#[derive(Clone, Copy)]
pub(crate) struct Protocol {
    pub name: &'static str,
    pub error: fn(&ServingError) -> Response,
}

pub(crate) const MLFLOW: Protocol = Protocol { name: "mlflow", error: mlflow_error };
pub(crate) const V1: Protocol = Protocol { name: "v1", error: v1_error };
pub(crate) const V2: Protocol = Protocol { name: "v2", error: v1_error };

/// The common path of every inference: pick, decode, run, count, frame.
pub(crate) async fn serve_request<D, E>(
    ctx: &Ctx,
    target: Result<Target<'_>, ServingError>,
    headers: &HeaderMap,
    body: Body,
    face: Protocol,
    decode: D,
    encode: E,
) -> Response
where
    D: FnOnce(&crate::model::OnnxModel, &[u8]) -> Result<Decoded, ServingError>,
    E: FnOnce(&Decoded, &[crate::tensor::Named], &Assignment) -> Response,
{
    let (protocol, error) = (face.name, face.error);
    let started = Instant::now();
    let request_id = request_id(headers);
    let mut picked: Option<Assignment> = None;
    let result = async {
        let target = target?;
        let bytes = read_body(headers, body, ctx.serving.config.max_body_bytes).await?;
        let route_key = headers.get("x-slipway-route-key").and_then(|v| v.to_str().ok());
        let p = picked.insert(ctx.serving.pick(&target, route_key).await?);
        let mut decoded = decode(&p.loaded.model, &bytes)?;
        let call = Call { request_id: &request_id, protocol, started };
        let inputs = std::mem::take(&mut decoded.inputs);
        let outputs = ctx.serving.execute(p, inputs, decoded.rows, &call).await?;
        Ok::<_, ServingError>(encode(&decoded, &outputs, p))
    }
    .await;
    let mut resp = match result {
        Ok(resp) => resp,
        Err(e) => {
            if e.answer().status >= 500 {
                tracing::warn!(%request_id, error = %e, "inference request failed");
            }
            error(&e)
        }
    };
    let deployment = picked.as_ref().map_or("-", |p| p.deployment_name()).to_string();
    ctx.serving.observe(
        &deployment,
        picked.as_ref().map(|p| p.loaded.as_ref()),
        protocol,
        resp.status().as_u16(),
        started,
    );
    add_headers(&mut resp, &request_id, picked.as_ref());
    resp
}

enum Media {
    Json,
    Csv,
}

/// MLflow's rule: JSON (a `charset=utf-8` parameter at most) or CSV; anything else is 415.
fn media(headers: &HeaderMap) -> Result<Media, ServingError> {
    let raw = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mut parts = raw.split(';').map(|p| p.trim().to_ascii_lowercase());
    let kind = parts.next().unwrap_or_default();
    let params: Vec<String> = parts.filter(|p| !p.is_empty()).collect();
    let media = match kind.as_str() {
        "application/json" => Media::Json,
        "text/csv" => Media::Csv,
        _ => {
            return Err(ServingError::UnsupportedMedia(format!(
                "content type '{raw}' is not supported: send application/json or text/csv"
            )));
        }
    };
    if let Some(p) = params.iter().find(|p| p.replace(' ', "") != "charset=utf-8") {
        return Err(ServingError::UnsupportedMedia(format!(
            "content type parameter '{p}' is not supported (only charset=utf-8)"
        )));
    }
    Ok(media)
}

async fn mlflow_invocations(ctx: &Ctx, name: &str, headers: HeaderMap, body: Body) -> Response {
    let kind = media(&headers);
    let target = kind.as_ref().map(|_| Target::Deployment(name)).map_err(Clone::clone);
    let csv = matches!(kind, Ok(Media::Csv));
    serve_request(
        ctx,
        target,
        &headers,
        body,
        MLFLOW,
        |model, bytes| if csv { decode::mlflow_csv(model, bytes) } else { decode::mlflow_json(model, bytes) },
        |d, outputs, _| axum::Json(encode::mlflow(outputs, d.rows, d.layout)).into_response(),
    )
    .await
}

async fn standalone_invocations(State(ctx): State<Ctx>, headers: HeaderMap, body: Body) -> Response {
    let Mode::Standalone { name } = ctx.mode.clone() else {
        return mlflow_error(&ServingError::NotFound("no model".into()));
    };
    mlflow_invocations(&ctx, &name, headers, body).await
}

async fn deployment_invocations(
    State(ctx): State<Ctx>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    mlflow_invocations(&ctx, &name, headers, body).await
}

async fn standalone_ping(State(ctx): State<Ctx>) -> Response {
    let Mode::Standalone { name } = &ctx.mode else { return StatusCode::NOT_FOUND.into_response() };
    if ctx.serving.deployment(name).is_some() {
        (StatusCode::OK, "\n").into_response()
    } else {
        mlflow_error(&ServingError::Unavailable("the model is not loaded yet".into()))
    }
}

async fn deployment_ping(State(ctx): State<Ctx>, Path(name): Path<String>) -> Response {
    match ctx.serving.deployment(&name) {
        Some(_) => (StatusCode::OK, "\n").into_response(),
        None => mlflow_error(&ServingError::NotFound(format!("no deployment named '{name}' is being served"))),
    }
}

async fn v1_list(State(ctx): State<Ctx>, readable: Option<axum::Extension<ReadableDeployments>>) -> Response {
    let readable = readable.map(|r| r.0);
    let names: Vec<String> = ctx
        .serving
        .deployments()
        .iter()
        .map(|d| d.spec.name.clone())
        .filter(|name| ReadableDeployments::allows(readable.as_ref(), name))
        .collect();
    axum::Json(json!({ "models": names })).into_response()
}

async fn v1_model(State(ctx): State<Ctx>, Path(m): Path<String>) -> Response {
    let target = match ctx.target(&m, None) {
        Ok(t) => t,
        Err(e) => return v1_error(&e),
    };
    match ctx.serving.pick(&target, None).await {
        Ok(_) => axum::Json(json!({ "name": m, "ready": true })).into_response(),
        Err(e @ ServingError::NotFound(_)) => v1_error(&e),
        Err(e) => (status_of(&e), axum::Json(json!({ "name": m, "ready": false }))).into_response(),
    }
}

async fn v1_predict(State(ctx): State<Ctx>, Path(spec): Path<String>, headers: HeaderMap, body: Body) -> Response {
    let Some(m) = spec.strip_suffix(":predict") else {
        return v1_error(&ServingError::NotFound(format!(
            "no endpoint POST /v1/models/{spec} (did you mean /v1/models/{spec}:predict?)"
        )));
    };
    let target = ctx.target(m, None);
    serve_request(&ctx, target, &headers, body, V1, decode::v1_json, |d, outputs, _| {
        axum::Json(encode::v1(outputs, d.rows)).into_response()
    })
    .await
}

/// Answers a metadata or readiness call as JSON.
pub(crate) fn ok_json(value: Value) -> Response {
    axum::Json(value).into_response()
}
