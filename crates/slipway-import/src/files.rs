//! The artifacts of an import: MLflow's locations re-rooted into ours, and the files behind
//! them copied.
//!
//! MLflow's layout (`<experiment>/<run>/artifacts`, `<experiment>/models/<id>/artifacts`) is
//! ours, so a location keeps its path and only changes its root. A source on local disk is
//! read as plain files, names as MLflow wrote them (object_store's local store would expect its
//! own percent-encoding on disk); an S3 source through object_store. Files go four at a time,
//! each streamed; a file our root already holds with the same size is left alone.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use slipway_artifacts::{ArtifactError, ArtifactPath, Artifacts, sanitize};
use slipway_store::import::Imported;
use tokio::io::AsyncReadExt;

use crate::importer::Meter;
use crate::{ImportError, ImportReport, Result};

/// Bytes read from a local source file at a time.
const READ_CHUNK: usize = 1 << 20;

/// What to copy for one item.
pub enum Tree {
    /// The tree at this path of both roots.
    Copy(String),
    /// Stored outside what `--artifacts-from` names.
    Elsewhere(String),
    None,
}

/// The files under a source folder: their paths relative to the root with sizes, and what
/// was found but cannot be copied, with why.
#[derive(Default)]
struct Listing {
    files: Vec<(String, u64)>,
    odd: Vec<String>,
}

/// Where MLflow's files are.
pub enum SourceRoot {
    /// A folder, read as plain files.
    Local(PathBuf),
    /// A bucket.
    Store(Artifacts),
}

impl SourceRoot {
    /// `--artifacts-from`: a folder, `file:///folder` or `s3://bucket/prefix`.
    pub fn open(root: &str) -> Result<Self> {
        if root.starts_with("s3://") {
            return match Artifacts::open(root) {
                Ok(store) => Ok(SourceRoot::Store(store)),
                Err(source) => {
                    Err(ImportError::Artifacts { context: format!("opening --artifacts-from {root}"), source })
                }
            };
        }
        let dir = Path::new(root.strip_prefix("file://").unwrap_or(root));
        if !dir.is_dir() {
            return Err(ImportError::ArtifactsFrom(format!("--artifacts-from {root}: no such folder")));
        }
        let dir = dir.canonicalize().map_err(io(|| format!("resolving --artifacts-from {root}")))?;
        Ok(SourceRoot::Local(dir))
    }

    /// What MLflow's stored locations under this root start with.
    fn uri(&self) -> String {
        match self {
            SourceRoot::Local(dir) => format!("file://{}", dir.display()).trim_end_matches('/').to_string(),
            SourceRoot::Store(store) => store.uri().to_string(),
        }
    }

    /// The files under `start`.
    async fn files(&self, start: &ArtifactPath) -> Result<Listing> {
        match self {
            SourceRoot::Local(dir) => {
                let (dir, start) = (dir.clone(), start.clone());
                tokio::task::spawn_blocking(move || local_files(&dir, &start)).await?
            }
            SourceRoot::Store(store) => {
                let (mut dirs, mut files) = (vec![start.clone()], Vec::new());
                while let Some(dir) = dirs.pop() {
                    let listed = store.list(&dir).await.map_err(|source| ImportError::Artifacts {
                        context: format!("listing {dir} in --artifacts-from"),
                        source,
                    })?;
                    for entry in listed {
                        if entry.is_dir {
                            dirs.push(path(&entry.path)?);
                        } else {
                            files.push((entry.path, entry.size.unwrap_or(0)));
                        }
                    }
                }
                Ok(Listing { files, odd: Vec::new() })
            }
        }
    }

    /// A file's bytes; a failure says why, for the report (the file is skipped, the import
    /// goes on).
    async fn read(&self, file: &str) -> std::result::Result<BoxStream<'static, std::io::Result<Bytes>>, String> {
        match self {
            SourceRoot::Local(dir) => {
                let file = tokio::fs::File::open(dir.join(file)).await.map_err(|e| e.to_string())?;
                let chunks = futures::stream::try_unfold(file, |mut file| async move {
                    let mut buf = vec![0; READ_CHUNK];
                    let n = file.read(&mut buf).await?;
                    buf.truncate(n);
                    Ok((n > 0).then(|| (Bytes::from(buf), file)))
                });
                Ok(chunks.boxed())
            }
            SourceRoot::Store(store) => {
                let download = store.get_stream(&path(file).map_err(|e| e.to_string())?).await;
                Ok(download.map_err(|e| e.to_string())?.stream.map_err(std::io::Error::other).boxed())
            }
        }
    }
}

/// The regular files under `dir/start`, by their path relative to `dir`. Symbolic links are
/// never followed, on the way down to `start` or below it: nothing outside `dir` is read.
fn local_files(dir: &Path, start: &ArtifactPath) -> Result<Listing> {
    let mut listing = Listing::default();
    let mut base = dir.to_path_buf();
    for segment in start.segments() {
        base.push(segment);
        match std::fs::symlink_metadata(&base) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                listing.odd.push(format!("{}: not a folder", base.display()));
                return Ok(listing);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(listing),
            Err(e) => return Err(io(|| format!("reading {}", base.display()))(e)),
        }
    }
    let mut dirs = vec![base];
    while let Some(folder) = dirs.pop() {
        let listing_error = io(|| format!("listing {}", folder.display()));
        for entry in std::fs::read_dir(&folder).map_err(&listing_error)? {
            let entry = entry.map_err(&listing_error)?;
            let kind = entry.file_type().map_err(&listing_error)?;
            let full = entry.path();
            if kind.is_dir() {
                dirs.push(full);
            } else if kind.is_file() {
                let relative = full.strip_prefix(dir).ok().and_then(Path::to_str).map(|p| p.replace('\\', "/"));
                match relative {
                    Some(relative) => listing.files.push((relative, entry.metadata().map_err(&listing_error)?.len())),
                    None => listing.odd.push(format!("{}: the name is not UTF-8", full.display())),
                }
            } else {
                listing.odd.push(format!("{}: a symbolic link or special file, not followed", full.display()));
            }
        }
    }
    Ok(listing)
}

/// Maps MLflow's artifact locations into our root and copies the files behind them.
pub struct ArtifactCopy {
    from: Option<SourceRoot>,
    ours: Artifacts,
    /// What our stored locations start with: `mlflow-artifacts:` or the direct root's URI.
    root: String,
    /// Sizes of the files our root holds, per directory listed so far.
    present: HashMap<String, HashMap<String, u64>>,
}

impl ArtifactCopy {
    pub fn new(from: Option<SourceRoot>, ours: Artifacts, root: String) -> Self {
        ArtifactCopy { from, ours, root, present: HashMap::new() }
    }

    /// Whether there are files to copy, or only locations to rewrite.
    pub fn has_source(&self) -> bool {
        self.from.is_some()
    }

    /// The path under the artifact root that an MLflow location names, if it is in reach and
    /// stays inside the root.
    fn relative(&self, location: &str) -> Option<String> {
        let relative = self.unchecked_relative(location)?;
        path(&relative).ok()?;
        Some(relative)
    }

    fn unchecked_relative(&self, location: &str) -> Option<String> {
        if let Some(rest) = location.strip_prefix(slipway_artifacts::PROXY_SCHEME) {
            // mlflow-artifacts:/p, or mlflow-artifacts://host:port/p
            let path = match rest.strip_prefix("//") {
                Some(hosted) => hosted.split_once('/').map_or("", |(_, p)| p),
                None => rest,
            };
            return Some(path.trim_matches('/').to_string());
        }
        let from = self.from.as_ref()?.uri();
        let location = if location.starts_with('/') { format!("file://{location}") } else { location.to_string() };
        match location.strip_prefix(&from)? {
            "" => Some(String::new()),
            rest => rest.strip_prefix('/').map(|p| p.trim_end_matches('/').to_string()),
        }
    }

    fn ours(&self, relative: &str) -> String {
        format!("{}/{relative}", self.root.trim_end_matches('/'))
    }

    /// Rewrites the item's locations to ours; returns the tree to copy. Model versions'
    /// storage locations are collected into `later`.
    pub fn rewrite(&self, item: &mut Imported, later: &mut Vec<String>) -> Tree {
        let tree_of = |location: &mut String| match self.relative(location) {
            Some(rel) => {
                *location = self.ours(&rel);
                Tree::Copy(rel)
            }
            None if location.is_empty() => Tree::None,
            None => Tree::Elsewhere(location.clone()),
        };
        match item {
            Imported::Experiment(e) => {
                tree_of(&mut e.artifact_location);
                Tree::None
            }
            Imported::Run(r) => tree_of(&mut r.artifact_uri),
            Imported::RunMetrics { .. } => Tree::None,
            Imported::LoggedModel(m) => tree_of(&mut m.artifact_location),
            Imported::RegisteredModel(m) => {
                for v in &mut m.versions {
                    if let Some(rel) = self.relative(&v.source) {
                        v.source = self.ours(&rel);
                    }
                    if let Some(rel) = self.relative(&v.storage_location) {
                        v.storage_location = self.ours(&rel);
                        later.push(rel);
                    }
                }
                Tree::None
            }
        }
    }

    /// Copies every file under `relative` that our root lacks (or holds with another size).
    /// A file that cannot be read or named here is reported and skipped; a failure to write
    /// ours stops the import.
    pub(crate) async fn copy_tree(
        &mut self,
        relative: &str,
        report: &mut ImportReport,
        progress: &mut Meter<'_>,
    ) -> Result<()> {
        let Some(from) = &self.from else { return Ok(()) };
        let start = match path(relative) {
            Ok(start) => start,
            Err(e) => {
                report.skipped.push(format!("artifacts at {relative}: {e}"));
                return Ok(());
            }
        };
        let listing = from.files(&start).await?;
        report.skipped.extend(listing.odd.into_iter().map(|o| format!("artifact {o}")));
        let mut todo = Vec::new();
        for (file, size) in listing.files {
            let target = match path(&file) {
                Ok(target) => target,
                Err(e) => {
                    report.skipped.push(format!("artifact {file}: {e}"));
                    continue;
                }
            };
            let (parent, _) = file.rsplit_once('/').unwrap_or(("", &file));
            if !self.present.contains_key(parent) {
                let listed = self.ours.list(&path(parent)?).await.unwrap_or_default();
                let sizes = listed.into_iter().filter_map(|e| Some((e.path, e.size?))).collect();
                self.present.insert(parent.to_string(), sizes);
            }
            if self.present.get(parent).and_then(|p| p.get(&file)) == Some(&size) {
                report.artifact_files_present += 1;
            } else {
                todo.push((file, target));
            }
        }
        let ours = &self.ours;
        let mut copies = futures::stream::iter(todo)
            .map(|(file, target)| async move {
                let body = match from.read(&file).await {
                    Ok(body) => body,
                    Err(e) => return Ok::<_, ImportError>(Err(format!("artifact {file}: cannot be read: {e}"))),
                };
                match ours.put_stream(&target, body).await {
                    Ok(bytes) => Ok(Ok(bytes)),
                    Err(source) => Err(ImportError::Artifacts { context: format!("writing {file}"), source }),
                }
            })
            .buffer_unordered(4);
        while let Some(copied) = copies.try_next().await? {
            match copied {
                Ok(bytes) => {
                    report.artifact_files_copied += 1;
                    report.artifact_bytes_copied += bytes;
                    progress.counts.artifact_bytes += bytes;
                    progress.advanced();
                }
                Err(skipped) => report.skipped.push(skipped),
            }
        }
        Ok(())
    }
}

/// A path relative to an artifact root, as listings name it (already decoded).
fn path(relative: &str) -> Result<ArtifactPath, ArtifactError> {
    sanitize(&relative.replace('%', "%25"))
}

/// Turns an I/O failure into an [`ImportError`] that says what was being read.
fn io(context: impl Fn() -> String) -> impl Fn(std::io::Error) -> ImportError {
    move |source| ImportError::Io { context: context(), source }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copier(from: Option<&Path>, root: &str) -> ArtifactCopy {
        let dir = tempfile::tempdir().unwrap();
        ArtifactCopy {
            from: from.map(|p| SourceRoot::open(&p.display().to_string()).unwrap()),
            ours: Artifacts::local(dir.keep()).unwrap(),
            root: root.into(),
            present: HashMap::new(),
        }
    }

    #[test]
    fn mlflow_locations_map_into_our_root_by_their_path() {
        let src = tempfile::tempdir().unwrap();
        let c = copier(Some(src.path()), "mlflow-artifacts:");
        let abs = src.path().canonicalize().unwrap();
        assert_eq!(c.relative("mlflow-artifacts:/1/abc/artifacts").as_deref(), Some("1/abc/artifacts"));
        assert_eq!(c.relative("mlflow-artifacts://host:5000/1/abc/artifacts/").as_deref(), Some("1/abc/artifacts"));
        assert_eq!(c.relative(&format!("file://{}/2/r/artifacts", abs.display())).as_deref(), Some("2/r/artifacts"));
        assert_eq!(c.relative(&format!("{}/2/r/artifacts", abs.display())).as_deref(), Some("2/r/artifacts"));
        assert_eq!(c.relative("s3://elsewhere/2/r/artifacts"), None);
        assert_eq!(c.relative("mlflow-artifacts:/1/../../etc"), None);
        assert_eq!(c.relative(&format!("{}/../outside", abs.display())), None);
        assert_eq!(c.relative("/not/under/the/source/root"), None);
        assert_eq!(c.ours("1/abc/artifacts"), "mlflow-artifacts:/1/abc/artifacts");
        let direct = copier(None, "s3://bucket/prefix");
        assert_eq!(direct.ours("1/abc/artifacts"), "s3://bucket/prefix/1/abc/artifacts");
        // Without a source root only the proxied scheme can be placed.
        assert_eq!(direct.relative("file:///x/1/abc"), None);
    }

    #[tokio::test]
    async fn copying_a_tree_twice_copies_each_file_once() {
        let src = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"not yours").unwrap();
        std::fs::create_dir_all(src.path().join("1/r/artifacts/model")).unwrap();
        std::fs::write(src.path().join("1/r/artifacts/model/MLmodel"), b"flavors: {}").unwrap();
        // Names as MLflow writes them, characters object_store would encode included.
        std::fs::write(src.path().join("1/r/artifacts/notes 100%.txt"), b"hello").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), src.path().join("1/r/artifacts/link")).unwrap();
        let mut c = copier(Some(src.path()), "mlflow-artifacts:");
        let (mut report, mut sink) = (ImportReport::default(), crate::NoProgress);
        let mut progress = Meter::new(&mut sink);
        c.copy_tree("1/r/artifacts", &mut report, &mut progress).await.unwrap();
        assert_eq!((report.artifact_files_copied, report.artifact_bytes_copied), (2, 16), "{report:?}");
        assert!(report.skipped.iter().any(|s| s.contains("link") && s.contains("not followed")), "{report:?}");
        let copied = c.ours.list(&path("1/r/artifacts").unwrap()).await.unwrap();
        let names: Vec<_> = copied.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(names, ["1/r/artifacts/model", "1/r/artifacts/notes 100%.txt"]);
        let mut body = c.ours.get_stream(&path("1/r/artifacts/notes 100%.txt").unwrap()).await.unwrap().stream;
        assert_eq!(body.try_next().await.unwrap().unwrap(), Bytes::from_static(b"hello"));
        c.present.clear();
        c.copy_tree("1/r/artifacts", &mut report, &mut progress).await.unwrap();
        assert_eq!((report.artifact_files_copied, report.artifact_files_present), (2, 2));
        // A location that climbs out of the root is refused, not followed.
        c.copy_tree("1/../../etc", &mut report, &mut progress).await.unwrap();
        assert!(report.skipped.iter().any(|s| s.starts_with("artifacts at 1/../../etc")), "{report:?}");
    }
}
