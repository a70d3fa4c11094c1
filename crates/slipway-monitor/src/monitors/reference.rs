//! A monitor's reference dataset: where it is in the artifact store, read once per file into
//! drift columns and the schema inferred from them, and kept until the monitor changes.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use futures::TryStreamExt;
use slipway_artifacts::{ArtifactError, ArtifactPath, Artifacts, sanitize};
use slipway_store::MetadataStore;
use slipway_types::{Monitor, MonitorSpec};

use super::evaluate::{column_types, reference_schema};
use crate::MonitorError;
use crate::read::{ColumnValues, NoProgress, read_file_into};
use crate::typing::DeclaredTypes;
use crate::validate::Schema;

/// A reference dataset read into drift columns, and the schema its features must keep.
#[derive(Clone)]
pub struct ReferenceData {
    pub columns: Arc<Vec<ColumnValues>>,
    pub schema: Arc<Schema>,
    /// The spec's declared column types, which the reference was read and typed under.
    pub types: Arc<DeclaredTypes>,
}

struct Cached {
    /// The resolved file and the monitor's last update: either changing reads it again.
    key: String,
    data: ReferenceData,
}

/// The references read so far, by monitor.
#[derive(Default)]
pub struct References {
    cached: Mutex<HashMap<String, Cached>>,
}

fn artifact_path(text: &str) -> Result<ArtifactPath, MonitorError> {
    Ok(sanitize(&text.replace('%', "%25"))?)
}

/// Where the monitor's reference file is in the artifact store.
async fn resolve(
    store: &dyn MetadataStore,
    artifacts: &Artifacts,
    spec: &MonitorSpec,
) -> Result<ArtifactPath, MonitorError> {
    let run_file = |run_id: String, path: String| async move {
        let run = store.get_run(run_id).await?;
        let root = artifacts.locate(&run.info.artifact_uri)?;
        Ok::<_, MonitorError>(root.join(&artifact_path(&path)?))
    };
    if let Some(uri) = &spec.reference.uri {
        if artifacts.owns(uri) {
            return Ok(artifacts.locate(uri)?);
        }
        let rest = uri.strip_prefix("runs:/").unwrap_or(uri);
        let (run_id, path) = rest
            .split_once('/')
            .ok_or_else(|| MonitorError::InvalidSpec(format!("reference uri '{uri}' must be runs:/<run_id>/<path>")))?;
        return run_file(run_id.to_string(), path.to_string()).await;
    }
    let path = spec.reference.run_artifact.clone().unwrap_or_default();
    let deployment = store.get_deployment(spec.deployment.clone()).await?.spec;
    let version = match (&deployment.alias, &deployment.version) {
        (Some(alias), _) => store.get_model_version_by_alias(deployment.model.clone(), alias.clone()).await?,
        (None, Some(v)) => store.get_model_version(deployment.model.clone(), v.clone()).await?,
        (None, None) => return Err(MonitorError::InvalidSpec("the deployment names no version".into())),
    };
    let run_id = version.run_id.filter(|r| !r.is_empty()).ok_or_else(|| {
        MonitorError::InvalidSpec(format!(
            "version {} of '{}' has no run, so 'reference.run_artifact' cannot be found; use 'reference.uri'",
            version.version, deployment.model
        ))
    })?;
    run_file(run_id, path).await
}

impl References {
    /// The monitor's reference, read once per file (and again when the monitor changes).
    pub async fn get(
        &self,
        store: &dyn MetadataStore,
        artifacts: &Artifacts,
        m: &Monitor,
    ) -> Result<ReferenceData, MonitorError> {
        let path = resolve(store, artifacts, &m.spec).await?;
        let key = format!("{path}@{}", m.last_updated_timestamp);
        if let Some(c) = self.cached.lock().unwrap_or_else(PoisonError::into_inner).get(&m.spec.name)
            && c.key == key
        {
            return Ok(c.data.clone());
        }
        let text = path.to_string();
        let unreadable =
            |why: String| MonitorError::Reference(format!("the reference file '{text}' cannot be read: {why}"));
        let download = artifacts.get_stream(&path).await.map_err(|e| match e {
            ArtifactError::NotFound(_) => {
                MonitorError::Reference(format!("the reference file '{text}' is not in the artifact store"))
            }
            other => other.into(),
        })?;
        // Readers take a file: Parquet seeks to its footer, and a reference can be larger
        // than is worth holding in memory while it is read. The file goes when dropped.
        let suffix = if text.to_ascii_lowercase().ends_with(".parquet") { ".parquet" } else { ".csv" };
        let mut local = tempfile::Builder::new()
            .prefix("slipway-reference-")
            .suffix(suffix)
            .tempfile()
            .map_err(|e| MonitorError::Internal(format!("cannot create a temporary file: {e}")))?;
        let mut stream = download.stream;
        while let Some(chunk) = stream.try_next().await? {
            local
                .write_all(&chunk)
                .map_err(|e| MonitorError::Internal(format!("cannot write a temporary file: {e}")))?;
        }
        let spec = m.spec.clone();
        let types = column_types(&spec)?;
        let data = tokio::task::spawn_blocking(move || {
            let columns = read_file_into(local.path(), None, &types, &(), &NoProgress)?;
            let schema = reference_schema(&columns, &spec, &types)?;
            Ok::<_, MonitorError>(ReferenceData {
                columns: Arc::new(columns),
                schema: Arc::new(schema),
                types: Arc::new(types),
            })
        })
        .await
        .map_err(|e| MonitorError::Internal(format!("reading the reference stopped: {e}")))?
        .map_err(|e| unreadable(e.to_string()))?;
        self.cached
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(m.spec.name.clone(), Cached { key, data: data.clone() });
        Ok(data)
    }

    pub fn forget(&self, monitor: &str) {
        self.cached.lock().unwrap_or_else(PoisonError::into_inner).remove(monitor);
    }
}
