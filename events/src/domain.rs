//! How typed events meet the log: the [`DomainEvent`] trait, the macro that declares a
//! stream's event enum, and the upcasting hook that reads old schema versions.

use crate::codec;
use crate::error::{Error, Result};
use crate::event::{Metadata, NewEvent, RecordedEvent};
use crate::id::{EventId, EventType};

/// A stream's typed events: each variant has a stable type name and a schema version.
pub trait DomainEvent: Sized {
    /// The stream category these events belong to (`task`, `agent`, `workflow`).
    const CATEGORY: &'static str;

    /// Every event type name of the category with its current schema version.
    const TYPES: &'static [(&'static str, u32)];

    /// This event's type name.
    fn event_type(&self) -> &'static str;

    /// This event's current schema version.
    fn schema_version(&self) -> u32;

    /// The payload as canonical MessagePack.
    fn to_payload(&self) -> Result<Vec<u8>>;

    /// Decodes a payload of the current schema version.
    fn from_current_payload(event_type: &EventType, payload: &[u8]) -> Result<Self>;

    /// Decodes a JSON payload of the current schema version.
    fn from_json(event_type: &EventType, data: serde_json::Value) -> Result<Self>;

    /// The payload as JSON.
    fn to_json(&self) -> Result<serde_json::Value>;

    /// Decodes a payload of any supported schema version, upcasting older ones.
    fn from_payload(event_type: &EventType, schema_version: u32, payload: &[u8]) -> Result<Self> {
        let current = Self::TYPES
            .iter()
            .find(|(name, _)| *name == event_type.as_str())
            .map(|(_, version)| *version)
            .ok_or_else(|| Error::UnknownEventType {
                category: Self::CATEGORY,
                event_type: event_type.clone(),
            })?;
        if schema_version == current {
            return Self::from_current_payload(event_type, payload);
        }
        if schema_version > current || schema_version == 0 {
            return Err(Error::UnsupportedSchemaVersion {
                event_type: event_type.clone(),
                schema_version,
                current,
            });
        }
        let mut value = codec::msgpack_to_json(payload)?;
        let mut version = schema_version;
        while version < current {
            value = crate::upcast::upcast(event_type, version, value).ok_or_else(|| {
                Error::UnsupportedSchemaVersion { event_type: event_type.clone(), schema_version, current }
            })?;
            version += 1;
        }
        Self::from_json(event_type, value)
    }

    /// Decodes a recorded event.
    fn from_recorded(event: &RecordedEvent) -> Result<Self> {
        Self::from_payload(&event.event_type, event.schema_version, &event.payload)
    }

    /// Wraps the event for appending.
    fn to_new_event(&self, id: EventId, metadata: Metadata) -> Result<NewEvent> {
        Ok(NewEvent {
            id,
            event_type: EventType::new(self.event_type())?,
            schema_version: self.schema_version(),
            payload: self.to_payload()?,
            metadata,
        })
    }
}

/// Declares a stream's event enum and its [`DomainEvent`] implementation:
/// `Variant(PayloadType) = "type_name" @ schema_version`.
macro_rules! domain_events {
    (
        $(#[$doc:meta])*
        pub enum $name:ident: $category:literal, kinds $kind:ident {
            $( $(#[$vdoc:meta])* $variant:ident($payload:ty) = $type_name:literal @ $version:literal, )+
        }
    ) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(tag = "type", content = "data", rename_all = "snake_case")]
        pub enum $name {
            $( $(#[$vdoc])* #[serde(rename = $type_name)] $variant($payload), )+
        }

        impl $crate::domain::DomainEvent for $name {
            const CATEGORY: &'static str = $category;
            const TYPES: &'static [(&'static str, u32)] = &[ $( ($type_name, $version), )+ ];

            fn event_type(&self) -> &'static str {
                match self { $( Self::$variant(_) => $type_name, )+ }
            }

            fn schema_version(&self) -> u32 {
                match self { $( Self::$variant(_) => $version, )+ }
            }

            fn to_payload(&self) -> $crate::Result<Vec<u8>> {
                match self { $( Self::$variant(payload) => $crate::codec::to_msgpack(payload), )+ }
            }

            fn to_json(&self) -> $crate::Result<serde_json::Value> {
                match self { $( Self::$variant(payload) => $crate::codec::to_json(payload), )+ }
            }

            fn from_current_payload(event_type: &$crate::EventType, payload: &[u8]) -> $crate::Result<Self> {
                match event_type.as_str() {
                    $( $type_name => Ok(Self::$variant($crate::codec::from_msgpack(payload)?)), )+
                    _ => Err($crate::Error::UnknownEventType { category: $category, event_type: event_type.clone() }),
                }
            }

            fn from_json(event_type: &$crate::EventType, data: serde_json::Value) -> $crate::Result<Self> {
                match event_type.as_str() {
                    $( $type_name => serde_json::from_value(data).map(Self::$variant).map_err(|e| $crate::Error::Decode {
                        what: $type_name.to_string(),
                        reason: e.to_string(),
                    }), )+
                    _ => Err($crate::Error::UnknownEventType { category: $category, event_type: event_type.clone() }),
                }
            }
        }

        #[doc = concat!("The kinds of [`", stringify!($name), "`]: each type name as a value, so that code matches")]
        /// on event types with the compiler's help instead of on strings.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $kind {
            $( $(#[$vdoc])* $variant, )+
        }

        impl $kind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [Self] = &[ $( Self::$variant, )+ ];

            /// The type name recorded in the log.
            pub const fn as_str(self) -> &'static str {
                match self { $( Self::$variant => $type_name, )+ }
            }

            /// The kind of a recorded type name; `None` for a type of another category or an
            /// unknown one.
            pub fn of(event_type: &str) -> Option<Self> {
                match event_type { $( $type_name => Some(Self::$variant), )+ _ => None }
            }
        }

        impl std::fmt::Display for $kind {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl $name {
            /// This event's kind.
            pub fn kind(&self) -> $kind {
                match self { $( Self::$variant(_) => $kind::$variant, )+ }
            }

            /// The JSON Schema of every payload of this category, by type name.
            pub fn payload_schemas() -> Vec<(&'static str, u32, schemars::Schema)> {
                vec![ $( ($type_name, $version, schemars::schema_for!($payload)), )+ ]
            }
        }
    };
}

pub(crate) use domain_events;
