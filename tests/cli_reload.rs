//! Reloading `pantheon up` without a restart: SIGHUP and `POST /admin/reload` read
//! pantheon.toml and the auth config's rate limits again, apply the screening policy, the
//! agents' capabilities and concurrency and the limits at once, say what takes a restart,
//! and record each outcome on the policy stream; a configuration that does not load is
//! refused, recorded, and the one in force stays.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Guard, free_port, pantheon};
use serde_json::json;

const SECRET: &str = "a-secret-of-the-reload-test-0123456789";

const CONFIG: &str = "[screening]\ndescription-bytes-max = 10000\n\n[[agents]]\nid = \"echo\"\nbuiltin = \"echo\"\ncapabilities = [\"echo\"]\nmax-concurrency = 4\n";

const RELOADED: &str = "[screening]\ndescription-bytes-max = 1000\n\n[[agents]]\nid = \"echo\"\nbuiltin = \"echo\"\ncapabilities = [\"echo\", \"shout\"]\nmax-concurrency = 8\n\n[[agents]]\nid = \"extra\"\nbuiltin = \"echo\"\n";

fn auth(limits: &str) -> String {
    format!(r#"{{"hs256_secrets": ["{SECRET}"], "rate_limits": {limits}}}"#)
}

fn token(subject: &str, role: &str) -> String {
    gateway::auth::issue_hs256_token(SECRET.as_bytes(), subject, &[role], 3_600).unwrap()
}

/// The policy stream's events, as `pantheon events read` prints them.
fn policy(dir: &std::path::Path) -> Vec<serde_json::Value> {
    let out = pantheon(dir).args(["events", "read", "policy-federation"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

async fn execute(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    capability: &str,
    description: &str,
) -> (u16, serde_json::Value) {
    let response = client
        .post(format!("{base}/tasks/execute"))
        .bearer_auth(token)
        .json(&json!({"capability": capability, "description": description, "input": 1}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_and_the_admin_endpoint_reload_policy_and_record_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    std::fs::write(data.join("pantheon.toml"), CONFIG).unwrap();
    let auth_path = data.join("auth.json");
    std::fs::write(&auth_path, auth("{}")).unwrap();
    let port = free_port();
    let up = Guard(
        pantheon(data)
            .args(["up", "--http", &format!("127.0.0.1:{port}"), "--auth-config"])
            .arg(&auth_path)
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
        assert!(started.elapsed() < Duration::from_secs(60), "up never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let admin = token("a-new-user", "admin");
    let limited = token("limited", "producer");
    let long = "x".repeat(2_000);
    assert_eq!(
        execute(&client, &base, &admin, "echo", &long).await.0,
        200,
        "2,000 bytes pass the first policy"
    );
    assert_eq!(execute(&client, &base, &limited, "shout", "hi").await.0, 422, "no agent offers shout yet");
    for _ in 0..3 {
        assert_eq!(execute(&client, &base, &limited, "echo", "hi").await.0, 200, "not limited yet");
    }

    // A new configuration and new limits; SIGHUP.
    std::fs::write(data.join("pantheon.toml"), RELOADED).unwrap();
    std::fs::write(&auth_path, auth(r#"{"subjects": {"limited": {"per_s": 1, "burst": 1}}}"#)).unwrap();
    let hup = std::process::Command::new("kill").args(["-HUP", &up.0.id().to_string()]).status().unwrap();
    assert!(hup.success());
    let started = Instant::now();
    let reloaded = loop {
        if let Some(event) = policy(data).into_iter().find(|e| e["type"] == "policy_reloaded") {
            break event;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no reload recorded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(reloaded["data"]["by"], "sighup");
    let lines = |key: &str| -> Vec<String> {
        reloaded["data"][key].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_string()).collect()
    };
    let (changes, not_applied) = (lines("changes"), lines("not_applied"));
    for expected in [
        "screening.description-bytes-max: 10000 → 1000",
        "agent echo: capabilities [echo] → [echo, shout]",
        "agent echo: max-concurrency 4 → 8",
        "rate_limits.subjects.limited: unset → 1/s burst 1",
    ] {
        assert!(changes.iter().any(|c| c == expected), "{expected:?} in {changes:#?}");
    }
    assert!(not_applied.iter().any(|l| l.starts_with("agent extra added")), "{not_applied:#?}");

    // In force at once.
    let (status, body) = execute(&client, &base, &admin, "echo", &long).await;
    assert_eq!((status, body["status"].as_str()), (422, Some("rejected")), "{body}");
    let started = Instant::now();
    loop {
        // The registry view takes the renewed capabilities within its refresh.
        let (status, body) = execute(&client, &base, &admin, "shout", "hi").await;
        if status == 200 {
            assert_eq!(body["status"], "completed", "{body}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "shout never offered: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut codes = Vec::new();
    for _ in 0..3 {
        codes.push(execute(&client, &base, &limited, "echo", "hi").await.0);
    }
    assert!(codes.contains(&429), "the reloaded limit holds: {codes:?}");

    // A configuration that does not load: refused with the reason, recorded, nothing changed.
    std::fs::write(data.join("pantheon.toml"), "[screening]\ndescription-bytes-max = \"many\"\n").unwrap();
    let producer = token("someone", "producer");
    let forbidden = client.post(format!("{base}/admin/reload")).bearer_auth(&producer).send().await.unwrap();
    assert_eq!(forbidden.status(), 403);
    let refused = client.post(format!("{base}/admin/reload")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(refused.status(), 422);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "reload_refused", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("pantheon.toml"), "{body}");
    let events = policy(data);
    let refusal =
        events.iter().find(|e| e["type"] == "policy_reload_refused").expect("the refusal is recorded");
    assert_eq!(refusal["data"]["by"], "a-new-user");
    let (status, _) = execute(&client, &base, &admin, "echo", &long).await;
    assert_eq!(status, 422, "the policy in force stays");
    assert_eq!(execute(&client, &base, &admin, "echo", "short").await.0, 200);

    // The endpoint applies a good one, with nothing left to change.
    std::fs::write(data.join("pantheon.toml"), RELOADED).unwrap();
    let again = client.post(format!("{base}/admin/reload")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(again.status(), 200);
    let body: serde_json::Value = again.json().await.unwrap();
    assert_eq!(body["changes"], json!([]), "{body}");
    assert_eq!(body["config_hash"].as_str().map(str::len), Some(64), "{body}");
}
