//! Agents join a running federation: an HTTP agent (on the Rust SDK, `sdk/rust`: it checks the
//! envelope's seal and signs its result) is registered over
//! `POST /agents` and answers tasks without a restart; suspending it takes it out of matching
//! and the refusal says why; `pantheon agents register` does the same from the command line.

mod common;

use common::{pantheon, token, up_with_gateway};
use events::{KeyPair, PublicKey};

/// An HTTP agent that reverses its input, on the Rust SDK (`sdk/rust`): it refuses an envelope
/// not sealed by `federation`.
async fn reverse_agent(id: &str, federation: PublicKey, key: KeyPair) -> String {
    let agent = pantheon_agent::Agent::new(id, key, federation).capability("reverse", |task| {
        Ok(serde_json::json!(task.input.as_str().unwrap_or_default().chars().rev().collect::<String>()))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(agent.serve(listener));
    format!("http://{address}/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_registered_at_run_time_takes_work_and_a_suspended_one_does_not() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_up, base, client) = up_with_gateway(dir.path()).await;
    let token = |role: &str| token(dir.path(), role);
    let (operator, producer, viewer) = (token("operator"), token("producer"), token("viewer"));
    let federation =
        KeyPair::load(&dir.path().join("federation.key")).expect("the federation key").public_key();
    let seed: [u8; 32] = std::array::from_fn(|i| i as u8 ^ 0x5a);
    let agent_key = KeyPair::from_seed(seed);
    let url = reverse_agent("reverser", federation, KeyPair::from_seed(seed)).await;
    let registration = serde_json::json!({
        "agent_id": "reverser",
        "capabilities": ["reverse"],
        "public_key": agent_key.public_key().to_string(),
        "transport": {"kind": "http", "url": url},
        "max_concurrency": 2
    });
    // Only those who manage agents may register one.
    let refused =
        client.post(format!("{base}/agents")).bearer_auth(&viewer).json(&registration).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    let registered = client
        .post(format!("{base}/agents"))
        .bearer_auth(&operator)
        .json(&registration)
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let registered: serde_json::Value = registered.json().await.unwrap();
    assert_eq!(registered["passport"]["issued_by"], federation.to_string());
    assert_eq!(registered["passport"]["passport"]["capabilities"], serde_json::json!(["reverse"]));

    // It takes work at once: no restart.
    let execute = |timeout_ms: u64| {
        let (client, base, producer) = (client.clone(), base.clone(), producer.clone());
        async move {
            let answer = client
                .post(format!("{base}/tasks/execute"))
                .bearer_auth(&producer)
                .json(&serde_json::json!({"capability": "reverse", "description": "reverse it", "input": "drawer", "timeout_ms": timeout_ms}))
                .send()
                .await
                .unwrap();
            answer.json::<serde_json::Value>().await.unwrap()
        }
    };
    let done = execute(30_000).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["output"], "reward");
    assert_eq!(done["agent_id"], "reverser");

    // Suspended, it takes no more: the task fails saying why.
    let suspended = client
        .post(format!("{base}/agents/reverser/suspend"))
        .bearer_auth(&operator)
        .json(&serde_json::json!({"reason": "maintenance"}))
        .send()
        .await
        .unwrap();
    assert_eq!(suspended.status(), 200);
    let suspended: serde_json::Value = suspended.json().await.unwrap();
    assert_eq!(suspended["status"], "suspended", "{suspended}");
    let failed = execute(2_000).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let again =
        client.post(format!("{base}/agents/reverser/suspend")).bearer_auth(&operator).send().await.unwrap();
    assert_eq!(again.status(), 409, "suspending a suspended agent");
    // The wait's reason said the agent was suspended.
    let events = pantheon(dir.path()).args(["events", "read", "--all", "--limit", "1000"]).output().unwrap();
    let events = String::from_utf8_lossy(&events.stdout);
    assert!(events.contains("reverser is suspended"), "the no-agent reason names the suspension");

    // Retired over HTTP; the command line registers another one the same way.
    let retired =
        client.delete(format!("{base}/agents/reverser")).bearer_auth(&operator).send().await.unwrap();
    assert_eq!(retired.status(), 200);
    let url = reverse_agent("reverser-2", federation, KeyPair::from_seed(seed)).await;
    let out = pantheon(dir.path())
        .args(["agents", "register", "reverser-2", "--capability", "reverse", "--public-key"])
        .arg(agent_key.public_key().to_string())
        .args(["--url", &url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let done = execute(30_000).await;
    assert_eq!(
        (done["status"].as_str(), done["agent_id"].as_str()),
        (Some("completed"), Some("reverser-2")),
        "{done}"
    );
}
