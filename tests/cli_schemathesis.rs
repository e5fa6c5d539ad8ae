//! The OpenAPI document holds for the real binary: schemathesis (PyPI) fuzzes `pantheon up`
//! on the embedded default from its own `/openapi.json` with every check (status codes,
//! content types, response schemas, negative data, authentication), through the whole
//! pipeline — not a test gateway. Skips, loudly, only when python3/pip are missing.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Guard, free_port, pantheon};

const SECRET: &str = "a-secret-of-the-fuzz-run-0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pantheon_up_matches_its_openapi_document_under_a_fuzz_run() {
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth.json");
    // The fuzzer is one client sending fast: the limits are tested elsewhere.
    std::fs::write(
        &auth,
        format!(r#"{{"hs256_secrets": ["{SECRET}"], "rate_limits": {{"per_principal": "unlimited", "per_ip": "unlimited"}}}}"#),
    )
    .unwrap();
    let port = free_port();
    let _up = Guard(
        pantheon(dir.path())
            .args(["up", "--http", &format!("127.0.0.1:{port}"), "--auth-config"])
            .arg(&auth)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    gateway::webhooks::install_crypto_provider();
    let client = reqwest::Client::new();
    let started = Instant::now();
    while !client.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(started.elapsed() < Duration::from_secs(60), "up never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let admin = gateway::auth::issue_hs256_token(SECRET.as_bytes(), "fuzzer", &["admin"], 3_600).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("gateway/tests/schemathesis.sh");
    let output = tokio::process::Command::new("bash")
        .arg(script)
        .arg(&base)
        .arg(&admin)
        // Agents registered, suspended or retired by the fuzzer would leave tasks waiting for
        // agents that cannot answer (and echo suspended) until their deadlines: those
        // endpoints are fuzzed against the test gateway (gateway/tests/schemathesis.rs).
        .args(["--exclude-operation-id", "registerAgent"])
        .args(["--exclude-operation-id", "suspendAgent"])
        .args(["--exclude-operation-id", "retireAgent"])
        .args(["--exclude-operation-id", "reinstateAgent"])
        // A worker's long poll waits up to a minute for work that never comes.
        .args(["--exclude-operation-id", "pollWork"])
        .output()
        .await
        .expect("run schemathesis.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.code() == Some(3) {
        eprintln!("\n!!!!!!!! SKIPPED: schemathesis could not be installed ({}) !!!!!!!!\n", stdout.trim());
        return;
    }
    assert!(output.status.success(), "schemathesis found problems:\n{stdout}\n{stderr}");
}
