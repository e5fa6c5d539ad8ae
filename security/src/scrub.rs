//! Scrubbing at the door: the redactions a policy asks for, applied before text is signed and
//! written to the append-only log, so a secret never lands in it. Blocking is not decided here:
//! the ingress phase still screens the scrubbed text and records its verdict as an event.

use std::sync::OnceLock;

use crate::policy::{Action, Policy, redact_spans};
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
    let spans = policy.redaction_spans(&scanner.scan(text));
    if spans.is_empty() { None } else { Some(redact_spans(text, spans)) }
}

/// [`scrub_with`] the default scanner and policy.
pub fn scrub(text: &str) -> Option<String> {
    default_scanner().and_then(|scanner| scrub_with(scanner, &Policy::default(), text))
}

/// Scrubs what a submission carries — its description, input and labels — in place, as the
/// default policy asks: every way a task comes in (HTTP, NATS, the command line) calls this
/// before the task is signed and logged. Returns whether anything changed.
pub fn scrub_submission(
    description: &mut String,
    input: &mut serde_json::Value,
    labels: &mut std::collections::BTreeMap<String, String>,
) -> bool {
    let mut changed = false;
    if let Some(clean) = scrub_labels(labels) {
        *labels = clean;
        changed = true;
    }
    if let Some(clean) = scrub(description) {
        *description = clean;
        changed = true;
    }
    if let Some(clean) = scrub_json(input) {
        *input = clean;
        changed = true;
    }
    changed
}

/// Scrubs a JSON value: its strings, and the keys of its objects, are redacted in place, so
/// the value keeps its structure. Returns `None` when nothing needs redacting.
///
/// Keys count: a map keyed by email address or by access key id is as common as a list of
/// them. A redacted key that would collide with another key of its object gets ` (2)`,
/// ` (3)`, … appended, so no member is lost.
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
            serde_json::Value::Object(map) => {
                // Members whose keys are redacted go in last, so one never takes the place of
                // a key left as it was.
                let mut renamed = Vec::new();
                for (key, mut item) in std::mem::take(map) {
                    walk(&mut item, changed);
                    match scrub(&key) {
                        Some(clean) => renamed.push((clean, item)),
                        None => {
                            map.insert(key, item);
                        }
                    }
                }
                for (key, item) in renamed {
                    *changed = true;
                    let key = unique_key(map, key);
                    map.insert(key, item);
                }
            }
            _ => {}
        }
    }
    let mut copy = value.clone();
    let mut changed = false;
    walk(&mut copy, &mut changed);
    changed.then_some(copy)
}

/// `key`, or, when `map` holds it already (two keys redacted to the same placeholder),
/// `key` followed by ` (2)`, ` (3)`, … whichever is free first.
fn unique_key(map: &serde_json::Map<String, serde_json::Value>, key: String) -> String {
    if !map.contains_key(&key) {
        return key;
    }
    (2..).map(|n| format!("{key} ({n})")).find(|candidate| !map.contains_key(candidate)).unwrap_or(key)
}

/// Scrubs labels (or any map of text to text): keys and values, as [`scrub_json`] does.
/// Returns `None` when nothing needs redacting.
pub fn scrub_labels(
    labels: &std::collections::BTreeMap<String, String>,
) -> Option<std::collections::BTreeMap<String, String>> {
    let as_json = serde_json::Value::Object(
        labels.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect(),
    );
    let serde_json::Value::Object(clean) = scrub_json(&as_json)? else { return None };
    Some(
        clean
            .into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(v) => (k, v),
                other => (k, other.to_string()),
            })
            .collect(),
    )
}

/// The most redactions [`scrub_json_spans`] lists for one value; the rest are counted.
pub const REDACTIONS_LISTED_MAX: usize = 64;

/// One redaction made by [`scrub_json_spans`]: what was found and where it was, never the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redaction {
    /// The finding's kind key (`secret.aws_access_key`, `pii.email`, …).
    pub kind: String,
    /// The JSON Pointer (RFC 6901) of the string it was in (`""` for a string value itself),
    /// written with keys as redacted; with `in_key`, the pointer of the member whose key held it.
    pub pointer: String,
    /// Byte offsets of the redacted value in that string (or key), before redaction.
    pub start: usize,
    /// End of the byte range (exclusive).
    pub end: usize,
    /// Whether it was in the key of the member `pointer` names, not in a string value.
    pub in_key: bool,
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
    /// Records the redactions of one string (or key) and returns its redacted form, or `None`.
    fn redact_text(
        scanner: &Scanner,
        policy: &Policy,
        text: &str,
        pointer: &str,
        in_key: bool,
        out: &mut (Vec<Redaction>, usize),
    ) -> Option<String> {
        let report = scanner.scan(text);
        // Every redacted span, listed in the report or past its cap.
        let spans = policy.redaction_spans(&report);
        if spans.is_empty() {
            return None;
        }
        out.1 += spans.len();
        for finding in report.findings.iter().filter(|f| policy.action(f.kind) == Action::Redact) {
            if out.0.len() < REDACTIONS_LISTED_MAX {
                out.0.push(Redaction {
                    kind: finding.kind.key(),
                    pointer: pointer.to_string(),
                    start: finding.span.start,
                    end: finding.span.end,
                    in_key,
                });
            }
        }
        Some(redact_spans(text, spans))
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
                if let Some(clean) = redact_text(scanner, policy, text, pointer, false, out) {
                    *text = clean;
                }
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
                // Keys are scanned too, and pointers name members by their redacted keys: a
                // pointer written with the raw key would hold what was redacted. Members whose
                // keys are redacted go in last, so one never takes the place of a key left as
                // it was.
                let mut renamed = Vec::new();
                for (key, item) in std::mem::take(map) {
                    let mut key_redactions = (Vec::new(), 0);
                    match redact_text(scanner, policy, &key, "", true, &mut key_redactions) {
                        Some(clean) => renamed.push((clean, key_redactions, item)),
                        None => {
                            member(scanner, policy, key, item, map, pointer, out);
                        }
                    }
                }
                for (key, key_redactions, item) in renamed {
                    let key = unique_key(map, key);
                    let at = format!("{pointer}/{}", escape(&key));
                    for mut redaction in key_redactions.0 {
                        redaction.pointer = at.clone();
                        if out.0.len() < REDACTIONS_LISTED_MAX {
                            out.0.push(redaction);
                        }
                    }
                    out.1 += key_redactions.1;
                    member(scanner, policy, key, item, map, pointer, out);
                }
            }
            _ => {}
        }
    }
    /// Walks a member's value (at `pointer` + `/key`) and puts it in `map`.
    fn member(
        scanner: &Scanner,
        policy: &Policy,
        key: String,
        mut item: serde_json::Value,
        map: &mut serde_json::Map<String, serde_json::Value>,
        pointer: &mut String,
        out: &mut (Vec<Redaction>, usize),
    ) {
        let len = pointer.len();
        pointer.push('/');
        pointer.push_str(&escape(&key));
        walk(scanner, policy, &mut item, pointer, out);
        pointer.truncate(len);
        map.insert(key, item);
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
        // Keys are redacted too; members whose keys redact alike are all kept, and pointers
        // name them by their redacted keys.
        let value = serde_json::json!({"owners": {"ann@corp-mail.io": "admin", "bob@corp-mail.io": "key AKIAIOSFODNN7EXAMPLE"}});
        let scrubbed = scrub_json_spans(&value).expect("the keys are found");
        let text = scrubbed.value.to_string();
        assert!(!text.contains("corp-mail") && !text.contains("AKIAIOSFODNN7EXAMPLE"), "{text}");
        assert_eq!(scrubbed.value["owners"].as_object().map(|m| m.len()), Some(2), "{text}");
        assert_eq!(scrubbed.count, 3);
        assert_eq!(scrubbed.redactions.iter().filter(|r| r.in_key).count(), 2);
        assert!(
            scrubbed.redactions.iter().all(|r| !r.pointer.contains("corp-mail")),
            "{:?}",
            scrubbed.redactions
        );
        let value_span = scrubbed.redactions.iter().find(|r| !r.in_key).expect("the value's span");
        assert!(
            scrubbed.value.pointer(&value_span.pointer).is_some(),
            "{} names a member",
            value_span.pointer
        );
        assert_eq!(scrub_json(&value).map(|v| v.to_string().contains("corp-mail")), Some(false));
        // A key that reads like a placeholder already keeps its place and its value.
        let value = serde_json::json!({"[REDACTED:email]": 1, "ann@corp-mail.io": 2});
        for scrubbed in [scrub_json(&value), scrub_json_spans(&value).map(|s| s.value)] {
            let scrubbed = scrubbed.expect("the key is found");
            assert_eq!(scrubbed["[REDACTED:email]"], 1, "{scrubbed}");
            assert_eq!(scrubbed["[REDACTED:email] (2)"], 2, "{scrubbed}");
        }
        let labels = std::collections::BTreeMap::from([
            ("owner".to_string(), "ann@corp-mail.io".to_string()),
            ("bob@corp-mail.io".to_string(), "reviewer".to_string()),
        ]);
        let clean = scrub_labels(&labels).expect("labels are scrubbed");
        assert_eq!(clean.len(), 2);
        assert!(clean.iter().all(|(k, v)| !k.contains("corp-mail") && !v.contains("corp-mail")), "{clean:?}");
        assert_eq!(
            scrub_labels(&std::collections::BTreeMap::from([("a".to_string(), "b".to_string())])),
            None
        );
        let many = serde_json::Value::String("a@example.com ".repeat(REDACTIONS_LISTED_MAX + 10));
        let scrubbed = scrub_json_spans(&many).expect("emails");
        assert_eq!(scrubbed.redactions.len(), REDACTIONS_LISTED_MAX, "the list is capped");
        assert_eq!(scrubbed.count, REDACTIONS_LISTED_MAX + 10, "the rest are counted");
    }
}
