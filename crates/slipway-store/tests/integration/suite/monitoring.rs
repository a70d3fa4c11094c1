//! Monitoring: monitors and their validation, windows, ground truth, the monitors lease, alert
//! events.

use slipway_store::{AuditQuery, StoreError};
use slipway_types::{AlertEvent, GroundTruth, MonitorSpec, MonitorWindow, Reference};

use super::monitor_spec;
use crate::Fixture;

pub async fn monitors_round_trip_and_are_audited(f: Fixture) {
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

pub async fn monitor_validation_names_the_field(f: Fixture) {
    /// A change that breaks one rule of a valid spec.
    type Break = Box<dyn Fn(&mut MonitorSpec)>;
    let s = &f.store;
    // (the field the message must name, the change)
    let cases: Vec<(&str, Break)> = vec![
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
        // Only variables set aside for webhook tokens: never the server's other secrets.
        ("alerts[0].token_env", Box::new(|m| m.alerts[0].token_env = Some("AWS_SECRET_ACCESS_KEY".into()))),
        ("alerts[0].token_env", Box::new(|m| m.alerts[0].token_env = Some("SLIPWAY_WEBHOOK_TOKEN_".into()))),
        ("alerts[0].token_env", Box::new(|m| m.alerts[0].token_env = Some("SLIPWAY_WEBHOOK_TOKEN_a-b".into()))),
        (
            "alerts[1].name",
            Box::new(|m| {
                let a = m.alerts[0].clone();
                m.alerts.push(a)
            }),
        ),
    ];
    for (field, mutate) in cases {
        let mut spec = monitor_spec("v");
        mutate(&mut spec);
        let err = s.create_monitor(spec, "alice".into()).await.unwrap_err();
        assert!(matches!(&err, StoreError::InvalidParameter(m) if m.contains(field)), "{field}: {err:?}");
    }
    assert!(s.list_monitors().await.unwrap().is_empty(), "nothing refused was written");
    let mut spec = monitor_spec("ok");
    spec.alerts[0].token_env = Some("SLIPWAY_WEBHOOK_TOKEN_RETRAIN".into());
    let created = s.create_monitor(spec, "alice".into()).await.unwrap();
    assert_eq!(created.spec.alerts[0].token_env.as_deref(), Some("SLIPWAY_WEBHOOK_TOKEN_RETRAIN"));
}

pub async fn windows_replace_by_start_and_go_with_their_monitor(f: Fixture) {
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
    assert!(matches!(
        s.put_monitor_window(MonitorWindow { monitor: "nope".into(), ..w(0, 0.0) }).await,
        Err(StoreError::NotFound(_))
    ));
    s.delete_monitor("m".into(), "alice".into()).await.unwrap();
    s.create_monitor(monitor_spec("m"), "alice".into()).await.unwrap();
    assert!(s.list_monitor_windows("m".into(), 0, i64::MAX).await.unwrap().is_empty(), "windows went with the monitor");
}

pub async fn ground_truth_upserts_per_request(f: Fixture) {
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

pub async fn a_lease_has_one_holder_until_it_expires_or_is_released(f: Fixture) {
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

pub async fn an_alert_fires_once_per_window_and_records_delivery(f: Fixture) {
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
    s.update_alert(stored.id, slipway_types::AlertStatus::Delivered, 2, Some("timeout".into()), Some(11))
        .await
        .unwrap();
    let all = s.list_alerts("m".into()).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(
        (all[0].status, all[0].attempts, all[0].delivered_at),
        (slipway_types::AlertStatus::Delivered, 2, Some(11))
    );
    assert_eq!(all[0].last_error.as_deref(), Some("timeout"));
    assert!(s.pending_alerts().await.unwrap().is_empty());
    assert!(matches!(
        s.update_alert(999, slipway_types::AlertStatus::Failed, 1, None, None).await,
        Err(StoreError::NotFound(_))
    ));
}
