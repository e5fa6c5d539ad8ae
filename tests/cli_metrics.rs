//! `GET /metrics` of `pantheon up` shows the pipeline, not only the gateway: a test scrapes
//! it before and after a load of tasks and checks that the phases', the log's and the
//! agents' series moved.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Guard, pantheon};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("a port").local_addr().expect("an address").port()
}

/// The value of the sample `series` (name and labels, as printed), 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipelines_series_move_under_load() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let up = pantheon(dir.path())
        .args(["up", "--http", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("pantheon up starts");
    let _up = Guard(up);
    gateway::webhooks::install_crypto_provider();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while !client.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(started.elapsed() < Duration::from_secs(60), "up never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let token =
        pantheon(dir.path()).args(["token", "--role", "admin", "--sub", "metrics-test"]).output().unwrap();
    let token = String::from_utf8(token.stdout).unwrap().trim().to_string();
    let scrape = || async {
        let response =
            client.get(format!("{base}/metrics")).bearer_auth(&token).send().await.expect("metrics");
        assert_eq!(response.status(), 200);
        response.text().await.expect("text")
    };
    let before = scrape().await;
    let tasks = 20;
    for i in 0..tasks {
        let answer = client
            .post(format!("{base}/tasks/execute"))
            .bearer_auth(&token)
            .json(
                &serde_json::json!({"capability": "echo", "description": format!("task {i}"), "input": "hi"}),
            )
            .send()
            .await
            .expect("execute");
        assert_eq!(answer.status(), 200);
    }
    let after = scrape().await;
    let moved = |series: &str| sample(&after, series) - sample(&before, series);
    for phase in
        ["screening", "context", "matching", "sealing", "execution", "verification", "egress", "completion"]
    {
        let series = format!("pantheon_phase_inputs_total{{phase=\"{phase}\",outcome=\"done\"}}");
        assert!(moved(&series) >= f64::from(tasks), "{series} moved {}:\n{after}", moved(&series));
        assert!(
            moved(&format!("pantheon_phase_handle_seconds_count{{phase=\"{phase}\"}}")) >= f64::from(tasks)
        );
    }
    assert!(moved("pantheon_log_appends_total{result=\"written\"}") >= f64::from(tasks) * 7.0);
    assert!(moved("pantheon_log_append_seconds_count") > 0.0);
    assert!(moved("pantheon_agent_attempts_total{agent=\"echo\",outcome=\"result\"}") >= f64::from(tasks));
    assert!(moved("pantheon_agent_attempt_seconds_count") >= f64::from(tasks));
    let lookups = moved("pantheon_task_cache_lookups_total{result=\"hit\"}")
        + moved("pantheon_task_cache_lookups_total{result=\"miss\"}");
    assert!(lookups > 0.0, "{after}");
    assert!(moved("pantheon_gateway_tasks_submitted_total") >= f64::from(tasks));
    // Nothing in flight once the load is over.
    assert_eq!(sample(&after, "pantheon_phase_in_flight{phase=\"execution\"}"), 0.0);
}
