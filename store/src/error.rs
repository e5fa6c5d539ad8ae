//! What can fail when opening a store. Log operations fail with [`events::LogError`].

/// A store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL names no supported backend (use `sqlite:` or `postgres://`).
    #[error(
        "unsupported store url scheme {scheme:?}: use sqlite://PATH (a file, created when missing) or postgres://USER@HOST[:PORT]/DATABASE"
    )]
    UnsupportedUrl {
        /// The scheme given (the rest of the URL is not repeated: it may hold a password).
        scheme: String,
    },
    /// Connecting to the database failed, or the URL's options are invalid.
    #[error("cannot connect to the store")]
    Connect(#[source] sqlx::Error),
    /// Applying the embedded migrations failed.
    #[error("cannot migrate the store")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

/// A result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
