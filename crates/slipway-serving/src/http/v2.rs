//! Open Inference Protocol V2 routes (KServe V2, Triton's HTTP API).

use std::sync::{Mutex, PoisonError};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json as value};

use super::{Ctx, ok_json as json, serve_request, v1_error};
use crate::ServingError;
use crate::decode::{Decoded, Layout};
use crate::model::OnnxModel;
use crate::v2::{self, WantedOutput};

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(|| async { json(value!({ "live": true })) }))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models/{m}", get(metadata))
        .route("/v2/models/{m}/ready", get(model_ready))
        .route("/v2/models/{m}/infer", post(infer_latest))
        .route("/v2/models/{m}/versions/{v}", get(metadata_version))
        .route("/v2/models/{m}/versions/{v}/ready", get(model_ready_version))
        .route("/v2/models/{m}/versions/{v}/infer", post(infer_version))
}

async fn server_metadata() -> Response {
    json(value!({ "name": "slipway", "version": env!("CARGO_PKG_VERSION"), "extensions": ["binary_tensor_data"] }))
}

/// Ready when ONNX Runtime is loaded: without it nothing can be served.
async fn ready() -> Response {
    match crate::runtime::environment(None) {
        Ok(_) => json(value!({ "ready": true })),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(value!({ "ready": false, "error": e.to_string() })))
                .into_response()
        }
    }
}

fn describe(model: &OnnxModel) -> Value {
    let inputs: Vec<Value> = model
        .inputs
        .iter()
        .map(|i| value!({ "name": i.name, "datatype": i.elem.v2_name(), "shape": i.shape }))
        .collect();
    let outputs: Vec<Value> = model
        .outputs
        .iter()
        .map(|o| value!({ "name": o.name, "datatype": o.elem().v2_name(), "shape": o.shape }))
        .collect();
    value!({
        "name": model.id.name,
        "versions": [model.id.version],
        "platform": "onnxruntime_onnx",
        "inputs": inputs,
        "outputs": outputs,
    })
}

async fn metadata_of(ctx: &Ctx, m: &str, v: Option<&str>) -> Response {
    let picked = match ctx.target(m, v) {
        Ok(target) => ctx.serving.pick(&target, None).await,
        Err(e) => Err(e),
    };
    match picked {
        Ok(p) => {
            let mut body = describe(&p.loaded.model);
            body["name"] = value!(m);
            json(body)
        }
        Err(e) => v1_error(&e),
    }
}

async fn metadata(State(ctx): State<Ctx>, Path(m): Path<String>) -> Response {
    metadata_of(&ctx, &m, None).await
}

async fn metadata_version(State(ctx): State<Ctx>, Path((m, v)): Path<(String, String)>) -> Response {
    metadata_of(&ctx, &m, Some(&v)).await
}

async fn ready_of(ctx: &Ctx, m: &str, v: Option<&str>) -> Response {
    let picked = match ctx.target(m, v) {
        Ok(target) => ctx.serving.pick(&target, None).await,
        Err(e) => Err(e),
    };
    match picked {
        Ok(_) => json(value!({ "name": m, "ready": true })),
        Err(e @ ServingError::NotFound(_)) => v1_error(&e),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(value!({ "name": m, "ready": false, "error": e.client_message() })),
        )
            .into_response(),
    }
}

async fn model_ready(State(ctx): State<Ctx>, Path(m): Path<String>) -> Response {
    ready_of(&ctx, &m, None).await
}

async fn model_ready_version(State(ctx): State<Ctx>, Path((m, v)): Path<(String, String)>) -> Response {
    ready_of(&ctx, &m, Some(&v)).await
}

/// What the encoder needs from the request besides its inputs.
struct Meta {
    id: Option<String>,
    outputs: Option<Vec<WantedOutput>>,
    binary_output: bool,
}

async fn infer_v2(ctx: &Ctx, m: &str, v: Option<&str>, headers: HeaderMap, body: Body) -> Response {
    let header_len = match headers
        .get("inference-header-content-length")
        .map(|h| h.to_str().ok().and_then(|s| s.parse().ok()))
    {
        None => None,
        Some(Some(n)) => Some(n),
        Some(None) => {
            return v1_error(&ServingError::BadInput("Inference-Header-Content-Length must be a whole number".into()));
        }
    };
    let meta: Mutex<Option<Meta>> = Mutex::new(None);
    let name = m.to_string();
    serve_request(
        ctx,
        ctx.target(m, v),
        &headers,
        body,
        super::V2,
        |model, bytes| {
            let req = v2::decode(model, bytes, header_len)?;
            *meta.lock().unwrap_or_else(PoisonError::into_inner) =
                Some(Meta { id: req.id, outputs: req.outputs, binary_output: req.binary_output });
            Ok(Decoded { inputs: req.inputs, rows: req.rows, layout: Layout::Tensors })
        },
        |_, outputs, picked| {
            let m = meta.lock().unwrap_or_else(PoisonError::into_inner).take().unwrap_or(Meta {
                id: None,
                outputs: None,
                binary_output: false,
            });
            let req = v2::Request {
                id: m.id,
                inputs: Vec::new(),
                rows: 0,
                outputs: m.outputs,
                binary_output: m.binary_output,
            };
            let encoded = v2::encode(&name, &picked.loaded.model.id.version, &req, outputs);
            let mut resp = Response::new(Body::from(encoded.body));
            let h = resp.headers_mut();
            match encoded.header_len {
                Some(n) => {
                    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
                    h.insert("inference-header-content-length", HeaderValue::from(n));
                }
                None => {
                    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                }
            }
            resp
        },
    )
    .await
}

async fn infer_latest(State(ctx): State<Ctx>, Path(m): Path<String>, headers: HeaderMap, body: Body) -> Response {
    infer_v2(&ctx, &m, None, headers, body).await
}

async fn infer_version(
    State(ctx): State<Ctx>,
    Path((m, v)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    infer_v2(&ctx, &m, Some(&v), headers, body).await
}
