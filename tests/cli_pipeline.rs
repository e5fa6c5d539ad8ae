//! `pantheon up` / `submit --wait` / `replay` as a new user runs them, and a `pantheon up`
//! killed with SIGKILL mid-task then started again: the task completes with each phase's
//! output exactly once. On the embedded default, in a temp data dir.

mod common;

use common::*;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use events::task::TaskStatus;
use events::{EventLog, KeyPair, StreamId, TaskId, TaskSpec};

fn up(data_dir: &std::path::Path) -> Child {
    pantheon(data_dir)
        .arg("up")
        // Any free port: the test does not use the gateway, and a fixed one may be taken.
        .args(["--http", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("pantheon up starts")
}

async fn wait_for<F: Fn(&events::TaskState) -> bool>(
    log: &dyn EventLog,
    task: TaskId,
    what: F,
) -> events::TaskState {
    let started = Instant::now();
    loop {
        let state = actors::client::task_state(log, task).await.unwrap();
        if what(&state) {
            return state;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "timed out; task is {}", state.status);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_submit_replay_and_a_sigkill_mid_task() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    // A slow command agent next to echo, so a task can be caught mid-execution.
    std::fs::write(
        data.join("pantheon.toml"),
        r#"
        [[agents]]
        id = "echo"
        builtin = "echo"
        [[agents]]
        id = "slow"
        builtin = "command"
        capabilities = ["slow"]
        command = { program = "sh", args = ["-c", "sleep 2; cat"] }
        "#,
    )
    .unwrap();
    let mut child = Guard(up(data));
    // `up` creates the federation key and registers the agents before taking tasks.
    let started = Instant::now();
    while !data.join("federation.key").exists() {
        assert!(started.elapsed() < Duration::from_secs(20), "pantheon up did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // submit --wait prints the result.
    let out = pantheon(data).args(["submit", "echo", "hello there", "--wait"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hello there");
    // More than a command line holds: the input from a file, the description from stdin.
    let big = serde_json::json!({ "text": "word ".repeat(40_000) });
    let input_file = data.join("big-input.json");
    std::fs::write(&input_file, big.to_string()).unwrap();
    let mut submitter = pantheon(data)
        .args(["submit", "echo", "-", "--wait", "--json", "--input"])
        .arg(format!("@{}", input_file.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut submitter.stdin.take().unwrap(), b"echo the big input\n").unwrap();
    let out = submitter.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["output"], big);
    let task = answer["task_id"].as_str().unwrap().to_string();
    let out = pantheon(data).args(["replay", &task]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"echo the big input\""));
    // `agents` shows the health and reputation the projections keep, as matching reads them.
    let started = Instant::now();
    loop {
        let out = pantheon(data).args(["agents", "--json"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        let echo = rows.iter().find(|r| r["agent_id"] == "echo").expect("echo is listed").clone();
        assert_eq!(echo["health"], "healthy", "{echo}");
        if echo["reputation"]["echo"].as_f64().is_some_and(|score| score > 0.5) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "no reputation after a success: {echo}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // --json for scripts; bad input answered with the reason.
    let out = pantheon(data).args(["submit", "teleport", "x", "--wait", "--json"]).output().unwrap();
    assert!(!out.status.success());
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["status"], "rejected");
    assert!(answer["reason"].as_str().unwrap().contains("teleport"));
    // replay shows the timeline with verified signatures.
    let task = answer["task_id"].as_str().unwrap().to_string();
    let out = pantheon(data).args(["replay", &task]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("task_rejected") && text.contains("ok: submission signed"), "{text}");
    // Versions outside the task's are refused with the range, not shown as the last state.
    for at in ["0", "3", "999"] {
        let out = pantheon(data).args(["replay", &task, "--at", at]).output().unwrap();
        assert!(!out.status.success(), "--at {at}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("versions 1 to 2"), "--at {at}: {stderr}");
    }
    let out = pantheon(data).args(["replay", &task, "--at", "2"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A misspelt event type is an error, not a silent empty tail.
    let out = pantheon(data).args(["tail", "--type", "task_complete"]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no event type \"task_complete\"") && stderr.contains("task_completed"),
        "{stderr}"
    );

    // SIGKILL mid-task, then start again.
    let url = format!("sqlite://{}?mode=rwc", data.join("pantheon.db").display());
    let log = store::open(&url).await.unwrap();
    let key = Arc::new(KeyPair::load(&data.join("federation.key")).unwrap());
    let task = actors::client::submit(
        log.as_ref(),
        &key,
        TaskSpec::new("slow", "survive a SIGKILL"),
        events::task::Channel::Local,
        "test",
    )
    .await
    .unwrap();
    wait_for(log.as_ref(), task, |s| s.status == TaskStatus::Running).await;
    child.0.kill().unwrap(); // SIGKILL
    child.0.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(actors::client::task_state(log.as_ref(), task).await.unwrap().status, TaskStatus::Running);
    let _again = Guard(up(data));
    let state = wait_for(log.as_ref(), task, |s| s.status.is_final()).await;
    assert_eq!(state.status, TaskStatus::Completed, "{state:?}");
    let mut counts = BTreeMap::new();
    for event in log.read_stream(&StreamId::task(task), 1, 1_000).await.unwrap() {
        *counts.entry(event.event_type.to_string()).or_insert(0) += 1;
    }
    for (kind, n) in &counts {
        if kind != "progress_reported" {
            assert_eq!(*n, 1, "{kind} appears {n} times: {counts:?}");
        }
    }
    assert_eq!(counts.len(), 12, "{counts:?}");

    // SIGINT mid-task: the running attempt finishes and its task completes before `up` exits.
    let mut again = _again;
    let task = actors::client::submit(
        log.as_ref(),
        &key,
        TaskSpec::new("slow", "finish before stopping"),
        events::task::Channel::Local,
        "test",
    )
    .await
    .unwrap();
    wait_for(log.as_ref(), task, |s| s.status == TaskStatus::Running).await;
    let interrupt = Command::new("kill").args(["-INT", &again.0.id().to_string()]).status().unwrap();
    assert!(interrupt.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = again.0.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "pantheon up did not stop after SIGINT");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
    let state = actors::client::task_state(log.as_ref(), task).await.unwrap();
    assert_eq!(state.status, TaskStatus::Completed, "{state:?}");

    // What the gateway of `up` admits is signed with its key, which replay trusts as the
    // pipeline does.
    let gateway = KeyPair::load(&data.join("gateway.key")).unwrap();
    let task = actors::client::submit(
        log.as_ref(),
        &gateway,
        TaskSpec::new("echo", "through the gateway"),
        events::task::Channel::Gateway,
        "gateway",
    )
    .await
    .unwrap();
    let out = pantheon(data).args(["replay", &task.to_string()]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ok: submission signed") && !text.contains("FAILED"), "{text}");

    // Suspending twice says so; a retired agent of the config is skipped by the next `up`,
    // which starts and runs the others.
    let out = pantheon(data).args(["agents", "suspend", "echo"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = pantheon(data).args(["agents", "suspend", "echo"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("suspended already"));
    let out = pantheon(data).args(["agents", "reinstate", "echo"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = pantheon(data).args(["agents", "retire", "slow"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("skips it"));
    let _third = Guard(up(data));
    let out = pantheon(data).args(["submit", "echo", "after a retirement", "--wait"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "after a retirement");
    drop(_third);

    // `audit verify` compares the ledger with the log: an event changed in the database
    // after it was recorded is found.
    let out = pantheon(data).args(["audit", "verify"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ledger intact"));
    let db = sqlx::SqlitePool::connect(&url).await.unwrap();
    let changed = sqlx::query(
        "UPDATE events SET payload = CAST('tampered' AS BLOB) \
         WHERE position = (SELECT MIN(position) FROM events WHERE event_type = 'task_completed')",
    )
    .execute(&db)
    .await
    .unwrap();
    assert_eq!(changed.rows_affected(), 1);
    db.close().await;
    let out = pantheon(data).args(["audit", "verify"]).output().unwrap();
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("was altered") && said.contains("task_completed"), "{said}");
    // The ledger alone is still intact: only the comparison finds it.
    let out = pantheon(data).args(["audit", "verify", "--ledger-only"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `pantheon bench` on the embedded default, small: the levels and both memory rounds (each
/// in a process of its own) come back as JSON.
#[test]
fn bench_reports_levels_and_memory_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let out = pantheon(dir.path())
        .args(["bench", "--tasks", "40", "--concurrency", "1,8", "--in-flight", "200", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value =
        serde_json::from_str(text.lines().last().unwrap_or_default()).expect("one JSON report");
    let levels = report["levels"].as_array().expect("levels");
    assert_eq!(levels.len(), 2, "{report}");
    for level in levels {
        assert_eq!(level["tasks"], 40, "{level}");
        assert_eq!(level["failed"], 0, "{level}");
        assert!(level["tasks_per_second"].as_f64().is_some_and(|t| t > 0.0), "{level}");
    }
    let memory = &report["in_flight"];
    assert_eq!(memory["round"]["tasks"], 200, "{memory}");
    assert_eq!(memory["double"]["tasks"], 400, "{memory}");
    for round in ["round", "double"] {
        assert!(memory[round]["rss_at_in_flight_max_bytes"].as_u64().is_some_and(|b| b > 0), "{memory}");
        assert!(memory[round]["in_flight_max"].as_u64().is_some_and(|n| n > 0), "{memory}");
        assert!(memory[round]["rss_warm_bytes"].as_u64().is_some_and(|b| b > 0), "{memory}");
        assert!(memory[round]["rss_cold_bytes"].as_u64().is_some_and(|b| b > 0), "{memory}");
    }
    assert!(memory["rss_bytes_per_additional_in_flight_task"].is_number(), "{memory}");
}
