//! `pantheon token`: a token it issues is accepted by the gateway `pantheon up` runs, with
//! exactly the roles asked for; bad requests are refused with the reason.

mod common;

use common::*;

use std::process::Stdio;
use std::time::{Duration, Instant};

fn token(data: &std::path::Path, args: &[&str]) -> String {
    let out = pantheon(data).arg("token").args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issued_tokens_carry_their_roles_to_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _up = Guard(
        pantheon(data)
            .args(["up", "--http", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    gateway::webhooks::install_crypto_provider();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while !client.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(started.elapsed() < Duration::from_secs(30), "pantheon up did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let viewer = token(data, &["--role", "viewer", "--sub", "ci", "--ttl", "10m"]);
    let producer = token(data, &["--role", "producer", "--sub", "ci"]);
    let submit = |token: String| {
        client
            .post(format!("{base}/tasks/submit"))
            .bearer_auth(token)
            .json(&serde_json::json!({"capability": "echo", "description": "hi"}))
            .send()
    };
    assert_eq!(submit(viewer).await.unwrap().status().as_u16(), 403, "a viewer cannot submit");
    assert_eq!(submit(producer).await.unwrap().status().as_u16(), 202, "a producer can");

    // Bad requests say why, and issue nothing.
    for (args, why) in [
        (vec!["--role", "wizard", "--sub", "ci"], "unknown role"),
        (vec!["--role", "viewer", "--sub", "ci", "--ttl", "400d"], "at most 365 days"),
        (vec!["--role", "viewer", "--sub", " "], "--sub"),
    ] {
        let out = pantheon(data).arg("token").args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(out.stdout.is_empty());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(why),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let elsewhere = tempfile::tempdir().unwrap();
    let out = pantheon(elsewhere.path()).args(["token", "--role", "viewer", "--sub", "ci"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("no gateway secret"));
}
