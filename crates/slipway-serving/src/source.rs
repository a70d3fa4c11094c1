//! Where models come from. A [`ModelSource`] names the version an alias or `latest` means
//! now and puts a version's model directory on local disk for ONNX Runtime. In the server it
//! is the metadata store and artifact root in process ([`StoreSource`]); `slipway serve`
//! talks to a tracking server over HTTP, or serves a local directory ([`LocalSource`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use slipway_artifacts::{ArtifactError, ArtifactPath, Artifacts, sanitize};
use slipway_store::{MetadataStore, StoreError};
use tokio::io::AsyncWriteExt;

use crate::ServingError;

/// Which version of a registered model.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Selector {
    Alias(String),
    Version(String),
    /// The highest live version.
    Latest,
}

impl Selector {
    /// `@alias`, a version number, or an alias name.
    pub fn parse(s: &str) -> Selector {
        match s.strip_prefix('@') {
            Some(alias) => Selector::Alias(alias.to_string()),
            None if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => Selector::Version(s.to_string()),
            None if s == "latest" => Selector::Latest,
            None => Selector::Alias(s.to_string()),
        }
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selector::Alias(a) => write!(f, "@{a}"),
            Selector::Version(v) => write!(f, "version {v}"),
            Selector::Latest => f.write_str("latest"),
        }
    }
}

#[async_trait]
pub trait ModelSource: Send + Sync + 'static {
    /// The version `selector` names now.
    async fn resolve(&self, model: &str, selector: &Selector) -> Result<String, ServingError>;
    /// Makes the version's model directory readable on local disk: fills `scratch` (an empty
    /// directory it may use) and returns the directory that holds the `MLmodel` file.
    async fn fetch(&self, model: &str, version: &str, scratch: &Path) -> Result<PathBuf, ServingError>;
}

impl From<StoreError> for ServingError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) | StoreError::InvalidParameter(m) => ServingError::NotFound(m),
            StoreError::AlreadyExists(m) | StoreError::InvalidState(m) => ServingError::NotServable(m),
            StoreError::Conflict(m) => ServingError::Unavailable(m),
            StoreError::Backend(detail) => {
                tracing::error!(%detail, "metadata store failure while serving");
                ServingError::Unavailable("the metadata store is unavailable".into())
            }
        }
    }
}

impl From<ArtifactError> for ServingError {
    fn from(e: ArtifactError) -> Self {
        match e {
            ArtifactError::NotFound(m) | ArtifactError::InvalidPath(m) => ServingError::NotServable(m),
            ArtifactError::Backend(detail) | ArtifactError::Upload(detail) => {
                tracing::error!(%detail, "artifact store failure while serving");
                ServingError::Unavailable("the artifact store is unavailable".into())
            }
        }
    }
}

/// The registry and artifact root of this process.
pub struct StoreSource {
    pub store: Arc<dyn MetadataStore>,
    pub artifacts: Artifacts,
}

#[async_trait]
impl ModelSource for StoreSource {
    async fn resolve(&self, model: &str, selector: &Selector) -> Result<String, ServingError> {
        let not_found = |what: String| ServingError::NotFound(format!("registered model '{model}' has no {what}"));
        match selector {
            Selector::Alias(alias) => {
                self.store.get_model_version_by_alias(model.into(), alias.clone()).await.map(|v| v.version).map_err(
                    |e| match e {
                        StoreError::Backend(_) => e.into(),
                        _ => not_found(format!("alias '{alias}'")),
                    },
                )
            }
            Selector::Version(v) => {
                self.store.get_model_version(model.into(), v.clone()).await.map(|v| v.version).map_err(|e| match e {
                    StoreError::Backend(_) => e.into(),
                    _ => not_found(format!("version {v}")),
                })
            }
            Selector::Latest => {
                let versions = self.store.get_latest_versions(model.into(), Vec::new()).await?;
                versions
                    .iter()
                    .filter_map(|v| v.version.parse::<u64>().ok())
                    .max()
                    .map(|v| v.to_string())
                    .ok_or_else(|| not_found("live versions".into()))
            }
        }
    }

    async fn fetch(&self, model: &str, version: &str, scratch: &Path) -> Result<PathBuf, ServingError> {
        let mv = self.store.get_model_version(model.into(), version.into()).await?;
        let root = self.artifacts.locate(&mv.storage_location)?;
        download_tree(&self.artifacts, &root, scratch).await?;
        Ok(scratch.to_path_buf())
    }
}

/// Copies every file under `root` into `dest`, keeping relative paths.
async fn download_tree(artifacts: &Artifacts, root: &ArtifactPath, dest: &Path) -> Result<(), ServingError> {
    let prefix = root.to_string();
    let mut dirs = vec![root.clone()];
    let mut files = 0;
    while let Some(dir) = dirs.pop() {
        for entry in artifacts.list(&dir).await? {
            let path = sanitize(&entry.path.replace('%', "%25"))?;
            if entry.is_dir {
                dirs.push(path);
                continue;
            }
            let rel = entry.path.strip_prefix(&prefix).unwrap_or(&entry.path).trim_start_matches('/');
            let target = dest.join(rel);
            if let Some(parent) = target.parent() {
                tokio::fs::create_dir_all(parent).await.map_err(|e| io_failure(&target, e))?;
            }
            let mut download = artifacts.get_stream(&path).await?;
            let mut file = tokio::fs::File::create(&target).await.map_err(|e| io_failure(&target, e))?;
            while let Some(chunk) = download.stream.next().await {
                file.write_all(&chunk?).await.map_err(|e| io_failure(&target, e))?;
            }
            file.flush().await.map_err(|e| io_failure(&target, e))?;
            files += 1;
        }
    }
    if files == 0 {
        return Err(ServingError::NotServable(format!("the model version's location '{prefix}' holds no files")));
    }
    Ok(())
}

fn io_failure(path: &Path, e: std::io::Error) -> ServingError {
    tracing::error!(path = %path.display(), error = %e, "cannot write a model file");
    ServingError::Unavailable("cannot write the model to the local cache".into())
}

/// One model directory on local disk, served as version 1 of the name it is given.
pub struct LocalSource {
    pub dir: PathBuf,
}

#[async_trait]
impl ModelSource for LocalSource {
    async fn resolve(&self, _model: &str, selector: &Selector) -> Result<String, ServingError> {
        match selector {
            Selector::Version(v) if v != "1" => {
                Err(ServingError::NotFound(format!("a local model has only version 1, not {v}")))
            }
            _ => Ok("1".into()),
        }
    }

    async fn fetch(&self, _model: &str, _version: &str, _scratch: &Path) -> Result<PathBuf, ServingError> {
        Ok(self.dir.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_parse() {
        assert_eq!(Selector::parse("@champion"), Selector::Alias("champion".into()));
        assert_eq!(Selector::parse("3"), Selector::Version("3".into()));
        assert_eq!(Selector::parse("latest"), Selector::Latest);
        assert_eq!(Selector::parse("prod"), Selector::Alias("prod".into()));
    }
}
