//! Canonical encoding. Payloads travel as MessagePack with named fields (maps), which
//! rmp-serde writes byte-for-byte the same for equal values as long as no map has an
//! unspecified order: structs keep declaration order, and every open-ended map in the
//! vocabulary is a `BTreeMap` or a `serde_json::Value` (whose maps are sorted). So hashes and
//! signatures over encoded bytes are stable. JSON is for humans and for producers who prefer it.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Encodes a value as canonical MessagePack (named fields).
pub fn to_msgpack<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    rmp_serde::to_vec_named(value).map_err(|e| Error::Encode(e.to_string()))
}

/// Decodes MessagePack.
pub fn from_msgpack<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    rmp_serde::from_slice(bytes).map_err(|e| Error::Decode {
        what: std::any::type_name::<T>().rsplit("::").next().unwrap_or("value").to_string(),
        reason: e.to_string(),
    })
}

/// Encodes a value as JSON.
pub fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<serde_json::Value> {
    serde_json::to_value(value).map_err(|e| Error::Encode(e.to_string()))
}

/// Decodes JSON text.
pub fn from_json<T: DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::Decode {
        what: std::any::type_name::<T>().rsplit("::").next().unwrap_or("value").to_string(),
        reason: e.to_string(),
    })
}

/// Turns a MessagePack payload into JSON for display, whatever its type.
pub fn msgpack_to_json(bytes: &[u8]) -> Result<serde_json::Value> {
    from_msgpack::<serde_json::Value>(bytes)
}
