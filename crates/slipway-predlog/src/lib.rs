//! The serving prediction log: every logged request and response, as columnar rows, in the
//! artifact store, partitioned by deployment, date and hour (see `docs/design/serving.md`,
//! section 8).
//!
//! This crate owns the whole path from a served request to a file that monitoring reads:
//! a bounded queue that never slows or fails a request (a full queue drops the entry and
//! counts it), one writer thread, segment files in a local spool, their seal and upload,
//! and the recovery of what a dead process left in the spool. It knows nothing of HTTP or
//! of models; serving hands it [`Entry`] values.
//!
//! Why Arrow IPC: an object store cannot append, so a segment is written locally and
//! uploaded whole. The spool holds IPC *streams* (`.arrows`): a stream has no footer, so a
//! file cut off by `kill -9` is still a readable prefix of complete record batches (a
//! Parquet file without its footer is unreadable). At upload a sealed stream is rewritten
//! as an IPC *file* (`.arrow`), whose footer dataset readers need: the partition
//! directories are Hive-named, so `pyarrow.dataset.dataset(root, format="arrow",
//! partitioning="hive")` (or DuckDB, polars) reads a whole tree as one table. Parquet would
//! cost the `arrow-ipc` dependencies plus its own.

mod batch;
mod layout;
mod segment;
mod writer;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock, mpsc};
use std::time::Duration;

use slipway_artifacts::{ArtifactError, Artifacts};

pub use layout::{PREFIX, list_segments, list_segments_between, read_segment};

/// The values of one column, row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    Bool(Vec<bool>),
    Str(Vec<String>),
}

impl ColumnData {
    pub fn len(&self) -> usize {
        match self {
            ColumnData::F32(v) => v.len(),
            ColumnData::F64(v) => v.len(),
            ColumnData::I64(v) => v.len(),
            ColumnData::I32(v) => v.len(),
            ColumnData::Bool(v) => v.len(),
            ColumnData::Str(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One named input or output of a request, row-major: `data.len() == rows * width`.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub width: usize,
    pub data: ColumnData,
}

/// One request/response pair; `rows` rows each.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub request_id: String,
    /// Unix microseconds, UTC.
    pub timestamp_us: i64,
    /// The deployment name, or `-` for a model served without one.
    pub deployment: String,
    pub model: String,
    pub version: String,
    /// `primary`, `canary` or `shadow`.
    pub role: &'static str,
    /// `mlflow`, `v2` or `v1`.
    pub protocol: &'static str,
    pub status: u16,
    pub latency_us: u32,
    pub rows: usize,
    pub inputs: Vec<Column>,
    pub outputs: Vec<Column>,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Where segments are written before upload; one process per spool directory.
    pub spool_dir: PathBuf,
    /// Rows waiting for the writer at most; past it entries are dropped and counted.
    pub queue_rows: usize,
    /// Rows per record batch (pending rows are also written every second).
    pub flush_rows: usize,
    /// A segment older than this is sealed and uploaded.
    pub roll_after: Duration,
    /// A segment that reaches this size is sealed and uploaded.
    pub max_segment_bytes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            spool_dir: PathBuf::from("serving/predlog"),
            queue_rows: 10_000,
            flush_rows: 1_000,
            roll_after: Duration::from_secs(60),
            max_segment_bytes: 64 << 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PredlogError {
    /// A deployment or version name that cannot be a path segment, or a path outside the log.
    #[error("{0}")]
    InvalidName(String),
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error("prediction log spool {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("prediction log segment {path}: {source}")]
    Arrow { path: String, source: arrow_schema::ArrowError },
    #[error("prediction log writer is not running")]
    Closed,
}

/// Rows logged and dropped for one deployment, since start.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub logged: AtomicU64,
    pub dropped: AtomicU64,
}

/// What the handles and the writer thread share.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub queued_rows: AtomicUsize,
    by_deployment: RwLock<HashMap<String, Arc<Counts>>>,
}

impl Shared {
    pub fn counts(&self, deployment: &str) -> Arc<Counts> {
        if let Some(c) = self.by_deployment.read().unwrap_or_else(PoisonError::into_inner).get(deployment) {
            return c.clone();
        }
        let mut all = self.by_deployment.write().unwrap_or_else(PoisonError::into_inner);
        all.entry(deployment.to_string()).or_default().clone()
    }

    fn get(&self, deployment: &str, pick: impl Fn(&Counts) -> &AtomicU64) -> u64 {
        let all = self.by_deployment.read().unwrap_or_else(PoisonError::into_inner);
        all.get(deployment).map_or(0, |c| pick(c).load(Ordering::Relaxed))
    }
}

/// A cheap, cloneable handle on the prediction log. When the last handle is dropped the
/// writer seals and uploads what is open and stops.
#[derive(Debug, Clone)]
pub struct PredictionLog {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    tx: mpsc::Sender<writer::Msg>,
    shared: Arc<Shared>,
    queue_rows: usize,
}

impl PredictionLog {
    /// Starts the writer thread, which first uploads any segments left in the spool by an
    /// earlier process.
    pub fn start(artifacts: Artifacts, config: Config) -> Result<Self, PredlogError> {
        Self::start_gated(artifacts, config, None)
    }

    /// `start`, with a writer that waits for `gate` before taking entries (tests fill the
    /// queue deterministically with it).
    fn start_gated(
        artifacts: Artifacts,
        config: Config,
        gate: Option<mpsc::Receiver<()>>,
    ) -> Result<Self, PredlogError> {
        let spool = &config.spool_dir;
        std::fs::create_dir_all(spool).map_err(|source| PredlogError::Io { path: spool.clone(), source })?;
        let shared = Arc::new(Shared::default());
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let thread_shared = shared.clone();
        let thread_config = config.clone();
        let spawned = std::thread::Builder::new().name("slipway-predlog".into()).spawn(move || {
            // The runtime is built and dropped on this thread, never inside the caller's.
            match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => {
                    let _ = ready_tx.send(Ok(()));
                    writer::Writer::new(artifacts, &thread_config, thread_shared, rt).run(rx, gate);
                }
                Err(source) => {
                    let _ = ready_tx.send(Err(source));
                }
            }
        });
        let io = |source| PredlogError::Io { path: config.spool_dir.clone(), source };
        spawned.map_err(io)?;
        ready_rx.recv().map_err(|_| PredlogError::Closed)?.map_err(io)?;
        Ok(PredictionLog { inner: Arc::new(Inner { tx, shared, queue_rows: config.queue_rows }) })
    }

    /// Queues an entry for the log. Never blocks and never fails the caller: an entry that
    /// does not fit in the queue, or that is malformed, is dropped and counted.
    pub fn record(&self, entry: Entry) {
        let inner = &*self.inner;
        if entry.rows == 0 {
            return;
        }
        if let Err(why) = check(&entry) {
            self.drop_entry(&entry, &why);
            return;
        }
        let rows = entry.rows;
        let admitted = inner
            .shared
            .queued_rows
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| {
                q.checked_add(rows).filter(|&n| n <= inner.queue_rows)
            })
            .is_ok();
        if !admitted {
            self.drop_entry(&entry, "prediction log queue is full");
            return;
        }
        if let Err(mpsc::SendError(writer::Msg::Entry(entry))) = inner.tx.send(writer::Msg::Entry(entry)) {
            inner.shared.queued_rows.fetch_sub(rows, Ordering::Relaxed);
            self.drop_entry(&entry, "prediction log writer is not running");
        }
    }

    fn drop_entry(&self, entry: &Entry, why: &str) {
        let counts = self.inner.shared.counts(&entry.deployment);
        let before = counts.dropped.fetch_add(entry.rows as u64, Ordering::Relaxed);
        // The first drop of a deployment is a warning; a steady stream of them is not a
        // steady stream of log lines.
        if before == 0 || (before >= 1024 && before.is_power_of_two()) {
            tracing::warn!(deployment = %entry.deployment, dropped_before = before, "{why}, dropping logged rows");
        }
    }

    /// Seals every open segment and uploads it (with any upload that failed earlier);
    /// returns the artifact paths written, relative to the artifact root. Entries recorded
    /// before the call are included.
    pub async fn flush(&self) -> Result<Vec<String>, PredlogError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.inner.tx.send(writer::Msg::Flush(reply)).map_err(|_| PredlogError::Closed)?;
        answer.await.map_err(|_| PredlogError::Closed)?
    }

    /// Rows of a deployment written to a segment since start.
    pub fn logged_total(&self, deployment: &str) -> u64 {
        self.inner.shared.get(deployment, |c| &c.logged)
    }

    /// Rows of a deployment dropped since start: queue full, malformed entry, failed write.
    pub fn dropped_total(&self, deployment: &str) -> u64 {
        self.inner.shared.get(deployment, |c| &c.dropped)
    }

    /// `(deployment, logged rows, dropped rows)` for every deployment seen, sorted by name:
    /// what `/metrics` exposes.
    pub fn snapshot(&self) -> Vec<(String, u64, u64)> {
        let all = self.inner.shared.by_deployment.read().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<_> = all
            .iter()
            .map(|(d, c)| (d.clone(), c.logged.load(Ordering::Relaxed), c.dropped.load(Ordering::Relaxed)))
            .collect();
        out.sort();
        out
    }
}

/// What makes an entry unloggable; checked before it is queued so the writer never meets it.
fn check(entry: &Entry) -> Result<(), String> {
    layout::check_name("deployment", &entry.deployment).map_err(|e| e.to_string())?;
    layout::check_name("version", &entry.version).map_err(|e| e.to_string())?;
    if !(0..layout::MAX_TIMESTAMP_US).contains(&entry.timestamp_us) {
        return Err(format!("timestamp {} us is outside years 1970..9999", entry.timestamp_us));
    }
    if u32::try_from(entry.rows).is_err() {
        return Err(format!("{} rows do not fit one entry", entry.rows));
    }
    for (side, cols) in [("input", &entry.inputs), ("output", &entry.outputs)] {
        for (i, c) in cols.iter().enumerate() {
            if c.width == 0 || i32::try_from(c.width).is_err() {
                return Err(format!("{side} '{}' has width {}", c.name, c.width));
            }
            if entry.rows.checked_mul(c.width) != Some(c.data.len()) {
                let (rows, width, len) = (entry.rows, c.width, c.data.len());
                return Err(format!("{side} '{}' has {len} values, not {rows} rows x {width}", c.name));
            }
            if cols[..i].iter().any(|o| o.name == c.name) {
                return Err(format!("{side} '{}' appears twice", c.name));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
