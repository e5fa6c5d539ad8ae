//! The Python SDK (`sdk/python`, installed with `pip install ./sdk/python`) against the real
//! `pantheon` binary: an SDK agent registered with a running federation answers tasks, a task
//! is submitted and followed with the SDK's client, the SDK refuses a forged envelope, and the
//! federation refuses a result signed with a key other than the registered one.

mod common;

use std::process::Command;

use common::{pantheon, token, up_with_gateway};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_serves_an_agent_and_refuses_forgeries() {
    let Some(venv) = testkit::nats_server::test_venv() else {
        eprintln!("\n!!!!!!!! SKIPPED: python3/pip could not make the tests' venv !!!!!!!!\n");
        return;
    };
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

    let dir = tempfile::tempdir().expect("temp dir");
    let (_up, base, _client) = up_with_gateway(dir.path()).await;
    let token = |role: &str| token(dir.path(), role);
    let federation = pantheon(dir.path()).args(["keys", "federation"]).output().unwrap();
    let federation = String::from_utf8(federation.stdout).unwrap().trim().to_string();
    let out = tokio::process::Command::new(venv.join("bin/python"))
        .arg(sdk.join("tests/federation.py"))
        .args([&base, &token("operator"), &token("producer"), &federation])
        .arg(dir.path())
        .output()
        .await
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let checks: Vec<serde_json::Value> =
        stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let check = |name: &str| {
        checks
            .iter()
            .find(|c| c["check"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name}: {stdout}{stderr}"))
    };
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
}
