//! The README's "Workflows" section, run as written: its three agents in `.pantheon/pantheon.toml`,
//! its `research.yaml`, and its commands against the embedded default.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

/// The fenced block of `language` in the README that contains `marker`.
fn readme_block(language: &str, marker: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    readme
        .split(&format!("```{language}\n"))
        .skip(1)
        .filter_map(|rest| rest.split("\n```").next())
        .find(|block| block.contains(marker))
        .unwrap_or_else(|| panic!("no {language} block with {marker:?} in the README"))
        .to_string()
}

#[test]
fn the_readmes_workflow_runs_as_written() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join(".pantheon")).unwrap();
    std::fs::write(dir.path().join(".pantheon/pantheon.toml"), readme_block("toml", "# workflow agents"))
        .unwrap();
    std::fs::write(dir.path().join("research.yaml"), readme_block("yaml", "# research.yaml")).unwrap();
    let script = format!("set -eo pipefail\n{}", readme_block("sh", "# workflows:"));
    // `pantheon up` in that directory, as the README says (its gateway on a port of its own:
    // other tests run `pantheon up` at the same time).
    let http = format!("127.0.0.1:{}", common::free_port());
    let _up = common::Guard(
        common::pantheon(&dir.path().join(".pantheon"))
            .args(["up", "--http", &http])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("up.log")).unwrap())
            .spawn()
            .expect("pantheon up starts"),
    );
    let started = Instant::now();
    while std::net::TcpStream::connect(&http).is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "up never listened");
        std::thread::sleep(Duration::from_millis(100));
    }
    let binary = std::path::PathBuf::from(env!("CARGO_BIN_EXE_pantheon"));
    let path = format!(
        "{}:{}",
        binary.parent().expect("the binary's dir").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("PATH", path)
        .env_remove("PANTHEON_DATABASE_URL")
        .env_remove("PANTHEON_NATS_URL")
        .env_remove("PANTHEON_DATA_DIR")
        .env_remove("PANTHEON_AUTH_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("bash runs");
    let started = Instant::now();
    while child.try_wait().expect("bash").is_none() {
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let log = std::fs::read_to_string(dir.path().join("up.log")).unwrap_or_default();
            panic!("the README's workflow did not finish in 2 minutes; up.log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("bash's output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let log = std::fs::read_to_string(dir.path().join("up.log")).unwrap_or_default();
    assert!(out.status.success(), "{stdout}\n{stderr}\n{log}");
    // The step table, the review's verdict, and the run among the completed ones.
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("research") && l.contains("completed") && l.contains("researcher")),
        "{stdout}"
    );
    assert!(stdout.contains(r#"output: {"approved":true,"reviewed":3}"#), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("research") && l.contains("completed") && !l.starts_with("research ")),
        "{stdout}"
    );
}
