//! Artifact roots over `object_store`: the one path sanitiser and streaming transfer.
//!
//! Every artifact path that arrives from a client goes through [`sanitize`] before it touches
//! a store; nothing here assumes a file system except the extra symlink guard that only a
//! local root needs.

mod s3;
mod sanitize;
pub mod tls;

pub use s3::S3Location;
pub use sanitize::{ArtifactPath, sanitize};

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

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
/// S3 refuses parts under 5 MiB (all but the last).
const UPLOAD_PART: usize = 8 << 20;
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

/// A stored object's path as text: object_store keeps some characters percent-encoded in its
/// paths (`%`, non-ASCII, ...); entries and comparisons use the names clients gave.
fn decoded(path: &ObjectPath) -> String {
    let parts: Vec<String> = path
        .parts()
        .map(|p| percent_encoding::percent_decode_str(p.as_ref()).decode_utf8_lossy().into_owned())
        .collect();
    parts.join("/")
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

/// An artifact root: a store, the URI that names it, and, for local disk, its directory.
#[derive(Clone)]
pub struct Artifacts {
    store: Arc<dyn ObjectStore>,
    /// `file:///abs/dir` or `s3://bucket/prefix`, no trailing slash: stored locations that
    /// start with it name objects in this root, as `mlflow-artifacts:/` ones do.
    uri: Arc<str>,
    local_root: Option<PathBuf>,
}

impl Artifacts {
    /// The root a configuration names: `s3://bucket/prefix`, `file:///dir` or a directory.
    pub fn open(root: &str) -> Result<Self> {
        if root.starts_with("s3://") {
            let location = S3Location::parse(root)?;
            return Ok(Self { store: s3::open(&location)?, uri: location.uri().into(), local_root: None });
        }
        if root.contains("://") && !root.starts_with("file://") {
            return Err(ArtifactError::InvalidPath(format!(
                "unsupported artifact root '{root}': expected a directory, file:///dir or s3://bucket/prefix"
            )));
        }
        Self::local(root.strip_prefix("file://").unwrap_or(root))
    }

    /// A root on local disk; the directory is created if missing.
    pub fn local(root: impl Into<PathBuf>) -> Result<Self> {
        let root: PathBuf = root.into();
        std::fs::create_dir_all(&root)
            .map_err(|e| ArtifactError::Backend(format!("create {}: {e}", root.display())))?;
        let root =
            root.canonicalize().map_err(|e| ArtifactError::Backend(format!("resolve {}: {e}", root.display())))?;
        let store = LocalFileSystem::new_with_prefix(&root)?.with_automatic_cleanup(true);
        let uri = format!("file://{}", root.display()).trim_end_matches('/').into();
        Ok(Self { store: Arc::new(store), uri, local_root: Some(root) })
    }

    /// Any other `object_store` backend, named by `uri` in stored locations.
    pub fn from_store(store: Arc<dyn ObjectStore>, uri: &str) -> Self {
        Self { store, uri: uri.trim_end_matches('/').into(), local_root: None }
    }

    /// The URI that names this root in stored locations (`file:///dir`, `s3://bucket/prefix`).
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Lists the root once: a missing bucket, wrong credentials or an unreachable endpoint
    /// show at start-up instead of at a client's first upload.
    pub async fn check(&self) -> Result<()> {
        self.store.list_with_delimiter(None).await?;
        Ok(())
    }

    /// Whether a stored location names something in this root: a proxied
    /// `mlflow-artifacts:` URI, or one under the root's own URI.
    pub fn owns(&self, location: &str) -> bool {
        location.starts_with(PROXY_SCHEME) || self.direct_rest(location).is_some()
    }

    /// The place in this root that a stored location names, through the sanitiser; a location
    /// elsewhere, or one that would leave the root, is refused.
    pub fn locate(&self, location: &str) -> Result<ArtifactPath> {
        if location.starts_with(PROXY_SCHEME) {
            return proxied_path(location);
        }
        let rest = self.direct_rest(location).ok_or_else(|| {
            ArtifactError::InvalidPath(format!("artifact location '{location}' is not in this server's artifact store"))
        })?;
        sanitize(&rest.replace('%', "%25"))
    }

    /// What follows the root's URI and a `/` (or nothing, for the root itself).
    fn direct_rest<'a>(&self, location: &'a str) -> Option<&'a str> {
        match location.strip_prefix(&*self.uri)? {
            "" => Some(""),
            rest => rest.strip_prefix('/'),
        }
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
    pub async fn put_stream<S, E>(&self, path: &ArtifactPath, body: S) -> Result<u64>
    where
        S: futures::Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        self.put_stream_checked(path, body, None).await
    }

    /// [`Self::put_stream`] of content-addressed objects: when `sha256` (lowercase hex) is
    /// given, the object appears only if the body hashes to it, so nobody can store other
    /// bytes under a name that promises these.
    pub async fn put_stream_checked<S, E>(&self, path: &ArtifactPath, mut body: S, sha256: Option<&str>) -> Result<u64>
    where
        S: futures::Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        let mut digest = sha256.map(|_| ring::digest::Context::new(&ring::digest::SHA256));
        if path.is_root() {
            return Err(ArtifactError::InvalidPath("an artifact upload needs a file path".into()));
        }
        let location = self.object(path)?;
        let check = |digest: Option<ring::digest::Context>| -> Result<()> {
            let (Some(d), Some(expected)) = (digest, sha256) else { return Ok(()) };
            let got: String = d.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect();
            if got != expected {
                return Err(ArtifactError::Upload(format!(
                    "the upload's SHA-256 is {got}, not the {expected} its name promises"
                )));
            }
            Ok(())
        };
        // A body smaller than a part (most files of a data set) goes up in one put: no
        // multipart upload to start and complete (on local disk a staging file and its
        // bookkeeping, on S3 three requests instead of one).
        let mut head: Vec<Bytes> = Vec::new();
        let mut total = 0u64;
        while total < UPLOAD_PART as u64 {
            match body.next().await {
                None => {
                    check(digest)?;
                    self.store.put(&location, head.into_iter().collect::<PutPayload>()).await?;
                    return Ok(total);
                }
                Some(Ok(chunk)) => {
                    total += chunk.len() as u64;
                    if let Some(d) = digest.as_mut() {
                        d.update(&chunk);
                    }
                    head.push(chunk);
                }
                Some(Err(e)) => return Err(ArtifactError::Upload(e.to_string())),
            }
        }
        let upload = self.store.put_multipart(&location).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, UPLOAD_PART);
        for chunk in head {
            writer.write(&chunk);
        }
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
                    if let Some(d) = digest.as_mut() {
                        d.update(&chunk);
                    }
                    writer.write(&chunk);
                }
                Some(Err(e)) => {
                    let _ = writer.abort().await;
                    return Err(ArtifactError::Upload(e.to_string()));
                }
            }
        }
        if let Err(e) = check(digest) {
            let _ = writer.abort().await;
            return Err(e);
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

    /// The size of the object at `path`, or `None` when there is none.
    pub async fn size_of(&self, path: &ArtifactPath) -> Result<Option<u64>> {
        let location = self.object(path)?;
        match self.store.head(&location).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The whole object at `path`, refused when it is larger than `limit` bytes.
    pub async fn read_small(&self, path: &ArtifactPath, limit: u64) -> Result<Bytes> {
        let location = self.object(path)?;
        let size = self.store.head(&location).await?.size;
        if size > limit {
            return Err(ArtifactError::InvalidPath(format!("'{path}' is {size} bytes, more than {limit}")));
        }
        Ok(self.store.get(&location).await?.bytes().await?)
    }

    /// Lists the direct children of a directory; names are relative to the artifact root.
    pub async fn list(&self, dir: &ArtifactPath) -> Result<Vec<Entry>> {
        let prefix = self.object(dir)?;
        let prefix_opt = (!dir.is_root()).then_some(&prefix);
        let listed = self.store.list_with_delimiter(prefix_opt).await?;
        let mut out: Vec<Entry> = listed
            .common_prefixes
            .into_iter()
            .map(|p| Entry { path: decoded(&p), is_dir: true, size: None })
            .chain(listed.objects.into_iter().map(|o| Entry {
                path: decoded(&o.location),
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
            let path = decoded(&o.location);
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

    /// Removes every object under `dir` whose file name `keep` refuses and that was last
    /// written before `written_before_ms` (so an object being stored right now, not yet
    /// referenced, survives). With `dry_run` it only counts.
    pub async fn remove_unkept(
        &self,
        dir: &ArtifactPath,
        keep: impl Fn(&str) -> bool,
        written_before_ms: i64,
        dry_run: bool,
    ) -> Result<Removal> {
        if dir.is_root() {
            return Err(ArtifactError::InvalidPath("refusing to sweep the artifact root".into()));
        }
        let prefix = self.object(dir)?;
        let objects: Vec<object_store::ObjectMeta> = self.store.list(Some(&prefix)).try_collect().await?;
        let mut removed = Removal::default();
        for o in objects {
            let name = o.location.filename().unwrap_or_default();
            if keep(name) || o.last_modified.timestamp_millis() >= written_before_ms {
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
            // S3 answers a delete of nothing with success: ask first, to count truthfully.
            return match self.store.head(&location).await {
                Ok(_) => match self.store.delete(&location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(1),
                    Err(e) => Err(e.into()),
                },
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

    #[test]
    fn proxied_uris_map_into_the_root() {
        assert_eq!(proxied_path("mlflow-artifacts:/1/abc/artifacts").unwrap().to_string(), "1/abc/artifacts");
        assert_eq!(proxied_path("mlflow-artifacts://host:5000/1/x").unwrap().to_string(), "1/x");
        assert!(proxied_path("mlflow-artifacts:/../etc").is_err());
        assert!(proxied_path("mlflow-artifacts:/%2e%2e/etc").is_err());
        assert!(proxied_path("file:///etc/passwd").is_err());
    }

    #[test]
    fn locate_accepts_proxied_uris_and_the_roots_own_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let art = Artifacts::local(dir.path().join("root")).unwrap();
        let own = art.uri().to_string();
        assert!(own.starts_with("file:///") && own.ends_with("/root"), "{own}");
        assert_eq!(art.locate(&format!("{own}/1/r/artifacts")).unwrap().to_string(), "1/r/artifacts");
        assert_eq!(art.locate("mlflow-artifacts:/1/r").unwrap().to_string(), "1/r");
        assert!(art.locate(&own).unwrap().is_root());
        assert!(art.owns(&format!("{own}/x")) && art.owns("mlflow-artifacts:/x"));
        for foreign in [format!("{own}x/1"), "s3://other/1".to_string(), "file:///etc/passwd".to_string()] {
            assert!(!art.owns(&foreign), "{foreign}");
            assert!(art.locate(&foreign).is_err(), "{foreign}");
        }
        assert!(art.locate(&format!("{own}/../escape")).is_err());
        assert!(art.locate(&format!("{own}/%2e%2e/escape")).is_err());
        assert!(Artifacts::open("gs://bucket/x").is_err());
        assert_eq!(Artifacts::open(&own).unwrap().uri(), own, "file:// roots open the same directory");
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
