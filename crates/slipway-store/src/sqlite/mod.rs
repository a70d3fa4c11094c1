//! The embedded SQLite backend.
//!
//! One writer thread owns the only read-write connection and group-commits: it drains every
//! write request waiting in its queue, applies each inside its own SAVEPOINT (so a failing
//! request rolls back alone and a request is all-or-nothing), commits once, and only then
//! answers the callers. Nobody else writes, so SQLite's lock is never contended and
//! "database is locked" cannot happen. Readers use a small pool of read-only connections in
//! WAL mode, each read inside one transaction so it sees a consistent snapshot.
//! `synchronous=FULL`: a commit is on disk before its request is acknowledged.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{Semaphore, oneshot};

use crate::sql::{self, Backend, SqlStore, experiments};
use crate::{Result, StoreError};

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_tracking.sql")),
    (2, include_str!("migrations/0002_registry.sql")),
    (3, include_str!("migrations/0003_deployments.sql")),
    (4, include_str!("migrations/0004_monitoring.sql")),
    (5, include_str!("migrations/0005_leases.sql")),
    (6, include_str!("migrations/0006_logged_model_metrics.sql")),
    (7, include_str!("migrations/0007_auth.sql")),
    (8, include_str!("migrations/0008_access_denials.sql")),
    (9, include_str!("migrations/0009_data.sql")),
    (10, include_str!("migrations/0010_labeling.sql")),
    (11, include_str!("migrations/0011_label_feed.sql")),
];
/// The most write requests committed together in one transaction.
const MAX_GROUP: usize = 512;

/// A write request queued for the writer thread.
trait WriteJob: Send {
    /// Applies the change; `false` means it failed and its savepoint must be rolled back.
    fn apply(&mut self, conn: &Connection) -> bool;
    /// Answers the caller once the transaction's fate is known.
    fn finish(self: Box<Self>, commit: Result<(), String>);
}

struct TypedJob<T, F> {
    work: Option<F>,
    result: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T: Send, F: FnOnce(&sql::Connection) -> Result<T> + Send> WriteJob for TypedJob<T, F> {
    fn apply(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else { return false };
        let result = catch_unwind(AssertUnwindSafe(|| work(&sql::Connection::Sqlite(conn))))
            .unwrap_or_else(|_| Err(StoreError::Backend("write request panicked".into())));
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }
    fn finish(self: Box<Self>, commit: Result<(), String>) {
        let answer = match (commit, self.result) {
            (_, Some(Err(e))) => Err(e),
            (Ok(()), Some(Ok(v))) => Ok(v),
            (Err(e), _) => Err(StoreError::Backend(format!("commit failed: {e}"))),
            (Ok(()), None) => Err(StoreError::Backend("write request was not applied".into())),
        };
        let _ = self.reply.send(answer);
    }
}

/// The SQLite metadata store.
pub type SqliteStore = SqlStore<Sqlite>;

/// The SQLite backend: the writer thread's queue and the pool of readers.
pub struct Sqlite {
    writer: Mutex<Option<mpsc::Sender<Box<dyn WriteJob>>>>,
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    readers: Arc<Mutex<Vec<Connection>>>,
    read_permits: Arc<Semaphore>,
}

/// Page cache per connection, in KiB: the writer keeps hot index pages, readers stay small so
/// the whole server fits in a few tens of megabytes.
const WRITER_CACHE_KIB: i64 = 8 * 1024;
const READER_CACHE_KIB: i64 = 2 * 1024;

fn configure(conn: &Connection, cache_kib: i64) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA case_sensitive_like = ON;")?;
    conn.pragma_update(None, "cache_size", -cache_kib)
}

impl SqlStore<Sqlite> {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    /// `artifact_root` prefixes new experiments' artifact locations, e.g. `mlflow-artifacts:`.
    pub fn open(path: &Path, artifact_root: &str, readers: usize) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Backend(format!("create {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        configure(&conn, WRITER_CACHE_KIB)?;
        migrate(&conn)?;
        experiments::ensure_default(&sql::Connection::Sqlite(&conn), artifact_root)?;

        let readers = readers.max(1);
        let mut pool = Vec::with_capacity(readers);
        for _ in 0..readers {
            let r =
                Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
            configure(&r, READER_CACHE_KIB)?;
            r.pragma_update(None, "query_only", "ON")?;
            pool.push(r);
        }

        let (tx, rx) = mpsc::channel::<Box<dyn WriteJob>>();
        let handle = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(|e| StoreError::Backend(format!("spawn writer: {e}")))?;
        let backend = Sqlite {
            writer: Mutex::new(Some(tx)),
            writer_thread: Mutex::new(Some(handle)),
            readers: Arc::new(Mutex::new(pool)),
            read_permits: Arc::new(Semaphore::new(readers)),
        };
        Ok(SqlStore::new(backend, artifact_root))
    }
}

impl Backend for Sqlite {
    const SHARED: bool = false;

    async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&sql::Connection) -> Result<T> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job = Box::new(TypedJob { work: Some(work), result: None, reply });
        {
            let guard = self.writer.lock().map_err(|_| StoreError::Backend("writer lock poisoned".into()))?;
            let sender = guard.as_ref().ok_or_else(|| StoreError::Backend("store is closed".into()))?;
            sender.send(job).map_err(|_| StoreError::Backend("writer thread is gone".into()))?;
        }
        rx.await.map_err(|_| StoreError::Backend("writer dropped the request".into()))?
    }

    async fn read<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&sql::Connection) -> Result<T> + Send + 'static,
    {
        let permit = self
            .read_permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Backend("store is closed".into()))?;
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = pool
                .lock()
                .ok()
                .and_then(|mut p| p.pop())
                .ok_or_else(|| StoreError::Backend("no reader available".into()))?;
            let result = (|| {
                conn.execute_batch("BEGIN")?;
                let r = work(&sql::Connection::Sqlite(&conn));
                conn.execute_batch("COMMIT")?;
                r
            })();
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            pool.lock().unwrap_or_else(PoisonError::into_inner).push(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Backend(format!("reader task failed: {e}")))?
    }

    /// One process writes a SQLite file: it learns of its own changes where it makes them.
    fn watch_changes(&self, _changed: std::sync::Arc<tokio::sync::Notify>) {}

    async fn close(&self) {
        let sender = self.writer.lock().unwrap_or_else(PoisonError::into_inner).take();
        drop(sender);
        let handle = self.writer_thread.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
    }
}

fn migrate(conn: &Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )?;
    for (version, sql) in MIGRATIONS {
        let done: bool =
            conn.query_row("SELECT EXISTS(SELECT 1 FROM schema_migrations WHERE version = ?1)", [version], |r| {
                r.get(0)
            })?;
        if done {
            continue;
        }
        tracing::info!(version, "applying sqlite migration");
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let applied = conn
            .execute_batch(sql)
            .and_then(|_| conn.execute("INSERT INTO schema_migrations VALUES (?1, ?2)", (version, crate::now_ms())));
        match applied {
            Ok(_) => conn.execute_batch("COMMIT")?,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e.into());
            }
        }
    }
    Ok(())
}

fn writer_loop(conn: Connection, rx: mpsc::Receiver<Box<dyn WriteJob>>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let commit = run_group(&conn, &mut jobs);
        if let Err(e) = &commit {
            tracing::error!(error = %e, jobs = jobs.len(), "group commit failed");
        }
        for job in jobs {
            job.finish(commit.clone());
        }
    }
    // The channel closed: every queued request has been answered. Checkpoint so the WAL is
    // folded into the main file on a clean shutdown.
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
        tracing::warn!(error = %e, "final wal checkpoint failed");
    }
}

fn run_group(conn: &Connection, jobs: &mut [Box<dyn WriteJob>]) -> Result<(), String> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(|e| e.to_string())?;
    for job in jobs.iter_mut() {
        let step = conn.execute_batch("SAVEPOINT job").and_then(|_| {
            if job.apply(conn) {
                conn.execute_batch("RELEASE job")
            } else {
                conn.execute_batch("ROLLBACK TO job; RELEASE job")
            }
        });
        if let Err(e) = step {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e.to_string());
        }
    }
    conn.execute_batch("COMMIT").map_err(|e| {
        let _ = conn.execute_batch("ROLLBACK");
        e.to_string()
    })
}
