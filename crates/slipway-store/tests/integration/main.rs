//! The metadata-store tests: `suite/` holds the behaviour every backend must show, as plain
//! functions over a [`Fixture`], and `store_test_suite!` runs each on SQLite and on PostgreSQL;
//! `replicas.rs` races several stores on one PostgreSQL schema; the tests below are SQLite's own.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod replicas;
mod suite;

use std::sync::Arc;

use slipway_store::MetadataStore;
use slipway_store::auth::AuthStore;
use slipway_store::import::ImportStore;
use slipway_store::postgres::PostgresStore;
use slipway_store::sqlite::SqliteStore;

/// A fresh store, with the temporary directory a SQLite store lives in.
pub struct Fixture {
    pub store: Arc<dyn MetadataStore>,
    /// The same store, as `slipway import` writes to it.
    pub import: Arc<dyn ImportStore>,
    /// The same store, as the auth layer uses it.
    pub auth: Arc<dyn AuthStore>,
    _dir: Option<tempfile::TempDir>,
}

pub async fn sqlite_fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("meta.db"), "mlflow-artifacts:", 4).expect("open store");
    let store = Arc::new(store);
    Fixture { store: store.clone(), import: store.clone(), auth: store, _dir: Some(dir) }
}

/// The PostgreSQL server `scripts/test.sh` starts (`SLIPWAY_TEST_PG_URL`).
pub fn pg_url() -> String {
    std::env::var("SLIPWAY_TEST_PG_URL").expect(
        "SLIPWAY_TEST_PG_URL is not set: run scripts/test.sh, or `. scripts/postgres.sh && slipway_pg_start` \
         before cargo test",
    )
}

/// A fresh schema of its own on the test server: tests run side by side without seeing each other.
pub async fn pg_schema() -> tokio_postgres::Config {
    let url = pg_url();
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("connect to PostgreSQL");
    tokio::spawn(conn);
    client.batch_execute(&format!("CREATE SCHEMA {schema}")).await.expect("create schema");
    let mut config: tokio_postgres::Config = url.parse().expect("PostgreSQL url");
    config.options(format!("-c search_path={schema}"));
    config
}

pub async fn postgres_fixture() -> Fixture {
    let store = PostgresStore::connect_with(pg_schema().await, "mlflow-artifacts:", 8).await.expect("open store");
    let store = Arc::new(store);
    Fixture { store: store.clone(), import: store.clone(), auth: store, _dir: None }
}

store_test_suite!(sqlite, crate::sqlite_fixture);
store_test_suite!(postgres, crate::postgres_fixture);

/// Reopening the same file sees everything acknowledged before `close`.
#[tokio::test]
async fn sqlite_data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let run_id = {
        let store = SqliteStore::open(&path, "mlflow-artifacts:", 2).unwrap();
        let exp = store.create_experiment("persist".into(), None, vec![]).await.unwrap();
        let run = store.create_run(suite::new_run(&exp)).await.unwrap();
        store.log_batch(run.info.run_id.clone(), vec![suite::metric("m", 1.5, 0)], vec![], vec![]).await.unwrap();
        store.close().await;
        run.info.run_id
    };
    let store = SqliteStore::open(&path, "mlflow-artifacts:", 2).unwrap();
    let run = store.get_run(run_id).await.unwrap();
    assert_eq!(run.data.metrics[0].value, 1.5);
    assert_eq!(store.get_experiment_by_name("persist".into()).await.unwrap().name, "persist");
}

/// Deployments survive a reopen, and reopening does not apply their migration twice.
#[tokio::test]
async fn sqlite_deployments_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let created = {
        let store = SqliteStore::open(&path, "mlflow-artifacts:", 2).unwrap();
        let d = store.create_deployment(suite::full_deployment("fraud"), "alice".into()).await.unwrap();
        store.close().await;
        d
    };
    let store = SqliteStore::open(&path, "mlflow-artifacts:", 2).unwrap();
    assert_eq!(store.get_deployment("fraud".into()).await.unwrap(), created);
    assert_eq!(store.list_deployments().await.unwrap(), vec![created]);
}
