//! The documented layout is enough for a client that is not ours: a plain nats-py producer
//! submits a task and reads the task's events back, and the AsyncAPI document names every
//! event schema and every header Pantheon writes.

use std::path::PathBuf;
use std::process::Command;

use events::{EventId, EventLog, EventType, ExpectedVersion, Metadata, NewEvent, StreamId, TaskId};
use nats::layout;
use nats::{NatsLog, NatsLogConfig};
use testkit::nats_server::NatsServer;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The test venv's python with nats-py and msgpack, made on first use; `None` (with a loud
/// message) only when Python or pip cannot make it.
fn python() -> Option<PathBuf> {
    if let Some(venv) = testkit::nats_server::test_venv() {
        return Some(venv.join("bin/python"));
    }
    eprintln!(
        "\n*** SKIPPED: python3 -m venv / pip could not install nats-py (see nats/tests/python/setup.sh) ***\n"
    );
    None
}

#[test]
fn asyncapi_names_every_event_schema_and_header() {
    let document = std::fs::read_to_string(repo().join("schemas/asyncapi.yaml")).unwrap();
    assert!(document.starts_with('#') && document.contains("asyncapi: 2.6.0"));
    for entry in std::fs::read_dir(repo().join("schemas/events")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".json") {
            assert!(document.contains(&format!("'./events/{name}'")), "asyncapi.yaml lacks {name}");
        }
    }
    for header in [
        layout::HEADER_VERSION,
        layout::HEADER_EVENT_TYPE,
        layout::HEADER_SCHEMA_VERSION,
        layout::HEADER_OCCURRED_AT_MS,
        layout::HEADER_EMITTER,
        layout::HEADER_CAUSATION_ID,
        layout::HEADER_CORRELATION_ID,
        layout::HEADER_TRACEPARENT,
        layout::HEADER_PREVIOUS_SEQUENCE,
        layout::HEADER_DEAD_REASON,
        layout::HEADER_DEAD_SUBJECT,
        layout::HEADER_DEAD_SEQUENCE,
        "Nats-Msg-Id",
        "Nats-Expected-Last-Subject-Sequence",
    ] {
        assert!(document.contains(&format!("{header}:")), "asyncapi.yaml lacks header {header}");
    }
    assert!(document.contains("pantheon.{category}.{entity_id}:"));
    assert!(document.contains(&format!("{}.{{subscription}}:", layout::DEAD_LETTER_PREFIX)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_py_producer_submits_and_reads_back() {
    let Some(python) = python() else { return };
    let server = NatsServer::start().unwrap();
    let log = NatsLog::connect(NatsLogConfig::new(server.url())).await.unwrap();
    let task = TaskId::new();
    let script = repo().join("nats/tests/python/foreign_client.py");

    let output = Command::new(&python)
        .arg(&script)
        .args(["publish", &server.url(), &task.to_string()])
        .output()
        .unwrap();
    assert!(output.status.success(), "publish failed: {}", String::from_utf8_lossy(&output.stderr));

    // Pantheon reads the submission as a typed event.
    let stream = StreamId::task(task);
    let recorded = log.read_stream(&stream, 1, 10).await.unwrap();
    assert_eq!(recorded.len(), 1);
    let submitted = &recorded[0];
    assert_eq!((submitted.version, submitted.event_type.as_str()), (1, "task_submitted"));
    assert_eq!(submitted.metadata.emitter, "producer:py");
    let payload: events::task::TaskSubmitted = events::codec::from_msgpack(&submitted.payload).unwrap();
    assert_eq!(payload.task_id, task);
    assert_eq!(payload.spec.capability, "echo");

    // Pantheon answers on the same stream; the foreign client reads both back.
    let screened = NewEvent {
        id: EventId::derived(submitted.id, "screened"),
        event_type: EventType::new("ingress_screened").unwrap(),
        schema_version: 1,
        payload: events::codec::to_msgpack(&serde_json::json!({"task_id": task, "findings": []})).unwrap(),
        metadata: Metadata::now("security"),
    };
    log.append(&stream, ExpectedVersion::Exact(1), vec![screened.clone()]).await.unwrap();
    let output =
        Command::new(&python).arg(&script).args(["read", &server.url(), &task.to_string()]).output().unwrap();
    assert!(output.status.success(), "read failed: {}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8(output.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["event_type"], "task_submitted");
    assert_eq!(lines[1]["event_type"], "ingress_screened");
    assert_eq!(lines[1]["version"], 2);
    assert_eq!(lines[1]["event_id"], screened.id.to_string());
}
