//! What can fail while starting test infrastructure.

/// Test infrastructure could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A server's binaries are not installed (for PostgreSQL: Debian's `postgresql` package).
    #[error("{program} not found: {hint}")]
    NotInstalled {
        /// The missing program.
        program: &'static str,
        /// How to install it.
        hint: &'static str,
    },
    /// A command failed to run or exited with an error.
    #[error("{command} failed: {detail}")]
    Command {
        /// The command (program and main arguments).
        command: String,
        /// Its exit status and output, or why it could not start.
        detail: String,
    },
    /// A file-system operation on the server's temp dir failed.
    #[error("i/o on the test server's directory failed")]
    Io(#[from] std::io::Error),
    /// The server did not accept connections in time.
    #[error("the server did not start within {seconds} s: {detail}")]
    StartTimeout {
        /// How long we waited.
        seconds: u64,
        /// The last connection error, and the server's log tail.
        detail: String,
    },
    /// Talking to the server failed (creating a database).
    #[error("database operation failed")]
    Database(#[from] sqlx::Error),
}

/// A result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
