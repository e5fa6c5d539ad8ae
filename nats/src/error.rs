//! The crate's error: one struct carrying a small kind enum, in async-nats's shape, so callers
//! `match` on [`ErrorKind`] instead of parsing messages.

use std::fmt;

/// An opaque cause, boxed so this crate's API does not name every dependency's error types.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong, sorted by who must act.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The configuration handed to this crate is unusable (operator): see the message.
    InvalidConfig,
    /// The server could not be reached (operator / transient).
    Connect,
    /// A JetStream stream already exists with settings this crate would have to overwrite
    /// (operator): the message lists the fields that differ.
    IncompatibleStream,
    /// A durable consumer already exists with settings this crate would have to overwrite
    /// (operator): for example the same subscription name with another filter.
    IncompatibleConsumer,
    /// A JetStream API request failed (transient or server-side).
    Request,
    /// A publish failed (transient or server-side).
    Publish,
    /// The archive (the SQL store) failed.
    Archive,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InvalidConfig => "invalid configuration",
            Self::Connect => "cannot connect to nats",
            Self::IncompatibleStream => "incompatible existing jetstream stream",
            Self::IncompatibleConsumer => "incompatible existing jetstream consumer",
            Self::Request => "jetstream request failed",
            Self::Publish => "jetstream publish failed",
            Self::Archive => "archive failed",
        })
    }
}

/// The error of every fallible call in this crate that is not part of the log contract (the
/// contract's calls return [`events::LogError`], wrapping this in `LogError::Backend`).
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<BoxError>,
}

impl Error {
    /// An error of `kind` described by `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), source: None }
    }

    /// An error of `kind` caused by `source`.
    pub fn with_source(kind: ErrorKind, message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self { kind, message: message.into(), source: Some(source.into()) }
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl From<Error> for events::LogError {
    fn from(error: Error) -> Self {
        events::LogError::backend(error)
    }
}

/// This crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
