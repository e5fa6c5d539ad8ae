//! The command line on a task whose agent answers with secrets and personal data: `pantheon
//! submit --wait` prints the result redacted, `pantheon replay` verifies every signature of the
//! task (the result recorded redacted included), `pantheon audit verify` finds the ledger
//! intact, and no secret is in any file of the data dir. On the embedded default, in a temp
//! data dir. (The whole pipeline, every agent kind, the gateway and every backend:
//! `gateway/tests/no_secrets.rs`.)

mod common;

use common::*;

use std::process::Stdio;
use std::time::{Duration, Instant};

const AWS_KEY_ID: &str = "AKIA4HZQ7WMR2XVBN6TD";
const AWS_SECRET: &str = "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";
const EMAIL: &str = "marguerite.okonkwo@finch-ledger.io";
const GITHUB_TOKEN: &str = "ghp_R8kT2vLq9XwZ4mNc7BpY3hJd6FsG1aEuQ0tK";

/// A piece of a secret this long is a leak too.
const WINDOW_BYTES: usize = 12;

/// Where a secret, or a piece of one, is in `bytes`.
fn leaks(place: &str, bytes: &[u8]) -> Vec<String> {
    let windows: std::collections::HashSet<&[u8]> = [AWS_KEY_ID, AWS_SECRET, EMAIL, GITHUB_TOKEN]
        .iter()
        .flat_map(|secret| secret.as_bytes().windows(WINDOW_BYTES))
        .collect();
    bytes
        .windows(WINDOW_BYTES)
        .enumerate()
        .filter(|(_, window)| windows.contains(window))
        .take(3)
        .map(|(at, _)| {
            let (start, end) = (at.saturating_sub(30), (at + 42).min(bytes.len()));
            format!("{place}: …{}…", String::from_utf8_lossy(&bytes[start..end]))
        })
        .collect()
}

#[test]
fn submit_replay_and_audit_verify_with_a_result_recorded_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let output = serde_json::json!({
        "credentials": format!("svc-deploy,{AWS_KEY_ID},{AWS_SECRET}"),
        "notes": [format!("the secret access key is {AWS_SECRET}"), format!("CI uses {GITHUB_TOKEN}")],
        "owners": { EMAIL: "admin" },
    });
    let script = format!("cat >/dev/null; printf '%s' '{output}'");
    let config = format!(
        "[[agents]]\nid = \"vault\"\nbuiltin = \"command\"\ncapabilities = [\"vault\"]\ncommand = {{ program = \"sh\", args = [\"-c\", {script:?}] }}\n"
    );
    std::fs::write(data.join("pantheon.toml"), config).unwrap();
    let _up = Guard(
        pantheon(data)
            .args(["up", "--http", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pantheon up starts"),
    );
    let started = Instant::now();
    while !data.join("federation.key").exists() {
        assert!(started.elapsed() < Duration::from_secs(20), "pantheon up did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));

    let description = format!("review {EMAIL}'s key {AWS_KEY_ID},{AWS_SECRET}");
    let out = pantheon(data).args(["submit", "vault", &description, "--wait", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut found = leaks("pantheon submit", &out.stdout);
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["status"], "completed", "{answer}");
    assert!(answer["output"].to_string().contains("[REDACTED"), "{answer}");
    let task = answer["task_id"].as_str().unwrap().to_string();

    // Every signature the replay checks verifies, the redacted result's included.
    let out = pantheon(data).args(["replay", &task, "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    found.extend(leaks("pantheon replay", &out.stdout));
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let checks: Vec<&str> = lines.iter().filter_map(|l| l["verification"].as_str()).collect();
    assert!(checks.len() >= 3, "the submission, the seal and the result are checked: {checks:?}");
    let out = pantheon(data).args(["audit", "verify"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ledger intact"));

    for entry in std::fs::read_dir(data).unwrap().flatten() {
        let path = entry.path();
        if path.is_file() && path.file_name().is_some_and(|n| n != "pantheon.toml") {
            found.extend(leaks(&path.display().to_string(), &std::fs::read(&path).unwrap()));
        }
    }
    assert!(found.is_empty(), "{} leak(s):\n{}", found.len(), found.join("\n"));
    assert!(
        checks.iter().all(|c| c.starts_with("ok:")),
        "pantheon replay verifies a result recorded redacted with SignedResult::verify_redacted \
         (events::task::ResultReceived::verify does both): {checks:?}"
    );
}
