//! The shape of an event as the log holds it: metadata, the encoded payload, and where it was
//! recorded.

use std::time::{SystemTime, UNIX_EPOCH};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::id::{EventId, EventType, StreamId};

/// The largest payload of one event, in bytes: the length of [`NewEvent::payload`] (the encoded
/// MessagePack) and nothing else. Ids, type and metadata are not counted here; the metadata has
/// its own limits, [`EVENT_EMITTER_BYTES_MAX`] and [`EVENT_TRACEPARENT_BYTES_MAX`]. NATS' default
/// `max_payload` is 1 MiB for payload and headers together, and the metadata travels in
/// headers, so 512 KiB keeps every event publishable on a default server with room to spare;
/// larger artefacts belong in a blob store with their hash in the event.
pub const EVENT_PAYLOAD_BYTES_MAX: usize = 512 * 1024;

/// The longest [`Metadata::emitter`], in bytes (UTF-8). An emitter must also be non-empty, hold
/// no control characters (`\r`, `\n`, `\t`, NUL, DEL, …) and no leading or trailing whitespace:
/// NATS carries it in a message header, which cannot hold a line break and is trimmed on read.
pub const EVENT_EMITTER_BYTES_MAX: usize = 256;

/// The longest [`Metadata::traceparent`], in bytes. A traceparent must also be non-empty (leave
/// it out instead) and visible ASCII only (`!` to `~`: no spaces, no control characters, no
/// other Unicode): it travels in a NATS header. A W3C `traceparent` is 55 bytes; the limit leaves
/// room for future versions of the format.
pub const EVENT_TRACEPARENT_BYTES_MAX: usize = 512;

/// The most events one append may carry.
pub const APPEND_BATCH_COUNT_MAX: usize = 1_000;

/// A stream version: the first event of a stream is version 1, and each next one adds 1.
pub type Version = u64;

/// A global position in the log: increasing across all streams, assigned when recorded.
pub type Position = u64;

/// What the writer expects of a stream before its append (optimistic concurrency).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind", content = "version")]
pub enum ExpectedVersion {
    /// Append whatever the stream holds.
    Any,
    /// The stream must not exist yet (it has no events).
    NoStream,
    /// The stream's last version must be exactly this (at least 1).
    Exact(Version),
}

/// In words: `any version`, `no stream`, `version N`.
impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Any => f.write_str("any version"),
            Self::NoStream => f.write_str("no stream"),
            Self::Exact(version) => write!(f, "version {version}"),
        }
    }
}

impl ExpectedVersion {
    /// Whether a stream whose last version is `current` (0 for none) satisfies this expectation.
    pub fn admits(self, current: Version) -> bool {
        match self {
            Self::Any => true,
            Self::NoStream => current == 0,
            Self::Exact(version) => current == version,
        }
    }
}

/// Who or what emitted an event, and why: the event's metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Metadata {
    /// When the event happened, in milliseconds since the Unix epoch.
    pub occurred_at_ms: i64,
    /// The event that caused this one, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<EventId>,
    /// The id shared by every event of one piece of work (for a task: its first event's id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<EventId>,
    /// The emitter: a component (`gateway`, `matching`, …), an agent (`agent:echo`), or a
    /// producer key id. 1 to [`EVENT_EMITTER_BYTES_MAX`] bytes without control characters or
    /// surrounding whitespace; [`crate::log::validate_batch`] refuses anything else.
    pub emitter: String,
    /// The W3C trace context of the span that emitted the event, if any. Up to
    /// [`EVENT_TRACEPARENT_BYTES_MAX`] bytes of visible ASCII; [`crate::log::validate_batch`]
    /// refuses anything else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl Metadata {
    /// Metadata for an event emitted now by `emitter`, with no cause.
    pub fn now(emitter: impl Into<String>) -> Self {
        Self {
            occurred_at_ms: now_ms(),
            causation_id: None,
            correlation_id: None,
            emitter: emitter.into(),
            traceparent: None,
        }
    }
}

/// The current time in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// An event to append: its id, type, schema version, encoded payload (canonical MessagePack,
/// see [`crate::codec`]) and metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEvent {
    /// The event's id; appending an id the stream already holds is a no-op (idempotence).
    pub id: EventId,
    /// The event type, e.g. `task_submitted`.
    pub event_type: EventType,
    /// The version of the payload's schema, for upcasting on read.
    pub schema_version: u32,
    /// The payload, canonical MessagePack.
    #[serde(with = "serde_bytes_compat")]
    pub payload: Vec<u8>,
    /// Who emitted it, when and why.
    pub metadata: Metadata,
}

/// An event as recorded in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// The stream it belongs to.
    pub stream_id: StreamId,
    /// Its version in that stream (1, 2, …).
    pub version: Version,
    /// Its global position in the log.
    pub position: Position,
    /// The event's id.
    pub id: EventId,
    /// The event type.
    pub event_type: EventType,
    /// The payload's schema version.
    pub schema_version: u32,
    /// The payload, canonical MessagePack.
    #[serde(with = "serde_bytes_compat")]
    pub payload: Vec<u8>,
    /// Who emitted it, when and why.
    pub metadata: Metadata,
}

impl RecordedEvent {
    /// The blake3 hash of what identifies this event's content: stream, version, id, type,
    /// schema version and payload. The audit chain links these.
    pub fn content_hash(&self) -> crate::crypto::Hash {
        let mut hasher = blake3::Hasher::new();
        for part in [
            self.stream_id.as_str().as_bytes(),
            &self.version.to_be_bytes(),
            self.id.0.as_bytes(),
            self.event_type.as_str().as_bytes(),
            &self.schema_version.to_be_bytes(),
            &self.payload,
        ] {
            hasher.update(&(part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
        crate::crypto::Hash(*hasher.finalize().as_bytes())
    }
}

/// Payload bytes as a MessagePack `bin` (not an array of integers).
mod serde_bytes_compat {
    use serde::{Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_byte_buf(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_version_admits() {
        assert!(ExpectedVersion::Any.admits(0));
        assert!(ExpectedVersion::Any.admits(7));
        assert!(ExpectedVersion::NoStream.admits(0));
        assert!(!ExpectedVersion::NoStream.admits(1));
        assert!(ExpectedVersion::Exact(3).admits(3));
        assert!(!ExpectedVersion::Exact(3).admits(2));
    }
}
