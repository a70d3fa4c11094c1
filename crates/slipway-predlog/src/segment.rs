//! One segment: an Arrow IPC stream file in the local spool, its seal, its upload, and the
//! salvage of a file that a dead process (or a failed write) left behind.
//!
//! Each record batch goes straight through to the spool file, so after a `kill -9` the file
//! is a readable stream prefix: the complete batches, then possibly a cut-off message.
//! Salvage keeps the complete batches, rewrites them as a proper stream (temporary file,
//! fsync, rename) and hands the file on for upload like any sealed segment.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::{FileWriter, StreamWriter};
use arrow_schema::SchemaRef;
use bytes::Bytes;
use slipway_artifacts::Artifacts;

use crate::batch::{self, Shape};
use crate::layout::{self, EXTENSION};
use crate::{Counts, Entry, PredlogError};

/// Bytes per chunk read from the spool file while uploading.
const UPLOAD_CHUNK: usize = 1 << 20;

/// A segment file in the spool: its artifact-relative path and where it lies on disk.
#[derive(Debug, Clone)]
pub(crate) struct SpoolFile {
    pub rel: String,
    pub spool: PathBuf,
}

/// An open segment: the stream writer over its spool file and the rows not yet written.
pub(crate) struct Segment {
    file: SpoolFile,
    shape: Shape,
    schema: SchemaRef,
    writer: StreamWriter<BufWriter<File>>,
    pending: Vec<Entry>,
    pending_rows: usize,
    bytes: u64,
    pub opened: Instant,
    counts: Arc<Counts>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PredlogError + '_ {
    move |source| PredlogError::Io { path: path.to_path_buf(), source }
}

fn arrow_err(rel: &str) -> impl FnOnce(arrow_schema::ArrowError) -> PredlogError + '_ {
    move |source| PredlogError::Arrow { path: rel.to_string(), source }
}

/// The spool location of an artifact-relative path (already checked by the sanitiser).
pub(crate) fn spool_path(spool_root: &Path, rel: &str) -> PathBuf {
    rel.split('/').fold(spool_root.to_path_buf(), |p, seg| p.join(seg))
}

/// Makes a rename or a new file in `dir` durable.
fn sync_dir(dir: &Path) {
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        tracing::debug!(dir = %dir.display(), error = %e, "could not fsync spool directory");
    }
}

impl Segment {
    /// Opens a new segment for entries shaped like `first`, writing the schema at once.
    pub fn create(spool_root: &Path, first: &Entry, shape: Shape, counts: Arc<Counts>) -> Result<Self, PredlogError> {
        let rel = layout::segment_path(&first.deployment, &first.version, first.timestamp_us);
        layout::checked(&rel)?;
        let spool = spool_path(spool_root, &rel);
        let dir = spool.parent().unwrap_or(spool_root);
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let handle = OpenOptions::new().write(true).create_new(true).open(&spool).map_err(io_err(&spool))?;
        let schema = batch::schema_of(&shape);
        let mut writer = StreamWriter::try_new_buffered(handle, &schema).map_err(arrow_err(&rel))?;
        writer.flush().map_err(arrow_err(&rel))?;
        let bytes = writer.get_ref().get_ref().metadata().map_err(io_err(&spool))?.len();
        Ok(Segment {
            file: SpoolFile { rel, spool },
            shape,
            schema,
            writer,
            pending: Vec::new(),
            pending_rows: 0,
            bytes,
            opened: Instant::now(),
            counts,
        })
    }

    pub fn push(&mut self, entry: Entry) {
        self.pending_rows += entry.rows;
        self.pending.push(entry);
    }

    pub fn pending_rows(&self) -> usize {
        self.pending_rows
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Writes the pending rows as one record batch and flushes it to the file. Rows that
    /// fail to write are counted as dropped; the segment should then be salvaged.
    pub fn write_pending(&mut self) -> Result<(), PredlogError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let entries = std::mem::take(&mut self.pending);
        let rows = std::mem::take(&mut self.pending_rows) as u64;
        let written = batch::build(&self.schema, &self.shape, &entries)
            .and_then(|b| self.writer.write(&b))
            .and_then(|()| self.writer.flush())
            .map_err(arrow_err(&self.file.rel))
            .and_then(|()| self.writer.get_ref().get_ref().metadata().map_err(io_err(&self.file.spool)));
        match written {
            Ok(meta) => {
                self.bytes = meta.len();
                self.counts.logged.fetch_add(rows, std::sync::atomic::Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.counts.dropped.fetch_add(rows, std::sync::atomic::Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Writes what is pending, ends the stream and fsyncs the file. The file is returned
    /// either way: on error it is to be salvaged rather than uploaded as it is.
    pub fn seal(mut self) -> (SpoolFile, Result<(), PredlogError>) {
        let result = self.write_pending();
        let Segment { file, writer, .. } = self;
        let result = result.and_then(|()| {
            let buffered = writer.into_inner().map_err(arrow_err(&file.rel))?;
            let handle = buffered.into_inner().map_err(|e| io_err(&file.spool)(e.into_error()))?;
            handle.sync_all().map_err(io_err(&file.spool))
        });
        if let Some(dir) = file.spool.parent() {
            sync_dir(dir);
        }
        (file, result)
    }
}

/// Rewrites a spool file as a complete stream of the batches that can be read from it,
/// returning how many rows it kept. A file with no complete batch is removed.
pub(crate) fn salvage(file: &SpoolFile) -> Result<usize, PredlogError> {
    let path = &file.spool;
    let input = File::open(path).map_err(io_err(path))?;
    let reader = match StreamReader::try_new(BufReader::new(input), None) {
        Ok(reader) => reader,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "spooled prediction log has no readable schema, removing it");
            std::fs::remove_file(path).map_err(io_err(path))?;
            return Ok(0);
        }
    };
    let tmp = path.with_extension("arrows.tmp");
    let out = File::create(&tmp).map_err(io_err(&tmp))?;
    let mut writer = StreamWriter::try_new_buffered(out, &reader.schema()).map_err(arrow_err(&file.rel))?;
    let mut rows = 0;
    for batch in reader {
        match batch {
            Ok(batch) => {
                rows += batch.num_rows();
                writer.write(&batch).map_err(arrow_err(&file.rel))?;
            }
            Err(e) => {
                // The message a dead writer was in the middle of: everything before it is kept.
                tracing::info!(path = %path.display(), error = %e, "cut off a truncated prediction log batch");
                break;
            }
        }
    }
    if rows == 0 {
        drop(writer);
        std::fs::remove_file(&tmp).map_err(io_err(&tmp))?;
        std::fs::remove_file(path).map_err(io_err(path))?;
        return Ok(0);
    }
    let buffered = writer.into_inner().map_err(arrow_err(&file.rel))?;
    let handle = buffered.into_inner().map_err(|e| io_err(&tmp)(e.into_error()))?;
    handle.sync_all().map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir);
    }
    Ok(rows)
}

/// Every segment file left in the spool, salvaged and ready for upload. Leftover temporary
/// files are removed; files that are not segments are left alone.
pub(crate) fn recover(spool_root: &Path) -> Vec<SpoolFile> {
    let mut found = Vec::new();
    let mut dirs = vec![spool_root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let listing = match std::fs::read_dir(&dir) {
            Ok(listing) => listing,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot list prediction log spool");
                continue;
            }
        };
        for item in listing.flatten() {
            let path = item.path();
            // DirEntry::file_type does not follow symbolic links, so none is walked into.
            let Ok(kind) = item.file_type() else { continue };
            let name = item.file_name().to_string_lossy().into_owned();
            if kind.is_dir() {
                dirs.push(path);
            } else if kind.is_file() && name.ends_with(".arrows.tmp") {
                let _ = std::fs::remove_file(&path);
            } else if kind.is_file() && name.ends_with(EXTENSION) {
                let rel = path.strip_prefix(spool_root).map(|r| {
                    r.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect::<Vec<_>>().join("/")
                });
                match rel.ok().filter(|rel| layout::checked(rel).is_ok()) {
                    Some(rel) => found.push(SpoolFile { rel, spool: path }),
                    None => tracing::warn!(path = %path.display(), "ignoring a file in the prediction log spool"),
                }
            }
        }
    }
    found.sort_by(|a, b| a.rel.cmp(&b.rel));
    let mut ready = Vec::new();
    for file in found {
        match salvage(&file) {
            Ok(0) => tracing::warn!(path = %file.rel, "spooled prediction log held no complete batch"),
            Ok(rows) => {
                tracing::info!(path = %file.rel, rows, "recovered spooled prediction log");
                ready.push(file);
            }
            Err(e) => tracing::warn!(path = %file.rel, error = %e, "cannot recover spooled prediction log"),
        }
    }
    ready
}

/// A sealed spool stream rewritten in the IPC file format (segments are bounded in size).
fn to_ipc_file(file: &SpoolFile) -> Result<Vec<u8>, PredlogError> {
    let input = File::open(&file.spool).map_err(io_err(&file.spool))?;
    let reader = StreamReader::try_new(BufReader::new(input), None).map_err(arrow_err(&file.rel))?;
    let mut out = Vec::new();
    let mut writer = FileWriter::try_new(&mut out, &reader.schema()).map_err(arrow_err(&file.rel))?;
    for batch in reader {
        writer.write(&batch.map_err(arrow_err(&file.rel))?).map_err(arrow_err(&file.rel))?;
    }
    writer.finish().map_err(arrow_err(&file.rel))?;
    drop(writer);
    Ok(out)
}

/// Uploads a sealed spool file as an IPC file, then removes it and any spool directories
/// left empty. Returns the uploaded path.
///
/// The file is read with blocking calls: this runs on the prediction log's own thread.
pub(crate) async fn upload(artifacts: &Artifacts, spool_root: &Path, file: &SpoolFile) -> Result<String, PredlogError> {
    let uploaded = layout::uploaded_path(&file.rel);
    let path = layout::checked(&uploaded)?;
    let bytes = Bytes::from(to_ipc_file(file)?);
    let body = futures::stream::iter(
        bytes.chunks(UPLOAD_CHUNK).map(|c| Ok::<_, std::io::Error>(bytes.slice_ref(c))).collect::<Vec<_>>(),
    );
    artifacts.put_stream(&path, body).await?;
    std::fs::remove_file(&file.spool).map_err(io_err(&file.spool))?;
    let mut dir = file.spool.parent();
    while let Some(d) = dir.filter(|d| d.starts_with(spool_root) && *d != spool_root) {
        if std::fs::remove_dir(d).is_err() {
            break; // not empty: another segment of the hour is still open
        }
        dir = d.parent();
    }
    Ok(uploaded)
}
