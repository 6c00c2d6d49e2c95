//! The store: one connection pool over SQLite or PostgreSQL, chosen by the database URL at start-up.
//!
//! Every query in the project is written once, in the SQL both engines accept (`$1` placeholders, `RETURNING`,
//! `ON CONFLICT`), and runs through sqlx's `Any` driver. The schema is kept as two migration sets in
//! `migrations/sqlite` and `migrations/postgres` that differ only in type names; both are embedded in the
//! binary and run at start-up.
//!
//! Column conventions (see the migrations): times are unix milliseconds as 64-bit integers, money is base
//! units as decimal text, booleans are 0/1 integers. `Any` decodes exactly those types the same way on both
//! engines, which is why no column uses a native timestamp, numeric or boolean type.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyConnection, AnyPool, Connection, Executor};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL `{0}`: use sqlite://… or postgres://…")]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create the database directory: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

/// A handle to the database. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("backend", &self.backend).finish()
    }
}

impl Store {
    /// Connects, creating the SQLite file (and its directory) if needed, and runs the migrations.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        };
        let mut url = url.to_owned();
        if backend == Backend::Sqlite {
            url = prepare_sqlite_url(&url)?;
        }
        let options = AnyConnectOptions::from_str(&url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the single writer; busy_timeout turns writer contention
                        // into waiting instead of SQLITE_BUSY errors.
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            // A connection goes back to the pool only outside any transaction. A failed COMMIT (a full disk:
            // SQLITE_FULL, PostgreSQL's 53100) can leave one open, or leave sqlx's idea of the nesting depth
            // out of step with the engine's; such a connection would hold SQLite's write lock (every other
            // writer then waits `busy_timeout` and fails `database is locked`) and swallow later writes into a
            // transaction nobody commits. It is closed instead, and the pool opens a fresh one.
            .after_release(move |conn, _meta| Box::pin(async move { Ok(left_clean(conn, backend).await) }))
            .connect_with(options)
            .await?;
        let store = Store { pool, backend };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        match self.backend {
            Backend::Sqlite => {
                // On a connection of its own, closed afterwards: a migration that edits a table's stored schema
                // (0011 widens a CHECK through `writable_schema`) leaves the connection that ran it with the old
                // copy; every other connection re-reads the schema when it sees the change.
                let mut conn = self.pool.acquire().await?.detach();
                let result = SQLITE_MIGRATIONS.run(&mut conn).await;
                let _ = sqlx::Connection::close(conn).await;
                result?;
            }
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    /// The pool, for this crate's queries only: every table has one owner, and it is this crate (tests reach
    /// it through `testing::RawSql`).
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A trivial round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Whether a released connection is fit for reuse: no transaction open, in sqlx's count or in the engine.
async fn left_clean(conn: &mut AnyConnection, backend: Backend) -> bool {
    // A dropped transaction's ROLLBACK is queued on the connection; a round trip makes sure it ran.
    if conn.ping().await.is_err() || conn.is_in_transaction() {
        tracing::warn!("discarding a database connection left inside a transaction");
        return false;
    }
    if backend == Backend::Sqlite {
        // SQLite itself refuses BEGIN inside a transaction: the engine's own answer, whatever sqlx counts.
        // A deferred BEGIN takes no lock, so this costs two in-process statements.
        if conn.execute("BEGIN").await.is_err() || conn.execute("ROLLBACK").await.is_err() {
            tracing::warn!("discarding a SQLite connection the engine still holds in a transaction");
            return false;
        }
    }
    true
}

/// Makes sure the file's directory exists and asks sqlx to create the file.
fn prepare_sqlite_url(url: &str) -> Result<String, StoreError> {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path != ":memory:" && !path.is_empty() {
        if let Some(dir) = Path::new(path).parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)?;
            }
        }
    }
    let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty() && !p.starts_with("mode=")).collect();
    params.push("mode=rwc");
    Ok(format!("sqlite://{path}?{}", params.join("&")))
}

/// Milliseconds since the Unix epoch: the one time representation in the store.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
