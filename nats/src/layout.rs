//! The wire layout: subjects, headers, and the conversion between a JetStream message and a
//! [`RecordedEvent`]. This is a public API (see `schemas/asyncapi.yaml`): change it only with
//! a new layout version.

use async_nats::HeaderMap;
use async_nats::header::NATS_MESSAGE_ID;
use events::{EventId, EventType, Metadata, NewEvent, Position, RecordedEvent, StreamId, Version};

/// The version of this layout, carried by no message but named in the AsyncAPI document.
pub const LAYOUT_VERSION: u32 = 1;

/// The first token of every event subject.
pub const SUBJECT_PREFIX: &str = "pantheon";

/// The subjects of the event stream: `pantheon.<category>.<entity_id>`, exactly three tokens,
/// so that other `pantheon.…` subjects (agent request/reply, four tokens and more) stay out.
pub const EVENT_SUBJECTS: &str = "pantheon.*.*";

/// The first token of dead-letter subjects: `pantheon-dead.<subscription>`. Not under
/// `pantheon.` so that the dead-letter stream's subjects cannot overlap the event stream's.
pub const DEAD_LETTER_PREFIX: &str = "pantheon-dead";

/// The stream version of the event (decimal, from 1).
pub const HEADER_VERSION: &str = "Pantheon-Version";
/// The event type, snake_case.
pub const HEADER_EVENT_TYPE: &str = "Pantheon-Event-Type";
/// The payload's schema version (decimal, from 1).
pub const HEADER_SCHEMA_VERSION: &str = "Pantheon-Schema-Version";
/// When the event happened, milliseconds since the Unix epoch (decimal).
pub const HEADER_OCCURRED_AT_MS: &str = "Pantheon-Occurred-At-Ms";
/// Who emitted the event.
pub const HEADER_EMITTER: &str = "Pantheon-Emitter";
/// The causing event's id (optional).
pub const HEADER_CAUSATION_ID: &str = "Pantheon-Causation-Id";
/// The correlation id (optional).
pub const HEADER_CORRELATION_ID: &str = "Pantheon-Correlation-Id";
/// The W3C trace context (optional).
pub const HEADER_TRACEPARENT: &str = "traceparent";
/// The JetStream sequence of the stream's previous event (absent on its first event). Each
/// append is published with that sequence as the subject's expected last one, so the server
/// has checked the link. A reader walks a stream back from its last event by getting known
/// sequences, instead of asking for the subject's next message after a sequence, which
/// nats-server 2.9 answers by scanning every message in between: a task's events lie
/// thousands of messages apart when many tasks run at once.
pub const HEADER_PREVIOUS_SEQUENCE: &str = "Pantheon-Previous-Sequence";
/// On a dead letter: why the event was refused.
pub const HEADER_DEAD_REASON: &str = "Pantheon-Dead-Reason";
/// On a dead letter: the subject the event was published on.
pub const HEADER_DEAD_SUBJECT: &str = "Pantheon-Dead-Subject";
/// On a dead letter: the event's stream sequence (its position).
pub const HEADER_DEAD_SEQUENCE: &str = "Pantheon-Dead-Sequence";

/// The subject of every event of `stream_id`: `pantheon.<category>.<entity_id>`. Stream ids
/// are validated to be subject-token safe (no `.`, `*`, `>` or spaces).
pub fn stream_subject(stream_id: &StreamId) -> String {
    format!("{SUBJECT_PREFIX}.{}.{}", stream_id.category(), stream_id.entity_id())
}

/// The subject a subscription's consumer filters on: one category, or every event. JetStream
/// 2.9 allows one filter subject per consumer; anything finer is filtered client-side.
pub fn category_subject(category: Option<&str>) -> String {
    match category {
        Some(category) => format!("{SUBJECT_PREFIX}.{category}.*"),
        None => EVENT_SUBJECTS.to_string(),
    }
}

/// The dead-letter subject of a subscription.
pub fn dead_letter_subject(subscription: &str) -> String {
    format!("{DEAD_LETTER_PREFIX}.{subscription}")
}

/// The stream id an event subject names.
pub fn stream_id_of_subject(subject: &str) -> Result<StreamId, String> {
    let mut tokens = subject.split('.');
    match (tokens.next(), tokens.next(), tokens.next(), tokens.next()) {
        (Some(SUBJECT_PREFIX), Some(category), Some(entity), None) => {
            StreamId::new(format!("{category}-{entity}")).map_err(|e| e.to_string())
        }
        _ => Err(format!("subject {subject:?} is not pantheon.<category>.<entity_id>")),
    }
}

/// The headers of `event` at `version`: `Nats-Msg-Id` carries the event id (JetStream dedupes
/// on it), the rest carry the metadata.
pub fn event_headers(event: &NewEvent, version: Version) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(NATS_MESSAGE_ID, event.id.to_string().as_str());
    headers.insert(HEADER_VERSION, version.to_string().as_str());
    headers.insert(HEADER_EVENT_TYPE, event.event_type.as_str());
    headers.insert(HEADER_SCHEMA_VERSION, event.schema_version.to_string().as_str());
    headers.insert(HEADER_OCCURRED_AT_MS, event.metadata.occurred_at_ms.to_string().as_str());
    headers.insert(HEADER_EMITTER, event.metadata.emitter.as_str());
    if let Some(id) = event.metadata.causation_id {
        headers.insert(HEADER_CAUSATION_ID, id.to_string().as_str());
    }
    if let Some(id) = event.metadata.correlation_id {
        headers.insert(HEADER_CORRELATION_ID, id.to_string().as_str());
    }
    if let Some(traceparent) = &event.metadata.traceparent {
        headers.insert(HEADER_TRACEPARENT, traceparent.as_str());
    }
    headers
}

/// The sequence [`HEADER_PREVIOUS_SEQUENCE`] names, if the message has a valid one.
pub fn previous_sequence_of(headers: &HeaderMap) -> Option<u64> {
    header(headers, HEADER_PREVIOUS_SEQUENCE).and_then(|value| value.parse().ok()).filter(|&s| s > 0)
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).map(|value| value.as_str())
}

fn required<'h>(headers: &'h HeaderMap, name: &str) -> Result<&'h str, String> {
    header(headers, name).ok_or_else(|| format!("missing header {name}"))
}

fn parsed<T: std::str::FromStr>(headers: &HeaderMap, name: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    required(headers, name)?.parse().map_err(|e| format!("header {name}: {e}"))
}

fn optional_id(headers: &HeaderMap, name: &str) -> Result<Option<EventId>, String> {
    header(headers, name).map(|v| v.parse().map_err(|e| format!("header {name}: {e}"))).transpose()
}

/// Only the stream version of a stored message, for the cheap head look-up.
pub fn version_of(headers: &HeaderMap) -> Result<Version, String> {
    let version: Version = parsed(headers, HEADER_VERSION)?;
    if version == 0 {
        return Err(format!("header {HEADER_VERSION} must be at least 1"));
    }
    Ok(version)
}

/// Rebuilds the event a stored message holds, or says why it is not a valid event.
pub fn decode_event(
    subject: &str,
    position: Position,
    headers: Option<&HeaderMap>,
    payload: &[u8],
) -> Result<RecordedEvent, String> {
    let stream_id = stream_id_of_subject(subject)?;
    let headers = headers.ok_or("the message has no headers")?;
    let id: EventId = parsed(headers, NATS_MESSAGE_ID.as_ref())?;
    let version = version_of(headers)?;
    let event_type = EventType::new(required(headers, HEADER_EVENT_TYPE)?).map_err(|e| e.to_string())?;
    let schema_version: u32 = parsed(headers, HEADER_SCHEMA_VERSION)?;
    if schema_version == 0 {
        return Err(format!("header {HEADER_SCHEMA_VERSION} must be at least 1"));
    }
    if payload.len() > events::EVENT_PAYLOAD_BYTES_MAX {
        return Err(format!("payload of {} bytes is over the limit", payload.len()));
    }
    let metadata = Metadata {
        occurred_at_ms: parsed(headers, HEADER_OCCURRED_AT_MS)?,
        causation_id: optional_id(headers, HEADER_CAUSATION_ID)?,
        correlation_id: optional_id(headers, HEADER_CORRELATION_ID)?,
        emitter: required(headers, HEADER_EMITTER)?.to_string(),
        traceparent: header(headers, HEADER_TRACEPARENT).map(str::to_string),
    };
    Ok(RecordedEvent {
        stream_id,
        version,
        position,
        id,
        event_type,
        schema_version,
        payload: payload.to_vec(),
        metadata,
    })
}

/// Whether `payload` is exactly one well-formed MessagePack value.
pub fn check_msgpack(payload: &[u8]) -> Result<(), String> {
    let mut rest = payload;
    let mut deserializer = rmp_serde::Deserializer::new(&mut rest);
    <serde::de::IgnoredAny as serde::Deserialize>::deserialize(&mut deserializer)
        .map_err(|e| format!("payload is not MessagePack: {e}"))?;
    drop(deserializer);
    if !rest.is_empty() {
        return Err(format!("payload has {} bytes after its MessagePack value", rest.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_subject_and_headers() {
        let stream_id = StreamId::new("task-0193a1b2-aa").unwrap();
        let mut metadata = Metadata::now("gateway");
        metadata.correlation_id = Some(EventId::new());
        metadata.traceparent = Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into());
        let event = NewEvent {
            id: EventId::new(),
            event_type: EventType::new("task_submitted").unwrap(),
            schema_version: 2,
            payload: rmp_serde::to_vec_named(&("hello", 1)).unwrap(),
            metadata,
        };
        let subject = stream_subject(&stream_id);
        assert_eq!(subject, "pantheon.task.0193a1b2-aa");
        let headers = event_headers(&event, 7);
        let recorded = decode_event(&subject, 42, Some(&headers), &event.payload).unwrap();
        assert_eq!(recorded.stream_id, stream_id);
        assert_eq!((recorded.version, recorded.position), (7, 42));
        assert_eq!(recorded.id, event.id);
        assert_eq!(recorded.metadata, event.metadata);
        assert!(check_msgpack(&recorded.payload).is_ok());
    }

    #[test]
    fn bad_messages_are_refused_with_a_reason() {
        assert!(decode_event("pantheon.task.x", 1, None, b"").unwrap_err().contains("no headers"));
        assert!(decode_event("pantheon.task", 1, None, b"").unwrap_err().contains("not pantheon"));
        let headers = HeaderMap::new();
        assert!(decode_event("pantheon.task.x", 1, Some(&headers), b"").unwrap_err().contains("missing"));
        assert!(check_msgpack(b"\xc1").is_err());
        assert!(check_msgpack(b"\x01\x02").unwrap_err().contains("after"));
    }
}
