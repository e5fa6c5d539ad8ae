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
        (vec!["events", "append", "order-1"], "not json", "stdin must hold JSON events"),
        (vec!["events", "append", "order-1"], "", "it is empty"),
        (vec!["events", "append", "order-1"], "[1]", "not an object"),
        (vec!["events", "append", "order-1"], r#"{"type":"a","colour":"red"}"#, "unknown field `colour`"),
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

    // Reading needs a stream or --all, and a stream nobody appended to is an error, not silence.
    let nothing = pantheon(dir, &["events", "read", "--limit", "0"], "");
    assert!(!nothing.status.success());
    assert!(String::from_utf8_lossy(&nothing.stderr).contains("--all"));
    let unknown = pantheon(dir, &["events", "read", "order-404"], "");
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("order-404 has no events"));
}

#[test]
fn what_read_prints_can_be_appended_again() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let appended = pantheon(
        dir,
        &["events", "append", "order-1"],
        r#"[{"type":"placed","data":{"sku":"a"},"emitter":"shop"},{"type":"paid","data":{"amount":3}}]"#,
    );
    assert!(appended.status.success(), "{}", String::from_utf8_lossy(&appended.stderr));
    let read = pantheon(dir, &["events", "read", "order-1"], "");
    assert!(read.status.success());
    let printed = String::from_utf8_lossy(&read.stdout).to_string();
    let original = lines(&read);

    // JSON lines exactly as printed (with their stream, version, position and time): on the
    // same stream, the same ids make it a re-append that writes nothing.
    let again = pantheon(dir, &["events", "append", "order-1"], &printed);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(lines(&again)[0]["duplicate"], true);
    assert_eq!(lines(&pantheon(dir, &["events", "read", "order-1"], "")).len(), 2);

    // On another stream the ids are taken: refused, with the id named.
    let elsewhere = pantheon(dir, &["events", "append", "archive-1"], &printed);
    assert!(!elsewhere.status.success());
    let stderr = String::from_utf8_lossy(&elsewhere.stderr);
    assert!(
        stderr.contains("already recorded") && stderr.contains(original[0]["id"].as_str().unwrap()),
        "{stderr}"
    );

    // Without the ids, the events are copied: type, data, emitter and schema version kept.
    let without_ids: String = original
        .iter()
        .map(|event| {
            let mut event = event.clone();
            event.as_object_mut().unwrap().remove("id");
            format!("{event}\n")
        })
        .collect();
    let copied = pantheon(dir, &["events", "append", "archive-1", "--expect", "none"], &without_ids);
    assert!(copied.status.success(), "{}", String::from_utf8_lossy(&copied.stderr));
    let copy = lines(&pantheon(dir, &["events", "read", "archive-1"], ""));
    assert_eq!(copy.len(), 2);
    for (old, new) in original.iter().zip(&copy) {
        for field in ["type", "data", "emitter", "schema_version", "version"] {
            assert_eq!(old[field], new[field], "{field} is kept");
        }
        assert_eq!(new["stream"], "archive-1");
        assert_ne!(old["id"], new["id"]);
    }
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

    // The tail's subscription went with it.
    let url = format!("sqlite://{}", dir.join("pantheon.db").display());
    let left: i64 = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let pool = sqlx::SqlitePool::connect(&url).await.expect("open the log file");
        sqlx::query_scalar("SELECT COUNT(*) FROM subscriptions").fetch_one(&pool).await.expect("count")
    });
    assert_eq!(left, 0, "no subscription is left behind");

    // A category no stream can have is refused, not silently empty.
    let refused = pantheon(dir, &["events", "tail", "--category", "Order", "--count", "1"], "");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("invalid subscription filter"));
}

/// A reader that stops early (`pantheon events read --all | head -1`) ends the command
/// quietly: no panic, no error, success.
#[test]
fn output_into_a_pipe_closed_early_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    // About 400 KiB of output, far more than a pipe holds.
    for _ in 0..2 {
        let batch: Vec<serde_json::Value> = (0..1_000)
            .map(|i| serde_json::json!({"type": "line_written", "data": {"n": i, "text": "x".repeat(80)}}))
            .collect();
        let appended =
            pantheon(dir, &["events", "append", "lines-1"], &serde_json::to_string(&batch).unwrap());
        assert!(appended.status.success(), "{}", String::from_utf8_lossy(&appended.stderr));
    }

    for args in [&["events", "read", "--all", "--limit", "5000"][..], &["events", "read", "lines-1"][..]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pantheon"))
            .arg("--data-dir")
            .arg(dir)
            .args(args)
            .env_remove("PANTHEON_DATABASE_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary runs");
        let mut stdout = child.stdout.take().expect("stdout");
        let mut first = [0u8; 64];
        std::io::Read::read_exact(&mut stdout, &mut first).expect("some output");
        drop(stdout); // the reader goes away with most of the output unread
        let output = child.wait_with_output().expect("the binary finishes");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{args:?}: {:?} {stderr}", output.status);
        assert!(!stderr.contains("panicked") && !stderr.contains("error"), "{args:?}: {stderr}");
    }
}

/// A command that only reads, pointed at a directory with no Pantheon data (a wrong
/// `--data-dir`), says so and creates nothing; the database a writer creates is readable by
/// its owner only.
#[test]
fn reading_an_empty_data_dir_is_an_error_and_the_database_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    for args in [&["tasks"][..], &["events", "read", "--all"][..], &["agents"][..]] {
        let out = pantheon(&missing, args, "");
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("no Pantheon data in"), "{args:?}: {stderr}");
        assert!(!missing.exists(), "{args:?} created the data dir");
    }
    let appended = pantheon(&missing, &["events", "append", "note-1"], r#"{"type":"noted"}"#);
    assert!(appended.status.success(), "{}", String::from_utf8_lossy(&appended.stderr));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(missing.join("pantheon.db")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "pantheon.db is {mode:o}");
    }
    assert!(pantheon(&missing, &["events", "read", "note-1"], "").status.success());
}
