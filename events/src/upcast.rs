//! Schema evolution: old schema versions are upcast on read, one version step at a time, and
//! never rewritten in the log.
//!
//! # Versions so far
//! - `task_submitted` v1 → v2: v1 carried the deadline as `spec.timeout_secs` (whole seconds)
//!   and had no retry budget; v2 carries `spec.timeout_ms` and `spec.max_attempts` (v1 tasks
//!   were never retried, so they get 1).

use serde_json::Value;

use crate::id::EventType;

/// Turns a payload of `event_type` at schema `version` into one at `version + 1`. `None` when no
/// upcaster covers that step.
pub fn upcast(event_type: &EventType, version: u32, payload: Value) -> Option<Value> {
    match (event_type.as_str(), version) {
        ("task_submitted", 1) => Some(task_submitted_v1_to_v2(payload)),
        _ => None,
    }
}

fn task_submitted_v1_to_v2(mut payload: Value) -> Value {
    if let Some(spec) = payload.get_mut("spec").and_then(Value::as_object_mut) {
        let timeout_secs = spec.remove("timeout_secs").and_then(|v| v.as_u64());
        if let Some(secs) = timeout_secs {
            spec.insert("timeout_ms".into(), Value::from(secs.saturating_mul(1000)));
        }
        spec.entry("max_attempts").or_insert(Value::from(1));
    }
    payload
}
