//! The Rust SDK (`pantheon-agent`) against `pantheon up` on NATS, as a new user would use it:
//! one agent in each of its four modes (HTTP push, HTTP pull, NATS push, NATS pull) answers
//! tasks and reports progress that the federation records; its `Client` registers the
//! agents, executes tasks, and streams their events; a NATS pull worker signing with a key
//! other than its registered one has its results refused; a bad poll on NATS is answered
//! with the field it got wrong.

mod common;

use std::time::Duration;

use common::up_with_gateway_args;
use events::KeyPair;
use pantheon_agent::{Agent, Client};
use serde_json::{Value, json};

/// An agent `id` offering `capability`: upper-cases its input after reporting progress,
/// fails when the input is "fail".
fn shouter(id: &str, key: KeyPair, federation: events::PublicKey, capability: &str) -> Agent {
    Agent::new(id, key, federation).capability(capability, |task| {
        task.progress(Some(40), "shouting");
        match task.input.as_str() {
            Some("fail") => Err("asked to fail".to_string()),
            other => Ok(json!(other.unwrap_or_default().to_uppercase())),
        }
    })
}

async fn event_types(client: &Client, task_id: &str) -> Vec<String> {
    let mut stream = client.stream(task_id, 1).await.expect("the stream opens");
    let mut types = Vec::new();
    while let Some(event) =
        tokio::time::timeout(Duration::from_secs(60), stream.next()).await.expect("in time")
    {
        let event = event.expect("an event");
        types.push(event["type"].as_str().unwrap_or_default().to_string());
    }
    types
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_sdk_serves_every_mode_and_its_client_follows_tasks() {
    let nats = testkit::nats_server::NatsServer::start().expect("nats-server");
    let dir = tempfile::tempdir().unwrap();
    // Outside the embedded default the gateway's tokens are signed with a configured key.
    const SECRET: &str = "a-secret-of-the-rust-sdk-test-0123456789abcdef";
    let auth = dir.path().join("auth.json");
    std::fs::write(&auth, format!(r#"{{"hs256_secrets": ["{SECRET}"]}}"#)).unwrap();
    let issue = |sub: &str, role: &str| {
        gateway::auth::issue_hs256_token(SECRET.as_bytes(), sub, &[role], 3_600).unwrap()
    };
    let (_up, base, _) =
        up_with_gateway_args(dir.path(), &["--nats", &nats.url(), "--auth-config", auth.to_str().unwrap()])
            .await;
    let federation = KeyPair::load(&dir.path().join("federation.key")).unwrap().public_key();
    let operator = Client::new(&base, &issue("ops", "operator")).unwrap();
    let producer = Client::new(&base, &issue("a-new-user", "producer")).unwrap();
    let connection = async_nats::connect(nats.url()).await.unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let mut workers = Vec::new();

    // HTTP push: served on a port of its own.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let agent = shouter("sdk-http-push", KeyPair::from_seed([11; 32]), federation, "shout-http-push");
    let transports = [
        ("sdk-http-push", [11u8; 32], json!({"kind": "http", "url": url})),
        ("sdk-http-pull", [12u8; 32], json!({"kind": "pull"})),
        ("sdk-nats-push", [13u8; 32], json!({"kind": "nats", "subject": "agents.sdk-nats-push"})),
        ("sdk-nats-pull", [14u8; 32], json!({"kind": "pull"})),
        // Registered with one key, signs with another.
        ("sdk-nats-forger", [15u8; 32], json!({"kind": "pull"})),
    ];
    for (id, seed, transport) in &transports {
        let registered = operator
            .register(&json!({
                "agent_id": id,
                "capabilities": [id.replace("sdk-", "shout-")],
                "public_key": KeyPair::from_seed(*seed).public_key().to_string(),
                "transport": transport,
            }))
            .await
            .expect("registered");
        assert_eq!(registered["agent_id"], *id, "{registered}");
    }
    workers.push(tokio::spawn({
        let stop = stop.clone();
        async move {
            tokio::select! {
                served = agent.serve(listener) => served.map_err(|e| e.to_string()),
                () = stop.cancelled() => Ok(()),
            }
        }
    }));
    let agent = shouter("sdk-http-pull", KeyPair::from_seed([12; 32]), federation, "shout-http-pull");
    let (pull_base, pull_token) = (base.clone(), issue("sdk-http-pull", "agent"));
    let stopped = stop.clone().cancelled_owned();
    workers.push(tokio::spawn(async move {
        agent.pull(&pull_base, &pull_token, stopped).await.map_err(|e| e.to_string())
    }));
    let agent = shouter("sdk-nats-push", KeyPair::from_seed([13; 32]), federation, "shout-nats-push");
    let (nats_client, stopped) = (connection.clone(), stop.clone().cancelled_owned());
    workers.push(tokio::spawn(async move {
        agent.serve_nats(nats_client, "agents.sdk-nats-push", "sdk", stopped).await.map_err(|e| e.to_string())
    }));
    for (id, seed) in [("sdk-nats-pull", [14u8; 32]), ("sdk-nats-forger", [16u8; 32])] {
        let agent = shouter(id, KeyPair::from_seed(seed), federation, &id.replace("sdk-", "shout-"));
        let (nats_client, stopped) = (connection.clone(), stop.clone().cancelled_owned());
        workers.push(tokio::spawn(async move {
            agent.pull_nats(nats_client, stopped).await.map_err(|e| e.to_string())
        }));
    }

    for mode in ["http-push", "http-pull", "nats-push", "nats-pull"] {
        let capability = format!("shout-{mode}");
        let done = producer.execute(&capability, "shout it", json!("hello")).await.unwrap();
        assert_eq!(done["status"], "completed", "{mode}: {done}");
        assert_eq!(done["output"], "HELLO", "{mode}");
        assert_eq!(done["agent_id"], format!("sdk-{mode}"), "{mode}");

        // Submitted, then followed as it happens: the progress is recorded before the result.
        let task_id = producer
            .submit(&json!({"capability": capability, "description": "shout it", "input": "again"}))
            .await
            .unwrap();
        let types = event_types(&producer, &task_id).await;
        let at = |kind: &str| types.iter().position(|t| t == kind);
        let (progress, result) = (at("progress_reported"), at("result_received"));
        assert!(progress.is_some() && progress < result, "{mode}: {types:?}");
        assert_eq!(types.last().map(String::as_str), Some("task_completed"), "{mode}: {types:?}");
        let view = producer.wait(&task_id, Duration::from_secs(30)).await.unwrap();
        assert_eq!(view["output"], "AGAIN", "{mode}: {view}");

        // A handler's failure fails the attempt with its reason.
        let failed = producer
            .submit(&json!({"capability": capability, "description": "shout it", "input": "fail", "max_attempts": 1}))
            .await
            .unwrap();
        let view = producer.wait(&failed, Duration::from_secs(30)).await.unwrap();
        assert_eq!(view["status"], "failed", "{mode}: {view}");
        assert!(view.to_string().contains("asked to fail"), "{mode}: {view}");
    }

    // A worker that signs with a key other than its registered one: refused, with the reason.
    let forged = producer
        .submit(&json!({"capability": "shout-nats-forger", "description": "shout it", "input": "x", "max_attempts": 1}))
        .await
        .unwrap();
    let view = producer.wait(&forged, Duration::from_secs(30)).await.unwrap();
    assert_eq!(view["status"], "failed", "{view}");
    assert_ne!(view["output"], "X", "{view}");
    let events: Value = reqwest::Client::new()
        .get(format!("{base}/tasks/{forged}/events"))
        .bearer_auth(issue("ops", "operator"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(events.to_string().contains("signature"), "{events}");

    // A bad poll is answered with the field it got wrong, and leases nothing.
    let answer = connection
        .request("pantheon.work.sdk-nats-pull.poll", r#"{"wait_ms": 999999}"#.into())
        .await
        .unwrap();
    let answer: Value = serde_json::from_slice(&answer.payload).unwrap();
    assert_eq!(answer["code"], "invalid", "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("wait_ms"), "{answer}");

    // Every worker stops cleanly.
    stop.cancel();
    for worker in workers {
        tokio::time::timeout(Duration::from_secs(10), worker)
            .await
            .expect("stops")
            .unwrap()
            .expect("cleanly");
    }
}
