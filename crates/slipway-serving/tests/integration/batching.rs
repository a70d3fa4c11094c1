use std::time::Instant;

use slipway_serving::batch::Limits;
use slipway_serving::serving::{Call, Target};
use slipway_serving::tensor::{Data, Named, Tensor};
use slipway_types::DeploymentSpec;

use super::*;

fn row(i: usize) -> [f32; 3] {
    [i as f32, (i % 7) as f32 * 0.5, -(i as f32) / 3.0]
}

async fn linear_serving(tmp: &Path, setup: Setup) -> Arc<Serving> {
    let source = Arc::new(MapSource::default());
    source.add("lin", "1", model_dir(tmp, "lin", LINEAR, None));
    let serving = serving(source, tmp, setup);
    let spec =
        DeploymentSpec { name: "d".into(), model: "lin".into(), version: Some("1".into()), ..Default::default() };
    serving.apply(&spec).await.unwrap();
    serving
}

async fn infer(serving: &Serving, r: [f32; 3]) -> Result<f32, ServingError> {
    let picked = serving.pick(&Target::Deployment("d"), None).await?;
    let call = Call { request_id: "t", protocol: "v2", started: Instant::now() };
    let x = Named::new("X", Tensor::new(vec![1, 3], Data::F32(r.to_vec())));
    let out = serving.execute(&picked, vec![x], 1, &call).await?;
    match &out[0].tensor.data {
        Data::F32(v) if v.len() == 1 => Ok(v[0]),
        other => panic!("one value per request, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_are_batched_and_each_gets_its_own_answer() {
    let tmp = tempfile::tempdir().unwrap();
    // A batch wait turns inline runs off: without it a fast machine's worker keeps up with
    // the callers and runs every request alone.
    let limits = Limits { max_wait: Duration::from_millis(5), ..Limits::default() };
    let serving = linear_serving(tmp.path(), Setup { workers: 1, limits, ..Setup::default() }).await;
    let tasks: Vec<_> = (0..400)
        .map(|i| {
            let serving = serving.clone();
            tokio::spawn(async move { (i, infer(&serving, row(i)).await) })
        })
        .collect();
    for t in tasks {
        let (i, got) = t.await.unwrap();
        let got = got.unwrap();
        assert!((got - linear(&row(i))).abs() < 1e-3, "request {i}: {got} vs {}", linear(&row(i)));
    }
    // Some batch stacked more than one request: the histogram's first bucket (1 row) does
    // not hold all 400 runs.
    let text = serving.render_metrics();
    let ones: f64 = text
        .lines()
        .find(|l| l.starts_with("slipway_serving_batch_size_bucket") && l.contains("le=\"1\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    let count: f64 = text
        .lines()
        .find(|l| l.starts_with("slipway_serving_batch_size_count"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(count < 400.0 && ones < count, "no batching happened: {count} runs, {ones} of one row\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_queue_refuses_at_once_and_the_model_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let setup = Setup {
        workers: 1,
        limits: Limits { queue_capacity: 2, max_batch_rows: 1, ..Limits::default() },
        ..Setup::default()
    };
    let serving = linear_serving(tmp.path(), setup).await;
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let serving = serving.clone();
            tokio::spawn(async move { infer(&serving, row(i)).await })
        })
        .collect();
    let mut ok = 0;
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(ServingError::Overloaded(_)) => refused += 1,
            Err(e) => panic!("only answers or refusals, got {e}"),
        }
    }
    assert!(ok > 0 && refused > 0, "ok {ok}, refused {refused}");
    assert!((infer(&serving, row(3)).await.unwrap() - linear(&row(3))).abs() < 1e-3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_deadline_is_answered_unavailable() {
    let tmp = tempfile::tempdir().unwrap();
    let setup = Setup { request_timeout: Duration::ZERO, ..Setup::default() };
    let serving = linear_serving(tmp.path(), setup).await;
    let err = infer(&serving, row(1)).await.unwrap_err();
    assert!(matches!(err, ServingError::Timeout(_)), "{err}");
    assert_eq!(err.answer().status, 503);
    assert_eq!(err.answer().retry_after, Some(1));
}

/// What counts as fast is a setting, so these tests do not depend on how fast this machine is.
fn inlining_below(inline_below: Duration) -> Setup {
    Setup { limits: Limits { inline_below, ..Limits::default() }, ..Setup::default() }
}

#[tokio::test]
async fn a_small_request_to_an_idle_fast_model_runs_on_the_callers_thread() {
    let tmp = tempfile::tempdir().unwrap();
    let serving = linear_serving(tmp.path(), inlining_below(Duration::from_secs(3600))).await;
    let id = slipway_serving::model::ModelId { name: "lin".into(), version: "1".into() };
    let loaded = serving.cache.get(&id).await.unwrap();
    let workers = serving.cache.workers();
    let x = |rows: usize| {
        let data = (0..rows).flat_map(row).collect();
        vec![Named::new("X", Tensor::new(vec![rows, 3], Data::F32(data)))]
    };
    // Until the model has run, how long it takes is unknown: the request is handed back to
    // be queued for a worker.
    let queued = workers.try_inline(&loaded, x(1), 1).expect_err("an unmeasured model is not run inline");
    let deadline = Instant::now() + Duration::from_secs(10);
    let (_, out) = workers.submit(&loaded, queued, 1, deadline).unwrap().await.unwrap().unwrap();
    assert!((single(&out) - linear(&row(0))).abs() < 1e-3);
    // The worker's run measured the model as fast, so the next small request runs at once...
    let (_, out) = workers.try_inline(&loaded, x(1), 1).expect("a fast idle model runs inline").unwrap();
    assert!((single(&out) - linear(&row(0))).abs() < 1e-3);
    // ...but a large one still goes to the queue, where it can be batched.
    let rows = slipway_serving::batch::INLINE_MAX_ROWS + 1;
    workers.try_inline(&loaded, x(rows), rows).expect_err("a large request is queued");
}

#[tokio::test]
async fn a_model_slower_than_the_inline_limit_always_queues() {
    let tmp = tempfile::tempdir().unwrap();
    let serving = linear_serving(tmp.path(), inlining_below(Duration::ZERO)).await;
    assert!((infer(&serving, row(2)).await.unwrap() - linear(&row(2))).abs() < 1e-3);
    let id = slipway_serving::model::ModelId { name: "lin".into(), version: "1".into() };
    let loaded = serving.cache.get(&id).await.unwrap();
    let x = vec![Named::new("X", Tensor::new(vec![1, 3], Data::F32(row(2).to_vec())))];
    serving.cache.workers().try_inline(&loaded, x, 1).expect_err("no run is faster than zero");
}

fn single(out: &[Named]) -> f32 {
    match &out[0].tensor.data {
        Data::F32(v) if v.len() == 1 => v[0],
        other => panic!("one value, got {other:?}"),
    }
}
