//! The Python SDK (`sdk/python`, installed with `pip install ./sdk/python`) against the real
//! `pantheon` binary, on the embedded default and on NATS: an SDK agent registered with a
//! running federation answers tasks pushed to it over HTTP, pulled by it (a worker with no
//! address, reporting progress), and over NATS; tasks are submitted, followed as a stream and
//! awaited from asyncio with the SDK's clients; the SDK refuses a forged envelope, and the
//! federation refuses a result signed with a key other than the registered one.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Guard, free_port, pantheon, token, up_with_gateway};

/// The tests' venv with the SDK installed from the tree, or `None` (skipped) without python.
fn venv_with_sdk() -> Option<std::path::PathBuf> {
    let venv = testkit::nats_server::test_venv()?;
    let sdk = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sdk/python");
    let install = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", "--no-deps"])
        .arg(&sdk)
        .output()
        .expect("pip runs");
    assert!(
        install.status.success(),
        "pip install ./sdk/python: {}",
        String::from_utf8_lossy(&install.stderr)
    );
    Some(venv)
}

/// Runs one of the SDK's test scripts; the JSON lines it printed.
async fn run_script(venv: &std::path::Path, script: &str, args: &[&str]) -> Vec<serde_json::Value> {
    let sdk = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sdk/python");
    let out = tokio::process::Command::new(venv.join("bin/python"))
        .arg(sdk.join("tests").join(script))
        .args(args)
        .output()
        .await
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script}: {stdout}\n{stderr}");
    stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

fn check(checks: &[serde_json::Value], name: &str) -> serde_json::Value {
    checks
        .iter()
        .find(|c| c["check"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no check {name}: {checks:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_serves_an_agent_and_refuses_forgeries() {
    let Some(venv) = venv_with_sdk() else {
        eprintln!("\n!!!!!!!! SKIPPED: python3/pip could not make the tests' venv !!!!!!!!\n");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let (_up, base, _client) = up_with_gateway(dir.path()).await;
    let token = |role: &str| token(dir.path(), role);
    let federation = pantheon(dir.path()).args(["keys", "federation"]).output().unwrap();
    let federation = String::from_utf8(federation.stdout).unwrap().trim().to_string();
    let puller = pantheon(dir.path()).args(["token", "--role", "agent", "--sub", "puller"]).output().unwrap();
    let puller = String::from_utf8(puller.stdout).unwrap().trim().to_string();
    let workdir = dir.path().display().to_string();
    let checks = run_script(
        &venv,
        "federation.py",
        &[&base, &token("operator"), &token("producer"), &federation, &workdir, &puller],
    )
    .await;
    let check = |name: &str| check(&checks, name);
    let honest = check("honest");
    assert_eq!(honest["status"], "completed", "{honest}");
    assert_eq!(honest["output"]["shouted"], "HELLO!");
    assert_eq!(check("followed")["status"], "completed");
    let forged = check("forged envelope");
    assert_eq!((forged["status"].as_u64(), forged["refused"].as_bool()), (Some(403), Some(true)), "{forged}");
    assert_eq!(forged["foreign_status"], 403);
    let forged = check("forged result");
    assert_eq!(forged["status"], "failed", "{forged}");
    assert!(forged["reason"].as_str().unwrap_or_default().contains("verify"), "{forged}");
    let pulled = check("pulled");
    assert_eq!(
        (pulled["status"].as_str(), pulled["output"].as_str()),
        (Some("completed"), Some("PULLED")),
        "{pulled}"
    );
    assert_eq!(pulled["agent"], "puller");
    let streamed: Vec<&str> =
        pulled["streamed"].as_array().unwrap().iter().filter_map(|t| t.as_str()).collect();
    assert_eq!(streamed.first(), Some(&"task_submitted"), "{streamed:?}");
    assert_eq!(streamed.last(), Some(&"task_completed"), "{streamed:?}");
    assert!(streamed.contains(&"progress_reported"), "the pull worker's progress: {streamed:?}");
    let from_asyncio = check("async");
    assert_eq!(from_asyncio["status"], "completed", "{from_asyncio}");
    assert_eq!(
        from_asyncio["streamed"].as_array().and_then(|s| s.last()).and_then(|t| t.as_str()),
        Some("task_completed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_serves_an_agent_over_nats() {
    let Some(venv) = venv_with_sdk() else {
        eprintln!("\n!!!!!!!! SKIPPED: python3/pip could not make the tests' venv !!!!!!!!\n");
        return;
    };
    let nats = testkit::nats_server::NatsServer::start().expect("nats-server");
    let dir = tempfile::tempdir().expect("temp dir");
    const SECRET: &str = "a-secret-of-the-sdk-test-0123456789abcdef";
    let auth = dir.path().join("auth.json");
    std::fs::write(&auth, format!(r#"{{"hs256_secrets": ["{SECRET}"]}}"#)).unwrap();
    let port = free_port();
    let _up = Guard(
        pantheon(dir.path())
            .args(["up", "--nats", &nats.url(), "--http", &format!("127.0.0.1:{port}"), "--auth-config"])
            .arg(&auth)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pantheon up starts"),
    );
    gateway::webhooks::install_crypto_provider();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while !client.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(started.elapsed() < Duration::from_secs(60), "up never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let issue = |role: &str| {
        gateway::auth::issue_hs256_token(SECRET.as_bytes(), "a-new-user", &[role], 3_600).unwrap()
    };
    let federation = pantheon(dir.path()).args(["keys", "federation"]).output().unwrap();
    let federation = String::from_utf8(federation.stdout).unwrap().trim().to_string();
    let workdir = dir.path().display().to_string();
    let checks = run_script(
        &venv,
        "nats_agent.py",
        &[&base, &issue("operator"), &issue("producer"), &federation, &workdir, &nats.url()],
    )
    .await;
    let done = check(&checks, "nats");
    assert_eq!(
        (done["status"].as_str(), done["output"].as_str()),
        (Some("completed"), Some("HI!")),
        "{done}"
    );
    assert_eq!(done["agent"], "nats-shouter");
    let streamed = check(&checks, "nats progress");
    assert!(
        streamed["streamed"].as_array().unwrap().iter().any(|t| t == "progress_reported"),
        "the agent's progress over NATS: {streamed}"
    );
    let pulled = check(&checks, "nats pull");
    assert_eq!(
        (pulled["status"].as_str(), pulled["output"].as_str(), pulled["agent"].as_str()),
        (Some("completed"), Some("HEY?"), Some("nats-puller")),
        "{pulled}"
    );
    assert!(
        pulled["streamed"].as_array().unwrap().iter().any(|t| t == "progress_reported"),
        "the pulled attempt's progress: {pulled}"
    );
    let failed = check(&checks, "nats pull failure");
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(failed["view"].to_string().contains("asked to fail"), "{failed}");
}
