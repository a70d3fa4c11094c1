use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use slipway_types::DeploymentSpec;
use tower::ServiceExt;

use super::*;

const COLUMNS: &str =
    r#"[{"type": "double", "name": "a"}, {"type": "double", "name": "b"}, {"type": "double", "name": "c"}]"#;

struct App {
    router: Router,
    _tmp: tempfile::TempDir,
}

/// `slipway serve` on the linear model, with a column signature.
async fn standalone() -> App {
    let tmp = tempfile::tempdir().unwrap();
    let source = Arc::new(MapSource::default());
    source.add("lin", "1", model_dir(tmp.path(), "lin", LINEAR, Some(COLUMNS)));
    let serving = serving(source, tmp.path(), Setup::default());
    let spec =
        DeploymentSpec { name: "lin".into(), model: "lin".into(), version: Some("1".into()), ..Default::default() };
    serving.apply(&spec).await.unwrap();
    App { router: slipway_serving::http::standalone(serving, "lin".into()), _tmp: tmp }
}

async fn send(
    app: &App,
    method: &str,
    path: &str,
    content_type: &str,
    body: impl Into<Body>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let req =
        Request::builder().method(method).uri(path).header("content-type", content_type).body(body.into()).unwrap();
    let resp = app.router.clone().oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    (parts.status, parts.headers, body.collect().await.unwrap().to_bytes().to_vec())
}

async fn post(app: &App, path: &str, body: Value) -> (StatusCode, Value) {
    let (status, _, bytes) = send(app, "POST", path, "application/json", body.to_string()).await;
    (status, serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into())))
}

fn close(v: &Value, want: f32) -> bool {
    v.as_f64().is_some_and(|x| (x - f64::from(want)).abs() < 1e-4)
}

#[tokio::test]
async fn every_mlflow_format_answers_as_mlflow_does() {
    let app = standalone().await;
    let rows = [[1.0f32, 2.0, 3.0], [0.5, -1.0, 2.0]];
    let split = json!({"dataframe_split": {"columns": ["a", "b", "c"], "data": rows}});
    let records = json!({"dataframe_records": [{"a": 1.0, "b": 2.0, "c": 3.0}, {"c": 2.0, "b": -1.0, "a": 0.5}]});
    let instances = json!({"instances": rows});
    let inputs = json!({"inputs": {"a": [1.0, 0.5], "b": [2.0, -1.0], "c": [3.0, 2.0]}});
    for body in [split, records, instances, inputs] {
        let (status, v) = post(&app, "/invocations", body.clone()).await;
        assert_eq!(status, 200, "{body} -> {v}");
        let preds = v["predictions"].as_array().unwrap_or_else(|| panic!("{v}"));
        assert_eq!(preds.len(), 2, "{v}");
        for (row, p) in rows.iter().zip(preds) {
            assert!(close(&p["variable"], linear(row)), "{body}: {p} vs {}", linear(row));
        }
    }
    let (status, headers, bytes) = send(&app, "POST", "/invocations", "text/csv", "c,b,a\n3,2,1\n").await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-slipway-model-version"], "1");
    assert!(!headers["x-request-id"].is_empty());
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(close(&v["predictions"][0]["variable"], linear(&[1.0, 2.0, 3.0])), "{v}");
}

#[tokio::test]
async fn bad_input_is_a_400_that_names_the_column_and_nothing_breaks() {
    let app = standalone().await;
    let cases = [
        (json!({"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2]]}}), "'c'"),
        (json!({"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1, "x", 3]]}}), "'b'"),
        (json!({"dataframe_records": [{"a": 1, "b": null, "c": 3}]}), "'b'"),
        (json!({"instances": [[1, 2]]}), "row 0"),
        (json!({"instances": [[1, 2, 3]], "inputs": [[1, 2, 3]]}), "exactly one"),
        (json!({"nonsense": 1}), "nonsense"),
        (json!([1, 2, 3]), "object"),
    ];
    for (body, needle) in cases {
        let (status, v) = post(&app, "/invocations", body.clone()).await;
        assert_eq!(status, 400, "{body} -> {v}");
        assert_eq!(v["error_code"], "BAD_REQUEST");
        assert!(v["message"].as_str().unwrap().contains(needle), "{body}: {v}");
    }
    let (status, _, _) = send(&app, "POST", "/invocations", "application/json", "{not json").await;
    assert_eq!(status, 400);
    let (status, _, _) = send(&app, "POST", "/invocations", "text/plain", "a").await;
    assert_eq!(status, 415);
    let (status, _, _) = send(&app, "POST", "/invocations", "application/json; charset=latin-1", "{}").await;
    assert_eq!(status, 415);
    let (status, v) = post(&app, "/invocations", json!({"instances": [[1, 2, 3]]})).await;
    assert_eq!(status, 200, "{v}");
}

#[tokio::test]
async fn v2_and_v1_speak_their_protocols() {
    let app = standalone().await;
    let (status, _, meta) = send(&app, "GET", "/v2/models/lin", "application/json", "").await;
    assert_eq!(status, 200);
    let meta: Value = serde_json::from_slice(&meta).unwrap();
    assert_eq!(meta["inputs"][0], json!({"name": "X", "datatype": "FP32", "shape": [-1, 3]}));
    let body = json!({"id": "r1", "inputs": [{"name": "X", "shape": [2, 3], "datatype": "FP32", "data": [[1, 2, 3], [0.5, -1, 2]]}]});
    let (status, v) = post(&app, "/v2/models/lin/infer", body).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["id"], "r1");
    assert_eq!(v["outputs"][0]["shape"], json!([2, 1]));
    assert!(close(&v["outputs"][0]["data"][1], linear(&[0.5, -1.0, 2.0])), "{v}");

    // Binary tensors, as tritonclient sends them.
    let header =
        json!({"inputs": [{"name": "X", "shape": [1, 3], "datatype": "FP32", "parameters": {"binary_data_size": 12}}],
                        "parameters": {"binary_data_output": true}})
        .to_string();
    let mut body = header.clone().into_bytes();
    for x in [1.0f32, 2.0, 3.0] {
        body.extend_from_slice(&x.to_le_bytes());
    }
    let req = Request::builder()
        .method("POST")
        .uri("/v2/models/lin/infer")
        .header("inference-header-content-length", header.len())
        .body(Body::from(body))
        .unwrap();
    let resp = app.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let n: usize = resp.headers()["inference-header-content-length"].to_str().unwrap().parse().unwrap();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let head: Value = serde_json::from_slice(&bytes[..n]).unwrap();
    assert_eq!(head["outputs"][0]["parameters"]["binary_data_size"], 4);
    let got = f32::from_le_bytes(bytes[n..n + 4].try_into().unwrap());
    assert!((got - linear(&[1.0, 2.0, 3.0])).abs() < 1e-4);

    for (body, needle) in [
        (json!({"inputs": [{"name": "Y", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}), "'Y'"),
        (json!({"inputs": [{"name": "X", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]}), "FP64"),
        (json!({"inputs": [{"name": "X", "shape": [1, 3], "datatype": "FP32", "data": [1, 2]}]}), "'X'"),
        (json!({"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}), "'X'"),
    ] {
        let (status, v) = post(&app, "/v2/models/lin/infer", body.clone()).await;
        assert_eq!(status, 400, "{body}: {v}");
        assert!(v["error"].as_str().unwrap().contains(needle), "{body}: {v}");
    }
    let (status, v) = post(&app, "/v2/models/other/infer", json!({"inputs": []})).await;
    assert_eq!(status, 404, "{v}");

    let (status, v) = post(&app, "/v1/models/lin:predict", json!({"instances": [[1, 2, 3]]})).await;
    assert_eq!(status, 200, "{v}");
    assert!(close(&v["predictions"][0], linear(&[1.0, 2.0, 3.0])), "{v}");

    let (_, _, text) = send(&app, "GET", "/metrics", "", "").await;
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("slipway_serving_requests_total{deployment=\"lin\",model=\"lin\",version=\"1\",protocol=\"v2\",code=\"200\"} 2"), "{text}");
    assert!(text.contains("protocol=\"v2\",code=\"400\"} 4"), "{text}");
    assert!(text.contains("slipway_serving_models_loaded 1"), "{text}");
}
