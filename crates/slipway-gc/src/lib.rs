//! Garbage collection: permanently removes soft-deleted experiments, runs, logged models and
//! model versions whose deletion is older than a cut-off, with their artifacts, and the
//! pipeline-cache blobs that no run it keeps names any more.
//!
//! Artifacts go first, then the object's rows, one object per transaction: interrupted, the
//! next pass finds the same rows and finishes. Anything under a protected location (today a
//! live model version's storage location) is never removed, and a protected location in our
//! store that cannot be read stops GC before anything is removed.

use std::collections::HashSet;

use serde::Serialize;
use slipway_artifacts::{ArtifactError, ArtifactPath, Artifacts, Removal};
use slipway_store::{GcPlan, MetadataStore, StoreError};

/// Why a pass stopped; whatever it removed before stays removed, and the next pass goes on
/// from there.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// A location GC must keep cannot be placed in our store, so what to keep is unknown.
    #[error("protected artifact location '{location}'")]
    Protected {
        location: String,
        #[source]
        source: ArtifactError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Artifacts(#[from] ArtifactError),
    /// A kept run names a pipeline outs manifest that is not JSON.
    #[error("pipeline outs manifest {hash} cannot be read: {detail}")]
    Manifest { hash: String, detail: String },
}

pub type Result<T, E = GcError> = std::result::Result<T, E>;

/// What a pass removed (or, in a dry run, would remove); its JSON is what `slipway gc --json`
/// prints.
#[derive(Debug, Default, Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    pub experiments: u64,
    pub runs: u64,
    pub logged_models: u64,
    pub model_versions: u64,
    pub artifact_files: u64,
    pub artifact_bytes: u64,
    /// Pipeline-cache blobs no kept run needs any more.
    pub cache_blobs: u64,
    pub cache_bytes: u64,
    /// Artifact locations outside this server's store, left alone.
    pub skipped: Vec<String>,
}

/// Removes what was deleted more than `older_than_ms` ago from `store` and `artifacts`; a dry
/// run counts the same things and changes nothing.
pub async fn collect(
    store: &dyn MetadataStore,
    artifacts: &Artifacts,
    older_than_ms: i64,
    dry_run: bool,
) -> Result<GcReport> {
    let cutoff = slipway_store::now_ms() - older_than_ms;
    let plan = store.gc_plan(cutoff).await?;
    let keep = keep_list(&plan, artifacts)?;
    let mut report = GcReport { dry_run, ..GcReport::default() };
    let mut removed = Removal::default();

    // Removes the artifacts under one location, or notes that it is not ours to remove.
    let mut sweep = async |location: &str, report: &mut GcReport| -> Result<()> {
        match artifacts.locate(location) {
            Ok(path) if !path.is_root() => removed += artifacts.remove_tree(&path, &keep, dry_run).await?,
            _ => report.skipped.push(location.to_string()),
        }
        Ok(())
    };

    for (id, location) in &plan.experiments {
        sweep(location, &mut report).await?;
        if !dry_run {
            store.purge_experiment(id.clone()).await?;
        }
        report.experiments += 1;
    }
    for location in &plan.experiment_children {
        // Usually already swept with the experiment's folder; a run stored elsewhere is not.
        if !plan.experiments.iter().any(|(_, e)| location.starts_with(&format!("{e}/"))) {
            sweep(location, &mut report).await?;
        }
    }
    for (run_id, location) in &plan.runs {
        sweep(location, &mut report).await?;
        if !dry_run {
            store.purge_run(run_id.clone()).await?;
        }
        report.runs += 1;
    }
    for (model_id, location) in &plan.logged_models {
        sweep(location, &mut report).await?;
        if !dry_run {
            store.purge_logged_model(model_id.clone()).await?;
        }
        report.logged_models += 1;
    }
    for (name, version) in &plan.model_versions {
        if !dry_run {
            store.purge_model_version(name.clone(), *version).await?;
        }
        report.model_versions += 1;
    }
    let cache = pipeline_cache(&plan, artifacts, cutoff, dry_run).await?;
    report.cache_blobs = cache.files;
    report.cache_bytes = cache.bytes;
    report.artifact_files = removed.files;
    report.artifact_bytes = removed.bytes;
    Ok(report)
}

/// Where pipelines keep their outs, content-addressed (`slipway-cache/sha256/<ab>/<hash>`).
pub const PIPELINE_CACHE: &str = "slipway-cache/sha256";

/// Removes the pipeline-cache blobs that no kept run's outs manifest names and that are older
/// than the cut-off (a blob a running step just stored is not named by any manifest yet). A
/// manifest that cannot be read stops GC of the cache: what it names is unknown.
async fn pipeline_cache(plan: &GcPlan, artifacts: &Artifacts, cutoff: i64, dry_run: bool) -> Result<Removal> {
    let root = slipway_artifacts::sanitize(PIPELINE_CACHE).map_err(GcError::Artifacts)?;
    let mut keep: HashSet<String> = HashSet::new();
    for manifest in &plan.pipeline_manifests {
        keep.insert(manifest.clone());
        let Some(body) = read_blob(artifacts, manifest).await? else { continue };
        let parsed: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| GcError::Manifest { hash: manifest.clone(), detail: e.to_string() })?;
        for entry in parsed.as_object().into_iter().flat_map(|m| m.values()) {
            if let Some(h) = entry["hash"].as_str().filter(|_| entry["kind"] == "file") {
                keep.insert(h.to_string());
            }
            for f in entry["files"].as_array().into_iter().flatten() {
                if let Some(h) = f[1].as_str() {
                    keep.insert(h.to_string());
                }
            }
        }
    }
    artifacts.remove_unkept(&root, |name| keep.contains(name), cutoff, dry_run).await.map_err(GcError::Artifacts)
}

/// A pipeline-cache blob's bytes; `None` when it is gone (a run whose cache is already broken).
async fn read_blob(artifacts: &Artifacts, hash: &str) -> Result<Option<Vec<u8>>> {
    let Some(prefix) = hash.get(..2) else { return Ok(None) };
    let path = slipway_artifacts::sanitize(&format!("{PIPELINE_CACHE}/{prefix}/{hash}")).map_err(GcError::Artifacts)?;
    let download = match artifacts.get_stream(&path).await {
        Ok(d) => d,
        Err(ArtifactError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let chunks: Vec<bytes::Bytes> =
        futures::TryStreamExt::try_collect(download.stream).await.map_err(GcError::Artifacts)?;
    Ok(Some(chunks.concat()))
}

/// Stored locations whose trees are never removed: live model versions' storage locations.
/// Whatever else comes to read artifacts (pipeline outputs) adds its locations here.
fn protected(plan: &GcPlan) -> impl Iterator<Item = &str> {
    plan.protected.iter().map(String::as_str)
}

/// The protected locations in our store, as paths. One that cannot be read stops GC: dropping
/// it from the list could remove a registered model's files.
fn keep_list(plan: &GcPlan, artifacts: &Artifacts) -> Result<Vec<ArtifactPath>> {
    protected(plan)
        .filter(|location| artifacts.owns(location))
        .map(|location| {
            artifacts.locate(location).map_err(|source| GcError::Protected { location: location.to_string(), source })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use slipway_artifacts::PROXY_SCHEME;
    use slipway_store::sqlite::SqliteStore;
    use slipway_store::{NewModelVersion, NewRun};

    use super::*;

    async fn put(artifacts: &Artifacts, location: &str, body: &'static [u8]) {
        let path = artifacts.locate(location).unwrap();
        let body = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(body))]);
        artifacts.put_stream(&path, body).await.unwrap();
    }

    async fn exists(artifacts: &Artifacts, location: &str) -> bool {
        artifacts.get_stream(&artifacts.locate(location).unwrap()).await.is_ok()
    }

    fn version(name: &str, storage_location: &str) -> NewModelVersion {
        let location = storage_location.to_string();
        NewModelVersion {
            name: name.into(),
            source: location.clone(),
            storage_location: location,
            ..Default::default()
        }
    }

    /// A cut-off a minute ahead takes everything deleted so far, without waiting for it to age.
    const EVERYTHING: i64 = -60_000;

    #[tokio::test(flavor = "multi_thread")]
    async fn a_deleted_run_goes_but_what_a_live_version_reads_stays() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("slipway.db"), PROXY_SCHEME, 1).unwrap();
        let artifacts = Artifacts::local(dir.path().join("artifacts")).unwrap();
        let experiment_id = store.create_experiment("e".into(), None, vec![]).await.unwrap();
        let run = store.create_run(NewRun { experiment_id, ..Default::default() }).await.unwrap();
        let (run_id, root) = (run.info.run_id.clone(), run.info.artifact_uri.clone());
        put(&artifacts, &format!("{root}/out.txt"), b"hello").await;
        put(&artifacts, &format!("{root}/model/MLmodel"), b"flavors: {}").await;
        // A version registered from the run's folder, not naming the run: only its files hold.
        store.create_registered_model("m".into(), None, vec![], "test".into()).await.unwrap();
        store.create_model_version(version("m", &format!("{root}/model")), "test".into()).await.unwrap();
        store.delete_run(run_id.clone()).await.unwrap();

        let dry = collect(&store, &artifacts, EVERYTHING, true).await.unwrap();
        assert_eq!((dry.runs, dry.artifact_files, dry.artifact_bytes), (1, 1, 5), "{dry:?}");
        assert!(exists(&artifacts, &format!("{root}/out.txt")).await, "a dry run removes nothing");
        assert!(store.get_run(run_id.clone()).await.is_ok(), "a dry run removes nothing");

        let done = collect(&store, &artifacts, EVERYTHING, false).await.unwrap();
        assert_eq!((done.runs, done.artifact_files, done.artifact_bytes), (1, 1, 5), "{done:?}");
        assert!(!exists(&artifacts, &format!("{root}/out.txt")).await);
        assert!(exists(&artifacts, &format!("{root}/model/MLmodel")).await, "the live version's files stay");
        assert!(store.get_run(run_id).await.is_err());
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_unreadable_protected_location_stops_gc() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("slipway.db"), PROXY_SCHEME, 1).unwrap();
        let artifacts = Artifacts::local(dir.path().join("artifacts")).unwrap();
        let experiment_id = store.create_experiment("e".into(), None, vec![]).await.unwrap();
        let run = store.create_run(NewRun { experiment_id, ..Default::default() }).await.unwrap();
        put(&artifacts, &format!("{}/out.txt", run.info.artifact_uri), b"hello").await;
        store.delete_run(run.info.run_id.clone()).await.unwrap();
        store.create_registered_model("m".into(), None, vec![], "test".into()).await.unwrap();
        let climbing = format!("{PROXY_SCHEME}/a/../../elsewhere");
        store.create_model_version(version("m", &climbing), "test".into()).await.unwrap();

        let err = collect(&store, &artifacts, EVERYTHING, false).await.unwrap_err();
        assert!(matches!(&err, GcError::Protected { location, .. } if *location == climbing), "{err:?}");
        assert!(exists(&artifacts, &format!("{}/out.txt", run.info.artifact_uri)).await, "nothing was removed");
        assert!(store.get_run(run.info.run_id).await.is_ok(), "nothing was removed");
        store.close().await;
    }
}
