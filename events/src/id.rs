//! Identifiers: events, tasks, agents, workflows, streams and event types.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};

/// The longest stream id, in bytes. Stream ids become NATS subject tokens and SQL keys;
/// 160 bytes holds a category, a dash and a UUID with plenty to spare.
pub const STREAM_ID_BYTES_MAX: usize = 160;

/// The longest event type name, in bytes.
pub const EVENT_TYPE_BYTES_MAX: usize = 64;

/// Reads a UUID from text, or from 16 raw bytes (the form older MessagePack payloads used).
struct UuidVisitor;

impl<'de> serde::de::Visitor<'de> for UuidVisitor {
    type Value = Uuid;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a UUID as text or 16 bytes")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Uuid, E> {
        Uuid::parse_str(v).map_err(E::custom)
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> std::result::Result<Uuid, E> {
        Uuid::from_slice(v).map_err(E::custom)
    }
}

/// Declares a UUID newtype with the common conversions.
macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// Encoded as its hyphenated text in every format (MessagePack too), so producers in
        /// any language write and read the same form the JSON Schemas describe.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema)]
        #[schemars(transparent)]
        pub struct $name(pub Uuid);

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.collect_str(&self.0.hyphenated())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                d.deserialize_any(UuidVisitor).map(Self)
            }
        }

        impl $name {
            /// A new, time-ordered id (UUIDv7).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Uuid::parse_str(s)
                    .map(Self)
                    .map_err(|e| Error::InvalidId { what: stringify!($name), reason: e.to_string() })
            }
        }
    };
}

uuid_id!(
    /// The id of one event. New events get a UUIDv7; an event derived from another gets a
    /// deterministic id ([`EventId::derived`]) so that redelivery reproduces it exactly.
    EventId
);
uuid_id!(
    /// The id of a task.
    TaskId
);
uuid_id!(
    /// The id of a workflow.
    WorkflowId
);

/// Bytes a derived event id keeps from its cause: the 48-bit millisecond timestamp of a UUIDv7.
/// The other 74 bits (after the version and variant bits) come from the hash, so two ids derived
/// in the same millisecond collide with odds of about n²/2⁷⁵ for n ids.
pub const EVENT_ID_DERIVED_PREFIX_BYTES: usize = 6;

impl EventId {
    /// A deterministic id for the event a handler derives from `cause`: the same cause and the
    /// same purpose always give the same id, so a redelivered input yields an output that the
    /// log recognises as a duplicate.
    ///
    /// The id keeps the first [`EVENT_ID_DERIVED_PREFIX_BYTES`] bytes of `cause` — for a UUIDv7
    /// cause, the millisecond it was made — and takes the rest from a blake3 hash of the cause
    /// and the purpose. Every event derived, directly or not, from one submission therefore
    /// sorts next to it: the log's index of event ids grows at its end like its other indexes
    /// instead of taking each new id at a random place (on SQLite, a random place is a page
    /// written per event; at its end, a page per hundred events).
    pub fn derived(cause: EventId, purpose: &str) -> Self {
        let mut hasher = blake3::Hasher::new_derive_key("pantheon derived event id v2");
        hasher.update(cause.0.as_bytes());
        hasher.update(purpose.as_bytes());
        let digest = hasher.finalize();
        let mut bytes = [0u8; 16];
        bytes[..EVENT_ID_DERIVED_PREFIX_BYTES]
            .copy_from_slice(&cause.0.as_bytes()[..EVENT_ID_DERIVED_PREFIX_BYTES]);
        bytes[EVENT_ID_DERIVED_PREFIX_BYTES..]
            .copy_from_slice(&digest.as_bytes()[..16 - EVENT_ID_DERIVED_PREFIX_BYTES]);
        // Mark it as a version-8 (custom) RFC 9562 UUID.
        Self(uuid::Builder::from_custom_bytes(bytes).into_uuid())
    }
}

/// The id of an agent: lowercase letters, digits, `_` and `-`, 1 to 64 characters, starting
/// with a letter or digit (it appears in NATS subjects and stream ids).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
pub struct AgentId(String);

impl AgentId {
    /// Validates and wraps an agent id.
    pub fn new(id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        let valid = !id.is_empty()
            && id.len() <= 64
            && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
            && id.as_bytes()[0].is_ascii_alphanumeric();
        if valid {
            Ok(Self(id))
        } else {
            Err(Error::InvalidId {
                what: "AgentId",
                reason: format!(
                    "{id:?} must be 1-64 characters of a-z, 0-9, '_' or '-', starting with a letter or digit"
                ),
            })
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AgentId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Self::new(s)
    }
}

impl From<AgentId> for String {
    fn from(id: AgentId) -> String {
        id.0
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for AgentId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

/// A stream id, `<category>-<id>`: the category is lowercase letters (`task`, `agent`,
/// `workflow`, or any a producer chooses), the id is 1 or more of `A-Z a-z 0-9 _ -`.
/// Every event belongs to exactly one stream; a stream's versions run 1, 2, 3, … without gaps.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
pub struct StreamId(String);

impl StreamId {
    /// Validates a stream id.
    pub fn new(id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        let invalid =
            |reason: &str| Error::InvalidStreamId { stream_id: id.clone(), reason: reason.to_string() };
        if id.is_empty() || id.len() > STREAM_ID_BYTES_MAX {
            return Err(invalid("must be 1 to 160 bytes"));
        }
        let Some((category, rest)) = id.split_once('-') else {
            return Err(invalid("must be <category>-<id>, e.g. task-0193a1b2-…"));
        };
        if category.is_empty() || !category.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(invalid("the category must be lowercase letters a-z"));
        }
        if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(invalid("the id after the category must be letters, digits, '_' or '-'"));
        }
        Ok(Self(id))
    }

    /// The stream of a task.
    pub fn task(id: TaskId) -> Self {
        Self(format!("task-{id}"))
    }

    /// The stream of an agent.
    pub fn agent(id: &AgentId) -> Self {
        Self(format!("agent-{id}"))
    }

    /// The stream of a workflow.
    pub fn workflow(id: WorkflowId) -> Self {
        Self(format!("workflow-{id}"))
    }

    /// The category: what comes before the first `-`.
    pub fn category(&self) -> &str {
        self.0.split_once('-').map_or("", |(category, _)| category)
    }

    /// The id within the category: what comes after the first `-`.
    pub fn entity_id(&self) -> &str {
        self.0.split_once('-').map_or("", |(_, id)| id)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for StreamId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Self::new(s)
    }
}

impl From<StreamId> for String {
    fn from(id: StreamId) -> String {
        id.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for StreamId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

/// An event type name in snake_case, e.g. `task_submitted` (a NATS subject token).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
pub struct EventType(String);

impl EventType {
    /// Validates an event type: 1 to 64 of `a-z 0-9 _`, starting with a letter.
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let valid = !name.is_empty()
            && name.len() <= EVENT_TYPE_BYTES_MAX
            && name.as_bytes()[0].is_ascii_lowercase()
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if valid { Ok(Self(name)) } else { Err(Error::InvalidEventType { event_type: name }) }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EventType {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Self::new(s)
    }
}

impl From<EventType> for String {
    fn from(t: EventType) -> String {
        t.0
    }
}

impl FromStr for EventType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_are_validated_and_split() {
        let task = TaskId::new();
        let stream = StreamId::task(task);
        assert_eq!(stream.category(), "task");
        assert_eq!(stream.entity_id(), task.to_string());
        assert_eq!(StreamId::new(stream.to_string()).unwrap(), stream);
        for bad in ["", "task", "-abc", "Task-1", "task-", "task-a.b", "task-a b", "task-*", "task->"] {
            assert!(StreamId::new(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(StreamId::new(format!("task-{}", "a".repeat(200))).is_err());
    }

    #[test]
    fn derived_ids_are_deterministic_and_distinct() {
        let cause = EventId::new();
        assert_eq!(EventId::derived(cause, "screened"), EventId::derived(cause, "screened"));
        assert_ne!(EventId::derived(cause, "screened"), EventId::derived(cause, "context"));
        assert_ne!(EventId::derived(cause, "screened"), EventId::derived(EventId::new(), "screened"));
    }

    #[test]
    fn uuid_ids_are_text_in_msgpack_and_bytes_still_decode() {
        let id = TaskId::new();
        let bytes = crate::codec::to_msgpack(&id).unwrap();
        let text: String = crate::codec::from_msgpack(&bytes).unwrap();
        assert_eq!(text, id.to_string());
        assert_eq!(crate::codec::from_msgpack::<TaskId>(&bytes).unwrap(), id);
        let legacy = rmp_serde::to_vec(&serde_bytes_of(&id)).unwrap();
        assert_eq!(crate::codec::from_msgpack::<TaskId>(&legacy).unwrap(), id);
        assert!(crate::codec::from_msgpack::<TaskId>(&crate::codec::to_msgpack("nope").unwrap()).is_err());
    }

    /// The 16 raw bytes of an id, as MessagePack `bin`.
    fn serde_bytes_of(id: &TaskId) -> impl serde::Serialize + '_ {
        struct Raw<'a>(&'a [u8]);
        impl serde::Serialize for Raw<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        Raw(id.0.as_bytes())
    }

    #[test]
    fn agent_ids_and_event_types_are_validated() {
        assert!(AgentId::new("echo-1").is_ok());
        assert!(AgentId::new("Echo").is_err());
        assert!(AgentId::new("a.b").is_err());
        assert!(EventType::new("task_submitted").is_ok());
        assert!(EventType::new("task.submitted").is_err());
        assert!(EventType::new("1task").is_err());
    }
}
