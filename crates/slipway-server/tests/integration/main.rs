//! The real app, in-process: every bad request gets MLflow's error shape and a 4xx.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use slipway_artifacts::Artifacts;
use slipway_server::{AppState, build_app};
use slipway_store::sqlite::SqliteStore;
use tower::ServiceExt;

mod auth;
mod route_matrix;

struct App {
    router: axum::Router,
    dir: tempfile::TempDir,
}

fn app() -> App {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("db.sqlite"), "mlflow-artifacts:", 2).unwrap();
    let artifacts = Artifacts::local(dir.path().join("artifacts")).unwrap();
    App { router: build_app(AppState::new(Arc::new(store), artifacts, None)), dir }
}

async fn call(app: &App, method: Method, uri: &str, body: impl Into<Body>) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap();
    let resp = app.router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    let value =
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, value)
}

fn assert_error(status: StatusCode, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status.as_u16(), want_status, "{body}");
    assert_eq!(body["error_code"], want_code, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

const API: &str = "/api/2.0/mlflow";

#[tokio::test]
async fn malformed_and_mistyped_bodies_are_400() {
    let a = app();
    let (s, b) = call(&a, Method::POST, &format!("{API}/experiments/create"), "{not json").await;
    assert_error(s, &b, 400, "BAD_REQUEST");
    let (s, b) = call(&a, Method::POST, &format!("{API}/experiments/create"), r#"{"name": 5}"#).await;
    assert_error(s, &b, 400, "INVALID_PARAMETER_VALUE");
    let (s, b) = call(&a, Method::POST, &format!("{API}/experiments/create"), "{}").await;
    assert_error(s, &b, 400, "INVALID_PARAMETER_VALUE");
    let (s, b) =
        call(&a, Method::POST, &format!("{API}/runs/search"), r#"{"experiment_ids":["0"],"max_results":"many"}"#).await;
    assert_error(s, &b, 400, "INVALID_PARAMETER_VALUE");
    let (s, b) =
        call(&a, Method::POST, &format!("{API}/runs/log-metric"), r#"{"run_id":"abc","key":"m","value":[1]}"#).await;
    assert_error(s, &b, 400, "INVALID_PARAMETER_VALUE");
}

#[tokio::test]
async fn unknown_routes_and_methods_keep_the_error_shape() {
    let a = app();
    let (s, b) = call(&a, Method::GET, &format!("{API}/no-such-thing"), "").await;
    assert_error(s, &b, 404, "ENDPOINT_NOT_FOUND");
    let (s, b) = call(&a, Method::GET, &format!("{API}/runs/create"), "").await;
    assert_error(s, &b, 405, "ENDPOINT_NOT_FOUND");
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let a = app();
    let big = vec![b' '; slipway_server::extract::MAX_JSON_BODY + 10];
    let (s, b) = call(&a, Method::POST, &format!("{API}/runs/log-batch"), big).await;
    assert_error(s, &b, 413, "INVALID_PARAMETER_VALUE");
}

#[tokio::test]
async fn a_full_run_round_trip_over_http() {
    let a = app();
    let (s, b) = call(&a, Method::POST, &format!("{API}/experiments/create"), json!({"name": "e"}).to_string()).await;
    assert_eq!(s, 200, "{b}");
    let exp = b["experiment_id"].as_str().unwrap().to_string();
    let (_, b) = call(&a, Method::POST, &format!("{API}/runs/create"), json!({"experiment_id": exp}).to_string()).await;
    let run = b["run"]["info"]["run_id"].as_str().unwrap().to_string();
    assert_eq!(b["run"]["info"]["run_uuid"], run.as_str());
    assert_eq!(b["run"]["info"]["lifecycle_stage"], "active");
    let batch = json!({"run_id": run, "metrics": [
        {"key": "m", "value": "NaN", "timestamp": "5", "step": 1},
        {"key": "i", "value": "-Infinity", "timestamp": 5}
    ], "params": [{"key": "p", "value": "1"}]});
    let (s, b) = call(&a, Method::POST, &format!("{API}/runs/log-batch"), batch.to_string()).await;
    assert_eq!(s, 200, "{b}");
    let (_, b) = call(&a, Method::GET, &format!("{API}/runs/get?run_id={run}"), "").await;
    let metrics = b["run"]["data"]["metrics"].as_array().unwrap();
    assert!(metrics.iter().any(|m| m["key"] == "m" && m["value"] == "NaN"));
    assert!(metrics.iter().any(|m| m["key"] == "i" && m["value"] == "-Infinity"));
    // A changed param is a client error the client must not retry.
    let (s, b) = call(
        &a,
        Method::POST,
        &format!("{API}/runs/log-parameter"),
        json!({"run_id": run, "key": "p", "value": "2"}).to_string(),
    )
    .await;
    assert_error(s, &b, 400, "INVALID_PARAMETER_VALUE");
    let (s, b) = call(&a, Method::GET, &format!("{API}/runs/get?run_id=ffffffffffffffffffffffffffffffff"), "").await;
    assert_error(s, &b, 404, "RESOURCE_DOES_NOT_EXIST");
}

#[tokio::test]
async fn traversal_never_touches_the_disk_outside_the_root() {
    let a = app();
    for path in [
        "../escape.txt",
        "%2e%2e/escape.txt",
        "..%2fescape.txt",
        "%252e%252e%252fescape.txt",
        "a/..%5c..%5cescape.txt",
        "/escape.txt",
    ] {
        let uri = format!("/api/2.0/mlflow-artifacts/artifacts/{path}");
        let (s, b) = call(&a, Method::PUT, &uri, "payload").await;
        assert_error(s, &b, 400, "INVALID_PARAMETER_VALUE");
        let (s, b) = call(&a, Method::GET, &uri, "").await;
        assert_error(s, &b, 400, "INVALID_PARAMETER_VALUE");
    }
    let (s, b) = call(&a, Method::GET, "/api/2.0/mlflow-artifacts/artifacts?path=..%2F..", "").await;
    assert_error(s, &b, 400, "INVALID_PARAMETER_VALUE");
    assert!(!a.dir.path().join("escape.txt").exists());
    assert!(!a.dir.path().parent().unwrap().join("escape.txt").exists());

    let (s, _) = call(&a, Method::PUT, "/api/2.0/mlflow-artifacts/artifacts/0/r/artifacts/ok.txt", "payload").await;
    assert_eq!(s, 200);
    let (s, b) = call(&a, Method::GET, "/api/2.0/mlflow-artifacts/artifacts/0/r/artifacts/ok.txt", "").await;
    assert_eq!((s.as_u16(), b), (200, Value::String("payload".into())));
}

/// A pipeline cache blob is stored only under the SHA-256 of its bytes.
#[tokio::test]
async fn cache_blobs_must_hash_to_their_names() {
    let a = app();
    let body = b"hello cache".to_vec();
    let good = "bb9a61ae6eeebbbb4ec59a1488ce15350641f02d1cd5402a2a79f489b07b1523";
    let bad = "0".repeat(64);
    let put = |name: &str| format!("/api/2.0/mlflow-artifacts/artifacts/slipway-cache/sha256/{}/{name}", &name[..2]);
    let (s, b) = call(&a, Method::PUT, &put(&bad), body.clone()).await;
    assert_error(s, &b, 400, "BAD_REQUEST");
    let (s, _) = call(&a, Method::GET, &put(&bad), "").await;
    assert_eq!(s, 404, "a refused upload leaves nothing");
    let (s, b) = call(&a, Method::PUT, &put("not-hex"), body.clone()).await;
    assert_error(s, &b, 400, "INVALID_PARAMETER_VALUE");
    let (s, b) = call(&a, Method::PUT, &put(good), body.clone()).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = call(&a, Method::GET, &put(good), "").await;
    assert_eq!((s.as_u16(), b), (200, Value::String("hello cache".into())));
}
