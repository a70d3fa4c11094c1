//! Content hashes: SHA-256 of a file's bytes, and for a folder a Merkle hash over its sorted
//! entries (name, kind and each entry's hash), so renaming, adding or changing any file
//! inside changes the folder's hash. A file whose size, modification time and inode are the
//! ones it had when last hashed is not read again (the stat cache in `.slipway/hashes.json`,
//! as dvc keeps one): a no-op rerun of a large project reads no data.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::PoisonError;

use ring::digest::{Context, SHA256};
use serde::{Deserialize, Serialize};

use crate::error::{PipelineError, Result};

pub const STATE_DIR: &str = ".slipway";
const STATE_FILE: &str = "hashes.json";

/// What a path in the project holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Entry {
    File {
        hash: String,
        size: u64,
    },
    /// `files` lists every file under the folder, by path relative to it, in order.
    Dir {
        hash: String,
        files: Vec<(String, String, u64)>,
    },
}

impl Entry {
    pub fn hash(&self) -> &str {
        match self {
            Entry::File { hash, .. } | Entry::Dir { hash, .. } => hash,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    size: u64,
    mtime_ns: i128,
    ino: u64,
}

#[derive(Serialize, Deserialize)]
struct Known {
    stamp: Stamp,
    hash: String,
}

/// Hashes project files, remembering what it read.
pub struct Hasher {
    root: PathBuf,
    known: Mutex<BTreeMap<String, Known>>,
    dirty: Mutex<bool>,
}

impl Hasher {
    /// Opens the stat cache of the project at `root` (an unreadable one is started afresh).
    pub fn open(root: &Path) -> Self {
        let known = std::fs::read(root.join(STATE_DIR).join(STATE_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Hasher { root: root.to_path_buf(), known: Mutex::new(known), dirty: Mutex::new(false) }
    }

    /// The entry at `path` (relative to the project root), or `None` when nothing is there.
    pub fn entry(&self, rel: &str) -> Result<Option<Entry>> {
        let path = if rel.is_empty() { self.root.clone() } else { self.root.join(rel) };
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(PipelineError::io(path, e)),
        };
        if meta.is_dir() {
            let mut files = Vec::new();
            self.walk(&path, "", &mut files)?;
            let mut ctx = Context::new(&SHA256);
            for (name, hash, _) in &files {
                ctx.update(name.as_bytes());
                ctx.update(b"\0");
                ctx.update(hash.as_bytes());
                ctx.update(b"\n");
            }
            Ok(Some(Entry::Dir { hash: hex(ctx.finish().as_ref()), files }))
        } else {
            let hash = self.file_hash(rel, &path, &meta)?;
            Ok(Some(Entry::File { hash, size: meta.len() }))
        }
    }

    fn walk(&self, dir: &Path, prefix: &str, out: &mut Vec<(String, String, u64)>) -> Result<()> {
        let mut names: Vec<(String, std::fs::Metadata)> = Vec::new();
        for e in std::fs::read_dir(dir).map_err(|e| PipelineError::io(dir, e))? {
            let e = e.map_err(|e| PipelineError::io(dir, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let meta = std::fs::metadata(e.path()).map_err(|err| PipelineError::io(e.path(), err))?;
            names.push((name, meta));
        }
        names.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, meta) in names {
            let rel = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
            let full = dir.join(&name);
            if meta.is_dir() {
                self.walk(&full, &rel, out)?;
            } else {
                let key =
                    full.strip_prefix(&self.root).map_or_else(|_| rel.clone(), |p| p.to_string_lossy().into_owned());
                let hash = self.file_hash(&key, &full, &meta)?;
                out.push((rel, hash, meta.len()));
            }
        }
        Ok(())
    }

    fn file_hash(&self, key: &str, path: &Path, meta: &std::fs::Metadata) -> Result<String> {
        let stamp = Stamp {
            size: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ino: meta.ino(),
        };
        if let Some(k) = self.known.lock().unwrap_or_else(PoisonError::into_inner).get(key)
            && k.stamp == stamp
        {
            return Ok(k.hash.clone());
        }
        let hash = hash_file(path)?;
        self.known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_string(), Known { stamp, hash: hash.clone() });
        *self.dirty.lock().unwrap_or_else(PoisonError::into_inner) = true;
        Ok(hash)
    }

    /// Writes the stat cache back (atomically) when it learned anything.
    pub fn save(&self) -> Result<()> {
        if !std::mem::take(&mut *self.dirty.lock().unwrap_or_else(PoisonError::into_inner)) {
            return Ok(());
        }
        let dir = self.root.join(STATE_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| PipelineError::io(&dir, e))?;
        let body = serde_json::to_vec(&*self.known.lock().unwrap_or_else(PoisonError::into_inner))
            .map_err(|e| PipelineError::Records(e.to_string()))?;
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        std::fs::write(&tmp, body).map_err(|e| PipelineError::io(&tmp, e))?;
        std::fs::rename(&tmp, dir.join(STATE_FILE)).map_err(|e| PipelineError::io(&dir, e))
    }
}

pub fn hash_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| PipelineError::io(path, e))?;
    let mut ctx = Context::new(&SHA256);
    // A buffer the file's size up to 1 MiB: a data set of many small files would otherwise
    // zero a MiB for each.
    let len = f.metadata().map_err(|e| PipelineError::io(path, e))?.len();
    let mut buf = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX).clamp(1, 1 << 20) + 1];
    loop {
        let n = f.read(&mut buf).map_err(|e| PipelineError::io(path, e))?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(hex(ctx.finish().as_ref()))
}

/// SHA-256 fed piece by piece, as a download is written.
pub struct Digest(Context);

impl Default for Digest {
    fn default() -> Self {
        Digest(Context::new(&SHA256))
    }
}

impl Digest {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The hash in lowercase hex.
    pub fn finish(self) -> String {
        hex(self.0.finish().as_ref())
    }
}

pub fn hash_bytes(bytes: &[u8]) -> String {
    hex(ring::digest::digest(&SHA256, bytes).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_bytes() {
        assert_eq!(hash_bytes(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn folder_hash_changes_with_any_file_and_the_stat_cache_is_used() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("d/sub")).unwrap();
        std::fs::write(tmp.path().join("d/a.txt"), "1").unwrap();
        std::fs::write(tmp.path().join("d/sub/b.txt"), "2").unwrap();
        let h = Hasher::open(tmp.path());
        let first = h.entry("d").unwrap().unwrap();
        let Entry::Dir { files, .. } = &first else { panic!("a folder") };
        assert_eq!(files.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(), ["a.txt", "sub/b.txt"]);
        h.save().unwrap();
        std::fs::rename(tmp.path().join("d/sub/b.txt"), tmp.path().join("d/sub/c.txt")).unwrap();
        let h = Hasher::open(tmp.path());
        assert!(h.known.lock().unwrap().contains_key("d/a.txt"), "the stat cache was saved and read back");
        let renamed = h.entry("d").unwrap().unwrap();
        assert_ne!(first.hash(), renamed.hash());
        assert_eq!(h.entry("nothing").unwrap(), None);
    }
}
