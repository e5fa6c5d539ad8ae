//! What the command-line tests share: the `pantheon` binary run on a data dir, with nothing
//! of the caller's environment choosing another backend, and a child process stopped at the
//! end of a test whatever happens.

#![allow(dead_code, unreachable_pub)]

use std::process::{Child, Command};

/// `pantheon --data-dir <data_dir>`, ignoring any database, NATS server or auth config named
/// in the environment.
pub fn pantheon(data_dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pantheon"));
    command
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("PANTHEON_DATABASE_URL")
        .env_remove("PANTHEON_NATS_URL")
        .env_remove("PANTHEON_AUTH_CONFIG")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
    command
}

/// Kills the child at the end of the test whatever happens.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port free on loopback now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("a port").local_addr().expect("an address").port()
}

/// `pantheon up` on the embedded default in `data_dir`, its gateway on a free port, once it
/// answers `/readyz`; with the gateway's base URL and an HTTP client.
pub async fn up_with_gateway(data_dir: &std::path::Path) -> (Guard, String, reqwest::Client) {
    up_with_gateway_args(data_dir, &[]).await
}

/// As [`up_with_gateway`], with `args` added to `pantheon up` (`--nats URL`, …).
pub async fn up_with_gateway_args(
    data_dir: &std::path::Path,
    args: &[&str],
) -> (Guard, String, reqwest::Client) {
    let port = free_port();
    let up = pantheon(data_dir)
        .args(["up", "--http", &format!("127.0.0.1:{port}")])
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("pantheon up starts");
    let up = Guard(up);
    gateway::webhooks::install_crypto_provider();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    ready(&client, &base).await;
    (up, base, client)
}

/// Waits until the gateway at `base` answers `/readyz` (60 s at most).
pub async fn ready(client: &reqwest::Client, base: &str) {
    let started = std::time::Instant::now();
    while !client.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "up never became ready");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A gateway token for `role` whose subject is `sub`, from `pantheon token` on `data_dir`.
pub fn token_for(data_dir: &std::path::Path, role: &str, sub: &str) -> String {
    let out = pantheon(data_dir).args(["token", "--role", role, "--sub", sub]).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A gateway token for `role`, named `a-<role>`, from `pantheon token` on `data_dir`.
pub fn token(data_dir: &std::path::Path, role: &str) -> String {
    let out =
        pantheon(data_dir).args(["token", "--role", role, "--sub", &format!("a-{role}")]).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}
