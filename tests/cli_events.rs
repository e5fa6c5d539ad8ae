//! `pantheon events` as a new user runs it: append, read, conflicts and bad input, on the
//! embedded default in a temp data dir.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn pantheon(data_dir: &std::path::Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pantheon"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("PANTHEON_DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("the binary finishes")
}

fn lines(output: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect()
}

#[test]
fn append_read_and_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();

    let appended = pantheon(
        dir,
        &["events", "append", "order-42", "--expect", "none"],
        r#"[{"type":"order_placed","data":{"sku":"a","n":2}},{"type":"order_paid","data":{"amount":10}}]"#,
    );
    assert!(appended.status.success(), "{}", String::from_utf8_lossy(&appended.stderr));
    let outcome = &lines(&appended)[0];
    assert_eq!(outcome["first_version"], 1);
    assert_eq!(outcome["last_version"], 2);

    // The stream exists now: `--expect none` conflicts, and says so.
    let conflict = pantheon(dir, &["events", "append", "order-42", "--expect", "none"], r#"{"type":"x"}"#);
    assert!(!conflict.status.success());
    let stderr = String::from_utf8_lossy(&conflict.stderr);
    assert!(stderr.contains("conflict") && stderr.contains("version 2"), "{stderr}");

    // Exact version works.
    let third =
        pantheon(dir, &["events", "append", "order-42", "--expect", "2"], r#"{"type":"order_shipped"}"#);
    assert!(third.status.success(), "{}", String::from_utf8_lossy(&third.stderr));

    let read = pantheon(dir, &["events", "read", "order-42"], "");
    assert!(read.status.success());
    let events = lines(&read);
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["order_placed", "order_paid", "order_shipped"]);
    assert_eq!(events[0]["data"], serde_json::json!({"sku": "a", "n": 2}));
    assert_eq!(events[2]["version"], 3);

    let all = pantheon(dir, &["events", "read", "--all", "--from", "2", "--limit", "1"], "");
    let all = lines(&all);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["type"], "order_paid");

    // Bad input: each a clear error, nothing written.
    for (args, stdin, needle) in [
        (vec!["events", "append", "order-1"], "not json", "stdin must be a JSON event"),
        (vec!["events", "append", "order-1"], r#"{"type":"Bad.Type"}"#, "invalid event type"),
        (vec!["events", "append", "order-1"], "[]", "at least one event"),
        (vec!["events", "append", "task-1"], r#"{"type":"task_submitted","data":{"x":1}}"#, "does not fit"),
        (vec!["events", "append", "order-1", "--expect", "soon"], r#"{"type":"a"}"#, "--expect takes"),
        (vec!["events", "append", "no_category"], r#"{"type":"a"}"#, "invalid stream id"),
    ] {
        let output = pantheon(dir, &args, stdin);
        assert!(!output.status.success(), "{args:?} must fail");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr:?} should mention {needle:?}");
    }
    let all = pantheon(dir, &["events", "read", "--all"], "");
    assert_eq!(lines(&all).len(), 3, "refused appends wrote nothing");
}

#[test]
fn tail_prints_existing_events_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let appended =
        pantheon(dir, &["events", "append", "order-7"], r#"[{"type":"a"},{"type":"b"},{"type":"c"}]"#);
    assert!(appended.status.success());
    let tail = pantheon(dir, &["events", "tail", "--from-start", "--type", "b", "--count", "1"], "");
    assert!(tail.status.success(), "{}", String::from_utf8_lossy(&tail.stderr));
    let events = lines(&tail);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "b");
}
