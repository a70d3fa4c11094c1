//! A version's manifest: each file by path, size and SHA-256 (its name in the blob store), and
//! for a CSV or Parquet file its rows, columns and profile (a blob of its own, so `diff` can
//! compute drift without reading the data again). The manifest is stored as one more blob;
//! its hash is what the version records.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};
use slipway_monitor::profile::{DatasetProfile, ProfileOptions};
use slipway_monitor::read::NoProgress;
use slipway_monitor::typing::DeclaredTypes;

use crate::tree::{FileRef, check_path};
use crate::{DataError, Result};

pub const FORMAT: &str = "slipway-data/1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    /// Sorted by path, each path once.
    pub files: Vec<FileEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<Table>,
}

/// What a CSV or Parquet file holds, as its profile read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    pub rows: u64,
    pub columns: Vec<String>,
    /// The SHA-256 of the profile's JSON, stored as a blob.
    pub profile: String,
}

/// A blob to store besides the files: a table's profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extra {
    pub sha256: String,
    pub bytes: Vec<u8>,
}

/// A manifest made from files on disk, with the profiles it names and what could not be
/// profiled (the file is kept, without its table).
#[derive(Debug)]
pub struct Described {
    pub manifest: Manifest,
    pub extras: Vec<Extra>,
    pub warnings: Vec<String>,
}

impl Manifest {
    /// A manifest read back from its blob: its format, each path (relative, no `..`), each
    /// hash, and the order are checked, so nothing read from a store can point a writer
    /// outside its destination.
    pub fn parse(bytes: &[u8]) -> Result<Manifest> {
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| DataError::Format(format!("manifest: {e}")))?;
        if m.format != FORMAT {
            return Err(DataError::Format(format!("manifest of format '{}', not {FORMAT}", m.format)));
        }
        for (i, f) in m.files.iter().enumerate() {
            check_path(&f.path)?;
            let hashes = std::iter::once(&f.sha256).chain(f.table.as_ref().map(|t| &t.profile));
            if let Some(bad) = hashes.into_iter().find(|h| !is_sha256(h)) {
                return Err(DataError::Format(format!("manifest: '{bad}' is not a SHA-256")));
            }
            if i > 0 && m.files[i - 1].path >= f.path {
                return Err(DataError::Format(format!("manifest: '{}' out of order or twice", f.path)));
            }
        }
        Ok(m)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// Rows of its tables, when it has any.
    pub fn rows(&self) -> Option<u64> {
        let tables: Vec<u64> = self.files.iter().filter_map(|f| f.table.as_ref().map(|t| t.rows)).collect();
        (!tables.is_empty()).then(|| tables.iter().sum())
    }

    /// Every blob it names: its files and their profiles.
    pub fn blobs(&self) -> impl Iterator<Item = &str> {
        self.files
            .iter()
            .flat_map(|f| std::iter::once(f.sha256.as_str()).chain(f.table.as_ref().map(|t| t.profile.as_str())))
    }

    pub fn file(&self, path: &str) -> Option<&FileEntry> {
        self.files.binary_search_by(|f| f.path.as_str().cmp(path)).ok().map(|i| &self.files[i])
    }
}

pub fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Hashes and profiles `files` on `workers` threads.
pub fn describe(files: &[FileRef], workers: usize) -> Result<Described> {
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<Option<Result<OneFile>>>> = Mutex::new((0..files.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..workers.clamp(1, 64) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(file) = files.get(i) else { break };
                    let one = describe_one(file);
                    let failed = one.is_err();
                    done.lock().unwrap_or_else(std::sync::PoisonError::into_inner)[i] = Some(one);
                    if failed {
                        // The rest need not be read: the first failure is reported.
                        next.store(files.len(), Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let mut manifest = Manifest { format: FORMAT.into(), files: Vec::with_capacity(files.len()) };
    let (mut extras, mut warnings) = (Vec::new(), Vec::new());
    for one in done.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner).into_iter().flatten() {
        let (entry, extra, warning) = one?;
        manifest.files.push(entry);
        extras.extend(extra);
        warnings.extend(warning);
    }
    Ok(Described { manifest, extras, warnings })
}

/// One file described: its entry, its profile blob, and why it could not be profiled.
type OneFile = (FileEntry, Option<Extra>, Option<String>);

fn describe_one(file: &FileRef) -> Result<OneFile> {
    let sha256 = hash_file(&file.disk)?;
    let mut entry = FileEntry { path: file.path.clone(), size: file.size, sha256, table: None };
    if !is_table(&file.path) {
        return Ok((entry, None, None));
    }
    let profiled =
        DatasetProfile::from_file(&file.disk, None, &DeclaredTypes::default(), &ProfileOptions::default(), &NoProgress)
            .and_then(|p| Ok((p.to_json()?, p)));
    match profiled {
        Ok((json, profile)) => {
            let bytes = json.into_bytes();
            let extra = Extra { sha256: hash_bytes(&bytes), bytes };
            let columns = profile.columns.iter().map(|c| c.name.clone()).collect();
            entry.table = Some(Table { rows: profile.rows, columns, profile: extra.sha256.clone() });
            Ok((entry, Some(extra), None))
        }
        Err(e) => Ok((entry, None, Some(format!("{}: kept as a file, not profiled: {e}", file.path)))),
    }
}

/// Whether a path names a table the profiler reads (by extension, as `slipway drift` does).
pub fn is_table(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.ends_with(".csv") || lower.ends_with(".parquet")
}

/// The SHA-256 of a file's bytes: the pipelines' content hash, so versions and outs share
/// blobs.
pub fn hash_file(path: &std::path::Path) -> Result<String> {
    Ok(slipway_pipeline::hash::hash_file(path)?)
}

pub use slipway_pipeline::hash::hash_bytes;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::walk;

    #[test]
    fn files_are_hashed_and_tables_profiled() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/train.csv"), "x,label\n1,a\n2,b\n3,a\n").unwrap();
        std::fs::write(dir.path().join("d/notes.txt"), "abc").unwrap();
        std::fs::write(dir.path().join("d/broken.parquet"), "not parquet").unwrap();
        let d = describe(&walk(&[dir.path().join("d")]).unwrap(), 3).unwrap();
        let paths: Vec<&str> = d.manifest.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["d/broken.parquet", "d/notes.txt", "d/train.csv"]);
        // SHA-256("abc"), FIPS 180-2's example.
        assert_eq!(
            d.manifest.file("d/notes.txt").unwrap().sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let table = d.manifest.file("d/train.csv").unwrap().table.clone().unwrap();
        assert_eq!((table.rows, table.columns), (3, vec!["x".to_string(), "label".to_string()]));
        assert_eq!(d.extras.len(), 1);
        assert_eq!(d.extras[0].sha256, table.profile);
        assert_eq!(d.manifest.rows(), Some(3));
        assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
        assert!(d.manifest.blobs().any(|b| b == table.profile));

        let back = Manifest::parse(&d.manifest.to_bytes()).unwrap();
        assert_eq!(back, d.manifest);
    }

    #[test]
    fn a_manifest_that_could_write_elsewhere_or_lie_is_refused() {
        let good = Manifest {
            format: FORMAT.into(),
            files: vec![FileEntry { path: "a".into(), size: 1, sha256: "0".repeat(64), table: None }],
        };
        assert!(Manifest::parse(&good.to_bytes()).is_ok());
        let mut climbing = good.clone();
        climbing.files[0].path = "../../etc/cron.d/x".into();
        let mut absolute = good.clone();
        absolute.files[0].path = "/etc/passwd".into();
        let mut bad_hash = good.clone();
        bad_hash.files[0].sha256 = "../x".into();
        let mut twice = good.clone();
        twice.files.push(twice.files[0].clone());
        let mut other = good.clone();
        other.format = "x".into();
        for m in [climbing, absolute, bad_hash, twice, other] {
            assert!(Manifest::parse(&m.to_bytes()).is_err(), "{m:?}");
        }
        assert!(Manifest::parse(b"{\"format\": \"slipway-data/1\", \"files\": [], \"extra\": 1}").is_err());
    }
}
