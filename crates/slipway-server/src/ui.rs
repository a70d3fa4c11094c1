//! Slipway's own pages under `/ui/`: each handler gathers what its page shows from the store,
//! serving and the pipelines, and hands it to `slipway_ui::pages` to render.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;
use slipway_store::auth::ObjectKind;
use slipway_store::{AuditQuery, RegistrySearch, StoreError};
use slipway_ui::headers::{self, Caching};
use slipway_ui::pages::{self, AuditFilters, DeploymentView, Traffic};

use crate::AppState;
use crate::auth::{Reader, Visible};
use crate::error::{ApiError, ApiResult};
use crate::extract::QueryArgs;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/deployments") }))
        .route("/ui/", get(|| async { Redirect::to("/ui/deployments") }))
        .route("/ui/assets/{*name}", get(slipway_ui::assets::asset))
        .route("/ui/deployments", get(deployments))
        .route("/ui/deployments/table", get(deployments_table))
        .route("/ui/monitors", get(monitors))
        .route("/ui/monitors/{name}", get(monitor))
        .route("/ui/monitors/{name}/windows/{start_ms}", get(window))
        .route("/ui/alerts", get(alerts))
        .route("/ui/audit", get(audit))
        .route("/ui/lineage", get(lineage_start))
        .route("/ui/lineage/{name}/{version}", get(lineage))
        .route("/ui/labeling", get(labeling_queues))
        .route("/ui/labeling/{queue}", get(labeling_queue))
        .route("/ui/pipelines", get(pipelines))
        .route("/ui/pipelines/runs/{run_id}", get(pipeline_run))
}

/// An HTML answer with the pages' headers; an error becomes a page saying what went wrong,
/// with the status the API would answer.
fn html(result: ApiResult<String>) -> Response {
    let (status, body) = match result {
        Ok(body) => (StatusCode::OK, body),
        Err(e) => {
            let status = e.status.unwrap_or_else(|| {
                StatusCode::from_u16(e.error.error_code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            });
            let body = pages::layout(
                "Not available",
                pages::Tab::Deployments,
                maud::html! { p { (e.error.message) } p { a href="/ui/" { "Back to Slipway" } } },
            );
            (status, body)
        }
    };
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers::page(resp.headers_mut(), Caching::Revalidate);
    resp
}

fn now() -> (i64, u64) {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    (i64::try_from(d.as_millis()).unwrap_or(i64::MAX), d.as_secs())
}

/// The deployments the reader may read, as the pages show them.
async fn deployment_views(s: &AppState, reader: &Reader) -> ApiResult<Vec<DeploymentView>> {
    let (_, secs) = now();
    let all = s.store.list_deployments().await?;
    Ok(all
        .into_iter()
        .filter(|d| reader.may_read(ObjectKind::Deployment, &d.spec.name))
        .map(|deployment| {
            let name = deployment.spec.name.clone();
            let live = s.serving.as_ref().and_then(|sv| sv.deployment(&name)).map(|live| {
                let route = live.route();
                let mut v = vec![("primary", route.primary.model.id.version.clone(), 1.0)];
                if let Some((c, w)) = &route.canary {
                    v.push(("canary", c.model.id.version.clone(), *w));
                }
                if let Some((sh, w)) = &route.shadow {
                    v.push(("shadow", sh.model.id.version.clone(), *w));
                }
                v
            });
            let traffic = s.serving.as_ref().map(|sv| sv.metrics.traffic(&name, secs)).map(|t| Traffic {
                requests: t.requests,
                errors: t.errors,
                last_minute: t.last_minute,
                p50_ms: t.p50_seconds.map(|v| v * 1000.0),
                p95_ms: t.p95_seconds.map(|v| v * 1000.0),
            });
            DeploymentView { deployment, live: live.unwrap_or_default(), traffic: traffic.unwrap_or_default() }
        })
        .collect())
}

async fn deployments(State(s): State<AppState>, reader: Reader) -> Response {
    html(deployment_views(&s, &reader).await.map(|v| pages::deployments(&v)))
}

async fn deployments_table(State(s): State<AppState>, reader: Reader) -> Response {
    html(deployment_views(&s, &reader).await.map(|v| pages::deployments_table(&v).into_string()))
}

/// The monitors the reader may read: those of deployments it may read.
async fn readable_monitors(s: &AppState, reader: &Reader) -> ApiResult<Vec<slipway_types::Monitor>> {
    let mut all = s.store.list_monitors().await?;
    all.retain(|m| reader.may_read(ObjectKind::Deployment, &m.spec.deployment));
    Ok(all)
}

/// Windows shown on a monitor's page: the last week.
const WINDOW_SPAN_MS: i64 = 7 * 24 * 3600 * 1000;

async fn monitors(State(s): State<AppState>, reader: Reader) -> Response {
    let result = async {
        let (now_ms, _) = now();
        let mut rows = Vec::new();
        for m in readable_monitors(&s, &reader).await? {
            let windows = s.store.list_monitor_windows(m.spec.name.clone(), now_ms - WINDOW_SPAN_MS, now_ms).await?;
            let latest = windows.into_iter().filter(|w| w.rows > 0).max_by_key(|w| w.start_ms);
            rows.push((m, latest));
        }
        Ok(pages::monitors(&rows))
    };
    html(result.await)
}

async fn monitor(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    let result = async {
        let (now_ms, _) = now();
        let m = s.store.get_monitor(name.clone()).await?;
        let mut windows = s.store.list_monitor_windows(name.clone(), now_ms - WINDOW_SPAN_MS, now_ms).await?;
        // A window nobody was served in has nothing to show.
        windows.retain(|w| w.rows > 0);
        windows.sort_by_key(|w| w.start_ms);
        let mut alerts = s.store.list_alerts(name).await?;
        alerts.sort_by_key(|a| std::cmp::Reverse(a.fired_at));
        Ok(pages::monitor(&m, &windows, &alerts))
    };
    html(result.await)
}

async fn window(State(s): State<AppState>, Path((name, start_ms)): Path<(String, String)>) -> Response {
    let result = async {
        let start: i64 =
            start_ms.parse().map_err(|_| ApiError::invalid(format!("'{start_ms}' is not a window start")))?;
        let m = s.store.get_monitor(name.clone()).await?;
        let windows = s.store.list_monitor_windows(name.clone(), start, start + 1).await?;
        let w = windows.into_iter().find(|w| w.start_ms == start).ok_or_else(|| {
            ApiError::from(StoreError::NotFound(format!("monitor '{name}' has no window starting at {start}")))
        })?;
        Ok(pages::window(&m, &w))
    };
    html(result.await)
}

async fn alerts(State(s): State<AppState>, reader: Reader) -> Response {
    let result = async {
        let mut all = Vec::new();
        for m in readable_monitors(&s, &reader).await? {
            all.extend(s.store.list_alerts(m.spec.name).await?);
        }
        all.sort_by_key(|a| std::cmp::Reverse(a.fired_at));
        Ok(pages::alerts(&all))
    };
    html(result.await)
}

#[derive(Deserialize)]
struct AuditParams {
    actor: Option<String>,
    action: Option<String>,
    name: Option<String>,
    page_token: Option<String>,
}

async fn audit(State(s): State<AppState>, reader: Reader, QueryArgs(q): QueryArgs<AuditParams>) -> Response {
    let result = async {
        let (visible, readable_monitors) = crate::native::audit_scope(&s, &reader).await?;
        let some = |v: Option<String>| v.map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let mut filters =
            AuditFilters { actor: some(q.actor), action: some(q.action), name: some(q.name), next_page_token: None };
        let page = s
            .store
            .audit_log(AuditQuery {
                name: filters.name.clone(),
                actor: filters.actor.clone(),
                action: filters.action.clone(),
                max_results: Some(100),
                page_token: some(q.page_token),
                visible,
                readable_monitors,
                ..AuditQuery::default()
            })
            .await?;
        filters.next_page_token = page.next_page_token;
        Ok(pages::audit(&page.items, &filters))
    };
    html(result.await)
}

async fn lineage_start(State(s): State<AppState>, Visible(visible): Visible) -> Response {
    let result = async {
        let search = RegistrySearch { visible, max_results: Some(200), ..Default::default() };
        let models = s.store.search_registered_models(search).await?;
        let list = models
            .items
            .into_iter()
            .map(|m| {
                let versions = m.latest_versions.iter().map(|v| v.version.clone()).collect();
                (m.name, versions)
            })
            .collect::<Vec<_>>();
        Ok(pages::lineage_start(&list))
    };
    html(result.await)
}

async fn lineage(State(s): State<AppState>, reader: Reader, Path((name, version)): Path<(String, String)>) -> Response {
    let result = async {
        let l = crate::native::readable_lineage(&s, &reader, name.clone(), version.clone()).await?;
        let serving = crate::native::serving_deployments(&s, &reader, &name, &version).await?;
        Ok(pages::lineage(&l, &serving))
    };
    html(result.await)
}

async fn labeling_queues(State(s): State<AppState>, reader: Reader) -> Response {
    let result = async { Ok(pages::labeling_queues(&crate::labeling::readable_queues(&s, &reader).await?)) };
    html(result.await)
}

async fn labeling_queue(State(s): State<AppState>, Path(queue): Path<String>) -> Response {
    let result = async { Ok(pages::labeling_queue(&s.store.get_label_queue(queue).await?)) };
    html(result.await)
}

async fn pipelines(State(s): State<AppState>) -> Response {
    let result = async {
        let mut out = Vec::new();
        if let Some(t) = &s.pipelines {
            for p in t.list() {
                let (runs, _) = crate::pipelines::runs_of(&s, &p.name, 50, None).await?;
                out.push((p.name.clone(), runs));
            }
        }
        Ok(pages::pipelines(&out))
    };
    html(result.await)
}

async fn pipeline_run(State(s): State<AppState>, Path(run_id): Path<String>) -> Response {
    html(crate::pipelines::run_detail(&s, &run_id).await.map(|r| pages::pipeline_run(&r)))
}
