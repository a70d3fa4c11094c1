//! A step's outs to and from the blob store: every file once, by content; a manifest (path ->
//! entry) as one more blob, whose hash the step's run records.

use std::path::{Path, PathBuf};

use crate::error::{PipelineError, Result};
use crate::hash::{Entry, Hasher, STATE_DIR, hash_bytes};
use crate::records::{Blobs, Manifest};
use crate::spec::RelPath;

/// Hashes the outs, stores what the blob store lacks, and stores the manifest. Fails naming
/// the first declared out the step did not write.
pub async fn save(root: &Path, hasher: &Hasher, outs: &[RelPath], blobs: &dyn Blobs) -> Result<(String, Manifest)> {
    let mut manifest = Manifest::new();
    for out in outs {
        let entry = hasher
            .entry(out.as_str())?
            .ok_or_else(|| PipelineError::Records(format!("the step did not write its out '{out}'")))?;
        match &entry {
            Entry::File { hash, .. } => blobs.put(hash, &out.under(root)).await?,
            Entry::Dir { files, .. } => {
                for (name, hash, _) in files {
                    blobs.put(hash, &out.under(root).join(name)).await?;
                }
            }
        }
        manifest.insert(out.as_str().to_string(), entry);
    }
    let body = serde_json::to_vec(&manifest).map_err(|e| PipelineError::Records(e.to_string()))?;
    let hash = hash_bytes(&body);
    let tmp = scratch(root, &hash)?;
    std::fs::write(&tmp, &body).map_err(|e| PipelineError::io(&tmp, e))?;
    let stored = blobs.put(&hash, &tmp).await;
    let _ = std::fs::remove_file(&tmp);
    stored?;
    Ok((hash, manifest))
}

/// Reads a manifest back; `None` when its blob is gone.
pub async fn manifest(root: &Path, hash: &str, blobs: &dyn Blobs) -> Result<Option<Manifest>> {
    if !blobs.has(hash).await? {
        return Ok(None);
    }
    let tmp = scratch(root, hash)?;
    blobs.get(hash, &tmp).await?;
    let body = std::fs::read(&tmp).map_err(|e| PipelineError::io(&tmp, e));
    let _ = std::fs::remove_file(&tmp);
    let parsed = serde_json::from_slice(&body?).map_err(|e| PipelineError::Records(format!("manifest {hash}: {e}")))?;
    Ok(Some(parsed))
}

/// Whether every blob the manifest names is still stored (a hit whose files were deleted
/// is a miss).
pub async fn complete(manifest: &Manifest, blobs: &dyn Blobs) -> Result<bool> {
    for entry in manifest.values() {
        let hashes: Vec<&str> = match entry {
            Entry::File { hash, .. } => vec![hash],
            Entry::Dir { files, .. } => files.iter().map(|f| f.1.as_str()).collect(),
        };
        for h in hashes {
            if !blobs.has(h).await? {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Puts each out into the workspace as the manifest says, leaving those already equal.
/// Returns whether anything had to be fetched.
pub async fn restore(root: &Path, hasher: &Hasher, manifest: &Manifest, blobs: &dyn Blobs) -> Result<bool> {
    let mut fetched = false;
    for (path, entry) in manifest {
        if hasher.entry(path)?.is_some_and(|e| e.hash() == entry.hash()) {
            continue;
        }
        fetched = true;
        let dest = root.join(path);
        remove(&dest)?;
        match entry {
            Entry::File { hash, .. } => fetch(hash, &dest, blobs).await?,
            Entry::Dir { files, .. } => {
                std::fs::create_dir_all(&dest).map_err(|e| PipelineError::io(&dest, e))?;
                for (name, hash, _) in files {
                    fetch(hash, &dest.join(name), blobs).await?;
                }
            }
        }
    }
    Ok(fetched)
}

/// Removes an out before its step runs, so a step that fails to write it cannot pass off
/// the old one.
pub fn remove(path: &Path) -> Result<()> {
    let result = match std::fs::symlink_metadata(path) {
        Err(_) => return Ok(()),
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
    };
    result.map_err(|e| PipelineError::io(path, e))
}

async fn fetch(hash: &str, dest: &Path, blobs: &dyn Blobs) -> Result<()> {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(|e| PipelineError::io(parent, e))?;
    }
    blobs.get(hash, dest).await
}

fn scratch(root: &Path, hash: &str) -> Result<PathBuf> {
    let dir = root.join(STATE_DIR).join("tmp");
    std::fs::create_dir_all(&dir).map_err(|e| PipelineError::io(&dir, e))?;
    Ok(dir.join(format!("{hash}.{}", std::process::id())))
}
