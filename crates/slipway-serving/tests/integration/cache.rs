use std::time::Instant;

use slipway_serving::model::ModelId;
use slipway_serving::serving::{Call, Target};
use slipway_serving::source::Selector;
use slipway_serving::tensor::{Data, Named, Tensor};
use slipway_types::DeploymentSpec;

use super::*;

fn id(name: &str) -> ModelId {
    ModelId { name: name.into(), version: "1".into() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_recently_used_models_are_evicted_under_the_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let source = Arc::new(MapSource::default());
    for name in ["a", "b", "c"] {
        source.add(name, "1", model_dir(tmp.path(), name, LINEAR, None));
    }
    // A floor far above what these small models measure makes every charge the floor: the
    // budget holds exactly two of them.
    let charge = 256 << 20;
    let serving =
        serving(source, tmp.path(), Setup { budget: charge * 2 + charge / 2, min_charge: charge, ..Setup::default() });
    let call = |name: &'static str| {
        let serving = serving.clone();
        async move {
            let target = Target::Model { name: name.into(), selector: Selector::Latest };
            let picked = serving.pick(&target, None).await.unwrap();
            let x = Named::new("X", Tensor::new(vec![1, 3], Data::F32(vec![1.0, 2.0, 3.0])));
            let call = Call { request_id: "t", protocol: "v2", started: Instant::now() };
            serving.execute(&picked, vec![x], 1, &call).await.unwrap()
        }
    };
    call("a").await;
    call("b").await;
    call("a").await; // b is now the least recently used
    call("c").await;
    assert!(serving.cache.peek(&id("a")).is_some());
    assert!(serving.cache.peek(&id("b")).is_none(), "b was evicted");
    assert!(serving.cache.peek(&id("c")).is_some());
    assert!(serving.cache.memory_used() <= charge * 2 + charge / 2);
    assert!(serving.render_metrics().contains("slipway_serving_model_evictions_total 1\n"));
    // An evicted model loads again when asked for.
    call("b").await;
    assert!(serving.cache.peek(&id("b")).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_larger_than_the_budget_is_refused_not_loaded() {
    let tmp = tempfile::tempdir().unwrap();
    let source = Arc::new(MapSource::default());
    source.add("a", "1", model_dir(tmp.path(), "a", LINEAR, None));
    let serving = serving(source, tmp.path(), Setup { budget: 1024, ..Setup::default() });
    let err = serving.cache.get(&id("a")).await.err().unwrap();
    assert!(matches!(&err, ServingError::Unavailable(m) if m.contains("budget")), "{err}");
    assert_eq!(serving.cache.loaded().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_alias_swaps_the_route_and_requests_keep_the_one_they_took() {
    let tmp = tempfile::tempdir().unwrap();
    let source = Arc::new(MapSource::default());
    source.add("m", "1", model_dir(tmp.path(), "m1", LINEAR, None));
    source.add("m", "2", model_dir(tmp.path(), "m2", LOGREG, None));
    source.alias("m", "champion", "1");
    let serving = serving(source.clone(), tmp.path(), Setup::default());
    let spec =
        DeploymentSpec { name: "d".into(), model: "m".into(), alias: Some("champion".into()), ..Default::default() };
    serving.apply(&spec).await.unwrap();
    let before = serving.pick(&Target::Deployment("d"), None).await.unwrap();
    assert_eq!(before.loaded.model.id.version, "1");

    source.alias("m", "champion", "2");
    serving.reconcile(std::slice::from_ref(&spec)).await;
    let after = serving.pick(&Target::Deployment("d"), None).await.unwrap();
    assert_eq!(after.loaded.model.id.version, "2");
    // The request that picked version 1 still runs on it.
    let x = Named::new("X", Tensor::new(vec![1, 3], Data::F32(vec![1.0, 2.0, 3.0])));
    let call = Call { request_id: "t", protocol: "v2", started: Instant::now() };
    let out = serving.execute(&before, vec![x], 1, &call).await.unwrap();
    assert_eq!(out[0].name, "variable");
    // Version 1 is no longer pinned by the deployment; version 2 is.
    assert!(serving.deployment("d").unwrap().route().canary.is_none());
    serving.reconcile(&[]).await;
    assert!(serving.deployment("d").is_none(), "a deployment gone from the store is removed");
}
