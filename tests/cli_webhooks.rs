//! `pantheon webhooks dead` and `redeliver` against a running `pantheon up`: a webhook whose
//! receiver kept failing is listed, and once asked for again it is delivered by the running
//! gateway, with the same webhook-id; the `[webhooks]` settings of pantheon.toml apply.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use common::{pantheon, token, up_with_gateway};
use tokio::sync::mpsc;

/// A receiver on loopback that answers 500 while `failing`, then 204; it reports each
/// delivery's webhook-id.
async fn receiver(failing: Arc<AtomicBool>) -> (String, mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap| {
            let (tx, failing) = (tx.clone(), failing.clone());
            async move {
                let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
                let _ = tx.send(id.to_string());
                if failing.load(Ordering::SeqCst) {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), rx)
}

fn dead(dir: &std::path::Path) -> Vec<serde_json::Value> {
    let out = pantheon(dir).args(["webhooks", "dead", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_listed_and_redelivered_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("pantheon.toml"),
        "[webhooks]\nallow = [\"127.0.0.1\"]\nattempts = 2\nbackoff-initial-ms = 20\nbackoff-max-ms = 50\n",
    )
    .unwrap();
    let failing = Arc::new(AtomicBool::new(true));
    let (url, mut received) = receiver(failing.clone()).await;
    let (_up, base, client) = up_with_gateway(dir.path()).await;
    let producer = token(dir.path(), "producer");
    let submitted: serde_json::Value = client
        .post(format!("{base}/tasks/submit"))
        .bearer_auth(&producer)
        .json(&serde_json::json!({"capability": "echo", "description": "x", "webhook_url": url}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let task = submitted["task_id"].as_str().expect("a task id").to_string();

    // Two attempts (the configured number), then listed.
    let started = Instant::now();
    let listed = loop {
        let listed = dead(dir.path());
        if !listed.is_empty() {
            break listed;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "never dead-lettered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(listed[0]["task_id"], task.as_str(), "{listed:?}");
    assert!(listed[0]["reason"].as_str().unwrap().contains("after 2 attempts"), "{listed:?}");
    let webhook_id = listed[0]["webhook_id"].as_str().unwrap().to_string();
    let table = pantheon(dir.path()).args(["webhooks", "dead"]).output().unwrap();
    assert!(String::from_utf8_lossy(&table.stdout).contains(&task), "the table names the task");
    let mut seen = Vec::new();
    while let Ok(id) = received.try_recv() {
        seen.push(id);
    }
    assert_eq!(seen.len(), 2, "two attempts: {seen:?}");

    // The receiver is back: asked for again, the running gateway delivers it.
    failing.store(false, Ordering::SeqCst);
    let out =
        pantheon(dir.path()).args(["webhooks", "redeliver", &task, "--by", "a-new-user"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let delivered =
        tokio::time::timeout(Duration::from_secs(20), received.recv()).await.expect("delivered").unwrap();
    assert_eq!(delivered, webhook_id, "the same webhook-id");
    // Asked once; a second request is refused with the reason.
    let again = pantheon(dir.path()).args(["webhooks", "redeliver", &task]).output().unwrap();
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("not dead-lettered"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let started = Instant::now();
    while !dead(dir.path()).is_empty() {
        assert!(started.elapsed() < Duration::from_secs(10), "still listed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A task that does not exist.
    let missing = pantheon(dir.path())
        .args(["webhooks", "redeliver", &events::TaskId::new().to_string()])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no task"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
}
