//! The vocabulary's error type.

use crate::id::{EventType, StreamId};

/// Errors from the vocabulary: invalid ids, encoding, signatures, and refused state transitions.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An id did not parse or validate.
    #[error("invalid {what}: {reason}")]
    InvalidId {
        /// Which kind of id.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// A stream id did not validate.
    #[error("invalid stream id {stream_id:?}: {reason}")]
    InvalidStreamId {
        /// The text given.
        stream_id: String,
        /// Why.
        reason: String,
    },
    /// An event type name did not validate.
    #[error("invalid event type {event_type:?}: use 1-64 characters of a-z 0-9 _, starting with a letter")]
    InvalidEventType {
        /// The text given.
        event_type: String,
    },
    /// An event type this vocabulary does not know.
    #[error("unknown event type {event_type} for the {category} stream")]
    UnknownEventType {
        /// The stream category.
        category: &'static str,
        /// The type.
        event_type: EventType,
    },
    /// A schema version newer than this build understands, or one no upcaster handles.
    #[error(
        "{event_type} schema version {schema_version} is not supported (this build knows up to {current})"
    )]
    UnsupportedSchemaVersion {
        /// The type.
        event_type: EventType,
        /// The version found.
        schema_version: u32,
        /// The newest known.
        current: u32,
    },
    /// Encoding to MessagePack or JSON failed.
    #[error("cannot encode: {0}")]
    Encode(String),
    /// Decoding MessagePack or JSON failed.
    #[error("cannot decode {what}: {reason}")]
    Decode {
        /// What was being decoded.
        what: String,
        /// The decoder's message.
        reason: String,
    },
    /// A signature or hash did not verify.
    #[error(transparent)]
    Verification(#[from] crate::crypto::VerifyError),
    /// Reading or writing a key file failed.
    #[error("key file {path}: {reason}")]
    KeyFile {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A state machine refused an event.
    #[error(transparent)]
    Transition(#[from] crate::state::TransitionError),
    /// An event was applied to the wrong stream.
    #[error("event for stream {actual} applied to stream {expected}")]
    WrongStream {
        /// The stream being folded.
        expected: StreamId,
        /// The event's stream.
        actual: StreamId,
    },
}

/// The vocabulary's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error with its causes, `outer: inner: root`, each cause once (many errors repeat their
/// source's text; others, such as reqwest's, leave out why a request failed, which only the
/// source says). For logs and recorded reasons.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
