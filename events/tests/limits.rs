//! The limits every backend shares, checked by `validate_batch` before anything is written:
//! an event's metadata (emitter and traceparent) must fit in a NATS header and read back the same
//! from every backend.

use events::log::validate_batch;
use events::*;
use proptest::prelude::*;

/// A W3C traceparent, as a tracing span would write it.
const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

fn event_with(emitter: &str, traceparent: Option<&str>) -> NewEvent {
    let mut metadata = Metadata::now(emitter);
    metadata.traceparent = traceparent.map(str::to_string);
    NewEvent {
        id: EventId::new(),
        event_type: EventType::new("something_happened").unwrap(),
        schema_version: 1,
        payload: codec::to_msgpack(&serde_json::json!({"n": 1})).unwrap(),
        metadata,
    }
}

/// Expects `event`, alone in a batch, to be refused for its `field`, with a reason mentioning
/// `needle`; the error is the caller's fault and names the event.
fn assert_refused(event: NewEvent, field: &str, needle: &str) {
    let id = event.id;
    match validate_batch(&[event]) {
        Err(error @ LogError::InvalidMetadata { .. }) => {
            assert!(error.is_bad_input(), "{error} must count as bad input");
            let LogError::InvalidMetadata { event_id, field: refused, reason } = &error else {
                unreachable!()
            };
            assert_eq!(*event_id, id);
            assert_eq!(*refused, field, "{error}");
            assert!(reason.contains(needle), "reason {reason:?} does not mention {needle:?}");
        }
        other => panic!("expected InvalidMetadata for the {field} ({needle}), got {other:?}"),
    }
}

#[test]
fn an_empty_emitter_is_refused() {
    assert_refused(event_with("", None), "emitter", "empty");
}

#[test]
fn an_emitter_over_the_limit_is_refused() {
    let at_limit = "e".repeat(EVENT_EMITTER_BYTES_MAX);
    validate_batch(&[event_with(&at_limit, None)]).unwrap();
    assert_refused(event_with(&format!("{at_limit}e"), None), "emitter", "limit is 256");
    // The limit counts bytes, not characters: 129 two-byte characters are 258 bytes.
    assert_refused(event_with(&"é".repeat(129), None), "emitter", "258 bytes");
}

#[test]
fn control_characters_in_an_emitter_are_refused() {
    for bad in [
        "gateway\r\nX-Injected: 1",
        "gateway\n",
        "\rgateway",
        "gate\tway",
        "gate\0way",
        "gate\u{7f}way",
        "gate\u{85}way",
        "gate\u{1b}[31mway",
    ] {
        assert_refused(event_with(bad, None), "emitter", "control character");
    }
}

#[test]
fn an_emitter_with_surrounding_whitespace_is_refused() {
    // NATS trims header values on read, so these would read back as another emitter.
    for bad in [" gateway", "gateway ", " ", "gateway\u{a0}"] {
        assert_refused(event_with(bad, None), "emitter", "whitespace");
    }
}

#[test]
fn a_traceparent_over_the_limit_is_refused() {
    let at_limit = "f".repeat(EVENT_TRACEPARENT_BYTES_MAX);
    validate_batch(&[event_with("gateway", Some(&at_limit))]).unwrap();
    assert_refused(event_with("gateway", Some(&format!("{at_limit}f"))), "traceparent", "limit is 512");
}

#[test]
fn a_traceparent_outside_visible_ascii_is_refused() {
    for bad in [
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\nX-Injected: 1",
        "00-0af7651916cd43dd8448eb211c80319c\n",
        " 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00 0af7651916cd43dd8448eb211c80319c",
        "00-0af7651916cd43dd8448eb211c80319c\t",
        "00-0af7651916cd43dd8448eb211c80319c\u{7f}",
        "00-0af7651916cd43dd8448eb211c80319c-é",
    ] {
        assert_refused(event_with("gateway", Some(bad)), "traceparent", "visible ASCII");
    }
    assert_refused(event_with("gateway", Some("")), "traceparent", "empty");
}

#[test]
fn valid_metadata_passes() {
    // The emitters the workspace writes, and what producers and agents may call themselves.
    let emitters = [
        "gateway",
        "cli",
        "nats",
        "runtime",
        "registry",
        "operator",
        "screening",
        "matching",
        "execution",
        "test-driver",
        "dead-letter-test",
        "agent:echo",
        "producer:py",
        "producer: a team's key #7",
        "ünïcode-émitter",
        "e",
    ];
    for emitter in emitters {
        validate_batch(&[event_with(emitter, None)]).unwrap_or_else(|e| panic!("{emitter:?}: {e}"));
        validate_batch(&[event_with(emitter, Some(TRACEPARENT))])
            .unwrap_or_else(|e| panic!("{emitter:?}: {e}"));
    }
    validate_batch(&[event_with("gateway", Some("!\"#$%&'()*+,-./0123456789:;<=>?@AZ[\\]^_`az{|}~"))])
        .unwrap();
}

#[test]
fn one_bad_event_refuses_the_whole_batch_and_is_named() {
    let good = event_with("gateway", None);
    let bad = event_with("gateway\n", None);
    let bad_id = bad.id;
    match validate_batch(&[good.clone(), bad, event_with("cli", None)]) {
        Err(LogError::InvalidMetadata { event_id, field: "emitter", .. }) => assert_eq!(event_id, bad_id),
        other => panic!("expected the second event to be refused, got {other:?}"),
    }
    validate_batch(&[good]).unwrap();
}

#[test]
fn the_payload_limit_covers_the_payload_alone() {
    // A payload exactly at the limit passes with metadata at its limits too.
    let mut event =
        event_with(&"e".repeat(EVENT_EMITTER_BYTES_MAX), Some(&"f".repeat(EVENT_TRACEPARENT_BYTES_MAX)));
    event.payload = vec![0; EVENT_PAYLOAD_BYTES_MAX];
    validate_batch(std::slice::from_ref(&event)).unwrap();
    event.payload.push(0);
    assert!(matches!(
        validate_batch(&[event]),
        Err(LogError::EventTooLarge { bytes, max: EVENT_PAYLOAD_BYTES_MAX, .. }) if bytes == EVENT_PAYLOAD_BYTES_MAX + 1
    ));
}

proptest! {
    #[test]
    fn an_emitter_with_a_line_break_anywhere_is_refused(
        before in "[a-z:-]{0,20}",
        line_break in prop_oneof![Just("\r"), Just("\n"), Just("\r\n")],
        after in "[a-z:-]{0,20}",
    ) {
        let emitter = format!("{before}{line_break}{after}");
        let refused = matches!(
            validate_batch(&[event_with(&emitter, None)]),
            Err(LogError::InvalidMetadata { field: "emitter", .. })
        );
        prop_assert!(refused, "{:?} was not refused", emitter);
    }

    #[test]
    fn emitters_of_visible_characters_pass(emitter in "[!-~][ -~]{0,60}[!-~]") {
        prop_assert!(validate_batch(&[event_with(&emitter, None)]).is_ok());
    }
}
