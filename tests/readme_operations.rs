//! The README's "Operations" block, run as written against a running `pantheon up`: readiness,
//! the projections' lag among the metrics, a reload recorded on the policy stream, the dead
//! letters.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Guard, free_port, pantheon};

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
fn the_readmes_operations_block_runs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join(".pantheon");
    let http = format!("127.0.0.1:{}", free_port());
    let _up = Guard(
        pantheon(&data)
            .args(["up", "--http", &http])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pantheon up starts"),
    );
    let started = Instant::now();
    while std::net::TcpStream::connect(&http).is_err() || !data.join("gateway-hs256.secret").exists() {
        assert!(started.elapsed() < Duration::from_secs(60), "up never listened");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The metrics' background reading of the projections runs every 2 s.
    std::thread::sleep(Duration::from_millis(2_500));
    let script = format!("set -eo pipefail\n{}", readme_block("sh", "# operations:"));
    let binary = std::path::PathBuf::from(env!("CARGO_BIN_EXE_pantheon"));
    let path = format!(
        "{}:{}",
        binary.parent().expect("the binary's dir").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("PATH", path)
        .env("PANTHEON_HTTP", &http)
        .env_remove("PANTHEON_DATABASE_URL")
        .env_remove("PANTHEON_NATS_URL")
        .env_remove("PANTHEON_DATA_DIR")
        .env_remove("PANTHEON_AUTH_CONFIG")
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the README's block failed:\n{script}\n{stdout}\n{stderr}");
    assert!(stdout.contains("pantheon_projection_lag_events{projection=\"tasks\"}"), "{stdout}");
    assert!(stdout.contains("\"config_hash\""), "the reload's answer: {stdout}");
    assert!(stdout.contains("DEAD-LETTERED"), "the dead letters' table: {stdout}");
    assert!(
        stdout
            .trim_end()
            .lines()
            .last()
            .is_some_and(|l| l.contains("\"policy_reloaded\"") && l.contains("\"by\":\"ops\"")),
        "{stdout}"
    );
}
