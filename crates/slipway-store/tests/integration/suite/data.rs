//! Dataset versions: numbering without gaps, immutability, aliases and `latest`, tags, the
//! set listing, lookups by manifest, validation and audit records.

use slipway_store::{AuditQuery, StoreError};
use slipway_types::{KeyValue, NewDataVersion};

use crate::Fixture;

fn new(name: &str, manifest: char, aliases: &[&str]) -> NewDataVersion {
    NewDataVersion {
        name: name.into(),
        manifest: manifest.to_string().repeat(64),
        files: 3,
        bytes: 300,
        rows: Some(10),
        message: Some("first cut".into()),
        tags: vec![KeyValue { key: "source".into(), value: "crm".into() }],
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
    }
}

pub async fn data_versions_number_up_and_aliases_move(f: Fixture) {
    let s = &f.store;
    assert!(s.list_data_sets().await.unwrap().is_empty());
    let v1 = s.create_data_version(new("churn", 'a', &["train"]), "alice".into()).await.unwrap();
    assert_eq!((v1.version, v1.files, v1.bytes, v1.rows), (1, 3, 300, Some(10)));
    assert_eq!((v1.created_by.as_deref(), v1.aliases.clone()), (Some("alice"), vec!["train".to_string()]));
    assert_eq!(v1.tags, [KeyValue { key: "source".into(), value: "crm".into() }]);
    let v2 = s.create_data_version(new("churn", 'b', &["train"]), "bob".into()).await.unwrap();
    assert_eq!(v2.version, 2);
    // The alias moved: version 1 no longer carries it.
    assert!(s.get_data_version("churn".into(), "1".into()).await.unwrap().aliases.is_empty());
    assert_eq!(s.get_data_version("churn".into(), "train".into()).await.unwrap().version, 2);
    assert_eq!(s.get_data_version("churn".into(), "latest".into()).await.unwrap().version, 2);
    s.set_data_alias("churn".into(), "prod".into(), 1, "alice".into()).await.unwrap();
    assert_eq!(s.get_data_version("churn".into(), "prod".into()).await.unwrap().manifest, "a".repeat(64));
    s.delete_data_alias("churn".into(), "prod".into(), "alice".into()).await.unwrap();
    let gone = s.delete_data_alias("churn".into(), "prod".into(), "alice".into()).await;
    assert!(matches!(gone, Err(StoreError::NotFound(_))), "{gone:?}");
    let tagged = s.set_data_tag("churn".into(), 1, "reviewed".into(), "yes".into(), "carol".into()).await.unwrap();
    assert_eq!(tagged.tags.len(), 2);

    let versions: Vec<i64> = s.list_data_versions("churn".into()).await.unwrap().iter().map(|v| v.version).collect();
    assert_eq!(versions, [2, 1]);
    s.create_data_version(new("images", 'a', &[]), "alice".into()).await.unwrap();
    let sets = s.list_data_sets().await.unwrap();
    let summary: Vec<(&str, i64, Option<i64>)> =
        sets.iter().map(|d| (d.name.as_str(), d.versions, d.latest.as_ref().map(|v| v.version))).collect();
    assert_eq!(summary, [("churn", 2, Some(2)), ("images", 1, Some(1))]);
    let same: Vec<(String, i64)> =
        s.data_versions_by_manifest("a".repeat(64)).await.unwrap().into_iter().map(|v| (v.name, v.version)).collect();
    assert_eq!(same, [("churn".to_string(), 1), ("images".to_string(), 1)]);

    for (name, which) in [("churn", "3"), ("churn", "nope"), ("nothing", "latest"), ("churn", "-1")] {
        let r = s.get_data_version(name.into(), which.into()).await;
        assert!(matches!(r, Err(StoreError::NotFound(_))), "{name}@{which}: {r:?}");
    }
    let r = s.set_data_alias("churn".into(), "x".into(), 9, "a".into()).await;
    assert!(matches!(r, Err(StoreError::NotFound(_))), "{r:?}");

    let log = s.audit_log(AuditQuery { name: Some("churn".into()), ..AuditQuery::default() }).await.unwrap().items;
    let actions: Vec<&str> = log.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions,
        ["create_data_version", "create_data_version", "set_data_alias", "delete_data_alias", "set_data_tag"]
    );
}

pub async fn data_version_input_is_checked_before_anything_is_written(f: Fixture) {
    let s = &f.store;
    let mut bad_manifest = new("ok", 'a', &[]);
    bad_manifest.manifest = "../../etc".into();
    let mut bad_alias = new("ok", 'a', &["latest"]);
    bad_alias.aliases = vec!["latest".into()];
    let mut numeric_alias = new("ok", 'a', &[]);
    numeric_alias.aliases = vec!["7".into()];
    let mut long_message = new("ok", 'a', &[]);
    long_message.message = Some("m".repeat(5001));
    for bad in [
        new("", 'a', &[]),
        new("../x", 'a', &[]),
        new("a b", 'a', &[]),
        bad_manifest,
        bad_alias,
        numeric_alias,
        long_message,
    ] {
        let r = s.create_data_version(bad.clone(), "a".into()).await;
        assert!(matches!(r, Err(StoreError::InvalidParameter(_))), "{bad:?}: {r:?}");
    }
    assert!(s.list_data_sets().await.unwrap().is_empty(), "nothing half-written");
}
