//! What can fail in the projections crate, sorted by who must act: the caller's input, the
//! data found (tampering, corruption), or the infrastructure (database, log).

use events::LogError;

/// Everything that can fail in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database URL names no supported backend.
    #[error("unsupported database url scheme {scheme:?}: use sqlite://path?mode=rwc or postgres://…")]
    UnsupportedUrl {
        /// The scheme given (the rest is not repeated: it may hold a password).
        scheme: String,
    },
    /// No projection has this name.
    #[error("unknown projection {name:?}: the projections are {known}")]
    UnknownProjection {
        /// The name given.
        name: String,
        /// The names that exist, comma-separated.
        known: String,
    },
    /// A query's arguments are out of range.
    #[error("invalid query: {reason}")]
    InvalidQuery {
        /// What is wrong.
        reason: String,
    },
    /// The audit ledger has no such entry, or no signed tree head covers it yet.
    #[error("no proof possible: {reason}")]
    NoProof {
        /// Why.
        reason: String,
    },
    /// Stored data is not what this crate wrote (wrong length of a hash, unknown status…).
    #[error("corrupt read model data in {table}: {reason}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Reading the log failed.
    #[error("reading the log failed")]
    Log(#[from] LogError),
    /// The database failed.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// Applying the embedded migrations failed.
    #[error("cannot migrate the read models")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A JSON document (a proof file) could not be read or written.
    #[error("invalid json: {0}")]
    Json(#[from] serde_json::Error),
}

/// A result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
