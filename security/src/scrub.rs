//! Scrubbing at the door: the redactions a policy asks for, applied before text is signed and
//! written to the append-only log, so a secret never lands in it. Blocking is not decided here:
//! the ingress phase still screens the scrubbed text and records its verdict as an event.

use std::sync::OnceLock;

use crate::policy::{Action, Policy, redact};
use crate::scanner::{ScanConfig, Scanner};

/// The process-wide scanner behind [`scrub`]; `None` if it could not be built (then nothing is
/// scrubbed and the ingress phase's own screening still runs).
fn default_scanner() -> Option<&'static Scanner> {
    static SCANNER: OnceLock<Option<Scanner>> = OnceLock::new();
    SCANNER.get_or_init(|| Scanner::new(ScanConfig::default()).ok()).as_ref()
}

/// Returns `text` with every finding that `policy` redacts replaced by its placeholder, or
/// `None` when nothing needs redacting.
pub fn scrub_with(scanner: &Scanner, policy: &Policy, text: &str) -> Option<String> {
    let report = scanner.scan(text);
    let redacted: Vec<_> =
        report.findings.iter().filter(|f| policy.action(f.kind) == Action::Redact).cloned().collect();
    if redacted.is_empty() { None } else { Some(redact(text, &redacted)) }
}

/// [`scrub_with`] the default scanner and policy.
pub fn scrub(text: &str) -> Option<String> {
    default_scanner().and_then(|scanner| scrub_with(scanner, &Policy::default(), text))
}

/// Scrubs a JSON value: its text form is scanned, and strings inside are redacted in place, so
/// the value keeps its structure. Returns `None` when nothing needs redacting.
pub fn scrub_json(value: &serde_json::Value) -> Option<serde_json::Value> {
    fn walk(value: &mut serde_json::Value, changed: &mut bool) {
        match value {
            serde_json::Value::String(s) => {
                if let Some(clean) = scrub(s) {
                    *s = clean;
                    *changed = true;
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| walk(v, changed)),
            serde_json::Value::Object(map) => map.values_mut().for_each(|v| walk(v, changed)),
            _ => {}
        }
    }
    let mut copy = value.clone();
    let mut changed = false;
    walk(&mut copy, &mut changed);
    changed.then_some(copy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_scrubbed_and_clean_text_is_left_alone() {
        let clean = scrub("my key is AKIAIOSFODNN7EXAMPLE ok").expect("a key is found");
        assert!(!clean.contains("AKIAIOSFODNN7EXAMPLE"), "{clean}");
        assert!(clean.contains("[REDACTED:"), "{clean}");
        assert_eq!(scrub("summarise this quarterly report"), None);
        let value = serde_json::json!({"notes": ["key AKIAIOSFODNN7EXAMPLE"], "n": 3});
        let scrubbed = scrub_json(&value).expect("the nested key is found");
        assert!(!scrubbed.to_string().contains("AKIAIOSFODNN7EXAMPLE"));
        assert_eq!(scrubbed["n"], 3);
        assert_eq!(scrub_json(&serde_json::json!({"a": "fine"})), None);
    }
}
