//! Backend-independent behaviour every metadata store must show.

use slipway_store::{NewRun, SearchRequest};
use slipway_types::{DeploymentSpec, KeyValue, Metric, Split};

pub fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue { key: k.into(), value: v.into() }
}

pub fn metric(key: &str, value: f64, step: i64) -> Metric {
    Metric {
        key: key.into(),
        value,
        timestamp: 1000 + step,
        step,
        dataset_name: None,
        dataset_digest: None,
        model_id: None,
        run_id: None,
    }
}

pub fn new_run(exp: &str) -> NewRun {
    NewRun { experiment_id: exp.into(), start_time: Some(1), ..NewRun::default() }
}

pub fn search(filter: &str) -> SearchRequest {
    SearchRequest { filter: Some(filter.into()), ..SearchRequest::default() }
}

/// A deployment using every field: a pinned version, a canary on an alias, a shadow copy.
pub fn full_deployment(name: &str) -> DeploymentSpec {
    DeploymentSpec {
        name: name.into(),
        model: "churn".into(),
        alias: None,
        version: Some("3".into()),
        canary: Some(Split { alias: Some("challenger".into()), version: None, weight: Some(0.1) }),
        shadow: Some(Split { alias: None, version: Some("4".into()), weight: Some(0.5) }),
        log_sample: Some(0.25),
        max_batch_rows: Some(64),
        max_wait_us: Some(2000),
    }
}

/// `full_deployment("ok")` changed by `f`.
pub fn deployment_with(f: impl FnOnce(&mut DeploymentSpec)) -> DeploymentSpec {
    let mut spec = full_deployment("ok");
    f(&mut spec);
    spec
}

/// A monitor using most fields, with one alert rule.
pub fn monitor_spec(name: &str) -> slipway_types::MonitorSpec {
    slipway_types::MonitorSpec {
        name: name.into(),
        deployment: "fraud".into(),
        reference: slipway_types::Reference { uri: Some("runs:/abc123/data/train.parquet".into()), run_artifact: None },
        features: Some(vec!["age".into(), "income".into()]),
        target: Some("label".into()),
        window_seconds: Some(600),
        alerts: vec![slipway_types::AlertRule {
            name: "drift".into(),
            series: "drift.share".into(),
            op: slipway_types::Comparison::AtLeast,
            threshold: 0.5,
            for_windows: Some(2),
            webhook: "http://127.0.0.1:9/hook".into(),
        }],
        ..Default::default()
    }
}

#[macro_export]
macro_rules! store_test_suite {
    ($backend:ident, $fixture:path) => {
        mod $backend {
            use super::suite::*;
            use slipway_store::*;
            use slipway_types::*;

            async fn fixture() -> $crate::Fixture {
                $fixture().await
            }

            #[tokio::test]
            async fn default_experiment_exists() {
                let f = fixture().await;
                let e = f.store.get_experiment("0".into()).await.unwrap();
                assert_eq!(e.name, "Default");
                assert_eq!(e.lifecycle_stage, "active");
            }

            #[tokio::test]
            async fn experiment_lifecycle() {
                let f = fixture().await;
                let s = &f.store;
                let id = s.create_experiment("exp".into(), None, vec![kv("team", "a")]).await.unwrap();
                assert_eq!(
                    s.get_experiment(id.clone()).await.unwrap().artifact_location,
                    format!("mlflow-artifacts:/{id}")
                );
                let dup = s.create_experiment("exp".into(), None, vec![]).await.unwrap_err();
                assert!(matches!(dup, StoreError::AlreadyExists(_)), "{dup:?}");
                s.rename_experiment(id.clone(), "exp2".into()).await.unwrap();
                assert_eq!(s.get_experiment_by_name("exp2".into()).await.unwrap().experiment_id, id);
                assert!(matches!(s.get_experiment_by_name("exp".into()).await, Err(StoreError::NotFound(_))));
                s.delete_experiment(id.clone()).await.unwrap();
                let active = s.search_experiments(SearchRequest::default()).await.unwrap();
                assert!(active.items.iter().all(|e| e.experiment_id != id));
                let deleted = s
                    .search_experiments(SearchRequest { view_type: ViewType::DeletedOnly, ..SearchRequest::default() })
                    .await
                    .unwrap();
                assert_eq!(deleted.items.len(), 1);
                // The name stays taken while deleted.
                assert!(s.create_experiment("exp2".into(), None, vec![]).await.is_err());
                s.restore_experiment(id.clone()).await.unwrap();
                assert_eq!(s.get_experiment(id).await.unwrap().lifecycle_stage, "active");
                assert!(matches!(s.get_experiment("999".into()).await, Err(StoreError::NotFound(_))));
                assert!(matches!(s.get_experiment("../1".into()).await, Err(StoreError::InvalidParameter(_))));
            }

            #[tokio::test]
            async fn experiment_search_filters_and_pages() {
                let f = fixture().await;
                let s = &f.store;
                for i in 0..7 {
                    let tags = if i % 2 == 0 { vec![kv("even", "yes")] } else { vec![] };
                    s.create_experiment(format!("search-{i}"), None, tags).await.unwrap();
                }
                let even = s.search_experiments(search("tags.even = 'yes'")).await.unwrap();
                assert_eq!(even.items.len(), 4);
                let like = s.search_experiments(search("name LIKE 'search-%'")).await.unwrap();
                assert_eq!(like.items.len(), 7);
                let mut seen = Vec::new();
                let mut token = None;
                loop {
                    let page = s
                        .search_experiments(SearchRequest {
                            filter: Some("name ILIKE 'SEARCH-%'".into()),
                            order_by: vec!["name ASC".into()],
                            max_results: Some(3),
                            page_token: token.clone(),
                            ..SearchRequest::default()
                        })
                        .await
                        .unwrap();
                    seen.extend(page.items.into_iter().map(|e| e.name));
                    token = page.next_page_token;
                    if token.is_none() {
                        break;
                    }
                }
                let expected: Vec<String> = (0..7).map(|i| format!("search-{i}")).collect();
                assert_eq!(seen, expected);
            }

            #[tokio::test]
            async fn runs_log_and_read_back() {
                let f = fixture().await;
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
                        RunUpdate {
                            status: Some("FINISHED".into()),
                            end_time: Some(99),
                            run_name: Some("renamed".into()),
                        },
                    )
                    .await
                    .unwrap();
                assert_eq!(
                    (info.status.as_str(), info.end_time, info.run_name.as_str()),
                    ("FINISHED", Some(99), "renamed")
                );
                let run = s.get_run(id.clone()).await.unwrap();
                assert!(run.data.tags.contains(&kv("mlflow.runName", "renamed")));

                s.delete_tag(id.clone(), "t".into()).await.unwrap();
                assert!(matches!(s.delete_tag(id.clone(), "t".into()).await, Err(StoreError::NotFound(_))));
                assert!(matches!(s.get_run("0123456789abcdef".into()).await, Err(StoreError::NotFound(_))));
            }

            #[tokio::test]
            async fn log_batch_is_all_or_nothing() {
                let f = fixture().await;
                let s = &f.store;
                let id = s.create_run(new_run("0")).await.unwrap().info.run_id;
                s.log_batch(id.clone(), vec![], vec![kv("p", "1")], vec![]).await.unwrap();
                // The conflicting param comes after metrics and tags in the same request.
                let err = s
                    .log_batch(
                        id.clone(),
                        vec![metric("m", 1.0, 0)],
                        vec![kv("q", "new"), kv("p", "2")],
                        vec![kv("t", "v")],
                    )
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

            #[tokio::test]
            async fn writes_to_deleted_runs_fail_and_restore_works() {
                let f = fixture().await;
                let s = &f.store;
                let id = s.create_run(new_run("0")).await.unwrap().info.run_id;
                s.delete_run(id.clone()).await.unwrap();
                assert_eq!(s.get_run(id.clone()).await.unwrap().info.lifecycle_stage, "deleted");
                assert!(s.log_batch(id.clone(), vec![metric("m", 1.0, 0)], vec![], vec![]).await.is_err());
                s.restore_run(id.clone()).await.unwrap();
                s.log_batch(id, vec![metric("m", 1.0, 0)], vec![], vec![]).await.unwrap();
            }

            #[tokio::test]
            async fn batch_limits_and_key_rules() {
                let f = fixture().await;
                let s = &f.store;
                let id = s.create_run(new_run("0")).await.unwrap().info.run_id;
                let many: Vec<_> = (0..1001).map(|i| metric("m", i as f64, i)).collect();
                assert!(s.log_batch(id.clone(), many, vec![], vec![]).await.is_err());
                assert!(s.log_batch(id.clone(), vec![metric("../x", 1.0, 0)], vec![], vec![]).await.is_err());
                assert!(s.log_batch(id.clone(), vec![], vec![kv("p", &"v".repeat(6001))], vec![]).await.is_err());
                assert!(s.log_batch(id.clone(), vec![], vec![], vec![kv(&"k".repeat(251), "v")]).await.is_err());
                assert!(s.log_batch(id, vec![], vec![kv("p", &"v".repeat(6000))], vec![]).await.is_ok());
            }

            #[tokio::test]
            async fn search_runs_by_every_kind() {
                let f = fixture().await;
                let s = &f.store;
                let exp = s.create_experiment("runs".into(), None, vec![]).await.unwrap();
                let mut ids = Vec::new();
                for i in 0..6i64 {
                    let mut r = new_run(&exp);
                    r.start_time = Some(100 + i);
                    r.run_name = Some(format!("run-{i}"));
                    let id = s.create_run(r).await.unwrap().info.run_id;
                    let tags = if i % 2 == 0 { vec![kv("parity", "Even")] } else { vec![] };
                    s.log_batch(
                        id.clone(),
                        vec![metric("acc", i as f64 / 10.0, 0)],
                        vec![kv("model", if i < 3 { "lin" } else { "tree" })],
                        tags,
                    )
                    .await
                    .unwrap();
                    ids.push(id);
                }
                s.update_run(ids[5].clone(), RunUpdate { status: Some("FINISHED".into()), ..RunUpdate::default() })
                    .await
                    .unwrap();
                s.log_inputs(
                    ids[1].clone(),
                    vec![NewDatasetInput {
                        dataset: Dataset {
                            name: "train".into(),
                            digest: "abc123".into(),
                            source_type: "local".into(),
                            source: "{}".into(),
                            schema: None,
                            profile: None,
                        },
                        tags: vec![kv("mlflow.data.context", "training")],
                    }],
                    vec![],
                )
                .await
                .unwrap();

                let names = |page: Page<Run>| page.items.into_iter().map(|r| r.info.run_name).collect::<Vec<_>>();
                let q = |f: &str| {
                    let s = s.clone();
                    let exp = exp.clone();
                    let f = f.to_string();
                    async move { s.search_runs(vec![exp], search(&f)).await }
                };
                assert_eq!(names(q("metrics.acc >= 0.3").await.unwrap()), ["run-5", "run-4", "run-3"]);
                assert_eq!(names(q("params.model = 'lin' and metrics.acc > 0").await.unwrap()), ["run-2", "run-1"]);
                assert_eq!(q("tags.parity LIKE 'Ev%'").await.unwrap().items.len(), 3);
                assert_eq!(q("tags.parity LIKE 'ev%'").await.unwrap().items.len(), 0, "LIKE is case-sensitive");
                assert_eq!(q("tags.parity ILIKE 'ev%'").await.unwrap().items.len(), 3);
                assert_eq!(q("tags.parity IS NULL").await.unwrap().items.len(), 3);
                assert_eq!(names(q("attributes.status = 'FINISHED'").await.unwrap()), ["run-5"]);
                assert_eq!(names(q("attributes.run_name = 'run-2'").await.unwrap()), ["run-2"]);
                let in_filter = format!("attributes.run_id IN ('{}', '{}')", ids[0], ids[3]);
                assert_eq!(names(q(&in_filter).await.unwrap()), ["run-3", "run-0"]);
                assert_eq!(names(q("datasets.name = 'train'").await.unwrap()), ["run-1"]);
                assert_eq!(names(q("datasets.context = 'training'").await.unwrap()), ["run-1"]);
                assert_eq!(names(q("attributes.start_time > 103").await.unwrap()), ["run-5", "run-4"]);
                assert!(matches!(q("metrics.acc > 0 OR params.x = 'y'").await, Err(StoreError::InvalidParameter(_))));
                assert!(matches!(q("attributes.bogus = 'x'").await, Err(StoreError::InvalidParameter(_))));

                let ordered = s
                    .search_runs(
                        vec![exp.clone()],
                        SearchRequest { order_by: vec!["metrics.acc ASC".into()], ..SearchRequest::default() },
                    )
                    .await
                    .unwrap();
                assert_eq!(names(ordered), ["run-0", "run-1", "run-2", "run-3", "run-4", "run-5"]);
                let by_param = s
                    .search_runs(
                        vec![exp.clone()],
                        SearchRequest {
                            order_by: vec!["params.model DESC".into(), "attributes.run_name".into()],
                            ..SearchRequest::default()
                        },
                    )
                    .await
                    .unwrap();
                assert_eq!(names(by_param), ["run-3", "run-4", "run-5", "run-0", "run-1", "run-2"]);

                s.delete_run(ids[0].clone()).await.unwrap();
                assert_eq!(q("").await.unwrap().items.len(), 5);
                let all = s
                    .search_runs(
                        vec![exp.clone()],
                        SearchRequest { view_type: ViewType::All, ..SearchRequest::default() },
                    )
                    .await
                    .unwrap();
                assert_eq!(all.items.len(), 6);
            }

            #[tokio::test]
            async fn search_runs_pages_without_gaps_or_repeats() {
                let f = fixture().await;
                let s = &f.store;
                let exp = s.create_experiment("paging".into(), None, vec![]).await.unwrap();
                let mut created = Vec::new();
                for i in 0..23 {
                    let mut r = new_run(&exp);
                    r.start_time = Some(i % 4); // ties exercise the run-id tie-breaker
                    created.push(s.create_run(r).await.unwrap().info.run_id);
                }
                let mut seen = Vec::new();
                let mut token = None;
                loop {
                    let page = s
                        .search_runs(
                            vec![exp.clone()],
                            SearchRequest { max_results: Some(5), page_token: token, ..SearchRequest::default() },
                        )
                        .await
                        .unwrap();
                    assert!(page.items.len() <= 5);
                    seen.extend(page.items.into_iter().map(|r| r.info.run_id));
                    token = page.next_page_token;
                    if token.is_none() {
                        break;
                    }
                }
                let mut a = seen.clone();
                a.sort();
                a.dedup();
                created.sort();
                assert_eq!(a, created);
                assert_eq!(seen.len(), 23);
                let bad = s
                    .search_runs(
                        vec![exp],
                        SearchRequest { page_token: Some("garbage".into()), ..SearchRequest::default() },
                    )
                    .await;
                assert!(matches!(bad, Err(StoreError::InvalidParameter(_))));
            }

            #[tokio::test]
            async fn metric_history_pages_in_step_order() {
                let f = fixture().await;
                let s = &f.store;
                let id = s.create_run(new_run("0")).await.unwrap().info.run_id;
                for chunk in (0..2500i64).collect::<Vec<_>>().chunks(1000) {
                    let batch = chunk.iter().rev().map(|&i| metric("h", i as f64, i)).collect();
                    s.log_batch(id.clone(), batch, vec![], vec![]).await.unwrap();
                }
                let mut steps = Vec::new();
                let mut token = None;
                loop {
                    let page = s.get_metric_history(id.clone(), "h".into(), Some(1000), token).await.unwrap();
                    steps.extend(page.items.iter().map(|m| m.step));
                    token = page.next_page_token;
                    if token.is_none() {
                        break;
                    }
                }
                assert_eq!(steps, (0..2500).collect::<Vec<_>>());
                let all = s.get_metric_history(id, "h".into(), None, None).await.unwrap();
                assert_eq!(all.items.len(), 2500);
                assert!(all.next_page_token.is_none());
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_writers_never_fail() {
                let f = fixture().await;
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
                            s.log_batch(shared.clone(), vec![metric(&format!("w{w}"), i as f64, i)], vec![], vec![])
                                .await?;
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

            async fn registered(s: &std::sync::Arc<dyn MetadataStore>, name: &str, versions: usize) {
                s.create_registered_model(name.into(), None, vec![], "alice".into()).await.unwrap();
                for _ in 0..versions {
                    s.create_model_version(
                        NewModelVersion {
                            name: name.into(),
                            source: "mlflow-artifacts:/0/r/artifacts/model".into(),
                            storage_location: "mlflow-artifacts:/0/r/artifacts/model".into(),
                            ..NewModelVersion::default()
                        },
                        "alice".into(),
                    )
                    .await
                    .unwrap();
                }
            }

            async fn registered_version(s: &std::sync::Arc<dyn MetadataStore>, name: &str, run_id: Option<String>) {
                s.create_model_version(
                    NewModelVersion { name: name.into(), source: "x".into(), storage_location: "x".into(), run_id, ..NewModelVersion::default() },
                    "alice".into(),
                )
                .await
                .unwrap();
            }

            #[tokio::test]
            async fn registry_versions_stages_and_aliases() {
                let f = fixture().await;
                let s = &f.store;
                registered(s, "fraud", 3).await;
                let dup = s.create_registered_model("fraud".into(), None, vec![], "bob".into()).await.unwrap_err();
                assert!(matches!(dup, StoreError::AlreadyExists(_)));
                let v2 = s.get_model_version("fraud".into(), "2".into()).await.unwrap();
                assert_eq!((v2.version.as_str(), v2.current_stage.as_str(), v2.status.as_str()), ("2", "None", "READY"));
                assert!(matches!(s.get_model_version("fraud".into(), "x".into()).await, Err(StoreError::InvalidParameter(_))));
                assert!(matches!(s.get_model_version("fraud".into(), "9".into()).await, Err(StoreError::NotFound(_))));

                s.transition_model_version_stage("fraud".into(), "1".into(), "production".into(), false, "bob".into()).await.unwrap();
                s.transition_model_version_stage("fraud".into(), "2".into(), "Production".into(), true, "bob".into()).await.unwrap();
                assert_eq!(s.get_model_version("fraud".into(), "1".into()).await.unwrap().current_stage, "Archived");
                let latest = s.get_latest_versions("fraud".into(), vec!["Production".into()]).await.unwrap();
                assert_eq!(latest.iter().map(|v| v.version.as_str()).collect::<Vec<_>>(), ["2"]);
                assert!(s.transition_model_version_stage("fraud".into(), "1".into(), "Live".into(), false, "bob".into()).await.is_err());

                s.set_alias("fraud".into(), "champion".into(), "2".into(), "bob".into()).await.unwrap();
                assert_eq!(s.get_model_version_by_alias("fraud".into(), "champion".into()).await.unwrap().version, "2");
                let unknown = s.get_model_version_by_alias("fraud".into(), "nope".into()).await.unwrap_err();
                assert!(matches!(unknown, StoreError::InvalidParameter(_)), "an unknown alias is a 400, not a 404");
                for bad in ["latest", "v3", "a b", ""] {
                    assert!(s.set_alias("fraud".into(), bad.into(), "1".into(), "bob".into()).await.is_err(), "{bad:?}");
                }
                // Deleting a version drops its aliases, and its number is never reused.
                s.delete_model_version("fraud".into(), "2".into(), "bob".into()).await.unwrap();
                assert!(s.get_model_version_by_alias("fraud".into(), "champion".into()).await.is_err());
                s.create_model_version(
                    NewModelVersion { name: "fraud".into(), source: "x".into(), storage_location: "x".into(), ..NewModelVersion::default() },
                    "bob".into(),
                )
                .await
                .unwrap();
                let versions = s.search_model_versions(RegistrySearch { filter: Some("name = 'fraud'".into()), ..RegistrySearch::default() }).await.unwrap();
                let mut numbers: Vec<String> = versions.items.iter().map(|v| v.version.clone()).collect();
                numbers.sort();
                assert_eq!(numbers, ["1", "3", "4"]);

                let renamed = s.rename_registered_model("fraud".into(), "fraud-v2".into(), "bob".into()).await.unwrap();
                assert_eq!(renamed.name, "fraud-v2");
                assert_eq!(s.get_model_version("fraud-v2".into(), "4".into()).await.unwrap().name, "fraud-v2");
                s.delete_registered_model("fraud-v2".into(), "bob".into()).await.unwrap();
                assert!(matches!(s.get_registered_model("fraud-v2".into()).await, Err(StoreError::NotFound(_))));
            }

            #[tokio::test]
            async fn registry_search_filters_and_pages() {
                let f = fixture().await;
                let s = &f.store;
                for i in 0..12 {
                    registered(s, &format!("model-{i:02}"), 1).await;
                }
                s.set_registered_model_tag("model-03".into(), kv("team", "risk"), "alice".into()).await.unwrap();
                let tagged = s.search_registered_models(RegistrySearch { filter: Some("tags.team = 'risk'".into()), ..RegistrySearch::default() }).await.unwrap();
                assert_eq!(tagged.items.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["model-03"]);
                let mut names = Vec::new();
                let mut token = None;
                loop {
                    let page = s
                        .search_registered_models(RegistrySearch { filter: Some("name LIKE 'model-%'".into()), max_results: Some(5), page_token: token, ..RegistrySearch::default() })
                        .await
                        .unwrap();
                    names.extend(page.items.into_iter().map(|m| m.name));
                    token = page.next_page_token;
                    if token.is_none() {
                        break;
                    }
                }
                assert_eq!(names, (0..12).map(|i| format!("model-{i:02}")).collect::<Vec<_>>());
                let v = s.search_model_versions(RegistrySearch { filter: Some("version_number >= 1 AND name = 'model-07'".into()), ..RegistrySearch::default() }).await.unwrap();
                assert_eq!(v.items.len(), 1);
                assert!(s.search_registered_models(RegistrySearch { filter: Some("bogus = 'x'".into()), ..RegistrySearch::default() }).await.is_err());
                // The filter the MLflow client adds to hide prompts keeps models without the tag.
                s.set_registered_model_tag("model-05".into(), kv("mlflow.prompt.is_prompt", "true"), "alice".into()).await.unwrap();
                let hide_prompts = "name LIKE 'model-0%' AND tags.`mlflow.prompt.is_prompt` != 'true'";
                let visible = s.search_registered_models(RegistrySearch { filter: Some(hide_prompts.into()), max_results: Some(100), ..RegistrySearch::default() }).await.unwrap();
                assert_eq!(visible.items.len(), 9, "model-00..09 less the prompt");
                let versions = s.search_model_versions(RegistrySearch { filter: Some(hide_prompts.into()), ..RegistrySearch::default() }).await.unwrap();
                assert_eq!(versions.items.len(), 9);
            }

            #[tokio::test]
            async fn audit_log_records_each_mutation_with_before_and_after() {
                let f = fixture().await;
                let s = &f.store;
                registered(s, "churn", 2).await;
                s.set_alias("churn".into(), "prod".into(), "1".into(), "bob".into()).await.unwrap();
                s.set_alias("churn".into(), "prod".into(), "2".into(), "carol".into()).await.unwrap();
                s.delete_model_version("churn".into(), "1".into(), "bob".into()).await.unwrap();
                // A failed mutation leaves no record.
                assert!(s.set_alias("churn".into(), "prod".into(), "7".into(), "mallory".into()).await.is_err());
                let log = s.audit_log(AuditQuery { name: Some("churn".into()), ..AuditQuery::default() }).await.unwrap().items;
                let summary: Vec<(String, String, Option<String>)> = log.iter().map(|r| (r.action.clone(), r.actor.clone(), r.version.clone())).collect();
                assert_eq!(
                    summary,
                    [
                        ("create_registered_model".to_string(), "alice".to_string(), None),
                        ("create_model_version".into(), "alice".into(), Some("1".into())),
                        ("create_model_version".into(), "alice".into(), Some("2".into())),
                        ("set_alias".into(), "bob".into(), Some("1".into())),
                        ("set_alias".into(), "carol".into(), Some("2".into())),
                        ("delete_model_version".into(), "bob".into(), Some("1".into())),
                    ]
                );
                assert_eq!(log[3].before, None);
                assert_eq!(log[4].before, Some(serde_json::json!({"alias": "prod", "version": "1"})));
                assert_eq!(log[4].after, Some(serde_json::json!({"alias": "prod", "version": "2"})));
                assert_eq!(log[5].before.as_ref().unwrap()["version"], "1");
                assert_eq!(log[5].after, None);
                let by_carol = s.audit_log(AuditQuery { actor: Some("carol".into()), ..AuditQuery::default() }).await.unwrap();
                assert_eq!(by_carol.items.len(), 1);
            }

            #[tokio::test]
            async fn lineage_follows_the_version_to_its_run_and_datasets() {
                let f = fixture().await;
                let s = &f.store;
                let mut r = new_run("0");
                r.tags = vec![kv("mlflow.source.git.commit", "abc123"), kv("mlflow.source.name", "train.py")];
                let run = s.create_run(r).await.unwrap().info.run_id;
                s.log_batch(run.clone(), vec![metric("auc", 0.9, 0)], vec![kv("depth", "4")], vec![]).await.unwrap();
                let dataset = |name: &str, digest: &str, ctx: &str| NewDatasetInput {
                    dataset: Dataset { name: name.into(), digest: digest.into(), source_type: "local".into(), source: "{}".into(), schema: None, profile: None },
                    tags: vec![kv("mlflow.data.context", ctx)],
                };
                s.log_inputs(run.clone(), vec![dataset("train", "d-train", "training"), dataset("eval", "d-eval", "evaluation")], vec![]).await.unwrap();
                let model = s.create_logged_model(NewLoggedModel { experiment_id: "0".into(), name: Some("m".into()), source_run_id: Some(run.clone()), ..NewLoggedModel::default() }).await.unwrap();
                s.create_registered_model("credit".into(), None, vec![], "alice".into()).await.unwrap();
                s.create_model_version(
                    NewModelVersion {
                        name: "credit".into(),
                        source: format!("models:/{}", model.info.model_id),
                        storage_location: model.info.artifact_uri.clone(),
                        model_id: Some(model.info.model_id.clone()),
                        ..NewModelVersion::default()
                    },
                    "alice".into(),
                )
                .await
                .unwrap();
                let l = s.lineage("credit".into(), "1".into()).await.unwrap();
                assert_eq!(l.run_id.as_deref(), Some(run.as_str()), "the run comes through the logged model");
                assert_eq!(l.git_commit.as_deref(), Some("abc123"));
                assert_eq!(l.source_name.as_deref(), Some("train.py"));
                assert_eq!(l.params, vec![kv("depth", "4")]);
                assert_eq!(l.metrics[0].value, 0.9);
                assert_eq!(l.registered_by.as_deref(), Some("alice"));
                let contexts: Vec<_> = l.datasets.iter().map(|d| (d.dataset.name.as_str(), d.context.as_deref())).collect();
                assert_eq!(contexts, [("eval", Some("evaluation")), ("train", Some("training"))]);
                let trained = s.model_versions_by_dataset("d-train".into()).await.unwrap();
                assert_eq!(trained.iter().map(|v| (v.name.as_str(), v.version.as_str())).collect::<Vec<_>>(), [("credit", "1")]);
                assert!(s.model_versions_by_dataset("unknown".into()).await.unwrap().is_empty());
            }

            #[tokio::test]
            async fn gc_purges_only_old_deletions_and_reports_protected_locations() {
                let f = fixture().await;
                let s = &f.store;
                let exp = s.create_experiment("gc".into(), None, vec![]).await.unwrap();
                let keep = s.create_run(new_run(&exp)).await.unwrap().info.run_id;
                let gone = s.create_run(new_run(&exp)).await.unwrap();
                s.log_batch(gone.info.run_id.clone(), vec![metric("m", 1.0, 0)], vec![kv("p", "1")], vec![]).await.unwrap();
                s.delete_run(gone.info.run_id.clone()).await.unwrap();
                registered(s, "live", 2).await;
                s.delete_model_version("live".into(), "2".into(), "alice".into()).await.unwrap();

                let none = s.gc_plan(0).await.unwrap();
                assert!(none.runs.is_empty() && none.model_versions.is_empty(), "nothing is older than the epoch");
                let plan = s.gc_plan(now_ms() + 1).await.unwrap();
                assert_eq!(plan.runs, vec![(gone.info.run_id.clone(), gone.info.artifact_uri.clone())]);
                assert_eq!(plan.model_versions, vec![("live".to_string(), 2)]);
                assert_eq!(plan.protected, vec!["mlflow-artifacts:/0/r/artifacts/model".to_string()]);

                assert!(s.purge_run(gone.info.run_id.clone()).await.unwrap());
                assert!(!s.purge_run(gone.info.run_id.clone()).await.unwrap(), "purging twice is a no-op");
                assert!(!s.purge_run(keep.clone()).await.unwrap(), "live runs are never purged");
                assert!(s.purge_model_version("live".into(), 2).await.unwrap());
                registered_version(s, "live", None).await;
                assert_eq!(s.get_model_version_by_alias("live".into(), "latest".into()).await.unwrap().version, "3", "numbers are never reused, even after a purge");
                assert!(matches!(s.get_run(gone.info.run_id).await, Err(StoreError::NotFound(_))));
                assert!(s.get_run(keep).await.is_ok());
                assert!(s.get_model_version("live".into(), "1".into()).await.is_ok());

                // A deleted run that a live version was registered from keeps its row.
                let source = s.create_run(new_run(&exp)).await.unwrap().info.run_id;
                registered_version(s, "live", Some(source.clone())).await;
                s.delete_run(source.clone()).await.unwrap();
                let plan = s.gc_plan(now_ms() + 1).await.unwrap();
                assert!(plan.runs.is_empty(), "{:?}", plan.runs);

                s.delete_experiment(exp.clone()).await.unwrap();
                let plan = s.gc_plan(now_ms() + 1).await.unwrap();
                assert!(plan.experiments.is_empty(), "an experiment holding a referenced run stays");
                s.delete_model_version("live".into(), "4".into(), "alice".into()).await.unwrap();
                let plan = s.gc_plan(now_ms() + 1).await.unwrap();
                assert_eq!(plan.experiments.len(), 1);
                assert!(plan.runs.is_empty(), "runs of a purged experiment go with it");
                assert!(s.purge_experiment(exp.clone()).await.unwrap());
                assert!(matches!(s.get_experiment(exp).await, Err(StoreError::NotFound(_))));
            }

            #[tokio::test]
            async fn logged_models_lifecycle() {
                let f = fixture().await;
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
                assert_eq!((metrics[0].key.as_str(), metrics[0].value, metrics[0].run_id.as_deref()), ("acc", 0.9, Some(run.as_str())));
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

            #[tokio::test]
            async fn deployments_round_trip() {
                let f = fixture().await;
                let s = &f.store;
                assert!(s.list_deployments().await.unwrap().is_empty());
                let full = full_deployment("b-full");
                let created = s.create_deployment(full.clone(), "alice".into()).await.unwrap();
                assert_eq!(created.spec, full);
                assert!(created.creation_timestamp > 0);
                assert_eq!(created.creation_timestamp, created.last_updated_timestamp);
                assert_eq!(s.get_deployment("b-full".into()).await.unwrap(), created);
                // Absent optional fields stay absent.
                let minimal =
                    DeploymentSpec { name: "a.min".into(), model: "churn".into(), alias: Some("prod".into()), ..DeploymentSpec::default() };
                let min = s.create_deployment(minimal.clone(), "alice".into()).await.unwrap();
                assert_eq!(s.get_deployment("a.min".into()).await.unwrap().spec, minimal);
                s.create_deployment(full_deployment("c_last"), "alice".into()).await.unwrap();
                let names: Vec<String> = s.list_deployments().await.unwrap().into_iter().map(|d| d.spec.name).collect();
                assert_eq!(names, ["a.min", "b-full", "c_last"]);

                // Update replaces the whole spec: the canary and shadow are gone afterwards.
                let replacement =
                    DeploymentSpec { name: "b-full".into(), model: "churn2".into(), version: Some("7".into()), ..DeploymentSpec::default() };
                let updated = s.update_deployment(replacement.clone(), "bob".into()).await.unwrap();
                assert_eq!(updated.spec, replacement);
                assert_eq!(updated.creation_timestamp, created.creation_timestamp);
                assert!(updated.last_updated_timestamp > created.last_updated_timestamp, "{updated:?}");
                assert_eq!(s.get_deployment("b-full".into()).await.unwrap(), updated);
                // Back to back updates in one millisecond still move the update time forward.
                let again = s.update_deployment(replacement.clone(), "bob".into()).await.unwrap();
                assert!(again.last_updated_timestamp > updated.last_updated_timestamp);
                assert_eq!(again.creation_timestamp, created.creation_timestamp);
                // Concurrent updates share a group commit, and often a millisecond; each still
                // gets its own, later update time.
                let tasks: Vec<_> = (0..20)
                    .map(|_| {
                        let s = s.clone();
                        let spec = replacement.clone();
                        tokio::spawn(async move { s.update_deployment(spec, "bob".into()).await.unwrap() })
                    })
                    .collect();
                let mut stamps = Vec::new();
                for t in tasks {
                    stamps.push(t.await.unwrap().last_updated_timestamp);
                }
                stamps.sort();
                stamps.dedup();
                assert_eq!(stamps.len(), 20, "{stamps:?}");
                assert!(stamps[0] > again.last_updated_timestamp);
                assert_eq!(s.get_deployment("b-full".into()).await.unwrap().last_updated_timestamp, stamps[19]);
                // Other deployments are untouched.
                assert_eq!(s.get_deployment("a.min".into()).await.unwrap(), min);

                s.delete_deployment("b-full".into(), "carol".into()).await.unwrap();
                assert!(matches!(s.get_deployment("b-full".into()).await, Err(StoreError::NotFound(_))));
                let names: Vec<String> = s.list_deployments().await.unwrap().into_iter().map(|d| d.spec.name).collect();
                assert_eq!(names, ["a.min", "c_last"]);
                // A deleted name can be used again, with a fresh creation time.
                let reborn = s.create_deployment(full_deployment("b-full"), "dave".into()).await.unwrap();
                assert!(reborn.creation_timestamp >= created.creation_timestamp);
                assert_eq!(reborn.spec, full_deployment("b-full"));
            }

            #[tokio::test]
            async fn deployment_duplicates_and_missing_names() {
                let f = fixture().await;
                let s = &f.store;
                let first = s.create_deployment(full_deployment("fraud"), "alice".into()).await.unwrap();
                let other = deployment_with(|d| { d.name = "fraud".into(); d.model = "other".into(); });
                let dup = s.create_deployment(other, "bob".into()).await.unwrap_err();
                assert!(matches!(dup, StoreError::AlreadyExists(ref m) if m.contains("fraud")), "{dup:?}");
                assert_eq!(s.get_deployment("fraud".into()).await.unwrap(), first, "a refused create changes nothing");
                assert_eq!(s.list_deployments().await.unwrap().len(), 1);

                let missing = s.get_deployment("nope".into()).await.unwrap_err();
                assert!(matches!(missing, StoreError::NotFound(ref m) if m.contains("nope")), "{missing:?}");
                let upd = s.update_deployment(full_deployment("nope"), "bob".into()).await.unwrap_err();
                assert!(matches!(upd, StoreError::NotFound(_)), "{upd:?}");
                let del = s.delete_deployment("nope".into(), "bob".into()).await.unwrap_err();
                assert!(matches!(del, StoreError::NotFound(_)), "{del:?}");
                assert!(matches!(s.get_deployment("nope".into()).await, Err(StoreError::NotFound(_))), "update must not create");
                // Deleting twice: the second finds nothing.
                s.delete_deployment("fraud".into(), "bob".into()).await.unwrap();
                assert!(matches!(s.delete_deployment("fraud".into(), "bob".into()).await, Err(StoreError::NotFound(_))));
            }

            #[tokio::test]
            async fn deployment_validation_rejects_each_rule() {
                let f = fixture().await;
                let s = &f.store;
                let existing = s.create_deployment(full_deployment("ok"), "alice".into()).await.unwrap();
                let nan = f64::NAN;
                let inf = f64::INFINITY;
                // (spec, text the message must hold: the field it names)
                let cases: Vec<(DeploymentSpec, &str)> = vec![
                    (deployment_with(|d| d.name = "".into()), "'name'"),
                    (deployment_with(|d| d.name = "a".repeat(65)), "'name'"),
                    (deployment_with(|d| d.name = "a b".into()), "'name'"),
                    (deployment_with(|d| d.name = "a/b".into()), "'name'"),
                    (deployment_with(|d| d.name = "caf\u{e9}".into()), "'name'"),
                    (deployment_with(|d| d.name = ".hidden".into()), "'name'"),
                    (deployment_with(|d| d.name = "-flag".into()), "'name'"),
                    (deployment_with(|d| d.model = "".into()), "'model'"),
                    (deployment_with(|d| d.model = "   ".into()), "'model'"),
                    (deployment_with(|d| d.model = "m".repeat(257)), "'model'"),
                    (deployment_with(|d| d.alias = Some("prod".into())), "'alias' and 'version'"),
                    (deployment_with(|d| d.version = None), "'alias' and 'version'"),
                    (deployment_with(|d| d.version = Some("0".into())), "'version'"),
                    (deployment_with(|d| d.version = Some("-1".into())), "'version'"),
                    (deployment_with(|d| d.version = Some("+1".into())), "'version'"),
                    (deployment_with(|d| d.version = Some(" 1".into())), "'version'"),
                    (deployment_with(|d| d.version = Some("01".into())), "'version'"),
                    (deployment_with(|d| d.version = Some("1.5".into())), "'version'"),
                    (deployment_with(|d| d.version = Some("".into())), "'version'"),
                    (deployment_with(|d| d.version = Some("abc".into())), "'version'"),
                    (deployment_with(|d| d.version = Some("99999999999999999999".into())), "'version'"),
                    (deployment_with(|d| { d.version = None; d.alias = Some("".into()); }), "'alias'"),
                    (deployment_with(|d| { d.version = None; d.alias = Some("latest".into()); }), "'alias'"),
                    (deployment_with(|d| { d.version = None; d.alias = Some("v1".into()); }), "'alias'"),
                    (deployment_with(|d| { d.version = None; d.alias = Some("a b".into()); }), "'alias'"),
                    (deployment_with(|d| d.canary = Some(Split { alias: Some("a".into()), version: Some("1".into()), weight: Some(0.1) })), "'canary.alias' and 'canary.version'"),
                    (deployment_with(|d| d.canary = Some(Split { alias: None, version: None, weight: Some(0.1) })), "'canary.alias' and 'canary.version'"),
                    (deployment_with(|d| d.canary = Some(Split { alias: None, version: Some("0".into()), weight: Some(0.1) })), "'canary.version'"),
                    (deployment_with(|d| d.canary = Some(Split { alias: Some("latest".into()), version: None, weight: Some(0.1) })), "'canary.alias'"),
                    (deployment_with(|d| d.canary.as_mut().unwrap().weight = None), "'canary.weight'"),
                    (deployment_with(|d| d.canary.as_mut().unwrap().weight = Some(0.0)), "'canary.weight'"),
                    (deployment_with(|d| d.canary.as_mut().unwrap().weight = Some(1.0)), "'canary.weight'"),
                    (deployment_with(|d| d.canary.as_mut().unwrap().weight = Some(-0.5)), "'canary.weight'"),
                    (deployment_with(|d| d.canary.as_mut().unwrap().weight = Some(nan)), "'canary.weight'"),
                    (deployment_with(|d| d.canary.as_mut().unwrap().weight = Some(inf)), "'canary.weight'"),
                    (deployment_with(|d| d.shadow = Some(Split { alias: Some("a".into()), version: Some("1".into()), weight: None })), "'shadow.alias' and 'shadow.version'"),
                    (deployment_with(|d| d.shadow = Some(Split { alias: None, version: None, weight: Some(0.5) })), "'shadow.alias' and 'shadow.version'"),
                    (deployment_with(|d| d.shadow = Some(Split { alias: None, version: Some("x".into()), weight: None })), "'shadow.version'"),
                    (deployment_with(|d| d.shadow = Some(Split { alias: Some("V2".into()), version: None, weight: None })), "'shadow.alias'"),
                    (deployment_with(|d| d.shadow.as_mut().unwrap().weight = Some(0.0)), "'shadow.weight'"),
                    (deployment_with(|d| d.shadow.as_mut().unwrap().weight = Some(1.5)), "'shadow.weight'"),
                    (deployment_with(|d| d.shadow.as_mut().unwrap().weight = Some(nan)), "'shadow.weight'"),
                    (deployment_with(|d| d.shadow.as_mut().unwrap().weight = Some(-inf)), "'shadow.weight'"),
                    (deployment_with(|d| d.log_sample = Some(-0.1)), "'log_sample'"),
                    (deployment_with(|d| d.log_sample = Some(1.01)), "'log_sample'"),
                    (deployment_with(|d| d.log_sample = Some(nan)), "'log_sample'"),
                    (deployment_with(|d| d.log_sample = Some(inf)), "'log_sample'"),
                    (deployment_with(|d| d.max_batch_rows = Some(0)), "'max_batch_rows'"),
                    (deployment_with(|d| d.max_batch_rows = Some(4097)), "'max_batch_rows'"),
                    (deployment_with(|d| d.max_wait_us = Some(100_001)), "'max_wait_us'"),
                    (deployment_with(|d| d.max_wait_us = Some(u32::MAX)), "'max_wait_us'"),
                ];
                for (spec, field) in cases {
                    let mut fresh = spec.clone();
                    // A valid fresh name unless the name itself is the case under test.
                    if field != "'name'" {
                        fresh.name = "fresh".into();
                    }
                    for (op, result) in [
                        ("create", s.create_deployment(fresh, "mallory".into()).await),
                        ("update", s.update_deployment(spec.clone(), "mallory".into()).await),
                    ] {
                        match result {
                            Err(StoreError::InvalidParameter(m)) => {
                                assert!(m.contains(field), "{op} {spec:?}: message {m:?} must name {field}");
                                assert!(m.starts_with("deployment "), "{op} {spec:?}: message {m:?} must say what it is about");
                            }
                            other => panic!("{op} {spec:?} must be InvalidParameter naming {field}, got {other:?}"),
                        }
                    }
                }
                // Nothing refused was written, and no refused request left an audit record.
                assert_eq!(s.list_deployments().await.unwrap(), vec![existing]);
                let by_mallory = s.audit_log(AuditQuery { actor: Some("mallory".into()), ..AuditQuery::default() }).await.unwrap();
                assert!(by_mallory.items.is_empty(), "{:?}", by_mallory.items);

                // The edges of every range are accepted.
                let valid: Vec<DeploymentSpec> = vec![
                    deployment_with(|d| d.name = "a".repeat(64)),
                    deployment_with(|d| d.name = "_x".into()),
                    deployment_with(|d| d.name = "9".into()),
                    deployment_with(|d| d.name = "A.b-c_D9".into()),
                    deployment_with(|d| { d.name = "by-alias".into(); d.version = None; d.alias = Some("prod-2_\u{e9}".into()); }),
                    deployment_with(|d| { d.name = "max-version".into(); d.version = Some(i64::MAX.to_string()); }),
                    deployment_with(|d| { d.name = "edges-low".into(); d.canary.as_mut().unwrap().weight = Some(1e-9); d.log_sample = Some(0.0); d.max_batch_rows = Some(1); d.max_wait_us = Some(0); }),
                    deployment_with(|d| { d.name = "edges-high".into(); d.canary.as_mut().unwrap().weight = Some(0.999_999); d.shadow.as_mut().unwrap().weight = Some(1.0); d.log_sample = Some(1.0); d.max_batch_rows = Some(4096); d.max_wait_us = Some(100_000); }),
                    deployment_with(|d| { d.name = "shadow-default".into(); d.shadow.as_mut().unwrap().weight = None; }),
                    deployment_with(|d| { d.name = "plain".into(); d.canary = None; d.shadow = None; d.log_sample = None; d.max_batch_rows = None; d.max_wait_us = None; }),
                ];
                for spec in valid {
                    let d = s.create_deployment(spec.clone(), "alice".into()).await.unwrap_or_else(|e| panic!("{spec:?} must be accepted: {e:?}"));
                    assert_eq!(d.spec, spec);
                    s.update_deployment(spec.clone(), "alice".into()).await.unwrap_or_else(|e| panic!("update {spec:?}: {e:?}"));
                }
                assert_eq!(s.list_deployments().await.unwrap().len(), 11);
            }

            #[tokio::test]
            async fn deployment_mutations_write_exact_audit_records() {
                let f = fixture().await;
                let s = &f.store;
                let created = s.create_deployment(full_deployment("fraud"), "alice".into()).await.unwrap();
                s.create_deployment(full_deployment("other"), "alice".into()).await.unwrap();
                // Refused mutations leave no record.
                assert!(s.create_deployment(full_deployment("fraud"), "mallory".into()).await.is_err());
                assert!(s.update_deployment(deployment_with(|d| { d.name = "fraud".into(); d.max_wait_us = Some(u32::MAX); }), "mallory".into()).await.is_err());
                let replacement = deployment_with(|d| { d.name = "fraud".into(); d.canary = None; d.version = Some("5".into()); });
                let updated = s.update_deployment(replacement, "bob".into()).await.unwrap();
                s.delete_deployment("fraud".into(), "carol".into()).await.unwrap();
                assert!(s.delete_deployment("fraud".into(), "mallory".into()).await.is_err());

                let log = s.audit_log(AuditQuery { name: Some("fraud".into()), ..AuditQuery::default() }).await.unwrap().items;
                let summary: Vec<(&str, &str, &str, &str, Option<&str>)> = log
                    .iter()
                    .map(|r| (r.action.as_str(), r.actor.as_str(), r.object_type.as_str(), r.name.as_str(), r.version.as_deref()))
                    .collect();
                assert_eq!(
                    summary,
                    [
                        ("create_deployment", "alice", "deployment", "fraud", None),
                        ("update_deployment", "bob", "deployment", "fraud", None),
                        ("delete_deployment", "carol", "deployment", "fraud", None),
                    ]
                );
                let wire = |d: &Deployment| Some(serde_json::to_value(d).unwrap());
                assert_eq!(log[0].before, None);
                assert_eq!(log[0].after, wire(&created));
                assert_eq!(log[1].before, wire(&created));
                assert_eq!(log[1].after, wire(&updated));
                assert_eq!(log[2].before, wire(&updated));
                assert_eq!(log[2].after, None);
                // The snapshots are the flat wire shape: spec fields beside the timestamps.
                let after = log[0].after.as_ref().unwrap();
                assert_eq!(after["name"], "fraud");
                assert_eq!(after["version"], "3");
                assert_eq!(after["canary"], serde_json::json!({"alias": "challenger", "weight": 0.1}));
                assert_eq!(after["creation_timestamp"], created.creation_timestamp);
                assert!(after.get("spec").is_none() && after.get("alias").is_none(), "{after}");
                assert_eq!(log[1].after.as_ref().unwrap().get("canary"), None, "the update removed the canary");
                assert_eq!(serde_json::from_value::<Deployment>(log[1].after.clone().unwrap()).unwrap(), updated);
                for r in &log {
                    assert!(r.timestamp >= created.creation_timestamp, "{r:?}");
                }
                // The action filter finds one, and other deployments' records stay out of the name filter.
                let updates = s.audit_log(AuditQuery { action: Some("update_deployment".into()), ..AuditQuery::default() }).await.unwrap().items;
                assert_eq!(updates.len(), 1);
                assert_eq!(updates[0].id, log[1].id);
                let other = s.audit_log(AuditQuery { name: Some("other".into()), ..AuditQuery::default() }).await.unwrap().items;
                assert_eq!(other.iter().map(|r| r.action.as_str()).collect::<Vec<_>>(), ["create_deployment"]);
            }

            #[tokio::test]
            async fn monitors_round_trip_and_are_audited() {
                let f = fixture().await;
                let s = &f.store;
                let spec = monitor_spec("m1");
                let created = s.create_monitor(spec.clone(), "alice".into()).await.unwrap();
                assert_eq!(created.spec, spec);
                assert_eq!(s.get_monitor("m1".into()).await.unwrap(), created);
                let dup = s.create_monitor(spec.clone(), "bob".into()).await.unwrap_err();
                assert!(matches!(dup, StoreError::AlreadyExists(_)), "{dup:?}");
                let mut changed = spec.clone();
                changed.window_seconds = Some(60);
                let updated = s.update_monitor(changed.clone(), "bob".into()).await.unwrap();
                assert_eq!(updated.spec, changed);
                assert!(updated.last_updated_timestamp > created.last_updated_timestamp);
                s.create_monitor(monitor_spec("a0"), "alice".into()).await.unwrap();
                let names: Vec<String> = s.list_monitors().await.unwrap().into_iter().map(|m| m.spec.name).collect();
                assert_eq!(names, ["a0", "m1"]);
                s.delete_monitor("m1".into(), "carol".into()).await.unwrap();
                assert!(matches!(s.get_monitor("m1".into()).await, Err(StoreError::NotFound(_))));
                let log = s.audit_log(AuditQuery { name: Some("m1".into()), ..AuditQuery::default() }).await.unwrap().items;
                let mut actions: Vec<&str> = log.iter().map(|r| r.action.as_str()).collect();
                actions.sort();
                assert_eq!(actions, ["create_monitor", "delete_monitor", "update_monitor"]);
                assert!(log.iter().all(|r| r.object_type == "monitor"));
            }

            #[tokio::test]
            async fn monitor_validation_names_the_field() {
                let f = fixture().await;
                let s = &f.store;
                let cases: Vec<(&str, Box<dyn Fn(&mut MonitorSpec)>)> = vec![
                    ("name", Box::new(|m| m.name = "../x".into())),
                    ("deployment", Box::new(|m| m.deployment = String::new())),
                    ("reference", Box::new(|m| m.reference = Reference::default())),
                    ("reference.uri", Box::new(|m| m.reference.uri = Some("file:///etc/passwd.csv".into()))),
                    ("reference", Box::new(|m| m.reference.uri = Some("runs:/abc/../../x.csv".into()))),
                    ("reference", Box::new(|m| m.reference.uri = Some("runs:/abc/data.txt".into()))),
                    ("window_seconds", Box::new(|m| m.window_seconds = Some(0))),
                    ("drift_share", Box::new(|m| m.drift_share = Some(1.5))),
                    ("alerts[0].webhook", Box::new(|m| m.alerts[0].webhook = "ftp://x".into())),
                    ("alerts[0].for_windows", Box::new(|m| m.alerts[0].for_windows = Some(0))),
                    ("alerts[1].name", Box::new(|m| { let a = m.alerts[0].clone(); m.alerts.push(a) })),
                ];
                for (field, mutate) in cases {
                    let mut spec = monitor_spec("v");
                    mutate(&mut spec);
                    let err = s.create_monitor(spec, "alice".into()).await.unwrap_err();
                    assert!(matches!(&err, StoreError::InvalidParameter(m) if m.contains(field)), "{field}: {err:?}");
                }
                assert!(s.list_monitors().await.unwrap().is_empty(), "nothing refused was written");
            }

            #[tokio::test]
            async fn windows_replace_by_start_and_go_with_their_monitor() {
                let f = fixture().await;
                let s = &f.store;
                s.create_monitor(monitor_spec("m"), "alice".into()).await.unwrap();
                let w = |start: i64, share: f64| MonitorWindow {
                    monitor: "m".into(),
                    start_ms: start,
                    end_ms: start + 1000,
                    rows: 10,
                    series: [("drift.share".to_string(), share)].into_iter().collect(),
                    drift: Some(serde_json::json!({"columns": []})),
                    computed_at: 5,
                };
                for start in [3000, 1000, 2000] {
                    s.put_monitor_window(w(start, 0.0)).await.unwrap();
                }
                s.put_monitor_window(w(2000, 0.75)).await.unwrap();
                let got = s.list_monitor_windows("m".into(), 0, i64::MAX).await.unwrap();
                assert_eq!(got.iter().map(|w| w.start_ms).collect::<Vec<_>>(), [1000, 2000, 3000]);
                assert_eq!(got[1], w(2000, 0.75));
                assert_eq!(s.list_monitor_windows("m".into(), 1500, 3000).await.unwrap().len(), 1);
                assert!(matches!(s.put_monitor_window(MonitorWindow { monitor: "nope".into(), ..w(0, 0.0) }).await, Err(StoreError::NotFound(_))));
                s.delete_monitor("m".into(), "alice".into()).await.unwrap();
                s.create_monitor(monitor_spec("m"), "alice".into()).await.unwrap();
                assert!(s.list_monitor_windows("m".into(), 0, i64::MAX).await.unwrap().is_empty(), "windows went with the monitor");
            }

            #[tokio::test]
            async fn ground_truth_upserts_per_request() {
                let f = fixture().await;
                let s = &f.store;
                assert_eq!(s.ground_truth_updated("d".into()).await.unwrap(), None);
                let g = |id: &str, v: i64| GroundTruth { request_id: id.into(), labels: vec![serde_json::json!(v)] };
                assert_eq!(s.put_ground_truth("d".into(), vec![g("r1", 0), g("r2", 1)]).await.unwrap(), 2);
                s.put_ground_truth("d".into(), vec![g("r1", 1)]).await.unwrap();
                s.put_ground_truth("other".into(), vec![g("r3", 1)]).await.unwrap();
                let got = s.get_ground_truth("d".into(), vec!["r1".into(), "r2".into(), "r3".into()]).await.unwrap();
                assert_eq!(got, vec![g("r1", 1), g("r2", 1)]);
                assert!(s.ground_truth_updated("d".into()).await.unwrap().is_some());
                assert!(s.put_ground_truth("../x".into(), vec![g("r", 1)]).await.is_err());
            }

            #[tokio::test]
            async fn a_lease_has_one_holder_until_it_expires_or_is_released() {
                let f = fixture().await;
                let take = |h: &str, ttl| f.store.take_lease("monitors".into(), h.into(), ttl);
                assert!(take("a", 60_000).await.unwrap());
                assert!(!take("b", 60_000).await.unwrap(), "held by a");
                assert!(take("a", 60_000).await.unwrap(), "a renews its own");
                f.store.release_lease("monitors".into(), "b".into()).await.unwrap();
                assert!(!take("b", 60_000).await.unwrap(), "only the holder can release");
                f.store.release_lease("monitors".into(), "a".into()).await.unwrap();
                assert!(take("b", 1).await.unwrap(), "released: b takes it");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                assert!(take("c", 60_000).await.unwrap(), "b's lease expired");
                assert!(f.store.take_lease("other".into(), "b".into(), 60_000).await.unwrap(), "leases are per name");
            }

            #[tokio::test]
            async fn an_alert_fires_once_per_window_and_records_delivery() {
                let f = fixture().await;
                let s = &f.store;
                s.create_monitor(monitor_spec("m"), "alice".into()).await.unwrap();
                let e = AlertEvent {
                    id: 0,
                    monitor: "m".into(),
                    rule: "drift".into(),
                    window_start_ms: 7000,
                    series: "drift.share".into(),
                    value: 0.8,
                    threshold: 0.5,
                    fired_at: 9,
                    status: slipway_types::AlertStatus::Pending,
                    attempts: 0,
                    last_error: None,
                    delivered_at: None,
                };
                let stored = s.record_alert(e.clone()).await.unwrap().expect("first firing is recorded");
                assert_eq!(s.record_alert(e.clone()).await.unwrap(), None, "the same firing again is a duplicate");
                assert_eq!(s.pending_alerts().await.unwrap().len(), 1);
                s.update_alert(stored.id, slipway_types::AlertStatus::Delivered, 2, Some("timeout".into()), Some(11)).await.unwrap();
                let all = s.list_alerts("m".into()).await.unwrap();
                assert_eq!(all.len(), 1);
                assert_eq!((all[0].status.as_str(), all[0].attempts, all[0].delivered_at), ("delivered", 2, Some(11)));
                assert_eq!(all[0].last_error.as_deref(), Some("timeout"));
                assert!(s.pending_alerts().await.unwrap().is_empty());
                assert!(matches!(s.update_alert(999, slipway_types::AlertStatus::Failed, 1, None, None).await, Err(StoreError::NotFound(_))));
            }

            #[tokio::test]
            async fn import_keeps_ids_and_a_repeat_changes_nothing() {
                $crate::import::import_keeps_ids_and_a_repeat_changes_nothing(fixture().await).await;
            }
        }
    };
}
