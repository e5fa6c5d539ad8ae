//! `pantheon submit` refuses what cannot be a task, and records the refusal: a submission too
//! large for the log is a rejected task with the reason, not an internal error.

mod common;

use common::pantheon;

#[test]
fn a_submission_too_large_for_the_log_is_recorded_as_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("input.json");
    // 2 MB of JSON: over the log's 512 KiB per event.
    std::fs::write(&input, serde_json::to_string(&"a".repeat(2 << 20)).unwrap()).expect("input file");
    let out = pantheon(dir.path())
        .args(["submit", "echo", "summarise this", "--wait", "--json", "--input"])
        .arg(format!("@{}", input.display()))
        .output()
        .expect("pantheon submit runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a refused task is not a success: {stdout}{stderr}");
    let answer: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON answer");
    assert_eq!(answer["status"], "rejected", "{answer}");
    let reason = answer["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("bytes") && reason.contains("524288"), "{reason}");
    // The refusal is in the history.
    let task = answer["task_id"].as_str().expect("a task id");
    let events =
        pantheon(dir.path()).args(["events", "read", &format!("task-{task}")]).output().expect("events read");
    let events = String::from_utf8_lossy(&events.stdout);
    assert!(events.contains("task_submitted") && events.contains("task_rejected"), "{events}");
    assert!(!events.contains(&"a".repeat(1_000)), "the input is not recorded");
}
