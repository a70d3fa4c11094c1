//! What only a shared database shows: several stores ("replicas") on one PostgreSQL schema,
//! racing each other. Each race must have exactly one winner and leave no corrupt state.

use std::sync::Arc;

use futures::future::join_all;
use slipway_store::postgres::PostgresStore;
use slipway_store::{MetadataStore, NewModelVersion, StoreError};

use crate::suite::{kv, new_run};

/// Three stores on one fresh schema, opened concurrently (so their migrations race too).
async fn replicas() -> Vec<Arc<PostgresStore>> {
    let config = crate::pg_schema().await;
    let opened = join_all((0..3).map(|_| PostgresStore::connect_with(config.clone(), "mlflow-artifacts:", 8))).await;
    opened.into_iter().map(|s| Arc::new(s.expect("open replica"))).collect()
}

fn version(name: &str) -> NewModelVersion {
    NewModelVersion {
        name: name.into(),
        source: "x".into(),
        storage_location: "x".into(),
        ..NewModelVersion::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_migrations_apply_once_and_every_replica_works() {
    let stores = replicas().await;
    for (i, s) in stores.iter().enumerate() {
        let id = s.create_experiment(format!("from-{i}"), None, vec![]).await.unwrap();
        for other in &stores {
            assert_eq!(other.get_experiment(id.clone()).await.unwrap().name, format!("from-{i}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_name_created_by_many_replicas_at_once_has_one_winner() {
    let stores = replicas().await;
    let experiment = join_all((0..12).map(|i| {
        let s = stores[i % 3].clone();
        async move { s.create_experiment("race".into(), None, vec![]).await }
    }))
    .await;
    let model = join_all((0..12).map(|i| {
        let s = stores[i % 3].clone();
        async move { s.create_registered_model("race".into(), None, vec![], "a".into()).await }
    }))
    .await;
    for results in [
        experiment.iter().map(|r| r.as_ref().map(|_| ())).collect::<Vec<_>>(),
        model.iter().map(|r| r.as_ref().map(|_| ())).collect(),
    ] {
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
        assert!(results.iter().all(|r| matches!(r, Ok(()) | Err(StoreError::AlreadyExists(_)))), "{results:?}");
    }
    // The registry's audit log holds the one creation that happened.
    let audit = stores[0].audit_log(slipway_store::AuditQuery { name: Some("race".into()), ..Default::default() });
    assert_eq!(audit.await.unwrap().items.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn versions_created_concurrently_are_numbered_without_gaps_or_repeats() {
    let stores = replicas().await;
    stores[0].create_registered_model("m".into(), None, vec![], "a".into()).await.unwrap();
    let created = join_all((0..60).map(|i| {
        let s = stores[i % 3].clone();
        async move { s.create_model_version(version("m"), "a".into()).await }
    }))
    .await;
    let mut numbers: Vec<i64> = created.into_iter().map(|v| v.unwrap().version.parse().unwrap()).collect();
    numbers.sort();
    assert_eq!(numbers, (1..=60).collect::<Vec<_>>());
    assert_eq!(stores[2].get_registered_model("m".into()).await.unwrap().latest_versions.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_param_logged_with_different_values_at_once_keeps_one() {
    let stores = replicas().await;
    let run = stores[0].create_run(new_run("0")).await.unwrap().info.run_id;
    let results = join_all((0..9).map(|i| {
        let s = stores[i % 3].clone();
        let run = run.clone();
        async move { s.log_batch(run, vec![], vec![kv("lr", &format!("0.{i}"))], vec![]).await }
    }))
    .await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    assert!(results.iter().all(|r| matches!(r, Ok(()) | Err(StoreError::InvalidParameter(_)))), "{results:?}");
    let stored = stores[1].get_run(run).await.unwrap().data.params;
    let winner = results.iter().position(|r| r.is_ok()).unwrap();
    assert_eq!(stored, vec![kv("lr", &format!("0.{winner}"))]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_alias_moved_by_many_replicas_ends_on_one_version_with_every_move_audited() {
    let stores = replicas().await;
    stores[0].create_registered_model("m".into(), None, vec![], "a".into()).await.unwrap();
    for _ in 0..6 {
        stores[0].create_model_version(version("m"), "a".into()).await.unwrap();
    }
    let moves = join_all((0..30).map(|i| {
        let s = stores[i % 3].clone();
        async move { s.set_alias("m".into(), "champion".into(), ((i % 6) + 1).to_string(), "a".into()).await }
    }))
    .await;
    assert!(moves.iter().all(|r| r.is_ok()), "{moves:?}");
    let now: Vec<String> = join_all(
        stores.iter().map(|s| async move { s.get_model_version_by_alias("m".into(), "champion".into()).await }),
    )
    .await
    .into_iter()
    .map(|v| v.unwrap().version)
    .collect();
    assert!(now.iter().all(|v| *v == now[0]), "{now:?}");
    // Each audited move starts from where the previous one left the alias: a chain, no forks.
    let audit = stores[0]
        .audit_log(slipway_store::AuditQuery {
            name: Some("m".into()),
            action: Some("set_alias".into()),
            max_results: Some(1000),
            ..Default::default()
        })
        .await
        .unwrap()
        .items;
    assert_eq!(audit.len(), 30);
    let mut chain: Vec<_> = audit.iter().map(|r| (r.id, r.before.clone(), r.after.clone())).collect();
    chain.sort_by_key(|c| c.0);
    for pair in chain.windows(2) {
        assert_eq!(pair[1].1.as_ref(), pair[0].2.as_ref(), "{pair:?}");
    }
    assert_eq!(chain.last().unwrap().2.as_ref().unwrap()["version"], serde_json::json!(now[0]));
}

/// A registry change committed on one replica wakes the others' watches.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_change_on_one_replica_wakes_the_others_watch() {
    let stores = replicas().await;
    let changed = Arc::new(tokio::sync::Notify::new());
    stores[1].watch_changes(changed.clone());
    // The watch pokes once when it starts listening (changes before that could be missed).
    let wait = || tokio::time::timeout(std::time::Duration::from_secs(20), changed.notified());
    wait().await.expect("the watch started");

    stores[0].create_registered_model("watched".into(), None, vec![], "a".into()).await.unwrap();
    wait().await.expect("creating a model on another replica wakes the watch");
    stores[2].create_model_version(version("watched"), "a".into()).await.unwrap();
    stores[2].set_alias("watched".into(), "champion".into(), "1".into(), "a".into()).await.unwrap();
    wait().await.expect("moving an alias on another replica wakes the watch");
    stores[1].close().await;
}

/// Replicas competing for one lease at once: exactly one gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lease_taken_by_many_replicas_at_once_has_one_holder() {
    let stores = replicas().await;
    let taken = join_all((0..12).map(|i| {
        let s = stores[i % 3].clone();
        async move { s.take_lease("monitors".into(), format!("holder-{i}"), 60_000).await }
    }))
    .await;
    let won: Vec<usize> = taken.iter().enumerate().filter(|(_, t)| matches!(t, Ok(true))).map(|(i, _)| i).collect();
    assert_eq!(won.len(), 1, "{taken:?}");
    assert!(taken.iter().all(|t| t.is_ok()), "{taken:?}");
}
