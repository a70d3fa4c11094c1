//! Backend-independent behaviour every metadata store must show: plain async functions, one
//! per test, each taking a fresh [`Fixture`](crate::Fixture). `store_test_suite!` only turns
//! them into one `#[tokio::test]` per function per backend. The files follow the store's
//! subjects; the builders below are what more than one of them uses.

pub mod auth;
pub mod data;
pub mod deployments;
pub mod experiments;
pub mod import;
pub mod monitoring;
pub mod registry;
pub mod runs;
pub mod search;

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
            token_env: None,
        }],
        ..Default::default()
    }
}

/// One `#[tokio::test]` per suite function on the backend that `$fixture` opens, in a module
/// named after the backend: `sqlite::experiment_lifecycle` runs
/// `suite::experiments::experiment_lifecycle(sqlite_fixture().await)`. A function missing
/// here is a test that runs nowhere: list each one once.
#[macro_export]
macro_rules! store_test_suite {
    ($backend:ident, $fixture:path) => {
        mod $backend {
            $crate::store_tests!($fixture, #[tokio::test], {
                experiments: [default_experiment_exists, experiment_lifecycle, experiment_search_filters_and_pages],
                runs: [
                    runs_log_and_read_back,
                    log_batch_is_all_or_nothing,
                    writes_to_deleted_runs_fail_and_restore_works,
                    batch_limits_and_key_rules,
                    logged_models_lifecycle,
                ],
                search: [
                    search_runs_by_every_kind,
                    search_runs_pages_without_gaps_or_repeats,
                    search_runs_by_metric_order_pages_like_one_sort,
                    metric_history_pages_in_step_order,
                ],
                registry: [
                    registry_versions_stages_and_aliases,
                    registry_search_filters_and_pages,
                    audit_log_records_each_mutation_with_before_and_after,
                    lineage_follows_the_version_to_its_run_and_datasets,
                    gc_purges_only_old_deletions_and_reports_protected_locations,
                ],
                deployments: [
                    deployments_round_trip,
                    deployment_duplicates_and_missing_names,
                    deployment_validation_rejects_each_rule,
                    deployment_mutations_write_exact_audit_records,
                ],
                monitoring: [
                    monitors_round_trip_and_are_audited,
                    monitor_validation_names_the_field,
                    windows_replace_by_start_and_go_with_their_monitor,
                    ground_truth_upserts_per_request,
                    a_lease_has_one_holder_until_it_expires_or_is_released,
                    an_alert_fires_once_per_window_and_records_delivery,
                ],
                import: [import_keeps_ids_and_a_repeat_changes_nothing],
                data: [
                    data_versions_number_up_and_aliases_move,
                    data_version_input_is_checked_before_anything_is_written,
                    a_label_item_is_leased_to_one_labeller_and_labelled_once_into_ground_truth,
                    an_expired_lease_returns_its_item_to_the_queue,
                ],
                auth: [
                    principals_round_trip_and_every_change_bumps_the_epoch,
                    grants_reach_a_principal_through_its_groups_and_go_with_it,
                    groups_give_their_members_their_grants_until_either_goes,
                    tokens_are_stored_as_digests_and_revoke_once,
                    auth_changes_are_audited_without_secrets,
                    searches_return_only_what_the_groups_may_read,
                    children_resolve_to_the_object_whose_permissions_they_have,
                    refused_requests_are_kept_newest_first_and_dropped_after_90_days,
                ],
            });
            // Writers on several threads at once: the runtime must have them.
            $crate::store_tests!($fixture, #[tokio::test(flavor = "multi_thread", worker_threads = 4)], {
                runs: [concurrent_writers_never_fail],
                data: [concurrent_labellers_never_share_an_item],
            });
        }
    };
}

/// `store_test_suite!`'s worker: for each `module: [function, ...]`, a test under `$attr`
/// that opens a fixture and awaits `suite::module::function` on it.
#[macro_export]
macro_rules! store_tests {
    ($fixture:path, #[$attr:meta], { $($module:ident: [$($test:ident),* $(,)?]),* $(,)? }) => {
        $($(
            #[$attr]
            async fn $test() {
                $crate::suite::$module::$test($fixture().await).await;
            }
        )*)*
    };
}
