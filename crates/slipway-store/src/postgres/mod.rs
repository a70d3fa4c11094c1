//! The PostgreSQL backend: many servers on one database.
//!
//! No writer thread: each request runs in its own transaction on a pooled connection, so
//! writers on several replicas interleave as PostgreSQL allows. Writes run at READ COMMITTED;
//! uniqueness is the database's (unique keys on names, `ON CONFLICT` for upserts), and a
//! request that lost a race is run again from the start, where its own checks now see the
//! winner and answer as they would have on one machine (`AlreadyExists`, a changed param).
//! Serialization failures and deadlocks are retried the same way, a few times with backoff,
//! then answered as [`StoreError::Conflict`] (retryable). Reads run in one REPEATABLE READ READ
//! ONLY transaction, so a request sees one snapshot. A commit returns once PostgreSQL has made
//! it durable (`synchronous_commit = on`, the default).
//!
//! Migrations are the SQLite ones' twins with the same numbers, applied at start-up in one
//! transaction under an advisory lock, so replicas starting together apply each exactly once.

use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{Notify, Semaphore};
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, Config, NoTls};

use crate::sql::conn::{Connection, PgSession};
use crate::sql::{Backend, SqlStore, experiments};
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
/// Key of the advisory lock migrations hold ("slipway" in ASCII).
const MIGRATION_LOCK: i64 = 0x0073_6c69_7077_6179;
/// How often a request that lost a race or a deadlock is run again before it gives up.
const MAX_ATTEMPTS: u32 = 6;

/// The PostgreSQL metadata store.
pub type PostgresStore = SqlStore<Postgres>;

/// The pool of sessions and what it takes to open another.
pub struct Postgres {
    config: Config,
    idle: Arc<Mutex<Vec<PgSession>>>,
    permits: Arc<Semaphore>,
    runtime: Handle,
    /// The change watches started, stopped by `close`.
    watches: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl SqlStore<Postgres> {
    /// Connects to `uri` (`postgresql://user:password@host:port/db?options`), applies pending
    /// migrations and keeps at most `pool_size` connections open.
    pub async fn connect(uri: &str, artifact_root: &str, pool_size: usize) -> Result<Self> {
        let config = Config::from_str(uri).map_err(|e| StoreError::InvalidParameter(format!("{uri}: {e}")))?;
        Self::connect_with(config, artifact_root, pool_size).await
    }

    /// As [`connect`](Self::connect), from a parsed configuration.
    pub async fn connect_with(config: Config, artifact_root: &str, pool_size: usize) -> Result<Self> {
        let backend = Postgres {
            config,
            idle: Arc::default(),
            permits: Arc::new(Semaphore::new(pool_size.max(1))),
            runtime: Handle::current(),
            watches: Mutex::default(),
        };
        let root = artifact_root.trim_end_matches('/').to_string();
        backend
            .session(move |s| {
                migrate(s)?;
                in_transaction(s, "BEGIN", |c| experiments::ensure_default(c, &root))
            })
            .await?;
        Ok(SqlStore::new(backend, artifact_root))
    }
}

async fn open_session(config: &Config, runtime: &Handle) -> Result<PgSession> {
    let (client, connection) =
        config.connect(NoTls).await.map_err(|e| StoreError::Backend(format!("connect to PostgreSQL: {e}")))?;
    runtime.spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "PostgreSQL connection ended");
        }
    });
    Ok(PgSession::new(client, runtime.clone()))
}

impl Postgres {
    /// Runs `work` on a blocking thread with a pooled session, and returns the session to the
    /// pool unless its connection broke.
    async fn session<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut PgSession) -> Result<T> + Send + 'static,
    {
        let permit =
            self.permits.clone().acquire_owned().await.map_err(|_| StoreError::Backend("store is closed".into()))?;
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let mut session = match idle {
            Some(s) if !s.client.is_closed() => s,
            _ => open_session(&self.config, &self.runtime).await?,
        };
        let pool = self.idle.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let result = work(&mut session);
            if !session.client.is_closed() {
                pool.lock().unwrap_or_else(PoisonError::into_inner).push(session);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Backend(format!("database task failed: {e}")))?
    }
}

/// Runs `work` between `begin` and COMMIT, rolling back when it fails.
fn in_transaction<T>(session: &PgSession, begin: &str, work: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    let sql =
        |text: &str| session.block_on(session.client.batch_execute(text)).map_err(crate::sql::conn::DbError::from);
    sql(begin)?;
    let result = work(&Connection::Postgres(session));
    match result {
        Ok(v) => match sql("COMMIT") {
            Ok(()) => Ok(v),
            Err(e) => {
                session.note_code(&e);
                Err(e.into())
            }
        },
        Err(e) => {
            let _ = sql("ROLLBACK");
            Err(e)
        }
    }
}

/// Whether a failure with this SQLSTATE is a lost race that running again can resolve.
fn retryable(code: &SqlState) -> bool {
    *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
        || *code == SqlState::UNIQUE_VIOLATION
}

fn backoff(attempt: u32) -> Duration {
    let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0] % 10);
    Duration::from_millis((5u64 << attempt.min(6)) + jitter)
}

impl Backend for Postgres {
    const SHARED: bool = true;

    async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T> + Send + 'static,
    {
        self.session(move |session| {
            let mut attempt = 0;
            loop {
                // A failure left over from an earlier request on this session says nothing here.
                session.take_last_code();
                let result = in_transaction(session, "BEGIN", &work);
                let code = session.take_last_code();
                match (&result, code) {
                    (Err(_), Some(code)) if retryable(&code) && attempt + 1 < MAX_ATTEMPTS => {
                        attempt += 1;
                        std::thread::sleep(backoff(attempt));
                    }
                    (Err(_), Some(code)) if code == SqlState::UNIQUE_VIOLATION => {
                        return Err(StoreError::AlreadyExists(
                            "a concurrent request created the same object; it already exists".into(),
                        ));
                    }
                    (Err(_), Some(code)) if retryable(&code) => {
                        return Err(StoreError::Conflict(
                            "too many concurrent changes to the same objects; retry the request".into(),
                        ));
                    }
                    _ => return result,
                }
            }
        })
        .await
    }

    async fn read<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.session(move |session| in_transaction(session, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", work))
            .await
    }

    fn watch_changes(&self, changed: Arc<Notify>) {
        let config = self.config.clone();
        let task = self.runtime.spawn(async move {
            let mut pause = Duration::from_millis(100);
            loop {
                match listen(&config, &changed).await {
                    Ok(()) => pause = Duration::from_millis(100),
                    Err(e) => tracing::warn!(error = %e, "watching PostgreSQL for changes failed; reconnecting"),
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        });
        self.watches.lock().unwrap_or_else(PoisonError::into_inner).push(task.abort_handle());
    }

    async fn close(&self) {
        self.watches.lock().unwrap_or_else(PoisonError::into_inner).drain(..).for_each(|w| w.abort());
        self.permits.close();
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}

/// One connection that LISTENs on `slipway_changes_<schema>`, where `Connection::lock`
/// announces every registry, deployment and monitor change (PostgreSQL delivers it at commit,
/// drops it on rollback), and pokes `changed` for each notification until the connection
/// ends. Notifications are not kept while nobody listens, so each (re)connect pokes once too.
async fn listen(config: &Config, changed: &Notify) -> std::result::Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let messages = async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(_))) => changed.notify_one(),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            }
        }
    };
    let subscribe = async {
        // The name `Connection::lock` notifies, cut to an identifier's 63 bytes as it is there.
        let channel: String =
            client.query_one("SELECT left('slipway_changes_' || current_schema(), 63)", &[]).await?.get(0);
        let channel = channel.replace('"', "\"\"");
        client.batch_execute(&format!("LISTEN \"{channel}\"")).await?;
        changed.notify_one();
        // Keep the client (and so the connection) alive while messages are read.
        std::future::pending::<std::result::Result<(), tokio_postgres::Error>>().await
    };
    tokio::select! {
        r = messages => r,
        r = subscribe => r,
    }
}

fn migrate(session: &PgSession) -> Result<()> {
    in_transaction(session, "BEGIN", |c| {
        c.query_row("SELECT pg_advisory_xact_lock(?1)", [MIGRATION_LOCK], |_| Ok(()))?;
        c.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
            crate::sql::conn::params![],
        )?;
        for (version, sql) in MIGRATIONS {
            let done: bool =
                c.query_row("SELECT EXISTS(SELECT 1 FROM schema_migrations WHERE version = ?1)", [version], |r| {
                    r.get(0)
                })?;
            if done {
                continue;
            }
            tracing::info!(version, "applying postgresql migration");
            session.block_on(session.client.batch_execute(sql)).map_err(crate::sql::conn::DbError::from)?;
            c.execute("INSERT INTO schema_migrations VALUES (?1, ?2)", (*version, crate::now_ms()))?;
        }
        Ok(())
    })
}
