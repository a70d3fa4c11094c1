//! The one writer thread: takes entries off the queue, groups them into open segments,
//! writes record batches, seals, uploads.
//!
//! An OS thread rather than a task on the caller's runtime: Arrow encoding and spool writes
//! are blocking work, and uploads run on the thread's own small runtime, so a slow artifact
//! store delays only this thread (the queue then fills and entries are dropped, counted),
//! never a request.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use slipway_artifacts::Artifacts;
use tokio::sync::oneshot;

use crate::batch::{self, Shape};
use crate::layout::MICROS_PER_HOUR;
use crate::segment::{self, Segment, SpoolFile};
use crate::{Config, Entry, PredlogError, Shared};

/// Pending rows are written at least this often, whatever `flush_rows` says.
const BATCH_INTERVAL: Duration = Duration::from_secs(1);
/// Open segments (file handles) at most; past it the oldest is sealed early. Many distinct
/// column sets from clients must not exhaust file descriptors.
const MAX_OPEN_SEGMENTS: usize = 64;

pub(crate) type FlushReply = oneshot::Sender<Result<Vec<String>, PredlogError>>;

pub(crate) enum Msg {
    Entry(Entry),
    Flush(FlushReply),
}

/// Rows of one deployment, model, version and role, in one hour, with one set of columns.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    deployment: String,
    model: String,
    version: String,
    role: &'static str,
    hour: i64,
    shape: Shape,
}

pub(crate) struct Writer {
    artifacts: Artifacts,
    spool_root: PathBuf,
    flush_rows: usize,
    roll_after: Duration,
    max_segment_bytes: u64,
    shared: Arc<Shared>,
    rt: tokio::runtime::Runtime,
    open: HashMap<Key, Segment>,
    /// Sealed files whose upload failed; retried every `roll_after` and at every flush.
    retry: Vec<SpoolFile>,
}

impl Writer {
    pub fn new(artifacts: Artifacts, config: &Config, shared: Arc<Shared>, rt: tokio::runtime::Runtime) -> Self {
        Writer {
            artifacts,
            spool_root: config.spool_dir.clone(),
            flush_rows: config.flush_rows.max(1),
            roll_after: config.roll_after,
            max_segment_bytes: config.max_segment_bytes,
            shared,
            rt,
            open: HashMap::new(),
            retry: Vec::new(),
        }
    }

    /// Uploads what an earlier process left in the spool, then serves the queue until every
    /// handle is gone, and seals and uploads what is open before returning.
    pub fn run(mut self, rx: Receiver<Msg>, gate: Option<Receiver<()>>) {
        for file in segment::recover(&self.spool_root) {
            let _ = self.upload(file);
        }
        if let Some(gate) = gate {
            let _ = gate.recv();
        }
        let mut last_tick = Instant::now();
        let mut last_retry = Instant::now();
        loop {
            let wait = BATCH_INTERVAL.saturating_sub(last_tick.elapsed());
            match rx.recv_timeout(wait) {
                Ok(Msg::Entry(entry)) => {
                    self.shared.queued_rows.fetch_sub(entry.rows, Ordering::Relaxed);
                    self.add(entry);
                }
                Ok(Msg::Flush(reply)) => {
                    let _ = reply.send(self.seal_all());
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if last_tick.elapsed() >= BATCH_INTERVAL {
                last_tick = Instant::now();
                self.tick();
                if !self.retry.is_empty() && last_retry.elapsed() >= self.roll_after {
                    last_retry = Instant::now();
                    self.retry_uploads();
                }
            }
        }
        if let Err(e) = self.seal_all() {
            tracing::warn!(error = %e, "prediction log segments stay in the spool for the next start");
        }
    }

    fn add(&mut self, entry: Entry) {
        let key = Key {
            deployment: entry.deployment.clone(),
            model: entry.model.clone(),
            version: entry.version.clone(),
            role: entry.role,
            hour: entry.timestamp_us.div_euclid(MICROS_PER_HOUR),
            shape: batch::shape_of(&entry),
        };
        if !self.open.contains_key(&key) {
            if self.open.len() >= MAX_OPEN_SEGMENTS {
                self.seal_oldest();
            }
            let counts = self.shared.counts(&entry.deployment);
            match Segment::create(&self.spool_root, &entry, key.shape.clone(), counts.clone()) {
                Ok(seg) => {
                    self.open.insert(key.clone(), seg);
                }
                Err(e) => {
                    counts.dropped.fetch_add(entry.rows as u64, Ordering::Relaxed);
                    tracing::warn!(error = %e, deployment = %entry.deployment, "cannot open a prediction log segment");
                    return;
                }
            }
        }
        let Some(seg) = self.open.get_mut(&key) else { return };
        seg.push(entry);
        if seg.pending_rows() < self.flush_rows {
            return;
        }
        let written = seg.write_pending();
        if (written.is_err() || seg.bytes() >= self.max_segment_bytes)
            && let Some(seg) = self.open.remove(&key)
        {
            let _ = self.seal_and_upload(seg);
        }
    }

    /// Writes every segment's pending rows and seals the segments older than `roll_after`.
    fn tick(&mut self) {
        let mut due = Vec::new();
        for (key, seg) in &mut self.open {
            let written = seg.write_pending();
            if written.is_err() || seg.opened.elapsed() >= self.roll_after || seg.bytes() >= self.max_segment_bytes {
                due.push(key.clone());
            }
        }
        for key in due {
            if let Some(seg) = self.open.remove(&key) {
                let _ = self.seal_and_upload(seg);
            }
        }
    }

    fn seal_oldest(&mut self) {
        let oldest = self.open.iter().min_by_key(|(_, s)| s.opened).map(|(k, _)| k.clone());
        if let Some(seg) = oldest.and_then(|k| self.open.remove(&k)) {
            let _ = self.seal_and_upload(seg);
        }
    }

    /// Seals every open segment and uploads it with the failed uploads of before; returns
    /// the paths uploaded, or the first error once everything was tried.
    fn seal_all(&mut self) -> Result<Vec<String>, PredlogError> {
        let mut uploaded = Vec::new();
        let mut first_err = None;
        let segments: Vec<Segment> = self.open.drain().map(|(_, s)| s).collect();
        for seg in segments {
            match self.seal_and_upload(seg) {
                Ok(Some(path)) => uploaded.push(path),
                Ok(None) => {}
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        for file in std::mem::take(&mut self.retry) {
            match self.upload(file) {
                Ok(path) => uploaded.push(path),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        uploaded.sort();
        match first_err {
            None => Ok(uploaded),
            Some(e) => Err(e),
        }
    }

    /// Seals and uploads a segment; a segment that failed to write is salvaged first, and
    /// one with nothing to salvage is gone (`Ok(None)`).
    fn seal_and_upload(&mut self, seg: Segment) -> Result<Option<String>, PredlogError> {
        let (file, sealed) = seg.seal();
        if let Err(e) = sealed {
            tracing::warn!(path = %file.rel, error = %e, "prediction log segment failed, keeping its complete batches");
            match segment::salvage(&file) {
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(path = %file.rel, error = %e, "cannot salvage prediction log segment");
                    return Err(e);
                }
            }
        }
        self.upload(file).map(Some)
    }

    /// Uploads one sealed file; on failure it stays in the spool and is retried.
    fn upload(&mut self, file: SpoolFile) -> Result<String, PredlogError> {
        match self.rt.block_on(segment::upload(&self.artifacts, &self.spool_root, &file)) {
            Ok(uploaded) => {
                tracing::debug!(path = %uploaded, "uploaded prediction log segment");
                Ok(uploaded)
            }
            Err(e) => {
                tracing::warn!(path = %file.rel, error = %e, "prediction log upload failed, will retry");
                self.retry.push(file);
                Err(e)
            }
        }
    }

    fn retry_uploads(&mut self) {
        for file in std::mem::take(&mut self.retry) {
            let _ = self.upload(file);
        }
    }
}
