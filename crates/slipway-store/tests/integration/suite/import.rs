//! `ImportStore` on every backend: ids kept, history exact, a repeat changes nothing, a
//! collision is refused whole.

use slipway_store::import::{
    Imported, ImportedExperiment, ImportedInput, ImportedLoggedModel, ImportedModelLink, ImportedRegisteredModel,
    ImportedRun, ImportedVersion, Outcome,
};
use slipway_store::{AuditQuery, StoreError};
use slipway_types::Metric;

use super::kv;
use crate::Fixture;

fn experiment(id: i64, name: &str) -> Imported {
    Imported::Experiment(ImportedExperiment {
        id,
        name: name.into(),
        artifact_location: format!("mlflow-artifacts:/{id}"),
        lifecycle_stage: "active".into(),
        creation_time: 100,
        last_update_time: 200,
        tags: vec![kv("team", "fraud")],
    })
}

fn point(key: &str, value: f64, step: i64, timestamp: i64) -> Metric {
    Metric {
        key: key.into(),
        value,
        timestamp,
        step,
        dataset_name: None,
        dataset_digest: None,
        model_id: None,
        run_id: None,
    }
}

fn run(id: &str, experiment_id: i64) -> ImportedRun {
    ImportedRun {
        run_id: id.into(),
        experiment_id,
        name: "imported-run".into(),
        user_id: "ana".into(),
        status: "FINISHED".into(),
        start_time: 1_000,
        end_time: Some(2_000),
        lifecycle_stage: "active".into(),
        deleted_time: None,
        artifact_uri: format!("mlflow-artifacts:/{experiment_id}/{id}/artifacts"),
        // MLflow allowed 8,000-character params in its database: stored facts pass as they are.
        params: vec![kv("alpha", "0.5"), kv("long", &"x".repeat(8000))],
        tags: vec![kv("mlflow.runName", "imported-run"), kv("stage", "a")],
        metrics: vec![
            point("loss", 0.9, 0, 10),
            point("loss", f64::NAN, 1, 11),
            point("loss", 0.4, 2, 12),
            point("loss", 1.7976931348623157e308, 3, 9),
        ],
        inputs: vec![ImportedInput {
            input_uuid: "input-1".into(),
            dataset_uuid: "dataset-1".into(),
            name: "train".into(),
            digest: "abc123".into(),
            source_type: "local".into(),
            source: "{\"uri\": \"/data/train.csv\"}".into(),
            schema: None,
            profile: Some("{\"num_rows\": 10}".into()),
            tags: vec![kv("mlflow.data.context", "training")],
        }],
        model_links: vec![ImportedModelLink {
            model_id: "m-0123456789abcdef0123456789abcdef".into(),
            output: true,
            step: 3,
        }],
    }
}

fn logged_model(experiment_id: i64, run_id: &str) -> Imported {
    Imported::LoggedModel(ImportedLoggedModel {
        model_id: "m-0123456789abcdef0123456789abcdef".into(),
        experiment_id,
        name: "clf".into(),
        artifact_location: format!(
            "mlflow-artifacts:/{experiment_id}/models/m-0123456789abcdef0123456789abcdef/artifacts"
        ),
        creation_time: 1_500,
        last_updated_time: 1_600,
        status: "LOGGED_MODEL_READY".into(),
        lifecycle_stage: "active".into(),
        model_type: None,
        source_run_id: Some(run_id.into()),
        status_message: None,
        params: vec![kv("depth", "3")],
        tags: vec![kv("mlflow.user", "ana")],
        metrics: vec![Metric { run_id: Some(run_id.into()), ..point("accuracy", 0.93, 3, 12) }],
    })
}

fn version(n: i64, stage: &str) -> ImportedVersion {
    ImportedVersion {
        version: n,
        creation_time: 3_000 + n,
        last_updated_time: 3_100 + n,
        user_id: None,
        current_stage: stage.into(),
        description: Some(format!("v{n}")),
        source: "models:/m-0123456789abcdef0123456789abcdef".into(),
        storage_location: "mlflow-artifacts:/7/models/m-0123456789abcdef0123456789abcdef/artifacts".into(),
        run_id: None,
        run_link: None,
        model_id: Some("m-0123456789abcdef0123456789abcdef".into()),
        status: "READY".into(),
        status_message: None,
        tags: vec![kv("validated", "yes")],
    }
}

fn registered_model() -> Imported {
    Imported::RegisteredModel(ImportedRegisteredModel {
        name: "fraud".into(),
        creation_time: 2_900,
        last_updated_time: 3_200,
        description: Some("imported".into()),
        tags: vec![kv("owner", "risk")],
        // Version 3 was deleted in the source: its number stays taken.
        versions: vec![version(1, "None"), version(2, "Production"), version(3, "Deleted_Internal")],
        aliases: vec![("champion".into(), 2)],
    })
}

pub async fn import_keeps_ids_and_a_repeat_changes_nothing(f: Fixture) {
    let (s, i) = (&f.store, &f.import);
    let run_id = "0123456789abcdef0123456789abcdef";
    let items = || {
        vec![
            experiment(0, "Default"),
            experiment(7, "imported"),
            Imported::Run(Box::new(run(run_id, 7))),
            logged_model(7, run_id),
            registered_model(),
        ]
    };
    let mut first = Vec::new();
    for item in items() {
        first.push(i.import(item, "importer".into()).await.unwrap());
    }
    // Experiment 0 exists in every store: the source's merges into it.
    assert_eq!(first, [Outcome::Updated, Outcome::Created, Outcome::Created, Outcome::Created, Outcome::Created]);
    i.finish_import().await.unwrap();

    let e = s.get_experiment("7".into()).await.unwrap();
    assert_eq!(
        (e.name.as_str(), e.creation_time, e.artifact_location.as_str()),
        ("imported", 100, "mlflow-artifacts:/7")
    );
    let r = s.get_run(run_id.into()).await.unwrap();
    assert_eq!((r.info.status.as_str(), r.info.end_time, r.info.user_id.as_str()), ("FINISHED", Some(2_000), "ana"));
    assert_eq!(r.data.params.iter().find(|p| p.key == "long").unwrap().value.len(), 8000);
    // The latest value follows (step, timestamp, value), as MLflow's.
    assert_eq!(r.data.metrics[0].value, 1.7976931348623157e308);
    let history = s.get_metric_history(run_id.into(), "loss".into(), None, None).await.unwrap();
    assert_eq!(history.items.len(), 4);
    assert!(history.items.iter().any(|m| m.value.is_nan()));
    let inputs = r.inputs.dataset_inputs;
    assert_eq!((inputs[0].dataset.name.as_str(), inputs[0].dataset.digest.as_str()), ("train", "abc123"));
    assert_eq!(r.outputs.model_outputs[0].step, 3);
    let m = s.get_logged_model("m-0123456789abcdef0123456789abcdef".into(), false).await.unwrap();
    assert_eq!((m.info.status.as_str(), m.info.creation_timestamp_ms), ("LOGGED_MODEL_READY", 1_500));
    let accuracy = &m.data.metrics[0];
    assert_eq!((accuracy.key.as_str(), accuracy.value, accuracy.run_id.as_deref()), ("accuracy", 0.93, Some(run_id)));
    let champion = s.get_model_version_by_alias("fraud".into(), "champion".into()).await.unwrap();
    assert_eq!((champion.version.as_str(), champion.current_stage.as_str()), ("2", "Production"));
    assert!(matches!(s.get_model_version("fraud".into(), "3".into()).await, Err(StoreError::NotFound(_))));
    let audit = s.audit_log(AuditQuery { name: Some("fraud".into()), ..AuditQuery::default() }).await.unwrap();
    assert_eq!(
        (audit.items.len(), audit.items[0].action.as_str(), audit.items[0].actor.as_str()),
        (1, "import", "importer")
    );

    let mut second = Vec::new();
    for item in items() {
        second.push(i.import(item, "importer".into()).await.unwrap());
    }
    assert_eq!(second, vec![Outcome::Unchanged; 5]);
    let audit = s.audit_log(AuditQuery { name: Some("fraud".into()), ..AuditQuery::default() }).await.unwrap();
    assert_eq!(audit.items.len(), 1, "an unchanged import writes no audit record");

    // New objects continue after the imported ids; deleted version numbers are never reused.
    let next = s.create_experiment("after-import".into(), None, vec![]).await.unwrap();
    assert_eq!(next, "8");
    let v4 = s
        .create_model_version(
            slipway_store::NewModelVersion {
                name: "fraud".into(),
                source: "runs:/0123456789abcdef0123456789abcdef/model".into(),
                storage_location: "mlflow-artifacts:/7/0123456789abcdef0123456789abcdef/artifacts/model".into(),
                ..Default::default()
            },
            "ana".into(),
        )
        .await
        .unwrap();
    assert_eq!(v4.version, "4");

    // A changed source updates; an id or name held by something else is refused whole.
    let mut changed = run(run_id, 7);
    changed.status = "FAILED".into();
    changed.metrics.push(point("loss", 0.1, 4, 13));
    assert_eq!(i.import(Imported::Run(Box::new(changed)), "importer".into()).await.unwrap(), Outcome::Updated);
    assert_eq!(s.get_run(run_id.into()).await.unwrap().data.metrics[0].value, 0.1);
    // A long history's later parts: new points update, a repeat does not, an unknown run conflicts.
    let more = || Imported::RunMetrics { run_id: run_id.into(), metrics: vec![point("loss", 0.05, 5, 14)] };
    assert_eq!(i.import(more(), "importer".into()).await.unwrap(), Outcome::Updated);
    assert_eq!(i.import(more(), "importer".into()).await.unwrap(), Outcome::Unchanged);
    assert_eq!(s.get_run(run_id.into()).await.unwrap().data.metrics[0].value, 0.05);
    let stray = Imported::RunMetrics { run_id: "fedcba9876543210fedcba9876543210".into(), metrics: vec![] };
    assert!(matches!(i.import(stray, "importer".into()).await.unwrap(), Outcome::Conflict(_)));
    // A registered model that Slipway's users made is not the source's, whatever its name.
    s.create_registered_model("native".into(), None, vec![], "ana".into()).await.unwrap();
    let Imported::RegisteredModel(mut native) = registered_model() else { unreachable!() };
    native.name = "native".into();
    let clash = i.import(Imported::RegisteredModel(native), "importer".into()).await.unwrap();
    assert!(matches!(clash, Outcome::Conflict(ref why) if why.contains("no import wrote")), "{clash:?}");
    assert!(s.get_model_version("native".into(), "1".into()).await.is_err());
    let clash = i.import(experiment(8, "someone-else"), "importer".into()).await.unwrap();
    assert!(matches!(clash, Outcome::Conflict(ref why) if why.contains("after-import")), "{clash:?}");
    let clash = i.import(experiment(9, "imported"), "importer".into()).await.unwrap();
    assert!(matches!(clash, Outcome::Conflict(_)), "{clash:?}");
    let orphan = i.import(Imported::Run(Box::new(run("fedcba9876543210fedcba9876543210", 42))), "importer".into());
    assert!(matches!(orphan.await.unwrap(), Outcome::Conflict(_)));
    assert!(s.get_run("fedcba9876543210fedcba9876543210".into()).await.is_err());
    let moved = i.import(Imported::Run(Box::new(run(run_id, 8))), "importer".into()).await.unwrap();
    assert!(matches!(moved, Outcome::Conflict(_)), "{moved:?}");
    assert_eq!(s.get_run(run_id.into()).await.unwrap().info.experiment_id, "7");
}
