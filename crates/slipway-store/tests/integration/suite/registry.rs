//! The model registry: versions, stages and aliases, search, the audit log, lineage, and garbage
//! collection of what was deleted.

use std::sync::Arc;

use slipway_store::{
    AuditQuery, MetadataStore, NewDatasetInput, NewLoggedModel, NewModelVersion, RegistrySearch, StoreError, now_ms,
};
use slipway_types::Dataset;

use super::{kv, metric, new_run};
use crate::Fixture;

async fn registered(s: &Arc<dyn MetadataStore>, name: &str, versions: usize) {
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

async fn registered_version(s: &Arc<dyn MetadataStore>, name: &str, run_id: Option<String>) {
    s.create_model_version(
        NewModelVersion {
            name: name.into(),
            source: "x".into(),
            storage_location: "x".into(),
            run_id,
            ..NewModelVersion::default()
        },
        "alice".into(),
    )
    .await
    .unwrap();
}

pub async fn registry_versions_stages_and_aliases(f: Fixture) {
    let s = &f.store;
    registered(s, "fraud", 3).await;
    let dup = s.create_registered_model("fraud".into(), None, vec![], "bob".into()).await.unwrap_err();
    assert!(matches!(dup, StoreError::AlreadyExists(_)));
    let v2 = s.get_model_version("fraud".into(), "2".into()).await.unwrap();
    assert_eq!((v2.version.as_str(), v2.current_stage.as_str(), v2.status.as_str()), ("2", "None", "READY"));
    assert!(matches!(s.get_model_version("fraud".into(), "x".into()).await, Err(StoreError::InvalidParameter(_))));
    assert!(matches!(s.get_model_version("fraud".into(), "9".into()).await, Err(StoreError::NotFound(_))));

    s.transition_model_version_stage("fraud".into(), "1".into(), "production".into(), false, "bob".into())
        .await
        .unwrap();
    s.transition_model_version_stage("fraud".into(), "2".into(), "Production".into(), true, "bob".into())
        .await
        .unwrap();
    assert_eq!(s.get_model_version("fraud".into(), "1".into()).await.unwrap().current_stage, "Archived");
    let latest = s.get_latest_versions("fraud".into(), vec!["Production".into()]).await.unwrap();
    assert_eq!(latest.iter().map(|v| v.version.as_str()).collect::<Vec<_>>(), ["2"]);
    assert!(
        s.transition_model_version_stage("fraud".into(), "1".into(), "Live".into(), false, "bob".into()).await.is_err()
    );

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
        NewModelVersion {
            name: "fraud".into(),
            source: "x".into(),
            storage_location: "x".into(),
            ..NewModelVersion::default()
        },
        "bob".into(),
    )
    .await
    .unwrap();
    let versions = s
        .search_model_versions(RegistrySearch { filter: Some("name = 'fraud'".into()), ..RegistrySearch::default() })
        .await
        .unwrap();
    let mut numbers: Vec<String> = versions.items.iter().map(|v| v.version.clone()).collect();
    numbers.sort();
    assert_eq!(numbers, ["1", "3", "4"]);

    let renamed = s.rename_registered_model("fraud".into(), "fraud-v2".into(), "bob".into()).await.unwrap();
    assert_eq!(renamed.name, "fraud-v2");
    assert_eq!(s.get_model_version("fraud-v2".into(), "4".into()).await.unwrap().name, "fraud-v2");
    s.delete_registered_model("fraud-v2".into(), "bob".into()).await.unwrap();
    assert!(matches!(s.get_registered_model("fraud-v2".into()).await, Err(StoreError::NotFound(_))));
}

pub async fn registry_search_filters_and_pages(f: Fixture) {
    let s = &f.store;
    for i in 0..12 {
        registered(s, &format!("model-{i:02}"), 1).await;
    }
    s.set_registered_model_tag("model-03".into(), kv("team", "risk"), "alice".into()).await.unwrap();
    let tagged = s
        .search_registered_models(RegistrySearch {
            filter: Some("tags.team = 'risk'".into()),
            ..RegistrySearch::default()
        })
        .await
        .unwrap();
    assert_eq!(tagged.items.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["model-03"]);
    let mut names = Vec::new();
    let mut token = None;
    loop {
        let page = s
            .search_registered_models(RegistrySearch {
                filter: Some("name LIKE 'model-%'".into()),
                max_results: Some(5),
                page_token: token,
                ..RegistrySearch::default()
            })
            .await
            .unwrap();
        names.extend(page.items.into_iter().map(|m| m.name));
        token = page.next_page_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(names, (0..12).map(|i| format!("model-{i:02}")).collect::<Vec<_>>());
    let v = s
        .search_model_versions(RegistrySearch {
            filter: Some("version_number >= 1 AND name = 'model-07'".into()),
            ..RegistrySearch::default()
        })
        .await
        .unwrap();
    assert_eq!(v.items.len(), 1);
    assert!(
        s.search_registered_models(RegistrySearch { filter: Some("bogus = 'x'".into()), ..RegistrySearch::default() })
            .await
            .is_err()
    );
    // The filter the MLflow client adds to hide prompts keeps models without the tag.
    s.set_registered_model_tag("model-05".into(), kv("mlflow.prompt.is_prompt", "true"), "alice".into()).await.unwrap();
    let hide_prompts = "name LIKE 'model-0%' AND tags.`mlflow.prompt.is_prompt` != 'true'";
    let visible = s
        .search_registered_models(RegistrySearch {
            filter: Some(hide_prompts.into()),
            max_results: Some(100),
            ..RegistrySearch::default()
        })
        .await
        .unwrap();
    assert_eq!(visible.items.len(), 9, "model-00..09 less the prompt");
    let versions = s
        .search_model_versions(RegistrySearch { filter: Some(hide_prompts.into()), ..RegistrySearch::default() })
        .await
        .unwrap();
    assert_eq!(versions.items.len(), 9);
}

pub async fn audit_log_records_each_mutation_with_before_and_after(f: Fixture) {
    let s = &f.store;
    registered(s, "churn", 2).await;
    s.set_alias("churn".into(), "prod".into(), "1".into(), "bob".into()).await.unwrap();
    s.set_alias("churn".into(), "prod".into(), "2".into(), "carol".into()).await.unwrap();
    s.delete_model_version("churn".into(), "1".into(), "bob".into()).await.unwrap();
    // A failed mutation leaves no record.
    assert!(s.set_alias("churn".into(), "prod".into(), "7".into(), "mallory".into()).await.is_err());
    let log = s.audit_log(AuditQuery { name: Some("churn".into()), ..AuditQuery::default() }).await.unwrap().items;
    let summary: Vec<(String, String, Option<String>)> =
        log.iter().map(|r| (r.action.clone(), r.actor.clone(), r.version.clone())).collect();
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

pub async fn lineage_follows_the_version_to_its_run_and_datasets(f: Fixture) {
    let s = &f.store;
    let mut r = new_run("0");
    r.tags = vec![kv("mlflow.source.git.commit", "abc123"), kv("mlflow.source.name", "train.py")];
    let run = s.create_run(r).await.unwrap().info.run_id;
    s.log_batch(run.clone(), vec![metric("auc", 0.9, 0)], vec![kv("depth", "4")], vec![]).await.unwrap();
    let dataset = |name: &str, digest: &str, ctx: &str| NewDatasetInput {
        dataset: Dataset {
            name: name.into(),
            digest: digest.into(),
            source_type: "local".into(),
            source: "{}".into(),
            schema: None,
            profile: None,
        },
        tags: vec![kv("mlflow.data.context", ctx)],
    };
    s.log_inputs(
        run.clone(),
        vec![dataset("train", "d-train", "training"), dataset("eval", "d-eval", "evaluation")],
        vec![],
    )
    .await
    .unwrap();
    let model = s
        .create_logged_model(NewLoggedModel {
            experiment_id: "0".into(),
            name: Some("m".into()),
            source_run_id: Some(run.clone()),
            ..NewLoggedModel::default()
        })
        .await
        .unwrap();
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

pub async fn gc_purges_only_old_deletions_and_reports_protected_locations(f: Fixture) {
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
    assert_eq!(
        s.get_model_version_by_alias("live".into(), "latest".into()).await.unwrap().version,
        "3",
        "numbers are never reused, even after a purge"
    );
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
