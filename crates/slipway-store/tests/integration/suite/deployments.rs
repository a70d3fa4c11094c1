//! Deployments: round trip and update times, duplicates and missing names, every validation rule
//! and its edges, audit records.

use slipway_store::{AuditQuery, StoreError};
use slipway_types::{Deployment, DeploymentSpec, Split};

use super::{deployment_with, full_deployment};
use crate::Fixture;

pub async fn deployments_round_trip(f: Fixture) {
    let s = &f.store;
    assert!(s.list_deployments().await.unwrap().is_empty());
    let full = full_deployment("b-full");
    let created = s.create_deployment(full.clone(), "alice".into()).await.unwrap();
    assert_eq!(created.spec, full);
    assert!(created.creation_timestamp > 0);
    assert_eq!(created.creation_timestamp, created.last_updated_timestamp);
    assert_eq!(s.get_deployment("b-full".into()).await.unwrap(), created);
    // Absent optional fields stay absent.
    let minimal = DeploymentSpec {
        name: "a.min".into(),
        model: "churn".into(),
        alias: Some("prod".into()),
        ..DeploymentSpec::default()
    };
    let min = s.create_deployment(minimal.clone(), "alice".into()).await.unwrap();
    assert_eq!(s.get_deployment("a.min".into()).await.unwrap().spec, minimal);
    s.create_deployment(full_deployment("c_last"), "alice".into()).await.unwrap();
    let names: Vec<String> = s.list_deployments().await.unwrap().into_iter().map(|d| d.spec.name).collect();
    assert_eq!(names, ["a.min", "b-full", "c_last"]);

    // Update replaces the whole spec: the canary and shadow are gone afterwards.
    let replacement = DeploymentSpec {
        name: "b-full".into(),
        model: "churn2".into(),
        version: Some("7".into()),
        ..DeploymentSpec::default()
    };
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

pub async fn deployment_duplicates_and_missing_names(f: Fixture) {
    let s = &f.store;
    let first = s.create_deployment(full_deployment("fraud"), "alice".into()).await.unwrap();
    let other = deployment_with(|d| {
        d.name = "fraud".into();
        d.model = "other".into();
    });
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

pub async fn deployment_validation_rejects_each_rule(f: Fixture) {
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
        (
            deployment_with(|d| {
                d.version = None;
                d.alias = Some("".into());
            }),
            "'alias'",
        ),
        (
            deployment_with(|d| {
                d.version = None;
                d.alias = Some("latest".into());
            }),
            "'alias'",
        ),
        (
            deployment_with(|d| {
                d.version = None;
                d.alias = Some("v1".into());
            }),
            "'alias'",
        ),
        (
            deployment_with(|d| {
                d.version = None;
                d.alias = Some("a b".into());
            }),
            "'alias'",
        ),
        (
            deployment_with(|d| {
                d.canary = Some(Split { alias: Some("a".into()), version: Some("1".into()), weight: Some(0.1) })
            }),
            "'canary.alias' and 'canary.version'",
        ),
        (
            deployment_with(|d| d.canary = Some(Split { alias: None, version: None, weight: Some(0.1) })),
            "'canary.alias' and 'canary.version'",
        ),
        (
            deployment_with(|d| d.canary = Some(Split { alias: None, version: Some("0".into()), weight: Some(0.1) })),
            "'canary.version'",
        ),
        (
            deployment_with(|d| {
                d.canary = Some(Split { alias: Some("latest".into()), version: None, weight: Some(0.1) })
            }),
            "'canary.alias'",
        ),
        (deployment_with(|d| d.canary.as_mut().unwrap().weight = None), "'canary.weight'"),
        (deployment_with(|d| d.canary.as_mut().unwrap().weight = Some(0.0)), "'canary.weight'"),
        (deployment_with(|d| d.canary.as_mut().unwrap().weight = Some(1.0)), "'canary.weight'"),
        (deployment_with(|d| d.canary.as_mut().unwrap().weight = Some(-0.5)), "'canary.weight'"),
        (deployment_with(|d| d.canary.as_mut().unwrap().weight = Some(nan)), "'canary.weight'"),
        (deployment_with(|d| d.canary.as_mut().unwrap().weight = Some(inf)), "'canary.weight'"),
        (
            deployment_with(|d| {
                d.shadow = Some(Split { alias: Some("a".into()), version: Some("1".into()), weight: None })
            }),
            "'shadow.alias' and 'shadow.version'",
        ),
        (
            deployment_with(|d| d.shadow = Some(Split { alias: None, version: None, weight: Some(0.5) })),
            "'shadow.alias' and 'shadow.version'",
        ),
        (
            deployment_with(|d| d.shadow = Some(Split { alias: None, version: Some("x".into()), weight: None })),
            "'shadow.version'",
        ),
        (
            deployment_with(|d| d.shadow = Some(Split { alias: Some("V2".into()), version: None, weight: None })),
            "'shadow.alias'",
        ),
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
        deployment_with(|d| {
            d.name = "by-alias".into();
            d.version = None;
            d.alias = Some("prod-2_\u{e9}".into());
        }),
        deployment_with(|d| {
            d.name = "max-version".into();
            d.version = Some(i64::MAX.to_string());
        }),
        deployment_with(|d| {
            d.name = "edges-low".into();
            d.canary.as_mut().unwrap().weight = Some(1e-9);
            d.log_sample = Some(0.0);
            d.max_batch_rows = Some(1);
            d.max_wait_us = Some(0);
        }),
        deployment_with(|d| {
            d.name = "edges-high".into();
            d.canary.as_mut().unwrap().weight = Some(0.999_999);
            d.shadow.as_mut().unwrap().weight = Some(1.0);
            d.log_sample = Some(1.0);
            d.max_batch_rows = Some(4096);
            d.max_wait_us = Some(100_000);
        }),
        deployment_with(|d| {
            d.name = "shadow-default".into();
            d.shadow.as_mut().unwrap().weight = None;
        }),
        deployment_with(|d| {
            d.name = "plain".into();
            d.canary = None;
            d.shadow = None;
            d.log_sample = None;
            d.max_batch_rows = None;
            d.max_wait_us = None;
        }),
    ];
    for spec in valid {
        let d = s
            .create_deployment(spec.clone(), "alice".into())
            .await
            .unwrap_or_else(|e| panic!("{spec:?} must be accepted: {e:?}"));
        assert_eq!(d.spec, spec);
        s.update_deployment(spec.clone(), "alice".into()).await.unwrap_or_else(|e| panic!("update {spec:?}: {e:?}"));
    }
    assert_eq!(s.list_deployments().await.unwrap().len(), 11);
}

pub async fn deployment_mutations_write_exact_audit_records(f: Fixture) {
    let s = &f.store;
    let created = s.create_deployment(full_deployment("fraud"), "alice".into()).await.unwrap();
    s.create_deployment(full_deployment("other"), "alice".into()).await.unwrap();
    // Refused mutations leave no record.
    assert!(s.create_deployment(full_deployment("fraud"), "mallory".into()).await.is_err());
    assert!(
        s.update_deployment(
            deployment_with(|d| {
                d.name = "fraud".into();
                d.max_wait_us = Some(u32::MAX);
            }),
            "mallory".into()
        )
        .await
        .is_err()
    );
    let replacement = deployment_with(|d| {
        d.name = "fraud".into();
        d.canary = None;
        d.version = Some("5".into());
    });
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
    let updates = s
        .audit_log(AuditQuery { action: Some("update_deployment".into()), ..AuditQuery::default() })
        .await
        .unwrap()
        .items;
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].id, log[1].id);
    let other = s.audit_log(AuditQuery { name: Some("other".into()), ..AuditQuery::default() }).await.unwrap().items;
    assert_eq!(other.iter().map(|r| r.action.as_str()).collect::<Vec<_>>(), ["create_deployment"]);
}
