//! Runs and what they log: metrics, params and tags read back, log-batch all or nothing, limits,
//! deleted runs, concurrent writers, and logged models.

use slipway_store::{LoggedModelSearch, NewLoggedModel, RunUpdate, StoreError};
use slipway_types::Metric;

use super::{kv, metric, new_run};
use crate::Fixture;

pub async fn runs_log_and_read_back(f: Fixture) {
    let s = &f.store;
    let run = s.create_run(new_run("0")).await.unwrap();
    let id = run.info.run_id.clone();
    assert_eq!(run.info.status, "RUNNING");
    assert_eq!(run.info.artifact_uri, format!("mlflow-artifacts:/0/{id}/artifacts"));
    s.log_batch(
        id.clone(),
        vec![
            metric("loss", 0.5, 0),
            metric("loss", 0.25, 2),
            metric("loss", 0.9, 1),
            metric("nan", f64::NAN, 0),
            metric("inf", f64::INFINITY, 0),
        ],
        vec![kv("lr", "0.1")],
        vec![kv("t", "x")],
    )
    .await
    .unwrap();
    let run = s.get_run(id.clone()).await.unwrap();
    let by_key = |k: &str| run.data.metrics.iter().find(|m| m.key == k).unwrap().clone();
    assert_eq!(by_key("loss").value, 0.25, "the latest step wins");
    assert!(by_key("nan").value.is_nan());
    assert_eq!(by_key("inf").value, f64::INFINITY);
    assert!(run.data.params.contains(&kv("lr", "0.1")));
    assert!(run.data.tags.contains(&kv("t", "x")));

    // Same param value again is fine; a different one is refused.
    s.log_batch(id.clone(), vec![], vec![kv("lr", "0.1")], vec![]).await.unwrap();
    let err = s.log_batch(id.clone(), vec![], vec![kv("lr", "0.2")], vec![]).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidParameter(_)), "{err:?}");

    let info = s
        .update_run(
            id.clone(),
            RunUpdate { status: Some("FINISHED".into()), end_time: Some(99), run_name: Some("renamed".into()) },
        )
        .await
        .unwrap();
    assert_eq!((info.status.as_str(), info.end_time, info.run_name.as_str()), ("FINISHED", Some(99), "renamed"));
    let run = s.get_run(id.clone()).await.unwrap();
    assert!(run.data.tags.contains(&kv("mlflow.runName", "renamed")));

    s.delete_tag(id.clone(), "t".into()).await.unwrap();
    assert!(matches!(s.delete_tag(id.clone(), "t".into()).await, Err(StoreError::NotFound(_))));
    assert!(matches!(s.get_run("0123456789abcdef".into()).await, Err(StoreError::NotFound(_))));
}

pub async fn log_batch_is_all_or_nothing(f: Fixture) {
    let s = &f.store;
    let id = s.create_run(new_run("0")).await.unwrap().info.run_id;
    s.log_batch(id.clone(), vec![], vec![kv("p", "1")], vec![]).await.unwrap();
    // The conflicting param comes after metrics and tags in the same request.
    let err = s
        .log_batch(id.clone(), vec![metric("m", 1.0, 0)], vec![kv("q", "new"), kv("p", "2")], vec![kv("t", "v")])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidParameter(_)));
    let run = s.get_run(id.clone()).await.unwrap();
    assert!(run.data.metrics.is_empty(), "no metric of the failed batch may remain");
    assert_eq!(run.data.params, vec![kv("p", "1")]);
    assert!(run.data.tags.iter().all(|t| t.key != "t"));
    let hist = s.get_metric_history(id, "m".into(), None, None).await.unwrap();
    assert!(hist.items.is_empty());
}

pub async fn writes_to_deleted_runs_fail_and_restore_works(f: Fixture) {
    let s = &f.store;
    let id = s.create_run(new_run("0")).await.unwrap().info.run_id;
    s.delete_run(id.clone()).await.unwrap();
    assert_eq!(s.get_run(id.clone()).await.unwrap().info.lifecycle_stage, "deleted");
    assert!(s.log_batch(id.clone(), vec![metric("m", 1.0, 0)], vec![], vec![]).await.is_err());
    s.restore_run(id.clone()).await.unwrap();
    s.log_batch(id, vec![metric("m", 1.0, 0)], vec![], vec![]).await.unwrap();
}

pub async fn batch_limits_and_key_rules(f: Fixture) {
    let s = &f.store;
    let id = s.create_run(new_run("0")).await.unwrap().info.run_id;
    let many: Vec<_> = (0..1001).map(|i| metric("m", i as f64, i)).collect();
    assert!(s.log_batch(id.clone(), many, vec![], vec![]).await.is_err());
    assert!(s.log_batch(id.clone(), vec![metric("../x", 1.0, 0)], vec![], vec![]).await.is_err());
    assert!(s.log_batch(id.clone(), vec![], vec![kv("p", &"v".repeat(6001))], vec![]).await.is_err());
    assert!(s.log_batch(id.clone(), vec![], vec![], vec![kv(&"k".repeat(251), "v")]).await.is_err());
    assert!(s.log_batch(id, vec![], vec![kv("p", &"v".repeat(6000))], vec![]).await.is_ok());
}

/// 32 writers at once; `store_test_suite!` runs this one on a multi-threaded runtime.
pub async fn concurrent_writers_never_fail(f: Fixture) {
    let s = f.store.clone();
    let shared = s.create_run(new_run("0")).await.unwrap().info.run_id;
    let mut tasks = Vec::new();
    for w in 0..32 {
        let s = s.clone();
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let own = s.create_run(new_run("0")).await?.info.run_id;
            for i in 0..50i64 {
                s.log_batch(own.clone(), vec![metric("m", i as f64, i)], vec![], vec![]).await?;
                s.log_batch(shared.clone(), vec![metric(&format!("w{w}"), i as f64, i)], vec![], vec![]).await?;
            }
            s.log_batch(own.clone(), vec![], vec![kv("writer", &w.to_string())], vec![]).await?;
            Ok::<_, StoreError>(own)
        }));
    }
    let mut own_runs = Vec::new();
    for t in tasks {
        own_runs.push(t.await.unwrap().expect("no write may fail under concurrency"));
    }
    for (w, id) in own_runs.iter().enumerate() {
        let h = s.get_metric_history(id.clone(), "m".into(), None, None).await.unwrap();
        assert_eq!(h.items.len(), 50);
        assert!(s.get_run(id.clone()).await.unwrap().data.params.contains(&kv("writer", &w.to_string())));
    }
    assert_eq!(s.get_run(shared).await.unwrap().data.metrics.len(), 32);
}

pub async fn logged_models_lifecycle(f: Fixture) {
    let s = &f.store;
    let run = s.create_run(new_run("0")).await.unwrap().info.run_id;
    let m = s
        .create_logged_model(NewLoggedModel {
            experiment_id: "0".into(),
            name: Some("model".into()),
            source_run_id: Some(run.clone()),
            params: vec![kv("alpha", "1")],
            tags: vec![kv("k", "v")],
            ..NewLoggedModel::default()
        })
        .await
        .unwrap();
    let id = m.info.model_id.clone();
    assert_eq!(m.info.status, "LOGGED_MODEL_PENDING");
    assert_eq!(m.info.artifact_uri, format!("mlflow-artifacts:/0/models/{id}/artifacts"));
    let m = s.finalize_logged_model(id.clone(), "LOGGED_MODEL_READY".into()).await.unwrap();
    assert_eq!(m.info.status, "LOGGED_MODEL_READY");
    assert!(s.finalize_logged_model(id.clone(), "BOGUS".into()).await.is_err());
    s.log_outputs(run.clone(), vec![(id.clone(), 0)]).await.unwrap();
    // A metric that names the model is the model's as well as the run's, once.
    let for_model = Metric { model_id: Some(id.clone()), dataset_name: Some("eval".into()), ..metric("acc", 0.9, 2) };
    for _ in 0..2 {
        s.log_batch(run.clone(), vec![for_model.clone(), metric("loss", 0.1, 2)], vec![], vec![]).await.unwrap();
    }
    let metrics = s.get_logged_model(id.clone(), false).await.unwrap().data.metrics;
    assert_eq!(metrics.len(), 1, "{metrics:?}");
    assert_eq!(
        (metrics[0].key.as_str(), metrics[0].value, metrics[0].run_id.as_deref()),
        ("acc", 0.9, Some(run.as_str()))
    );
    assert_eq!(metrics[0].dataset_name.as_deref(), Some("eval"));
    assert_eq!(s.get_run(run.clone()).await.unwrap().data.metrics.len(), 2);
    assert_eq!(s.get_run(run.clone()).await.unwrap().outputs.model_outputs[0].model_id, id);
    let found = s
        .search_logged_models(LoggedModelSearch {
            experiment_ids: vec!["0".into()],
            filter: Some("name = 'model'".into()),
            ..LoggedModelSearch::default()
        })
        .await
        .unwrap();
    assert_eq!(found.items.len(), 1);
    assert_eq!(found.items[0].info.source_run_id.as_deref(), Some(run.as_str()));
    s.set_logged_model_tags(id.clone(), vec![kv("k", "v2")]).await.unwrap();
    assert_eq!(s.get_logged_model(id.clone(), false).await.unwrap().info.tags, vec![kv("k", "v2")]);
    s.delete_logged_model_tag(id.clone(), "k".into()).await.unwrap();
    s.delete_logged_model(id.clone()).await.unwrap();
    assert!(matches!(s.get_logged_model(id.clone(), false).await, Err(StoreError::NotFound(_))));
    assert_eq!(s.get_logged_model(id, true).await.unwrap().info.model_id.len(), 34);
}
