//! `pantheon up --nats` started before its nats-server: it waits (up to `--nats-wait`) and
//! comes up once the server does; with nothing to wait for it says so and stops.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Guard, free_port, pantheon};
use testkit::nats_server::{NatsServer, NatsServerOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_waits_for_a_nats_server_that_starts_later() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (nats_port, http_port) = (free_port(), free_port());
    let auth = dir.path().join("auth.json");
    std::fs::write(&auth, r#"{"hs256_secrets": ["a-secret-of-the-test-0123456789abcdef"]}"#).expect("auth");
    let up = pantheon(dir.path())
        .args(["up", "--nats", &format!("nats://127.0.0.1:{nats_port}")])
        .arg("--auth-config")
        .arg(&auth)
        .args(["--http", &format!("127.0.0.1:{http_port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("pantheon up starts");
    let mut up = Guard(up);
    // Longer than one JetStream request's timeout (5 s): the first set-up fails, and up goes on.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(up.0.try_wait().expect("a status").is_none(), "up gave up before the server started");
    let _nats = NatsServer::start_with(NatsServerOptions { port: Some(nats_port), ..Default::default() })
        .expect("nats-server");
    gateway::webhooks::install_crypto_provider();
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let ready = client.get(format!("http://127.0.0.1:{http_port}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(up.0.try_wait().expect("a status").is_none(), "up stopped after the server started");
        assert!(started.elapsed() < Duration::from_secs(60), "up never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn up_gives_up_after_its_wait_and_says_why() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let started = Instant::now();
    let out = pantheon(dir.path())
        .args(["up", "--nats", &format!("nats://127.0.0.1:{port}"), "--nats-wait", "2s"])
        .args(["--http", "127.0.0.1:0"])
        .output()
        .expect("pantheon up runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("cannot reach NATS at nats://127.0.0.1:{port}")), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
}
