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

/// The most redactions [`scrub_json_spans`] lists for one value; the rest are counted.
pub const REDACTIONS_LISTED_MAX: usize = 64;

/// One redaction made by [`scrub_json_spans`]: what was found and where it was, never the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redaction {
    /// The finding's kind key (`secret.aws_access_key`, `pii.email`, …).
    pub kind: String,
    /// The JSON Pointer (RFC 6901) of the string it was in (`""` for a string value itself).
    pub pointer: String,
    /// Byte offsets of the redacted value in that string, before redaction.
    pub start: usize,
    /// End of the byte range (exclusive).
    pub end: usize,
}

/// What [`scrub_json_spans`] did to a value.
#[derive(Clone, Debug, PartialEq)]
pub struct ScrubbedJson {
    /// The value with every redacted finding replaced by its placeholder.
    pub value: serde_json::Value,
    /// The first [`REDACTIONS_LISTED_MAX`] redactions, in document order.
    pub redactions: Vec<Redaction>,
    /// How many redactions there were in all.
    pub count: usize,
}

/// [`scrub_json`] that also says what it redacted and where: for a record that must show what
/// was taken out of a signed value without holding it. `None` when nothing needs redacting.
pub fn scrub_json_spans(value: &serde_json::Value) -> Option<ScrubbedJson> {
    fn escape(key: &str) -> String {
        key.replace('~', "~0").replace('/', "~1")
    }
    fn walk(
        scanner: &Scanner,
        policy: &Policy,
        value: &mut serde_json::Value,
        pointer: &mut String,
        out: &mut (Vec<Redaction>, usize),
    ) {
        match value {
            serde_json::Value::String(text) => {
                let report = scanner.scan(text);
                let redacted: Vec<_> =
                    report.findings.into_iter().filter(|f| policy.action(f.kind) == Action::Redact).collect();
                if redacted.is_empty() {
                    return;
                }
                for finding in &redacted {
                    out.1 += 1;
                    if out.0.len() < REDACTIONS_LISTED_MAX {
                        out.0.push(Redaction {
                            kind: finding.kind.key(),
                            pointer: pointer.clone(),
                            start: finding.span.start,
                            end: finding.span.end,
                        });
                    }
                }
                *text = redact(text, &redacted);
            }
            serde_json::Value::Array(items) => {
                for (index, item) in items.iter_mut().enumerate() {
                    let len = pointer.len();
                    pointer.push('/');
                    pointer.push_str(&index.to_string());
                    walk(scanner, policy, item, pointer, out);
                    pointer.truncate(len);
                }
            }
            serde_json::Value::Object(map) => {
                for (key, item) in map.iter_mut() {
                    let len = pointer.len();
                    pointer.push('/');
                    pointer.push_str(&escape(key));
                    walk(scanner, policy, item, pointer, out);
                    pointer.truncate(len);
                }
            }
            _ => {}
        }
    }
    let scanner = default_scanner()?;
    let policy = Policy::default();
    let mut copy = value.clone();
    let mut out = (Vec::new(), 0);
    walk(scanner, &policy, &mut copy, &mut String::new(), &mut out);
    (out.1 > 0).then_some(ScrubbedJson { value: copy, redactions: out.0, count: out.1 })
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

    #[test]
    fn json_scrubbing_says_what_and_where_but_never_the_value() {
        let value = serde_json::json!({"a/b": ["ok", "key AKIAIOSFODNN7EXAMPLE here"], "n": 1});
        let scrubbed = scrub_json_spans(&value).expect("the key is found");
        assert!(!scrubbed.value.to_string().contains("AKIAIOSFODNN7EXAMPLE"));
        assert_eq!(scrubbed.count, 1);
        let [redaction] = scrubbed.redactions.as_slice() else { panic!("{:?}", scrubbed.redactions) };
        assert_eq!(redaction.pointer, "/a~1b/1");
        assert_eq!((redaction.start, redaction.end), (4, 24));
        assert!(redaction.kind.starts_with("secret."), "{}", redaction.kind);
        assert_eq!(scrub_json_spans(&serde_json::json!("nothing to see")), None);
        let many = serde_json::Value::String("a@example.com ".repeat(REDACTIONS_LISTED_MAX + 10));
        let scrubbed = scrub_json_spans(&many).expect("emails");
        assert_eq!(scrubbed.redactions.len(), REDACTIONS_LISTED_MAX, "the list is capped");
        assert_eq!(scrubbed.count, REDACTIONS_LISTED_MAX + 10, "the rest are counted");
    }
}
