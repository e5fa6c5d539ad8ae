//! The read models' database: the log's SQLite file or PostgreSQL database, with this crate's
//! own embedded migrations, and the two macros that run one SQL text on either backend.
//!
//! Every statement in this crate is plain SQL that both engines accept (`$1` placeholders,
//! `ON CONFLICT … DO UPDATE`, `CAST(… AS TEXT)`); where they differ (bulk writes, full-text
//! search, row locks) the code matches on the backend explicitly.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool, Transaction};

use crate::{Error, Result};

/// The table that records which of this crate's migrations ran. It is not sqlx's default
/// `_sqlx_migrations`, which the store's migrator owns: a migrator refuses to run when the
/// table lists a version it does not know, so two migrators must not share one table.
pub const MIGRATIONS_TABLE: &str = "_projections_migrations";

/// How long a write waits for another writer (the log, another process) holding the SQLite
/// write lock before failing.
pub const SQLITE_BUSY_TIMEOUT_MS: u64 = 30_000;

/// Reader connections on SQLite: queries of the CLI and the gateway; WAL lets them run beside
/// the writer.
pub const SQLITE_READ_CONNECTION_COUNT_MAX: u32 = 4;

/// Connections on PostgreSQL: one writer per projection (four) plus readers.
pub const POSTGRES_CONNECTION_COUNT_MAX: u32 = 8;

/// The read models' database. Cheap to clone.
#[derive(Clone)]
pub enum Db {
    /// An SQLite file: one writer connection, a few readers.
    Sqlite {
        /// The single writer (writes are serialised anyway; one connection avoids busy errors).
        writer: SqlitePool,
        /// Readers.
        readers: SqlitePool,
    },
    /// A PostgreSQL database.
    Postgres(PgPool),
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sqlite { .. } => "Db::Sqlite",
            Self::Postgres(_) => "Db::Postgres",
        })
    }
}

/// A write transaction on either backend.
pub(crate) enum Tx {
    /// SQLite, begun with `BEGIN IMMEDIATE` (it holds the write lock from the start).
    Sqlite(Transaction<'static, Sqlite>),
    /// PostgreSQL.
    Postgres(Transaction<'static, Postgres>),
}

impl Tx {
    /// Commits.
    pub(crate) async fn commit(self) -> Result<()> {
        match self {
            Self::Sqlite(tx) => tx.commit().await?,
            Self::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }

    /// Rolls back.
    pub(crate) async fn rollback(self) -> Result<()> {
        match self {
            Self::Sqlite(tx) => tx.rollback().await?,
            Self::Postgres(tx) => tx.rollback().await?,
        }
        Ok(())
    }
}

/// Runs one statement on a [`Tx`]: `execute!(tx, "SQL", args…)` → `Result<u64, sqlx::Error>`
/// (rows affected). Every argument must encode on both backends (i64, f64, bool, String,
/// &str, Vec<u8>, &[u8], and `Option`s of them).
macro_rules! execute {
    ($tx:expr, $sql:expr $(, $arg:expr)* $(,)?) => {
        match $tx {
            $crate::db::Tx::Sqlite(tx) => sqlx::query($sql)$(.bind($arg))*.execute(&mut **tx).await.map(|r| r.rows_affected()),
            $crate::db::Tx::Postgres(tx) => sqlx::query($sql)$(.bind($arg))*.execute(&mut **tx).await.map(|r| r.rows_affected()),
        }
    };
}

/// Runs one query on a [`Tx`] and decodes rows: `fetch!(tx, fetch_all|fetch_optional|fetch_one,
/// RowType, "SQL", args…)`.
macro_rules! fetch {
    ($tx:expr, $method:ident, $row:ty, $sql:expr $(, $arg:expr)* $(,)?) => {
        match $tx {
            $crate::db::Tx::Sqlite(tx) => sqlx::query_as::<_, $row>($sql)$(.bind($arg))*.$method(&mut **tx).await,
            $crate::db::Tx::Postgres(tx) => sqlx::query_as::<_, $row>($sql)$(.bind($arg))*.$method(&mut **tx).await,
        }
    };
}

/// Runs one query on the readers of a [`Db`]: `read!(db, fetch_all, RowType, "SQL", args…)`.
macro_rules! read {
    ($db:expr, $method:ident, $row:ty, $sql:expr $(, $arg:expr)* $(,)?) => {
        match $db {
            $crate::db::Db::Sqlite { readers, .. } => sqlx::query_as::<_, $row>($sql)$(.bind($arg))*.$method(readers).await,
            $crate::db::Db::Postgres(pool) => sqlx::query_as::<_, $row>($sql)$(.bind($arg))*.$method(pool).await,
        }
    };
}

pub(crate) use {execute, fetch, read};

impl Db {
    /// Connects to the database the URL names (`sqlite://path?mode=rwc`, `postgres://…`) and
    /// applies this crate's migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .journal_mode(SqliteJournalMode::Wal)
                // Read models are derived data: a commit lost to a power failure is applied
                // again from the log (model and checkpoint are lost together), so NORMAL is
                // safe here and saves an fsync per batch.
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_millis(SQLITE_BUSY_TIMEOUT_MS));
            // No ping before each use (as in the store's SQLite log): a round trip per query,
            // and a query dropped during it lost its connection.
            let writer = SqlitePoolOptions::new()
                .max_connections(1)
                .test_before_acquire(false)
                .connect_with(options.clone())
                .await?;
            migrator("sqlite").run(&writer).await?;
            let in_memory = url.contains(":memory:") || url.contains("mode=memory");
            let readers = if in_memory {
                writer.clone()
            } else {
                SqlitePoolOptions::new()
                    .max_connections(SQLITE_READ_CONNECTION_COUNT_MAX)
                    .test_before_acquire(false)
                    .connect_with(options)
                    .await?
            };
            Ok(Self::Sqlite { writer, readers })
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // Custom plans for every statement: sqlx prepares each statement once per
            // connection, and a generic plan made while a table was empty (a rebuild starts
            // from nothing) kept scanning it whole as it grew: rebuilds of a million events
            // ran at half the speed of a hundred thousand.
            let options =
                PgConnectOptions::from_str(url)?.options([("plan_cache_mode", "force_custom_plan")]);
            let pool = PgPoolOptions::new()
                .max_connections(POSTGRES_CONNECTION_COUNT_MAX)
                .connect_with(options)
                .await?;
            migrator("postgres").run(&pool).await?;
            Ok(Self::Postgres(pool))
        } else {
            let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
            Err(Error::UnsupportedUrl { scheme: scheme.to_string() })
        }
    }

    /// Begins a write transaction.
    pub(crate) async fn begin(&self) -> Result<Tx> {
        Ok(match self {
            Self::Sqlite { writer, .. } => Tx::Sqlite(writer.begin_with("BEGIN IMMEDIATE").await?),
            Self::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// Answers when the database does (readiness probes). Nothing is decoded: `SELECT 1` is
    /// an INT4 on PostgreSQL and an INTEGER (i64) on SQLite, and a probe must not fail on that.
    pub async fn ping(&self) -> Result<()> {
        match self {
            Self::Sqlite { readers, .. } => sqlx::query("SELECT 1").execute(readers).await.map(drop)?,
            Self::Postgres(pool) => sqlx::query("SELECT 1").execute(pool).await.map(drop)?,
        }
        Ok(())
    }

    /// Whether this is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }
}

/// The embedded migrations of one backend, tracked in [`MIGRATIONS_TABLE`].
fn migrator(backend: &str) -> sqlx::migrate::Migrator {
    let mut migrator = if backend == "postgres" {
        sqlx::migrate!("./migrations/postgres")
    } else {
        sqlx::migrate!("./migrations/sqlite")
    };
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    migrator
}

/// A stored i64 as the u64 it encodes (positions, sizes); negative values are corrupt.
pub(crate) fn to_u64(value: i64, table: &'static str) -> Result<u64> {
    u64::try_from(value).map_err(|_| Error::Corrupt { table, reason: format!("negative value {value}") })
}

/// A u64 as the i64 the databases store (values above i64::MAX saturate; positions and sizes
/// never get there).
pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
