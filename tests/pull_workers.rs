//! Pull workers against `pantheon up`: an agent with no reachable address registers with
//! transport `pull`, long-polls `POST /agents/{id}/work` for the attempts offered to it, posts
//! its signed result (verified as any other), reports progress, heartbeats; a lease that
//! lapses moves the attempt on and a late result is refused; only the agent's own token may
//! work as it.

mod common;

use std::time::{Duration, Instant};

use common::{pantheon, token, up_with_gateway};
use events::KeyPair;
use serde_json::{Value, json};

struct Worker {
    base: String,
    client: reqwest::Client,
    token: String,
    agent: pantheon_agent::Agent,
}

impl Worker {
    /// One poll: the leased work, or `None` (204).
    async fn poll(&self, wait_ms: u64, lease_ms: u64) -> Option<Value> {
        let answer = self
            .client
            .post(format!("{}/agents/puller/work?wait_ms={wait_ms}&lease_ms={lease_ms}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        match answer.status().as_u16() {
            204 => None,
            200 => Some(answer.json().await.unwrap()),
            other => panic!("poll answered {other}: {}", answer.text().await.unwrap_or_default()),
        }
    }

    /// Runs the work's envelope through the SDK agent and posts the signed result.
    async fn answer(&self, work: &Value) -> reqwest::Response {
        let signed =
            self.agent.answer(&json!({"envelope": work["envelope"]})).await.expect("the SDK answers");
        let task = work["task_id"].as_str().unwrap();
        self.client
            .post(format!("{}/agents/puller/work/{task}/result", self.base))
            .bearer_auth(&self.token)
            .json(&signed)
            .send()
            .await
            .unwrap()
    }
}

async fn events_of(dir: &std::path::Path, task: &str) -> Vec<Value> {
    let out = pantheon(dir).args(["events", "read", &format!("task-{task}")]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_worker_takes_work_holds_a_lease_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    let (_up, base, client) = up_with_gateway(dir.path()).await;
    let (operator, producer) = (token(dir.path(), "operator"), token(dir.path(), "producer"));
    let federation = KeyPair::load(&dir.path().join("federation.key")).unwrap().public_key();
    let seed = [3u8; 32];
    let agent = pantheon_agent::Agent::new("puller", KeyPair::from_seed(seed), federation)
        .capability("upper", |task| Ok(json!(task.input.as_str().unwrap_or_default().to_uppercase())));
    let registered = client
        .post(format!("{base}/agents"))
        .bearer_auth(&operator)
        .json(&json!({
            "agent_id": "puller",
            "capabilities": ["upper"],
            "public_key": KeyPair::from_seed(seed).public_key().to_string(),
            "transport": {"kind": "pull"},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let agent_token = String::from_utf8(
        pantheon(dir.path()).args(["token", "--role", "agent", "--sub", "puller"]).output().unwrap().stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    let worker = Worker { base: base.clone(), client: client.clone(), token: agent_token.clone(), agent };

    // Only the agent's own token works as it.
    for (who, token) in [("a producer", &producer), ("an operator", &operator)] {
        let refused = client
            .post(format!("{base}/agents/puller/work?wait_ms=0"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403, "{who}");
    }
    let other = String::from_utf8(
        pantheon(dir.path())
            .args(["token", "--role", "agent", "--sub", "someone-else"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let refused = client
        .post(format!("{base}/agents/puller/work?wait_ms=0"))
        .bearer_auth(other.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403, "another agent's token");
    let bad = client
        .post(format!("{base}/agents/puller/work?lease_ms=5"))
        .bearer_auth(&agent_token)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400, "a lease under a second");
    // Nothing offered: 204 at once.
    assert!(worker.poll(0, 30_000).await.is_none());

    // 1. A task: the worker's poll takes it, its result completes it.
    let execute = {
        let (client, base, producer) = (client.clone(), base.clone(), producer.clone());
        tokio::spawn(async move {
            client
                .post(format!("{base}/tasks/execute"))
                .bearer_auth(&producer)
                .json(&json!({"capability": "upper", "description": "shout", "input": "pulled"}))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    let work = worker.poll(10_000, 30_000).await.expect("work offered");
    assert_eq!((work["attempt"].as_u64(), work["lease_ms"].as_u64()), (Some(1), Some(30_000)));
    let progress = client
        .post(format!("{base}/agents/puller/work/{}/progress", work["task_id"].as_str().unwrap()))
        .bearer_auth(&agent_token)
        .json(&json!({"percent": 50, "message": "halfway"}))
        .send()
        .await
        .unwrap();
    assert_eq!(progress.status(), 202);
    assert_eq!(worker.answer(&work).await.status(), 202);
    let done = execute.await.unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!((done["output"].as_str(), done["agent_id"].as_str()), (Some("PULLED"), Some("puller")));
    let history = events_of(dir.path(), work["task_id"].as_str().unwrap()).await;
    assert!(history.iter().any(|e| e["type"] == "progress_reported" && e["data"]["message"] == "halfway"));
    // Answered once: a second result is refused.
    let again = worker.answer(&work).await;
    assert_eq!(again.status(), 409);

    // 2. A lease that lapses: the attempt fails, the task's next attempt is offered again, and
    //    the first attempt's late result is refused.
    let submitted: Value = client
        .post(format!("{base}/tasks/submit"))
        .bearer_auth(&producer)
        .json(&json!({"capability": "upper", "description": "shout", "input": "again", "max_attempts": 3}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let task = submitted["task_id"].as_str().unwrap().to_string();
    let first = worker.poll(10_000, 1_000).await.expect("the first attempt");
    assert_eq!(first["task_id"], task.as_str());
    // No heartbeat, no result: the lease lapses and the attempt moves on.
    let second = worker.poll(20_000, 30_000).await.expect("the second attempt");
    assert_eq!((second["task_id"].as_str(), second["attempt"].as_u64()), (Some(task.as_str()), Some(2)));
    assert_eq!(worker.answer(&first).await.status(), 409, "the lapsed attempt's result is refused");
    let heartbeat = client
        .post(format!("{base}/agents/puller/heartbeat"))
        .bearer_auth(&agent_token)
        .send()
        .await
        .unwrap();
    assert_eq!(heartbeat.status(), 204);
    assert_eq!(worker.answer(&second).await.status(), 202);
    let started = Instant::now();
    let history = loop {
        let history = events_of(dir.path(), &task).await;
        if history.iter().any(|e| e["type"] == "task_completed") {
            break history;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{history:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let failed: Vec<&Value> = history.iter().filter(|e| e["type"] == "execution_failed").collect();
    assert_eq!(failed.len(), 1, "{history:#?}");
    assert!(failed[0]["data"]["reason"].as_str().unwrap().contains("lease"), "{:?}", failed[0]);
    assert_eq!(history.iter().filter(|e| e["type"] == "result_received").count(), 1, "exactly one result");

    // The worker's polls and heartbeats are its liveness.
    let view: Value = client
        .get(format!("{base}/agents/puller"))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(view["health"]["last_heartbeat_ms"].as_i64().is_some_and(|t| t > 0), "{view}");
    assert_eq!(view["transport"], "pull");
}

/// The Rust SDK's pull mode: a worker with no address answers tasks through its polls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_sdk_works_as_a_pull_worker() {
    let dir = tempfile::tempdir().unwrap();
    let (_up, base, client) = up_with_gateway(dir.path()).await;
    let (operator, producer) = (token(dir.path(), "operator"), token(dir.path(), "producer"));
    let federation = KeyPair::load(&dir.path().join("federation.key")).unwrap().public_key();
    let seed = [4u8; 32];
    let registered = client
        .post(format!("{base}/agents"))
        .bearer_auth(&operator)
        .json(&json!({
            "agent_id": "sdk-puller",
            "capabilities": ["reverse"],
            "public_key": KeyPair::from_seed(seed).public_key().to_string(),
            "transport": {"kind": "pull"},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let agent_token = String::from_utf8(
        pantheon(dir.path())
            .args(["token", "--role", "agent", "--sub", "sdk-puller"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    let agent = pantheon_agent::Agent::new("sdk-puller", KeyPair::from_seed(seed), federation)
        .capability("reverse", |task| {
            Ok(json!(task.input.as_str().unwrap_or_default().chars().rev().collect::<String>()))
        });
    let stop = tokio_util::sync::CancellationToken::new();
    let worker = {
        let (base, stop) = (base.clone(), stop.clone());
        tokio::spawn(async move { agent.pull(&base, &agent_token, stop.cancelled_owned()).await })
    };
    for word in ["drawer", "stressed"] {
        let done: Value = client
            .post(format!("{base}/tasks/execute"))
            .bearer_auth(&producer)
            .json(&json!({"capability": "reverse", "description": "reverse it", "input": word}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(done["status"], "completed", "{done}");
        assert_eq!(done["output"], word.chars().rev().collect::<String>());
        assert_eq!(done["agent_id"], "sdk-puller");
    }
    stop.cancel();
    worker.await.unwrap().expect("the worker stops cleanly");
}

/// On NATS a worker may poll any process: two processes share the phases' work, the worker
/// polls only the second, and the attempts the first one's execution phase offered reach it
/// too (asked for over NATS), their results passed back to the process that holds the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_polling_one_process_gets_the_offers_of_all_on_nats() {
    let nats = testkit::nats_server::NatsServer::start().expect("nats-server");
    let root = tempfile::tempdir().unwrap();
    let (federation, gateway_key) = (KeyPair::generate(), KeyPair::generate());
    const SECRET: &str = "a-secret-of-the-pull-test-0123456789abcdef";
    let mut ports = Vec::new();
    let mut ups = Vec::new();
    for name in ["a", "b"] {
        let dir = root.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        federation.save(&dir.join("federation.key")).unwrap();
        gateway_key.save(&dir.join("gateway.key")).unwrap();
        std::fs::write(dir.join("auth.json"), format!(r#"{{"hs256_secrets": ["{SECRET}"]}}"#)).unwrap();
        let port = common::free_port();
        ups.push(common::Guard(
            pantheon(&dir)
                .args(["up", "--nats", &nats.url(), "--http", &format!("127.0.0.1:{port}")])
                .arg("--auth-config")
                .arg(dir.join("auth.json"))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        ));
        ports.push(port);
    }
    gateway::webhooks::install_crypto_provider();
    let client = reqwest::Client::new();
    for port in &ports {
        let started = Instant::now();
        while !client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(started.elapsed() < Duration::from_secs(60), "up never became ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let issue = |sub: &str, role: &str| {
        gateway::auth::issue_hs256_token(SECRET.as_bytes(), sub, &[role], 3_600).unwrap()
    };
    let (a, b) = (format!("http://127.0.0.1:{}", ports[0]), format!("http://127.0.0.1:{}", ports[1]));
    let seed = [5u8; 32];
    let registered = client
        .post(format!("{a}/agents"))
        .bearer_auth(issue("ops", "operator"))
        .json(&json!({
            "agent_id": "roamer",
            "capabilities": ["upper"],
            "public_key": KeyPair::from_seed(seed).public_key().to_string(),
            "transport": {"kind": "pull"},
            "max_concurrency": 16,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    // The other process takes the registration up within its registry refresh.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let agent = pantheon_agent::Agent::new("roamer", KeyPair::from_seed(seed), federation.public_key())
        .capability("upper", |task| Ok(json!(task.input.as_str().unwrap_or_default().to_uppercase())));
    let stop = tokio_util::sync::CancellationToken::new();
    let worker = {
        let (b, stop, token) = (b.clone(), stop.clone(), issue("roamer", "agent"));
        tokio::spawn(async move { agent.pull(&b, &token, stop.cancelled_owned()).await })
    };
    let producer = issue("a-new-user", "producer");
    for n in 0..12 {
        let done: Value = client
            .post(format!("{a}/tasks/execute"))
            .bearer_auth(&producer)
            .json(&json!({"capability": "upper", "description": "shout", "input": format!("task {n}")}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(done["status"], "completed", "{done}");
        assert_eq!(done["output"], format!("TASK {n}"));
    }
    // Attempts ran in both processes' execution phases, though the worker polled only b.
    let admin = issue("root", "admin");
    for base in [&a, &b] {
        let metrics = client
            .get(format!("{base}/metrics"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let results: f64 = metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix("pantheon_agent_attempts_total{agent=\"roamer\",outcome=\"result\"} ")
            })
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0);
        assert!(results >= 1.0, "{base} ran none of the attempts:\n{metrics}");
    }
    stop.cancel();
    worker.await.unwrap().expect("the worker stops cleanly");
}
