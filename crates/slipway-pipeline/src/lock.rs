//! `.slipway/<pipeline>.lock.json`: what each step last produced from which inputs (as
//! `dvc.lock`). Checking a pipeline against it needs no server: a rerun where every step's
//! key and outs match does nothing and contacts nobody.
//!
//! Each finished step appends one line to `.slipway/<pipeline>.lock.journal`, so a killed run
//! resumes from the last finished step; the end of a run folds the journal into the lock file
//! (written atomically) and removes it. Rewriting the whole lock after every step instead made
//! a 1,000-step run serialise ~500,000 entries.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{PipelineError, Result};
use crate::hash::STATE_DIR;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Locked {
    pub key: String,
    /// The run that produced the outs.
    pub run_id: String,
    /// Hash of the outs manifest blob.
    pub manifest: String,
    /// Each out's hash, to compare with the workspace without fetching the manifest.
    pub outs: BTreeMap<String, String>,
    pub metrics: Vec<(String, f64)>,
}

#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
    journal: PathBuf,
    /// Whether the journal holds entries the lock file lacks.
    dirty: bool,
    pub steps: BTreeMap<String, Locked>,
}

/// One journal line; `locked: null` forgets the step.
#[derive(Serialize, Deserialize)]
struct Entry {
    step: String,
    locked: Option<Locked>,
}

impl Lock {
    pub fn open(root: &Path, pipeline: &str) -> Lock {
        let safe: String =
            pipeline.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
        let path = root.join(STATE_DIR).join(format!("{safe}.lock.json"));
        let journal = root.join(STATE_DIR).join(format!("{safe}.lock.journal"));
        let mut steps: BTreeMap<String, Locked> =
            std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        let lines = std::fs::read(&journal).unwrap_or_default();
        // A line torn by a kill does not parse and is skipped: that step runs again.
        let entries: Vec<Entry> = lines.split(|&b| b == b'\n').filter_map(|l| serde_json::from_slice(l).ok()).collect();
        let dirty = !lines.is_empty();
        for e in entries {
            match e.locked {
                Some(locked) => steps.insert(e.step, locked),
                None => steps.remove(&e.step),
            };
        }
        Lock { path, journal, dirty, steps }
    }

    /// Remembers what `step` produced, durably enough to survive a kill of this process.
    pub fn record(&mut self, step: &str, locked: Locked) -> Result<()> {
        self.append(Entry { step: step.to_string(), locked: Some(locked) })
    }

    /// Forgets what `step` produced: the next run runs it again.
    pub fn forget(&mut self, step: &str) -> Result<()> {
        self.append(Entry { step: step.to_string(), locked: None })
    }

    fn append(&mut self, entry: Entry) -> Result<()> {
        use std::io::Write;
        let mut line = serde_json::to_vec(&entry).map_err(|e| PipelineError::Records(e.to_string()))?;
        line.push(b'\n');
        let dir = self.journal.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| PipelineError::io(dir, e))?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.journal)
            .map_err(|e| PipelineError::io(&self.journal, e))?;
        // One write of the whole line: appends from one writer never interleave.
        file.write_all(&line).map_err(|e| PipelineError::io(&self.journal, e))?;
        match entry.locked {
            Some(locked) => self.steps.insert(entry.step, locked),
            None => self.steps.remove(&entry.step),
        };
        self.dirty = true;
        Ok(())
    }

    /// Folds the journal into the lock file; nothing to do when nothing changed.
    pub fn save(&mut self) -> Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| PipelineError::io(dir, e))?;
        let body = serde_json::to_vec_pretty(&self.steps).map_err(|e| PipelineError::Records(e.to_string()))?;
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, body).map_err(|e| PipelineError::io(&tmp, e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| PipelineError::io(&self.path, e))?;
        match std::fs::remove_file(&self.journal) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(PipelineError::io(&self.journal, e)),
        }
        self.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locked(key: &str) -> Locked {
        Locked { key: key.into(), run_id: "r".into(), manifest: "m".into(), outs: BTreeMap::new(), metrics: vec![] }
    }

    #[test]
    fn the_journal_survives_a_kill_and_a_torn_last_line_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut lock = Lock::open(dir.path(), "p");
        lock.record("a", locked("ka")).unwrap();
        lock.record("b", locked("kb")).unwrap();
        lock.record("z", locked("kz")).unwrap();
        lock.forget("z").unwrap();
        // Killed before save(): a third line was half written.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&lock.journal)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"step\":\"c\",\"lo"))
            .unwrap();
        let mut reopened = Lock::open(dir.path(), "p");
        assert_eq!(reopened.steps.keys().collect::<Vec<_>>(), ["a", "b"]);
        reopened.save().unwrap();
        assert!(!reopened.journal.exists(), "save folds the journal into the lock file");
        let again = Lock::open(dir.path(), "p");
        assert_eq!(again.steps["b"].key, "kb");
        assert!(!again.dirty);
    }
}
