//! The pipeline on NATS JetStream (+ PostgreSQL as the archive), with servers the harness
//! starts: end to end with bad input on the submission subject, every input delivered twice,
//! and two runtimes side by side.

mod common;

use std::sync::Arc;
use std::time::Duration;

use actors::config::ProducerConfig;
use common::*;
use events::task::TaskStatus;
use events::{EventLog, KeyPair, SignedSubmission, TaskId, TaskSpec};
use testkit::nats_server::NatsServer;

async fn nats_log(server: &NatsServer) -> Arc<nats::NatsLog> {
    Arc::new(nats::NatsLog::connect(nats::NatsLogConfig::new(server.url())).await.expect("connect"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_on_nats_with_submissions_and_the_archive() {
    let server = NatsServer::start().expect("nats-server");
    let nats = nats_log(&server).await;
    let log: Arc<dyn EventLog> = nats.clone();
    let key = Arc::new(KeyPair::generate());
    let producer = KeyPair::generate();
    let mut options = actors::RuntimeOptions::new(Arc::clone(&log), Arc::clone(&key));
    options
        .config
        .producers
        .push(ProducerConfig { name: "billing".into(), public_key: producer.public_key() });
    options.nats = Some(nats.client().clone());
    let runtime = start(options).await;

    let task = runtime.submit(TaskSpec::new("echo", "over jetstream")).await.unwrap();
    let state = runtime.wait_final(task, WAIT).await.unwrap();
    assert_eq!(state.status, TaskStatus::Completed, "{state:?}");
    assert_exactly_once(log.as_ref(), task).await;

    // Submissions on NATS: signed by a registered producer, by a stranger, unsigned, garbage.
    let client = async_nats::connect(server.url()).await.unwrap();
    let request = |payload: Vec<u8>| {
        let client = client.clone();
        async move {
            let reply = client.request("pantheon-submit", payload.into()).await.expect("answer");
            serde_json::from_slice::<serde_json::Value>(&reply.payload).unwrap()
        }
    };
    let good =
        SignedSubmission::sign(TaskId::new(), TaskSpec::new("echo", "from billing"), &producer).unwrap();
    let answer = request(serde_json::to_vec(&good).unwrap()).await;
    assert_eq!(answer["accepted"], true, "{answer}");
    let state = runtime.wait_final(good.task_id, WAIT).await.unwrap();
    assert_eq!(state.status, TaskStatus::Completed);

    let forged =
        SignedSubmission::sign(TaskId::new(), TaskSpec::new("echo", "stranger"), &KeyPair::generate())
            .unwrap();
    request(serde_json::to_vec(&forged).unwrap()).await;
    let state = runtime.wait_final(forged.task_id, WAIT).await.unwrap();
    assert_eq!(state.status, TaskStatus::Rejected);
    assert!(state.end_reason.unwrap().contains("registered producer key"));

    let unsigned_id = TaskId::new();
    let answer = request(
        serde_json::to_vec(
            &serde_json::json!({"task_id": unsigned_id, "spec": {"capability": "echo", "description": "x"}}),
        )
        .unwrap(),
    )
    .await;
    assert_eq!(answer["accepted"], false);
    let state = runtime.wait_final(unsigned_id, WAIT).await.unwrap();
    assert_eq!(state.status, TaskStatus::Rejected);
    assert!(state.end_reason.unwrap().contains("not signed"));

    let garbled_id = TaskId::new();
    let garbled =
        serde_json::json!({"task_id": garbled_id, "spec": 42, "signed_by": "00", "signature": "00"});
    let answer = request(serde_json::to_vec(&garbled).unwrap()).await;
    assert_eq!(answer["accepted"], false, "{answer}");
    assert_eq!(runtime.wait_final(garbled_id, WAIT).await.unwrap().status, TaskStatus::Rejected);
    let answer = request(b"not json at all".to_vec()).await;
    assert!(answer["error"].as_str().unwrap().contains("not a valid signed submission"), "{answer}");

    // PostgreSQL as the archive: every event copied exactly once.
    if testkit::postgres::available() {
        let url = testkit::postgres::fresh_database_url().await.unwrap();
        let archive = store::SqlLog::open(&url).await.unwrap();
        let archiver = nats::Archiver::new(Arc::clone(&nats), Arc::new(archive.clone()));
        let stop = tokio::time::sleep(Duration::from_secs(2));
        archiver.run(stop).await.unwrap();
        let archived = archive.into_dyn();
        assert_eq!(types(archived.as_ref(), task).await, HAPPY_PATH);
    }
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_input_delivered_twice_on_nats() {
    let server = NatsServer::start().expect("nats-server");
    let nats = nats_log(&server).await;
    let duplicates = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let log: Arc<dyn EventLog> =
        Arc::new(DoublingLog { inner: nats.clone(), duplicates: Arc::clone(&duplicates) });
    let runtime = start(actors::RuntimeOptions::new(Arc::clone(&log), Arc::new(KeyPair::generate()))).await;
    let mut tasks = Vec::new();
    for i in 0..10 {
        tasks.push(runtime.submit(TaskSpec::new("echo", format!("twice {i}"))).await.unwrap());
    }
    for task in &tasks {
        assert_eq!(runtime.wait_final(*task, WAIT).await.unwrap().status, TaskStatus::Completed);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for task in &tasks {
        assert_exactly_once(log.as_ref(), *task).await;
    }
    assert!(duplicates.load(std::sync::atomic::Ordering::Relaxed) >= 10 * 7);
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runtimes_on_one_nats_produce_each_output_once() {
    let server = NatsServer::start().expect("nats-server");
    let key = Arc::new(KeyPair::generate());
    let first_log: Arc<dyn EventLog> = nats_log(&server).await;
    let second_log: Arc<dyn EventLog> = nats_log(&server).await;
    let first = start(actors::RuntimeOptions::new(Arc::clone(&first_log), Arc::clone(&key))).await;
    let second = start(actors::RuntimeOptions::new(Arc::clone(&second_log), Arc::clone(&key))).await;
    let mut tasks = Vec::new();
    for i in 0..30 {
        let runtime = if i % 2 == 0 { &first } else { &second };
        tasks.push(runtime.submit(TaskSpec::new("echo", format!("shared {i}"))).await.unwrap());
    }
    for task in &tasks {
        let state = first.wait_final(*task, WAIT).await.unwrap();
        assert_eq!(state.status, TaskStatus::Completed, "{state:?}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for task in &tasks {
        assert_exactly_once(first_log.as_ref(), *task).await;
    }
    let (a, b) = (first.handled().await, second.handled().await);
    let total = |h: &[(&str, u64)]| h.iter().map(|(_, n)| n).sum::<u64>();
    assert!(total(&a) > 0 && total(&b) > 0, "both runtimes took work: {a:?} / {b:?}");
    first.shutdown().await;
    second.shutdown().await;
}

/// An agent outside the process on NATS request/reply: a worker in a queue group that
/// verifies the federation's seal and answers a signed result, and one that answers an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_on_nats_request_reply_runs_tasks() {
    use actors::config::{AgentConfig, Builtin};
    use events::{AgentId, AgentResult, DomainEvent as _, SealedEnvelope, SignedResult};
    use futures::StreamExt as _;

    #[derive(serde::Deserialize)]
    struct Request {
        envelope: SealedEnvelope,
    }

    let server = NatsServer::start().expect("nats-server");
    let nats = nats_log(&server).await;
    let log: Arc<dyn EventLog> = nats.clone();
    let federation = Arc::new(KeyPair::generate());
    let agent_key = KeyPair::generate();
    let agent_public_key = agent_key.public_key();

    // The worker: any language could do this; here a plain async-nats client.
    let client = async_nats::connect(server.url()).await.unwrap();
    let mut requests = client.queue_subscribe("agents.shouter", "shouters".into()).await.unwrap();
    let mut refusals = client.subscribe("agents.refuser").await.unwrap();
    let mut reports = client.subscribe("agents.reporter").await.unwrap();
    client.flush().await.unwrap();
    let federation_public_key = federation.public_key();
    let agent_key = Arc::new(agent_key);
    let answer = {
        let agent_key = Arc::clone(&agent_key);
        move |sealed: &SealedEnvelope| -> Vec<u8> {
            match sealed.verify(&federation_public_key, events::now_ms()) {
                Ok(()) => {
                    let result = AgentResult {
                        task_id: sealed.envelope.task_id,
                        attempt: sealed.envelope.attempt,
                        agent_id: sealed.envelope.agent_id.clone(),
                        envelope_hash: sealed.hash,
                        output: serde_json::json!(sealed.envelope.description.to_uppercase()),
                        completed_at_ms: events::now_ms(),
                    };
                    serde_json::to_vec(&SignedResult::sign(result, &agent_key).unwrap()).unwrap()
                }
                Err(e) => serde_json::to_vec(&serde_json::json!({ "error": e.to_string() })).unwrap(),
            }
        }
    };
    let worker = {
        let client = client.clone();
        let answer = answer.clone();
        tokio::spawn(async move {
            while let Some(message) = requests.next().await {
                let Some(reply) = message.reply.clone() else { continue };
                let request: Request = serde_json::from_slice(&message.payload).unwrap();
                client.publish(reply, answer(&request.envelope).into()).await.unwrap();
            }
        })
    };
    // Reports progress twice on the reply subject and answers only once the federation has
    // recorded both reports, so they must be recorded while it works.
    let reporter = {
        let client = client.clone();
        let log = Arc::clone(&log);
        tokio::spawn(async move {
            while let Some(message) = reports.next().await {
                let Some(reply) = message.reply.clone() else { continue };
                let request: Request = serde_json::from_slice(&message.payload).unwrap();
                let task = request.envelope.envelope.task_id;
                for progress in [
                    serde_json::json!({"progress": {"percent": 30, "message": "thinking"}}),
                    serde_json::json!({"progress": {"message": "almost"}}),
                ] {
                    client.publish(reply.clone(), progress.to_string().into()).await.unwrap();
                }
                let started = std::time::Instant::now();
                let recorded = loop {
                    let n = counts(log.as_ref(), task).await.get("progress_reported").copied().unwrap_or(0);
                    if n >= 2 || started.elapsed() > Duration::from_secs(10) {
                        break n;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                };
                let last = if recorded >= 2 {
                    answer(&request.envelope)
                } else {
                    br#"{"error": "the progress was not recorded while the agent worked"}"#.to_vec()
                };
                client.publish(reply, last.into()).await.unwrap();
            }
        })
    };
    let refuser = {
        let client = client.clone();
        tokio::spawn(async move {
            while let Some(message) = refusals.next().await {
                let Some(reply) = message.reply.clone() else { continue };
                let answer = serde_json::json!({ "error": "out of capacity" }).to_string();
                client.publish(reply, answer.into()).await.unwrap();
            }
        })
    };

    let agent = |id: &str, capability: &str, subject: &str| AgentConfig {
        id: AgentId::new(id).unwrap(),
        builtin: Builtin::Nats,
        capabilities: vec![capability.into()],
        subject: Some(subject.into()),
        public_key: Some(agent_public_key),
        ..AgentConfig::echo()
    };
    let mut options = actors::RuntimeOptions::new(Arc::clone(&log), Arc::clone(&federation));
    options.nats = Some(nats.client().clone());
    options.config.agents = vec![
        agent("shouter", "shout", "agents.shouter"),
        agent("refuser", "refuse", "agents.refuser"),
        agent("absent", "vanish", "agents.nobody-listens"),
        agent("reporter", "report", "agents.reporter"),
    ];
    let runtime = start(options).await;

    let task = runtime.submit(TaskSpec::new("shout", "over nats")).await.unwrap();
    let state = runtime.wait_final(task, WAIT).await.unwrap();
    assert_eq!(state.status, TaskStatus::Completed, "{state:?}");
    assert_eq!(state.output, Some(serde_json::json!("OVER NATS")));
    assert_exactly_once(log.as_ref(), task).await;

    let task = runtime.submit(TaskSpec::new("report", "with progress")).await.unwrap();
    let state = runtime.wait_final(task, WAIT).await.unwrap();
    assert_eq!(state.status, TaskStatus::Completed, "{state:?}");
    assert_eq!(state.output, Some(serde_json::json!("WITH PROGRESS")));
    let reports: Vec<_> = events_of(log.as_ref(), task)
        .await
        .iter()
        .filter_map(|e| match events::task::TaskEvent::from_recorded(e) {
            Ok(events::task::TaskEvent::ProgressReported(p)) => Some((p.percent, p.message)),
            _ => None,
        })
        .collect();
    assert_eq!(reports, vec![(Some(30), "thinking".to_string()), (None, "almost".to_string())]);
    let mut rest = types(log.as_ref(), task).await;
    rest.retain(|t| t != "progress_reported");
    assert_eq!(rest, HAPPY_PATH);

    for (capability, needle) in [("refuse", "out of capacity"), ("vanish", "no responders")] {
        let mut spec = TaskSpec::new(capability, "will not work");
        spec.max_attempts = 1;
        let task = runtime.submit(spec).await.unwrap();
        let state = runtime.wait_final(task, WAIT).await.unwrap();
        assert_eq!(state.status, TaskStatus::Failed, "{capability}: {state:?}");
        let reason = state.end_reason.unwrap_or_default().to_lowercase();
        assert!(reason.contains(needle), "{capability}: {reason}");
    }
    runtime.shutdown().await;
    worker.abort();
    refuser.abort();
    reporter.abort();
}
