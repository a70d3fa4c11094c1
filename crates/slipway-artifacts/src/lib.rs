//! Artifact roots over `object_store`: the one path sanitiser and streaming transfer.
//!
//! Every artifact path that arrives from a client goes through [`sanitize`] before it touches
//! a store; nothing here assumes a file system except the extra symlink guard that only a
//! local root needs.

mod sanitize;

pub use sanitize::{ArtifactPath, sanitize};

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};

/// Errors of artifact operations; the HTTP layer maps each to a status.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("{0}")]
    InvalidPath(String),
    #[error("{0}")]
    NotFound(String),
    /// A backend failure; its text is for the log, not for clients.
    #[error("artifact backend failure: {0}")]
    Backend(String),
    /// The client's body stream broke off; nothing was stored.
    #[error("upload aborted: {0}")]
    Upload(String),
}

impl From<object_store::Error> for ArtifactError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { path, .. } => {
                ArtifactError::NotFound(format!("artifact '{path}' not found"))
            }
            other => ArtifactError::Backend(other.to_string()),
        }
    }
}

pub type Result<T, E = ArtifactError> = std::result::Result<T, E>;

/// Bytes read per ranged request when streaming a download.
const DOWNLOAD_CHUNK: u64 = 4 << 20;
/// Bytes per uploaded part, and parts in flight: bounds an upload's memory to a few parts.
const UPLOAD_PART: usize = 4 << 20;
const UPLOAD_PARTS_IN_FLIGHT: usize = 2;

/// The URI scheme of artifacts proxied through the server: `mlflow-artifacts:/<path>` (or
/// `mlflow-artifacts://host:port/<path>`, naming the same server) is `<path>` in the root.
pub const PROXY_SCHEME: &str = "mlflow-artifacts:";

/// The place in the artifact root that a proxied artifact URI names, through the sanitiser.
pub fn proxied_path(uri: &str) -> Result<ArtifactPath> {
    let rest = uri
        .strip_prefix(PROXY_SCHEME)
        .ok_or_else(|| ArtifactError::InvalidPath(format!("artifact location '{uri}' is not served by this server")))?;
    let rest = match rest.strip_prefix("//") {
        Some(with_host) => with_host.split_once('/').map_or("", |(_, p)| p),
        None => rest.trim_start_matches('/'),
    };
    // The URI is already decoded text: keep '%' literal so the sanitiser sees it once.
    sanitize(&rest.replace('%', "%25"))
}

/// What a tree removal took away (or, in a dry run, would take).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removal {
    pub files: u64,
    pub bytes: u64,
}

impl std::ops::AddAssign for Removal {
    fn add_assign(&mut self, o: Removal) {
        self.files += o.files;
        self.bytes += o.bytes;
    }
}

/// One entry of a directory listing, with its path relative to the listed directory's root.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub path: String,
    pub is_dir: bool,
    pub size: Option<u64>,
}

/// A downloadable object: its size and a stream of its bytes.
pub struct Download {
    pub size: u64,
    pub stream: BoxStream<'static, Result<Bytes>>,
}

/// An artifact root: a store and, for local disk, the directory it lives in.
#[derive(Clone)]
pub struct Artifacts {
    store: Arc<dyn ObjectStore>,
    local_root: Option<PathBuf>,
}

impl Artifacts {
    /// A root on local disk; the directory is created if missing.
    pub fn local(root: impl Into<PathBuf>) -> Result<Self> {
        let root: PathBuf = root.into();
        std::fs::create_dir_all(&root)
            .map_err(|e| ArtifactError::Backend(format!("create {}: {e}", root.display())))?;
        let root =
            root.canonicalize().map_err(|e| ArtifactError::Backend(format!("resolve {}: {e}", root.display())))?;
        let store = LocalFileSystem::new_with_prefix(&root)?.with_automatic_cleanup(true);
        Ok(Self { store: Arc::new(store), local_root: Some(root) })
    }

    /// Any other `object_store` backend (S3, memory, ...).
    pub fn from_store(store: Arc<dyn ObjectStore>) -> Self {
        Self { store, local_root: None }
    }

    /// On local disk a symlink inside the root could point outside it: refuse any path whose
    /// existing components include one.
    fn guard_symlinks(&self, path: &ArtifactPath) -> Result<()> {
        let Some(root) = &self.local_root else { return Ok(()) };
        let mut cur = root.clone();
        for seg in path.segments() {
            cur.push(seg);
            match std::fs::symlink_metadata(&cur) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(ArtifactError::InvalidPath(format!("artifact path '{path}' crosses a symbolic link")));
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        Ok(())
    }

    fn object(&self, path: &ArtifactPath) -> Result<ObjectPath> {
        self.guard_symlinks(path)?;
        Ok(path.to_object_path())
    }

    /// Streams `body` into `path`. The object appears only when the whole body arrived: a
    /// broken upload leaves nothing behind (local disk writes a temporary file and renames it).
    pub async fn put_stream<S, E>(&self, path: &ArtifactPath, mut body: S) -> Result<u64>
    where
        S: futures::Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        if path.is_root() {
            return Err(ArtifactError::InvalidPath("an artifact upload needs a file path".into()));
        }
        let location = self.object(path)?;
        let upload = self.store.put_multipart(&location).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, UPLOAD_PART);
        let mut total = 0u64;
        loop {
            match body.next().await {
                None => break,
                Some(Ok(chunk)) => {
                    total += chunk.len() as u64;
                    // Bounded memory: wait until in-flight parts drain before taking more.
                    if let Err(e) = writer.wait_for_capacity(UPLOAD_PARTS_IN_FLIGHT).await {
                        let _ = writer.abort().await;
                        return Err(e.into());
                    }
                    writer.write(&chunk);
                }
                Some(Err(e)) => {
                    let _ = writer.abort().await;
                    return Err(ArtifactError::Upload(e.to_string()));
                }
            }
        }
        writer.finish().await?;
        Ok(total)
    }

    pub async fn get_stream(&self, path: &ArtifactPath) -> Result<Download> {
        if path.is_root() {
            return Err(ArtifactError::InvalidPath("an artifact download needs a file path".into()));
        }
        let location = self.object(path)?;
        let size = self.store.head(&location).await?.size;
        // Ranged reads of a few MiB each: bounded memory on every backend, and far fewer
        // round trips than the local store's 8 KiB stream chunks.
        let store = self.store.clone();
        let stream = futures::stream::try_unfold(0u64, move |start| {
            let store = store.clone();
            let location = location.clone();
            async move {
                if start >= size {
                    return Ok(None);
                }
                let end = (start + DOWNLOAD_CHUNK).min(size);
                let bytes = store.get_range(&location, start..end).await?;
                Ok(Some((bytes, end)))
            }
        })
        .boxed();
        Ok(Download { size, stream })
    }

    /// Lists the direct children of a directory; names are relative to the artifact root.
    pub async fn list(&self, dir: &ArtifactPath) -> Result<Vec<Entry>> {
        let prefix = self.object(dir)?;
        let prefix_opt = (!dir.is_root()).then_some(&prefix);
        let listed = self.store.list_with_delimiter(prefix_opt).await?;
        let mut out: Vec<Entry> = listed
            .common_prefixes
            .into_iter()
            .map(|p| Entry { path: p.to_string(), is_dir: true, size: None })
            .chain(listed.objects.into_iter().map(|o| Entry {
                path: o.location.to_string(),
                is_dir: false,
                size: Some(o.size),
            }))
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Removes every object under `dir` except those under one of `keep`. With `dry_run` it
    /// only counts. Removing what is already gone is not an error, so an interrupted removal
    /// can simply be run again.
    pub async fn remove_tree(&self, dir: &ArtifactPath, keep: &[ArtifactPath], dry_run: bool) -> Result<Removal> {
        if dir.is_root() {
            return Err(ArtifactError::InvalidPath("refusing to remove the artifact root".into()));
        }
        let prefix = self.object(dir)?;
        let keep: Vec<String> = keep.iter().map(|k| k.to_string()).collect();
        let objects: Vec<object_store::ObjectMeta> = self.store.list(Some(&prefix)).try_collect().await?;
        let mut removed = Removal::default();
        for o in objects {
            let path = o.location.to_string();
            if keep.iter().any(|k| path == *k || path.starts_with(&format!("{k}/"))) {
                continue;
            }
            if !dry_run {
                match self.store.delete(&o.location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            removed += Removal { files: 1, bytes: o.size };
        }
        Ok(removed)
    }

    /// Deletes an object, or everything under a directory. Deleting nothing is not an error.
    pub async fn delete(&self, path: &ArtifactPath) -> Result<usize> {
        if path.is_root() {
            return Err(ArtifactError::InvalidPath("refusing to delete the artifact root".into()));
        }
        let location = self.object(path)?;
        let children: Vec<ObjectPath> = self.store.list(Some(&location)).map_ok(|m| m.location).try_collect().await?;
        if children.is_empty() {
            return match self.store.delete(&location).await {
                Ok(()) => Ok(1),
                Err(object_store::Error::NotFound { .. }) => Ok(0),
                Err(e) => Err(e.into()),
            };
        }
        let n = children.len();
        for child in children {
            self.store.delete(&child).await?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(parts: Vec<&'static [u8]>) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Unpin + Send {
        futures::stream::iter(parts.into_iter().map(|p| Ok(Bytes::from_static(p))))
    }

    #[tokio::test]
    async fn put_get_list_delete_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let art = Artifacts::local(dir.path().join("root")).unwrap();
        let p = sanitize("1/run/artifacts/sub/file.bin").unwrap();
        assert_eq!(art.put_stream(&p, body(vec![b"hello ", b"world"])).await.unwrap(), 11);
        let got = art.get_stream(&p).await.unwrap();
        assert_eq!(got.size, 11);
        let bytes: Vec<Bytes> = got.stream.try_collect().await.unwrap();
        assert_eq!(bytes.concat(), b"hello world");

        let listed = art.list(&sanitize("1/run/artifacts").unwrap()).await.unwrap();
        assert_eq!(listed, vec![Entry { path: "1/run/artifacts/sub".into(), is_dir: true, size: None }]);

        assert_eq!(art.delete(&sanitize("1/run").unwrap()).await.unwrap(), 1);
        assert!(matches!(art.get_stream(&p).await, Err(ArtifactError::NotFound(_))));
    }

    #[tokio::test]
    async fn remove_tree_keeps_protected_subtrees() {
        let dir = tempfile::tempdir().unwrap();
        let art = Artifacts::local(dir.path()).unwrap();
        for p in [
            "1/run/artifacts/model/MLmodel",
            "1/run/artifacts/model/model.pkl",
            "1/run/artifacts/plot.png",
            "1/other/x",
        ] {
            art.put_stream(&sanitize(p).unwrap(), body(vec![b"12345"])).await.unwrap();
        }
        let run = sanitize("1/run").unwrap();
        let keep = [sanitize("1/run/artifacts/model").unwrap()];
        let dry = art.remove_tree(&run, &keep, true).await.unwrap();
        assert_eq!(dry, Removal { files: 1, bytes: 5 });
        assert!(
            art.get_stream(&sanitize("1/run/artifacts/plot.png").unwrap()).await.is_ok(),
            "dry run removes nothing"
        );
        assert_eq!(art.remove_tree(&run, &keep, false).await.unwrap(), Removal { files: 1, bytes: 5 });
        assert!(art.get_stream(&sanitize("1/run/artifacts/model/MLmodel").unwrap()).await.is_ok());
        assert!(art.get_stream(&sanitize("1/run/artifacts/plot.png").unwrap()).await.is_err());
        assert!(art.get_stream(&sanitize("1/other/x").unwrap()).await.is_ok());
        assert_eq!(art.remove_tree(&run, &keep, false).await.unwrap(), Removal::default(), "a second run is a no-op");
    }

    #[test]
    fn proxied_uris_map_into_the_root() {
        assert_eq!(proxied_path("mlflow-artifacts:/1/abc/artifacts").unwrap().to_string(), "1/abc/artifacts");
        assert_eq!(proxied_path("mlflow-artifacts://host:5000/1/x").unwrap().to_string(), "1/x");
        assert!(proxied_path("mlflow-artifacts:/../etc").is_err());
        assert!(proxied_path("mlflow-artifacts:/%2e%2e/etc").is_err());
        assert!(proxied_path("file:///etc/passwd").is_err());
    }

    #[tokio::test]
    async fn broken_upload_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let art = Artifacts::local(dir.path()).unwrap();
        let p = sanitize("x/broken.bin").unwrap();
        let parts: Vec<Result<Bytes, std::io::Error>> =
            vec![Ok(Bytes::from_static(b"partial")), Err(std::io::Error::other("client went away"))];
        let err = art.put_stream(&p, futures::stream::iter(parts)).await.unwrap_err();
        assert!(matches!(err, ArtifactError::Upload(_)));
        assert!(matches!(art.get_stream(&p).await, Err(ArtifactError::NotFound(_))));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn symlinks_out_of_the_root_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        let art = Artifacts::local(&root).unwrap();
        let p = sanitize("link/escape.txt").unwrap();
        assert!(matches!(art.put_stream(&p, body(vec![b"x"])).await, Err(ArtifactError::InvalidPath(_))));
        assert!(std::fs::read_dir(&outside).unwrap().next().is_none());
    }
}
