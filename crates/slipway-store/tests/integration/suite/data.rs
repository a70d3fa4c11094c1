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

fn queue(name: &str, lease_seconds: i64) -> slipway_types::LabelQueue {
    slipway_types::LabelQueue {
        name: name.into(),
        deployment: "fraud".into(),
        mode: "manual".into(),
        rate: None,
        threshold: None,
        labels: vec!["fraud".into(), "ok".into()],
        lease_seconds,
        created_ms: 0,
        fed_ms: None,
        counts: Default::default(),
    }
}

pub async fn a_label_item_is_leased_to_one_labeller_and_labelled_once_into_ground_truth(f: Fixture) {
    use slipway_types::NewLabelItem;
    let s = &f.store;
    s.create_label_queue(queue("review", 60), "alice".into()).await.unwrap();
    let dup = s.create_label_queue(queue("review", 60), "alice".into()).await;
    assert!(matches!(dup, Err(StoreError::AlreadyExists(_))), "{dup:?}");
    let mut bad = queue("x", 0);
    assert!(matches!(s.create_label_queue(bad.clone(), "a".into()).await, Err(StoreError::InvalidParameter(_))));
    bad.lease_seconds = 5;
    bad.mode = "sample".into();
    assert!(matches!(s.create_label_queue(bad, "a".into()).await, Err(StoreError::InvalidParameter(_))), "no rate");

    let item = |req: &str, row: i64| NewLabelItem {
        request_id: req.into(),
        row,
        inputs: serde_json::json!({"amount": row}),
        prediction: Some(serde_json::json!(0.4)),
    };
    assert_eq!(s.offer_label_items("review".into(), vec![item("r1", 0), item("r2", 1)]).await.unwrap(), 2);
    assert_eq!(s.offer_label_items("review".into(), vec![item("r1", 0)]).await.unwrap(), 0, "offered twice, kept once");
    for bad in [item("r", -1), item("r", 100_001), item("", 0)] {
        let r = s.offer_label_items("review".into(), vec![bad]).await;
        assert!(matches!(r, Err(StoreError::InvalidParameter(_))), "{r:?}");
    }
    let missing = s.offer_label_items("nope".into(), vec![item("r", 0)]).await;
    assert!(matches!(missing, Err(StoreError::NotFound(_))), "{missing:?}");

    let a = s.lease_label_item("review".into(), "ann".into(), "t-ann".into()).await.unwrap().unwrap();
    let b = s.lease_label_item("review".into(), "ben".into(), "t-ben".into()).await.unwrap().unwrap();
    assert_ne!(a.item_id, b.item_id, "two labellers never hold one item");
    assert!(s.lease_label_item("review".into(), "cy".into(), "t-cy".into()).await.unwrap().is_none());
    assert_eq!(s.get_label_queue("review".into()).await.unwrap().counts.leased, 2);

    let stolen = s.label_item("review".into(), a.item_id, "t-ben".into(), serde_json::json!("ok"), "ben".into()).await;
    assert!(matches!(stolen, Err(StoreError::InvalidState(_))), "{stolen:?}");
    let off_list =
        s.label_item("review".into(), a.item_id, "t-ann".into(), serde_json::json!("maybe"), "ann".into()).await;
    assert!(matches!(off_list, Err(StoreError::InvalidParameter(_))), "{off_list:?}");
    let done = s
        .label_item("review".into(), a.item_id, "t-ann".into(), serde_json::json!("fraud"), "ann".into())
        .await
        .unwrap();
    assert_eq!((done.state.as_str(), done.labeller.as_deref()), ("labelled", Some("ann")));
    let again = s.label_item("review".into(), a.item_id, "t-ann".into(), serde_json::json!("ok"), "ann".into()).await;
    assert!(matches!(again, Err(StoreError::InvalidState(_))), "labelled once: {again:?}");
    let unknown = s.label_item("review".into(), 999, "t".into(), serde_json::json!("ok"), "ann".into()).await;
    assert!(matches!(unknown, Err(StoreError::NotFound(_))), "{unknown:?}");

    // The label is the deployment's ground truth for the request, at the item's row.
    s.label_item("review".into(), b.item_id, "t-ben".into(), serde_json::json!("ok"), "ben".into()).await.unwrap();
    let truth = s.get_ground_truth("fraud".into(), vec!["r1".into(), "r2".into()]).await.unwrap();
    let labels: Vec<Vec<serde_json::Value>> = truth.into_iter().map(|g| g.labels).collect();
    assert_eq!(labels, [vec![serde_json::json!("fraud")], vec![serde_json::Value::Null, serde_json::json!("ok")]]);
    assert_eq!(s.labelled_items("review".into()).await.unwrap().len(), 2);
}

pub async fn an_expired_lease_returns_its_item_to_the_queue(f: Fixture) {
    use slipway_types::NewLabelItem;
    let s = &f.store;
    s.create_label_queue(queue("quick", 1), "alice".into()).await.unwrap();
    let one = NewLabelItem { request_id: "r".into(), row: 0, inputs: serde_json::json!([1]), prediction: None };
    s.offer_label_items("quick".into(), vec![one]).await.unwrap();
    let first = s.lease_label_item("quick".into(), "gone".into(), "t1".into()).await.unwrap().unwrap();
    assert!(s.lease_label_item("quick".into(), "next".into(), "t2".into()).await.unwrap().is_none());
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let second = s.lease_label_item("quick".into(), "next".into(), "t2".into()).await.unwrap().unwrap();
    assert_eq!(second.item_id, first.item_id);
    let late = s.label_item("quick".into(), first.item_id, "t1".into(), serde_json::json!("ok"), "gone".into()).await;
    assert!(matches!(late, Err(StoreError::InvalidState(_))), "the first lease ran out: {late:?}");
    s.label_item("quick".into(), first.item_id, "t2".into(), serde_json::json!("ok"), "next".into()).await.unwrap();
}

/// Labellers racing on one queue (threads, and on PostgreSQL separate sessions): every item is
/// leased to exactly one of them.
pub async fn concurrent_labellers_never_share_an_item(f: Fixture) {
    use slipway_types::NewLabelItem;
    let s = f.store.clone();
    s.create_label_queue(queue("race", 60), "alice".into()).await.unwrap();
    let items: Vec<NewLabelItem> = (0..200)
        .map(|i| NewLabelItem { request_id: format!("r{i}"), row: 0, inputs: serde_json::json!(i), prediction: None })
        .collect();
    s.offer_label_items("race".into(), items).await.unwrap();
    let mut tasks = Vec::new();
    for who in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(it) = s.lease_label_item("race".into(), format!("l{who}"), format!("t{who}")).await.unwrap()
            {
                got.push(it.item_id);
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (1..=200).collect::<Vec<i64>>());
}
