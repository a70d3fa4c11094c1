//! The Slipway HTTP application.
//!
//! [`build_app`] assembles the router from the route modules; tests start the real app with
//! it in-process, and the binary serves it. This crate translates HTTP to store and artifact
//! calls: it never touches SQL or the file system itself.

pub mod actor;
pub mod artifacts;
pub mod auth;
pub mod data;
pub mod deployments;
pub mod error;
pub mod extract;
pub mod graphql;
pub mod history;
pub mod labeling;
pub mod monitors;
pub mod native;
pub mod pipelines;
pub mod registry;
pub mod tls;
pub mod tracking;
pub mod ui;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use slipway_artifacts::Artifacts;
use slipway_serving::Serving;
use slipway_store::MetadataStore;
use slipway_types::ErrorCode;
use tokio::sync::Notify;

use crate::error::ApiError;

/// The MLflow version whose wire protocol this server speaks; clients gate features on it.
pub const MLFLOW_COMPAT_VERSION: &str = "3.17.2";

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn MetadataStore>,
    pub artifacts: Artifacts,
    /// Model serving, when this server runs it.
    pub serving: Option<Arc<Serving>>,
    /// Woken when the registry changes here or (through the store's change watch) on another
    /// replica, so deployments follow at once instead of at the next poll.
    pub registry_changed: Arc<Notify>,
    /// Monitor evaluation and alert delivery.
    pub monitors: Arc<slipway_monitor::monitors::Monitors>,
    /// The pipelines this server may start (`--pipeline FILE`), when it was given any.
    pub pipelines: Option<Arc<slipway_pipeline::trigger::Triggers>>,
    /// The MLflow UI served at `/`, when one was found.
    pub mlflow_ui: Option<slipway_ui::mlflow::Bundle>,
    /// Authentication and permissions; `None` (the embedded default) lets every caller do
    /// everything, naming themselves for the audit log.
    pub auth: Option<Arc<auth::Auth>>,
}

impl AppState {
    pub fn new(store: Arc<dyn MetadataStore>, artifacts: Artifacts, serving: Option<Arc<Serving>>) -> Self {
        Self {
            monitors: Arc::new(slipway_monitor::monitors::Monitors::new(store.clone(), artifacts.clone())),
            store,
            artifacts,
            serving,
            registry_changed: Arc::new(Notify::new()),
            pipelines: None,
            mlflow_ui: None,
            auth: None,
        }
    }
}

pub fn build_app(state: AppState) -> Router {
    let auth = state.auth.clone();
    let app = routes(state);
    // Before routing and before any body is read: unknown paths need credentials too.
    let app = match auth {
        Some(auth) => app.layer(middleware::from_fn_with_state(auth, auth::require)),
        None => app,
    };
    app.layer(middleware::from_fn(access_log))
}

/// Every route the server answers, without the layers in front of them: what the auth route
/// table ([`auth::policy::ROUTES`]) must list.
pub fn routes(state: AppState) -> Router {
    let serving = state.serving.clone();
    let auth = state.auth.clone();
    let ui = slipway_ui::mlflow::routes(state.mlflow_ui.clone());
    let api = Router::new()
        .route("/health", get(|| async { "OK" }))
        .route("/ping", get(|| async { "OK" }))
        .route("/version", get(|| async { MLFLOW_COMPAT_VERSION }))
        .route("/api/3.0/mlflow/server-info", get(server_info))
        .route("/api/3.0/mlflow/ui-telemetry", get(ui_telemetry).post(ui_telemetry_records))
        .merge(tracking::routes())
        .merge(artifacts::routes())
        .merge(registry::routes())
        .merge(native::routes())
        .merge(data::routes())
        .merge(labeling::routes())
        .merge(deployments::routes())
        .merge(monitors::routes())
        .merge(pipelines::routes())
        .merge(graphql::routes())
        .merge(ui::routes())
        .route("/api/2.0/mlflow/metrics/get-history-bulk-interval", get(history::get_history_bulk_interval))
        .with_state(state);
    let api = match &auth {
        Some(auth) => api.merge(auth::users::routes(auth.clone())).merge(auth::browser::routes(auth.clone())),
        None => api,
    };
    // The MLflow UI calls every API route under `/ajax-api/` too.
    let inner = api.clone().fallback(not_found).method_not_allowed_fallback(method_not_allowed);
    let ajax = tower::ServiceExt::map_request(inner, |mut req: Request| {
        *req.uri_mut() = under_api(req.uri());
        req
    });
    let api = api.nest_service("/ajax-api", ajax).merge(ui);
    let app = match serving {
        Some(serving) => {
            if let Some(auth) = &auth {
                serving.set_metric_source("auth", auth.metric_source());
            }
            api.merge(slipway_serving::http::server(serving))
        }
        None => api,
    };
    app.fallback(not_found).method_not_allowed_fallback(method_not_allowed)
}

/// `/2.0/mlflow/x?q` (what is left of `/ajax-api/2.0/mlflow/x?q` inside the nest) as
/// `/api/2.0/mlflow/x?q`.
fn under_api(uri: &axum::http::Uri) -> axum::http::Uri {
    let rest = uri.path_and_query().map_or("/", |pq| pq.as_str());
    format!("/api{rest}").parse().unwrap_or_else(|_| uri.clone())
}

/// The MLflow UI asks whether to send usage telemetry: never.
async fn ui_telemetry() -> Json<serde_json::Value> {
    Json(json!({"disable_ui_telemetry": true, "disable_ui_events": [], "ui_rollout_percentage": 0}))
}

async fn ui_telemetry_records() -> Json<serde_json::Value> {
    Json(json!({"status": "disabled"}))
}

async fn server_info() -> Json<serde_json::Value> {
    Json(json!({
        // The UI shows the AI gateway unless told it is off.
        "features_enabled": {"gateway": false},
        "store_type": "SqlStore",
        "workspaces_enabled": false,
        "multipart_uploads_enabled": false,
        "multipart_downloads_enabled": false,
    }))
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(ErrorCode::EndpointNotFound, format!("no endpoint {} {}", req.method(), req.uri().path()))
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        ErrorCode::EndpointNotFound,
        format!("method {} is not allowed on {}", req.method(), req.uri().path()),
    )
    .with_status(StatusCode::METHOD_NOT_ALLOWED)
}

/// One structured log line per request.
async fn access_log(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = Instant::now();
    let resp = next.run(req).await.into_response();
    let status = resp.status().as_u16();
    let micros = started.elapsed().as_micros() as u64;
    if status >= 500 {
        tracing::warn!(%method, %path, status, micros, "request");
    } else {
        tracing::debug!(%method, %path, status, micros, "request");
    }
    resp
}

/// Serves `app` until `shutdown` resolves, then lets in-flight requests finish.
///
/// Responses go out with `TCP_NODELAY`: small JSON answers must not wait on Nagle's algorithm
/// for the client's delayed ACK (about 40 ms per request otherwise).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(%err, "could not set TCP_NODELAY");
        }
    });
    // The peer's address reaches handlers (the failed-login throttle keys on it).
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

/// [`serve`] over TLS (`config` from [`tls::server_config`]).
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    config: std::sync::Arc<rustls::ServerConfig>,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tls::TlsListener::new(listener, config)?;
    // The peer's address, as `serve` gives it (axum's connect-info knows only plain TCP).
    let make = tower::service_fn(move |incoming: axum::serve::IncomingStream<'_, tls::TlsListener>| {
        let peer = axum::extract::ConnectInfo(*incoming.remote_addr());
        let app = tower::ServiceExt::map_request(app.clone(), move |mut req: Request| {
            req.extensions_mut().insert(peer);
            req
        });
        std::future::ready(Ok::<_, std::convert::Infallible>(app))
    });
    axum::serve(listener, make).with_graceful_shutdown(shutdown).await
}
