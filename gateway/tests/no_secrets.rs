//! No raw secret or personal datum anywhere, from any direction: the real pipeline
//! (`actors::Runtime`) behind the real gateway, on SQLite, PostgreSQL and NATS JetStream, with
//! three agents that put secrets in everything they say — an HTTP agent (progress as NDJSON
//! lines, a signed result or an error), a NATS request/reply agent (progress replies, then a
//! signed result or an error) and a command agent (a shell program: stdout, or stderr and an
//! exit code; it has no progress channel of its own) — two context sources that do the same,
//! and clients that put them in submissions (description, input, labels; through the gateway,
//! `actors::client::submit` and a malformed NATS submission) and cancel reasons (HTTP,
//! WebSocket, `actors::client::cancel`).
//!
//! Then no secret, nor any [`WINDOW_BYTES`]-byte piece of one, may appear in the raw `events`
//! table (every file of the SQLite data dir; payload and metadata on PostgreSQL), in any
//! message of the JetStream stream (and the server's store files), in what `read_all` returns,
//! in the gateway's answers (`/tasks/execute` in JSON, Markdown and HTML, `GET /tasks/{id}` in
//! the three formats, `/tasks/{id}/events`, `/tasks`, `/agents`, a cancel, a 400), in the SSE
//! and WebSocket streams of every task, in webhook bodies, or in the NATS submission answer.
//! And redaction must not cost correctness: results recorded redacted verify (the tasks
//! complete), the replay's signature checks pass, and the audit ledger verifies against the log.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actors::config::{AgentConfig, Builtin, CommandConfig, ContextSourceConfig};
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use common::{TestGateway, token};
use events::task::{Channel, TaskEvent, TaskStatus};
use events::{
    AgentResult, Aggregate as _, DomainEvent as _, EventLog, KeyPair, PublicKey, RecordedEvent,
    SealedEnvelope, SignedResult, SignedSubmission, TaskId, TaskSpec, TaskState,
};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use testkit::nats_server::NatsServer;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

/// An AWS access key id (not the documentation's example).
const AWS_KEY_ID: &str = "AKIA4HZQ7WMR2XVBN6TD";
/// Its secret access key: 40 characters of base64's alphabet.
const AWS_SECRET: &str = "q7Jx2Lr9/VkTm4Wc8NbPz3Hf+Ys6Da1GeUo5RiKw";
/// Personal data.
const EMAIL: &str = "marguerite.okonkwo@finch-ledger.io";
/// A GitHub personal access token.
const GITHUB_TOKEN: &str = "ghp_R8kT2vLq9XwZ4mNc7BpY3hJd6FsG1aEuQ0tK";
const SECRETS: [&str; 4] = [AWS_KEY_ID, AWS_SECRET, EMAIL, GITHUB_TOKEN];

/// A piece of a secret this long is a leak too (a secret cut in half is still half a secret).
const WINDOW_BYTES: usize = 12;

const WAIT: Duration = Duration::from_secs(60);

/// The key id and the secret as an AWS console CSV export has them.
fn csv() -> String {
    format!("User name,Access key ID,Secret access key\nsvc-deploy,{AWS_KEY_ID},{AWS_SECRET}")
}

/// The secret access key in prose.
fn prose() -> String {
    format!("the secret access key is {AWS_SECRET}")
}

/// Every secret in one line of text.
fn all_in_one() -> String {
    format!("key {AWS_KEY_ID},{AWS_SECRET}; {}; owner {EMAIL}; token {GITHUB_TOKEN}", prose())
}

/// Filler, then `secret` starting 16 bytes before byte `cut`: a text cut at `cut` before it is
/// scrubbed keeps a 16-byte piece of the secret that no rule recognises any more.
fn straddling(cut: usize, secret: &str) -> String {
    format!("{} {secret} and more", ".".repeat(cut - 16 - 1))
}

/// What every agent answers: secrets in strings, in a CSV, in prose, and as an object key.
fn secret_output(agent: &str) -> Value {
    json!({
        "agent": agent,
        "credentials": csv(),
        "notes": [prose(), format!("escalate to {EMAIL}"), format!("CI uses {GITHUB_TOKEN}")],
        "owners": { EMAIL: "admin" },
    })
}

/// The progress an agent outside the process reports in `mode`.
fn progress_messages(mode: &str) -> Vec<String> {
    let mut messages = vec![
        format!("found {AWS_KEY_ID},{AWS_SECRET} in the export"),
        format!("{} and mailing {EMAIL} with {GITHUB_TOKEN}", prose()),
    ];
    if mode == "long" {
        messages.push(straddling(actors::agents::PROGRESS_MESSAGE_BYTES_MAX, AWS_KEY_ID));
    }
    messages
}

fn mode_of(sealed: &SealedEnvelope) -> String {
    sealed.envelope.input["mode"].as_str().unwrap_or("ok").to_string()
}

fn sign(sealed: &SealedEnvelope, key: &KeyPair, agent: &str) -> SignedResult {
    let result = AgentResult {
        task_id: sealed.envelope.task_id,
        attempt: sealed.envelope.attempt,
        agent_id: sealed.envelope.agent_id.clone(),
        envelope_hash: sealed.hash,
        output: secret_output(agent),
        completed_at_ms: events::now_ms(),
    };
    SignedResult::sign(result, key).expect("sign")
}

#[derive(serde::Deserialize)]
struct ExecuteRequest {
    envelope: SealedEnvelope,
}

/// The HTTP agent and the context sources.
#[derive(Clone)]
struct Vault {
    federation: PublicKey,
    key: Arc<KeyPair>,
}

/// The HTTP agent: by the task's `mode`, a `500` with secrets in its body (one across the
/// quoted excerpt's end), or a streamed answer: progress with secrets (`long`: one across the
/// progress message limit), then the signed result (`ok`, `long`), an error (`fail`), or
/// nothing for two minutes (`hang`).
async fn execute(State(vault): State<Vault>, Json(request): Json<ExecuteRequest>) -> Response {
    let sealed = request.envelope;
    if let Err(error) = sealed.verify(&vault.federation, events::now_ms()) {
        return (StatusCode::FORBIDDEN, error.to_string()).into_response();
    }
    let mode = mode_of(&sealed);
    if mode == "http500" {
        let body = format!(
            "{}; {}",
            straddling(actors::agents::http::ERROR_EXCERPT_BYTES_MAX, GITHUB_TOKEN),
            all_in_one()
        );
        return (StatusCode::INTERNAL_SERVER_ERROR, body).into_response();
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::convert::Infallible>>(8);
    tokio::spawn(async move {
        for (i, message) in progress_messages(&mode).into_iter().enumerate() {
            let line = json!({"progress": {"percent": 20 * (i + 1), "message": message}});
            if tx.send(Ok(Bytes::from(format!("{line}\n")))).await.is_err() {
                return;
            }
        }
        let last = match mode.as_str() {
            "hang" => {
                tokio::time::sleep(Duration::from_secs(120)).await;
                return;
            }
            "fail" => json!({"error": format!("vault refused: {}", all_in_one())}).to_string(),
            _ => serde_json::to_string(&sign(&sealed, &vault.key, "http")).expect("json"),
        };
        let _ = tx.send(Ok(Bytes::from(format!("{last}\n")))).await;
    });
    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    ([(axum::http::header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
}

/// A context source whose items hold secrets (one across the item limit).
async fn context() -> Json<Value> {
    Json(json!({
        "best_practices": [
            format!("rotate {AWS_KEY_ID},{AWS_SECRET} every quarter"),
            straddling(actors::CONTEXT_ITEM_BYTES_MAX, AWS_KEY_ID),
        ],
        "pitfalls": [format!("never mail {EMAIL} the token {GITHUB_TOKEN}"), prose()],
    }))
}

/// A context source that fails, quoting secrets (one across the quoted excerpt's end).
async fn broken_context() -> (StatusCode, String) {
    let body =
        format!("{}; {}", straddling(actors::agents::http::ERROR_EXCERPT_BYTES_MAX, EMAIL), all_in_one());
    (StatusCode::INTERNAL_SERVER_ERROR, body)
}

/// The NATS agent on `agents.vault`: progress replies with secrets, then the signed result,
/// or an error with secrets (`fail`).
async fn serve_nats_agent(client: async_nats::Client, federation: PublicKey, key: Arc<KeyPair>) {
    let mut requests = client.subscribe("agents.vault").await.expect("subscribe");
    client.flush().await.expect("flush");
    tokio::spawn(async move {
        while let Some(message) = requests.next().await {
            let Some(reply) = message.reply.clone() else { continue };
            let (client, key) = (client.clone(), Arc::clone(&key));
            let Ok(request) = serde_json::from_slice::<ExecuteRequest>(&message.payload) else { continue };
            tokio::spawn(async move {
                let sealed = request.envelope;
                let publish = |body: String| {
                    let (client, reply) = (client.clone(), reply.clone());
                    async move { client.publish(reply, body.into()).await.expect("publish") }
                };
                if let Err(error) = sealed.verify(&federation, events::now_ms()) {
                    publish(json!({"error": error.to_string()}).to_string()).await;
                    return;
                }
                let mode = mode_of(&sealed);
                for (i, message) in progress_messages(&mode).into_iter().enumerate() {
                    publish(json!({"progress": {"percent": 20 * (i + 1), "message": message}}).to_string())
                        .await;
                }
                let last = match mode.as_str() {
                    "fail" => json!({"error": format!("vault refused: {}", all_in_one())}).to_string(),
                    _ => serde_json::to_string(&sign(&sealed, &key, "nats")).expect("json"),
                };
                publish(last).await;
            });
        }
    });
}

/// The command agent's shell program: by the task's `mode` (read from the task JSON on stdin),
/// JSON on stdout (`ok`), text on stdout (`text`), or secrets on stderr and exit 3 (`fail`;
/// `fail-long`: one across the quoted excerpt's end).
fn command_script() -> String {
    let quote = |text: &str| format!("'{}'", text.replace('\'', r"'\''"));
    let json = serde_json::to_string(&secret_output("command")).expect("json");
    let long = straddling(actors::agents::command::STDERR_EXCERPT_BYTES_MAX, AWS_KEY_ID);
    format!(
        r#"task=$(cat)
case "$task" in
  *'"mode":"fail-long"'*) printf '%s\n' {long} >&2; exit 3 ;;
  *'"mode":"fail"'*) printf '%s\n' {fail} >&2; exit 3 ;;
  *'"mode":"text"'*) printf '%s\n' {csv} {prose} {mail} ;;
  *) printf '%s' {json} ;;
esac
"#,
        long = quote(&long),
        fail = quote(&format!("vault refused: {}", all_in_one())),
        csv = quote(&csv()),
        prose = quote(&prose()),
        mail = quote(&format!("contact {EMAIL}, token {GITHUB_TOKEN}")),
        json = quote(&json),
    )
}

/// A webhook receiver: every body it gets.
async fn webhook_receiver() -> (String, Arc<Mutex<Vec<Vec<u8>>>>) {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&bodies);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |_: HeaderMap, body: Bytes| {
            let seen = Arc::clone(&seen);
            async move {
                seen.lock().expect("lock").push(body.to_vec());
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), bodies)
}

/// Every place a secret (or a piece of one) was found, with a little context.
#[derive(Default)]
struct Leaks {
    found: Vec<String>,
    /// Bytes scanned, to show the scan saw something.
    scanned: usize,
    /// Redaction placeholders seen, to show the scan saw what was redacted.
    placeholders: usize,
}

impl Leaks {
    fn check(&mut self, place: &str, bytes: &[u8]) {
        self.scanned += bytes.len();
        self.placeholders += bytes.windows(b"[REDACTED:".len()).filter(|w| *w == b"[REDACTED:").count();
        let windows: HashSet<&[u8]> =
            SECRETS.iter().flat_map(|secret| secret.as_bytes().windows(WINDOW_BYTES)).collect();
        let mut at = 0;
        let mut reported = 0;
        while at + WINDOW_BYTES <= bytes.len() {
            if windows.contains(&bytes[at..at + WINDOW_BYTES]) {
                let start = at.saturating_sub(40);
                let end = (at + WINDOW_BYTES + 40).min(bytes.len());
                self.found.push(format!("{place}: …{}…", String::from_utf8_lossy(&bytes[start..end])));
                reported += 1;
                if reported == 3 {
                    break;
                }
                at += WINDOW_BYTES;
            } else {
                at += 1;
            }
        }
    }

    fn check_text(&mut self, place: &str, text: &str) {
        self.check(place, text.as_bytes());
    }
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
    Jetstream,
}

/// A task of the scenario: what it was, and what it must end as.
struct Task {
    id: TaskId,
    what: String,
    expect: TaskStatus,
    /// Whether a webhook was asked for.
    webhook: bool,
}

fn request(capability: &str, mode: &str, webhook: Option<&str>) -> Value {
    let mut body = json!({
        "capability": capability,
        "description": format!(
            "access review for {EMAIL}: old key {AWS_KEY_ID},{AWS_SECRET}, {}, CI token {GITHUB_TOKEN}",
            prose()
        ),
        "input": submission_input(mode),
        "labels": {"owner": EMAIL, "ticket": format!("rotate {AWS_KEY_ID}")},
        "max_attempts": 1,
        "timeout_ms": 60_000,
    });
    if let Some(url) = webhook {
        body["webhook_url"] = json!(url);
    }
    body
}

/// What a client puts in a task's input: the mode for the agent, and secrets.
fn submission_input(mode: &str) -> Value {
    json!({
        "mode": mode,
        "contact": EMAIL,
        "export": csv(),
        "note": prose(),
        "token": GITHUB_TOKEN,
        "owners": { EMAIL: "reviewer" },
    })
}

fn spec(capability: &str, mode: &str) -> TaskSpec {
    let body = request(capability, mode, None);
    let mut spec = TaskSpec::new(capability, body["description"].as_str().expect("description"));
    spec.input = body["input"].clone();
    spec.max_attempts = 1;
    spec.timeout_ms = 60_000;
    spec.labels.insert("owner".into(), EMAIL.into());
    spec
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(gw: &TestGateway, id: TaskId, bearer: &str) -> Socket {
    let mut request = format!("ws://{}/tasks/{id}/stream", gw.addr).into_client_request().expect("request");
    request.headers_mut().insert("authorization", format!("Bearer {bearer}").parse().expect("header"));
    tokio_tungstenite::connect_async(request).await.expect("websocket").0
}

/// Reads text frames until the close frame (or `until` arrives); returns them.
async fn read_frames(socket: &mut Socket, until: Option<&str>) -> Vec<String> {
    let mut frames = Vec::new();
    let read = async {
        while let Some(message) = socket.next().await {
            match message {
                Ok(Message::Text(text)) => {
                    let stop = until.is_some_and(|t| text.contains(&format!("\"type\":\"{t}\"")));
                    frames.push(text.to_string());
                    if stop {
                        return;
                    }
                }
                Ok(Message::Close(frame)) => {
                    frames.push(format!("{frame:?}"));
                    return;
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    };
    tokio::time::timeout(WAIT, read).await.expect("the stream ends");
    frames
}

/// What `pantheon replay` checks of a task's events, with the result recorded redacted checked
/// as such: the submission's signature, the envelope's seal and the agent's signature.
async fn replay_checks(log: &dyn EventLog, task: &Task, trusted: &[PublicKey], federation: &PublicKey) {
    let (_, recorded) = actors::client::task_history(log, task.id).await.expect("history");
    assert!(!recorded.is_empty(), "{}: replay shows the events", task.what);
    let mut state = TaskState::default();
    for event in &recorded {
        let decoded = TaskEvent::from_recorded(event).expect("every event decodes");
        match &decoded {
            TaskEvent::Submitted(e) if task.expect != TaskStatus::Rejected => {
                let submission = SignedSubmission {
                    task_id: e.task_id,
                    spec: e.spec.clone(),
                    signed_by: e.signed_by,
                    signature: e.signature,
                };
                submission.verify(trusted).unwrap_or_else(|e| panic!("{}: the submission: {e}", task.what));
            }
            TaskEvent::EnvelopeSealed(e) => e
                .envelope
                .verify(federation, event.metadata.occurred_at_ms)
                .unwrap_or_else(|e| panic!("{}: the seal: {e}", task.what)),
            TaskEvent::ResultReceived(e) => {
                let (agent, _) =
                    actors::registry::load_agent(log, &e.result.result.agent_id).await.expect("the agent");
                let passport = &agent.registration.as_ref().expect("a passport").passport.passport;
                let envelope = state.envelope.as_ref().expect("the envelope before the result");
                e.verify(passport, envelope).unwrap_or_else(|e| panic!("{}: the result: {e}", task.what));
                assert!(e.redaction.is_some(), "{}: the result is recorded redacted", task.what);
            }
            _ => {}
        }
        let _ = state.apply(&decoded);
    }
}

/// Scans every event `read_all` returns: payload bytes, metadata, the payload as JSON.
async fn scan_read_all(log: &dyn EventLog, leaks: &mut Leaks) -> usize {
    let mut from = 1;
    let mut count = 0;
    loop {
        let page: Vec<RecordedEvent> = log.read_all(from, 1_000).await.expect("read_all");
        let Some(last) = page.last() else { break };
        from = last.position + 1;
        for event in &page {
            count += 1;
            let place = format!("read_all {} v{} {}", event.stream_id, event.version, event.event_type);
            leaks.check(&format!("{place} payload"), &event.payload);
            leaks.check_text(
                &format!("{place} metadata"),
                &serde_json::to_string(&event.metadata).expect("json"),
            );
            if let Ok(value) = events::codec::from_msgpack::<Value>(&event.payload) {
                leaks.check_text(&format!("{place} as JSON"), &value.to_string());
            }
        }
    }
    count
}

async fn run(backend: Backend) {
    let server = NatsServer::start().expect("nats-server");
    let federation = Arc::new(KeyPair::generate());
    let http_key = Arc::new(KeyPair::generate());
    let nats_key = Arc::new(KeyPair::generate());

    // The log, and the gateway on it (its read models beside it, as in `pantheon up`).
    let config = common::config();
    let gateway_key = config.signing_key.public_key();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut nats_log = None;
    let (log, postgres_url): (Arc<dyn EventLog>, Option<String>) = match backend {
        Backend::Sqlite => {
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("log.db").display());
            (store::open(&url).await.expect("sqlite"), None)
        }
        Backend::Postgres => {
            let url = testkit::postgres::fresh_database_url().await.expect("a fresh PostgreSQL database");
            (store::open(&url).await.expect("postgres"), Some(url))
        }
        Backend::Jetstream => {
            let nats = Arc::new(
                nats::NatsLog::connect(nats::NatsLogConfig::new(server.url())).await.expect("jetstream"),
            );
            nats_log = Some(Arc::clone(&nats));
            (nats, None)
        }
    };
    let mut gw = match &postgres_url {
        Some(url) => TestGateway::start_with_views(config, Arc::clone(&log), url, dir).await,
        None => TestGateway::start_on_log(config, Arc::clone(&log), dir).await,
    };

    // The agents and the context sources.
    let vault = Vault { federation: federation.public_key(), key: Arc::clone(&http_key) };
    let app = axum::Router::new()
        .route("/execute", axum::routing::post(execute))
        .route("/context", axum::routing::post(context))
        .route("/context-broken", axum::routing::post(broken_context))
        .with_state(vault);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let agent_client = async_nats::connect(server.url()).await.expect("nats client");
    serve_nats_agent(agent_client.clone(), federation.public_key(), Arc::clone(&nats_key)).await;

    let agent = |id: &str, builtin: Builtin| AgentConfig {
        id: events::AgentId::new(id).expect("id"),
        builtin,
        capabilities: vec![id.into()],
        ..AgentConfig::echo()
    };
    let mut options = actors::RuntimeOptions::new(Arc::clone(&log), Arc::clone(&federation));
    options.next_is_cancel_safe = backend != Backend::Jetstream;
    // As `pantheon up` does: the pipeline trusts what its gateway signs.
    options
        .config
        .producers
        .push(actors::config::ProducerConfig { name: "gateway".into(), public_key: gateway_key });
    options.nats = Some(match &nats_log {
        Some(nats) => nats.client().clone(),
        None => async_nats::connect(server.url()).await.expect("nats client"),
    });
    options.config.agents = vec![
        AgentConfig {
            url: Some(format!("{base}/execute")),
            public_key: Some(http_key.public_key()),
            ..agent("vault-http", Builtin::Http)
        },
        AgentConfig {
            subject: Some("agents.vault".into()),
            public_key: Some(nats_key.public_key()),
            ..agent("vault-nats", Builtin::Nats)
        },
        AgentConfig {
            command: Some(CommandConfig {
                program: "sh".into(),
                args: vec!["-c".into(), command_script()],
                timeout_ms: 10_000,
                output_bytes_max: 64 * 1024,
            }),
            ..agent("vault-cmd", Builtin::Command)
        },
    ];
    options.config.context.sources = ["context", "context-broken"]
        .into_iter()
        .map(|path| ContextSourceConfig {
            name: path.into(),
            url: format!("{base}/{path}"),
            timeout_ms: 5_000,
            capabilities: Vec::new(),
        })
        .collect();
    let runtime = actors::Runtime::start(options).await.expect("runtime");

    let alice = token("alice", &["producer"]);
    let admin = gw.admin.clone();
    let (hook, deliveries) = webhook_receiver().await;
    let mut leaks = Leaks::default();
    let mut tasks: Vec<Task> = Vec::new();

    // Asynchronous submissions through the gateway, each with a webhook.
    for (capability, mode, expect) in [
        ("vault-http", "ok", TaskStatus::Completed),
        ("vault-http", "long", TaskStatus::Completed),
        ("vault-http", "fail", TaskStatus::Failed),
        ("vault-http", "http500", TaskStatus::Failed),
        ("vault-nats", "fail", TaskStatus::Failed),
        ("vault-cmd", "text", TaskStatus::Completed),
        ("vault-cmd", "fail", TaskStatus::Failed),
        ("vault-cmd", "fail-long", TaskStatus::Failed),
    ] {
        let response = gw.post_json("/tasks/submit", &alice, request(capability, mode, Some(&hook))).await;
        assert_eq!(response.status(), 202);
        let text = response.text().await.expect("body");
        leaks.check_text(&format!("POST /tasks/submit {capability} {mode}"), &text);
        let answer: Value = serde_json::from_str(&text).expect("json");
        let id = answer["task_id"].as_str().expect("task_id").parse().expect("id");
        tasks.push(Task { id, what: format!("{capability} {mode}"), expect, webhook: true });
    }

    // Through `actors::client::submit`, signed with the federation key.
    let id =
        actors::client::submit(log.as_ref(), &federation, spec("vault-nats", "ok"), Channel::Local, "test")
            .await
            .expect("submit");
    tasks.push(Task {
        id,
        what: "client vault-nats ok".into(),
        expect: TaskStatus::Completed,
        webhook: false,
    });

    // Synchronous executes, in JSON, Markdown and HTML, side by side.
    let executes = [("vault-http", "json"), ("vault-nats", "markdown"), ("vault-cmd", "html")].map(
        |(capability, format)| {
            let (gw, alice) = (&gw, &alice);
            async move {
                let path = format!("/tasks/execute?format={format}");
                let response = gw.post_json(&path, alice, request(capability, "ok", None)).await;
                let status = response.status();
                (capability, format, status, response.text().await.expect("body"))
            }
        },
    );
    for (capability, format, status, text) in futures::future::join_all(executes).await {
        assert_eq!(status, 200, "{capability} {format}: {text}");
        assert!(text.contains("completed"), "{capability} {format}: {text}");
        assert!(text.contains("[REDACTED"), "{capability} {format}: the output is there, redacted: {text}");
        leaks.check_text(&format!("POST /tasks/execute {capability} {format}"), &text);
    }

    // Cancel reasons with secrets: over the WebSocket, over HTTP, through the client.
    let cancel_reason = format!("cancelled: leaked {AWS_KEY_ID},{AWS_SECRET}, {}; ask {EMAIL}", prose());
    let response = gw.post_json("/tasks/submit", &alice, request("vault-http", "hang", Some(&hook))).await;
    let hang_ws: TaskId =
        response.json::<Value>().await.expect("json")["task_id"].as_str().expect("id").parse().expect("id");
    let mut socket = connect(&gw, hang_ws, &alice).await;
    let mut frames = read_frames(&mut socket, Some("progress_reported")).await;
    socket
        .send(Message::Text(json!({"action": "cancel", "reason": cancel_reason}).to_string().into()))
        .await
        .expect("send");
    frames.extend(read_frames(&mut socket, None).await);
    for frame in &frames {
        leaks.check_text("WebSocket of the task cancelled over it", frame);
    }
    tasks.push(Task {
        id: hang_ws,
        what: "cancelled over WebSocket".into(),
        expect: TaskStatus::Cancelled,
        webhook: true,
    });

    let response = gw.post_json("/tasks/submit", &alice, request("vault-http", "hang", None)).await;
    let hang_http: TaskId =
        response.json::<Value>().await.expect("json")["task_id"].as_str().expect("id").parse().expect("id");
    gw.wait_for_event(&hang_http.to_string(), "progress_reported").await;
    let response =
        gw.post_json(&format!("/tasks/{hang_http}/cancel"), &alice, json!({"reason": cancel_reason})).await;
    assert_eq!(response.status(), 200);
    leaks.check_text("POST /tasks/{id}/cancel", &response.text().await.expect("body"));
    tasks.push(Task {
        id: hang_http,
        what: "cancelled over HTTP".into(),
        expect: TaskStatus::Cancelled,
        webhook: false,
    });

    let hang_client =
        actors::client::submit(log.as_ref(), &federation, spec("vault-http", "hang"), Channel::Local, "test")
            .await
            .expect("submit");
    gw.wait_for_event(&hang_client.to_string(), "progress_reported").await;
    assert!(actors::client::cancel(log.as_ref(), hang_client, "ops", &cancel_reason).await.expect("cancel"));
    tasks.push(Task {
        id: hang_client,
        what: "cancelled through the client".into(),
        expect: TaskStatus::Cancelled,
        webhook: false,
    });

    // A NATS submission that does not parse, quoting a secret in the parse error.
    let refused = TaskId::new();
    let payload = format!(
        r#"{{"task_id":"{refused}","spec":{{"capability":"vault-http","description":"x","timeout_ms":"{AWS_KEY_ID},{AWS_SECRET}"}},"signed_by":"00","signature":"00"}}"#
    );
    let answer = agent_client.request("pantheon-submit", payload.into()).await.expect("an answer");
    leaks.check("the answer to a NATS submission", &answer.payload);
    tasks.push(Task {
        id: refused,
        what: "malformed NATS submission".into(),
        expect: TaskStatus::Rejected,
        webhook: false,
    });

    // A 400 that quotes the offending value.
    let mut bad = request("vault-http", "ok", None);
    bad["timeout_ms"] = json!(format!("{AWS_KEY_ID},{AWS_SECRET}"));
    let response = gw.post_json("/tasks/execute", &alice, bad).await;
    assert_eq!(response.status(), 400);
    leaks.check_text("a 400 answer", &response.text().await.expect("body"));

    // Every task ends as it should; completed ones verified their redacted result.
    for task in &tasks {
        let state = runtime.wait_final(task.id, WAIT).await.expect("final");
        assert_eq!(state.status, task.expect, "{}: {state:?}", task.what);
        if task.expect == TaskStatus::Failed {
            let reason = state.end_reason.clone().unwrap_or_default();
            assert!(!reason.contains("did not verify"), "{}: {reason}", task.what);
        }
    }
    // The executes' tasks, found in the log: every task stream there is one of ours.
    let mut all_ids: Vec<TaskId> = Vec::new();
    for event in log.read_all(1, 100_000).await.expect("read_all") {
        if event.event_type.as_str() == "task_submitted"
            && let Ok(id) = event.stream_id.entity_id().parse::<TaskId>()
            && !all_ids.contains(&id)
        {
            all_ids.push(id);
        }
    }
    for id in &all_ids {
        if !tasks.iter().any(|t| t.id == *id) {
            tasks.push(Task {
                id: *id,
                what: format!("execute {id}"),
                expect: TaskStatus::Completed,
                webhook: false,
            });
        }
    }
    assert_eq!(tasks.len(), 16, "every task is in the log");
    for task in &tasks {
        let (state, recorded) = actors::client::task_history(log.as_ref(), task.id).await.expect("history");
        assert_eq!(state.status, task.expect, "{}", task.what);
        if task.expect == TaskStatus::Completed {
            let types: Vec<&str> = recorded.iter().map(|e| e.event_type.as_str()).collect();
            assert!(types.contains(&"result_verified"), "{}: {types:?}", task.what);
            // The agents outside the process report progress; the command agent only its start.
            assert!(types.contains(&"progress_reported"), "{}: {types:?}", task.what);
            let output = state.output.expect("an output").to_string();
            assert!(output.contains("[REDACTED"), "{}: {output}", task.what);
        }
    }

    // Webhooks: one delivery per task that asked, each recorded.
    let expected_webhooks = tasks.iter().filter(|t| t.webhook).count();
    for task in tasks.iter().filter(|t| t.webhook) {
        gw.wait_for_event(&task.id.to_string(), "webhook_attempted").await;
    }
    let bodies = deliveries.lock().expect("lock").clone();
    assert_eq!(bodies.len(), expected_webhooks);
    for body in &bodies {
        leaks.check("a webhook body", body);
    }

    // The gateway's answers and streams, for every task.
    for task in &tasks {
        for format in ["json", "markdown", "html"] {
            let response = gw.get(&format!("/tasks/{}?format={format}", task.id), &admin).await;
            assert_eq!(response.status(), 200);
            leaks.check_text(
                &format!("GET /tasks/{{id}} {format} ({})", task.what),
                &response.text().await.expect("body"),
            );
        }
        let response = gw.get(&format!("/tasks/{}/events?limit=500", task.id), &admin).await;
        assert_eq!(response.status(), 200);
        leaks.check_text(
            &format!("GET /tasks/{{id}}/events ({})", task.what),
            &response.text().await.expect("body"),
        );
        let response = gw.get(&format!("/tasks/{}/stream", task.id), &admin).await;
        assert_eq!(response.status(), 200);
        let sse =
            tokio::time::timeout(WAIT, response.text()).await.expect("the SSE stream ends").expect("body");
        assert!(sse.contains("event: task_submitted"), "{sse}");
        leaks.check_text(&format!("SSE ({})", task.what), &sse);
        let mut socket = connect(&gw, task.id, &admin).await;
        for frame in read_frames(&mut socket, None).await {
            leaks.check_text(&format!("WebSocket ({})", task.what), &frame);
        }
    }
    let page = gw.list_tasks("/tasks?limit=100", &admin, tasks.len()).await;
    leaks.check_text("GET /tasks", &page.to_string());
    let agents = gw.get("/agents", &admin).await.text().await.expect("body");
    leaks.check_text("GET /agents", &agents);
    for id in ["vault-http", "vault-nats", "vault-cmd"] {
        let agent = gw.get(&format!("/agents/{id}"), &admin).await.text().await.expect("body");
        leaks.check_text(&format!("GET /agents/{id}"), &agent);
    }

    // The replay's checks, then the log at rest.
    let trusted = [federation.public_key(), gateway_key];
    for task in &tasks {
        replay_checks(log.as_ref(), task, &trusted, &federation.public_key()).await;
    }
    runtime.shutdown().await;
    let events = scan_read_all(log.as_ref(), &mut leaks).await;
    let placeholders_before_raw = leaks.placeholders;
    assert!(events > 100, "read_all saw the log: {events} events");
    match backend {
        Backend::Sqlite => {
            let dir = gw.log_file().parent().expect("the data dir").to_path_buf();
            for file in files_under(&dir) {
                let bytes = std::fs::read(&file).expect("read a file of the data dir");
                leaks.check(&format!("the file {}", file.display()), &bytes);
            }
            use sqlx::Row as _;
            let url = format!("sqlite://{}", gw.log_file().display());
            let pool = sqlx::SqlitePool::connect(&url).await.expect("sqlite");
            let rows = sqlx::query("SELECT position, payload, metadata FROM events")
                .fetch_all(&pool)
                .await
                .expect("rows");
            assert_eq!(rows.len(), events);
            for row in rows {
                let position: i64 = row.get(0);
                leaks.check(&format!("events row {position} payload"), &row.get::<Vec<u8>, _>(1));
                leaks.check_text(&format!("events row {position} metadata"), &row.get::<String, _>(2));
            }
        }
        Backend::Postgres => {
            use sqlx::Row as _;
            let pool = sqlx::PgPool::connect(postgres_url.as_deref().expect("url")).await.expect("postgres");
            let rows = sqlx::query("SELECT position, payload, metadata::text FROM events")
                .fetch_all(&pool)
                .await
                .expect("rows");
            assert_eq!(rows.len(), events);
            for row in rows {
                let position: i64 = row.get(0);
                leaks.check(&format!("events row {position} payload"), &row.get::<Vec<u8>, _>(1));
                leaks.check_text(&format!("events row {position} metadata"), &row.get::<String, _>(2));
            }
        }
        Backend::Jetstream => {
            let nats = nats_log.as_ref().expect("the NATS log");
            let mut seen = 0;
            for name in [nats.config().stream_name.clone(), nats.config().dead_letter_stream_name.clone()] {
                let Ok(mut stream) = nats.jetstream().get_stream(&name).await else { continue };
                let state = stream.info().await.expect("stream info").state.clone();
                for sequence in state.first_sequence..=state.last_sequence {
                    let Ok(message) = stream.get_raw_message(sequence).await else { continue };
                    seen += 1;
                    let place = format!("JetStream {name} #{sequence} ({})", message.subject);
                    leaks.check(&format!("{place} payload"), &message.payload);
                    leaks.check_text(&format!("{place} headers"), &format!("{:?}", message.headers));
                }
            }
            assert!(seen >= events, "every message of the stream was read: {seen} < {events}");
            for file in files_under(&server.store_dir()) {
                let bytes = std::fs::read(&file).expect("read a file of the JetStream store");
                leaks.check(&format!("the JetStream file {}", file.display()), &bytes);
            }
        }
    }

    assert!(
        leaks.placeholders > placeholders_before_raw,
        "the raw scan of {backend:?} read the redacted events"
    );

    // The audit ledger verifies, against the log too (as `pantheon audit verify` does).
    gw.stop_projections().await;
    let fresh: Arc<dyn EventLog> = match backend {
        Backend::Sqlite => store::open(&format!("sqlite://{}", gw.log_file().display())).await.expect("log"),
        Backend::Postgres => store::open(postgres_url.as_deref().expect("url")).await.expect("log"),
        Backend::Jetstream => {
            Arc::new(nats::NatsLog::connect(nats::NatsLogConfig::new(server.url())).await.expect("jetstream"))
        }
    };
    let audit = projections::Projections::new(gw.views.clone(), Arc::clone(&fresh), gw.audit_key.clone());
    audit.catch_up(projections::ProjectionName::Audit).await.expect("catch up");
    audit.seal_audit().await.expect("seal");
    let report = projections::verify_ledger(&gw.views, &gw.audit_key.public_key()).await.expect("verify");
    assert_eq!(report.problem, None, "the ledger is intact");
    assert!(report.entries > 100, "the ledger holds the tasks' events: {}", report.entries);
    let problem = projections::verify_against_log(&gw.views, fresh.as_ref()).await.expect("verify");
    assert_eq!(problem, None, "the ledger matches the log");

    // The scan itself finds a secret, whole or cut.
    let mut probe = Leaks::default();
    probe.check_text("probe", &format!("x{}", &AWS_SECRET[5..5 + WINDOW_BYTES]));
    assert_eq!(probe.found.len(), 1);
    assert!(leaks.scanned > 100_000, "the scan saw the log and the answers: {} bytes", leaks.scanned);
    assert!(
        leaks.found.is_empty(),
        "{} leak(s) on {backend:?}:\n{}",
        leaks.found.len(),
        leaks.found.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_log_or_any_answer_on_sqlite() {
    run(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_log_or_any_answer_on_postgres() {
    if !testkit::postgres::available() {
        eprintln!("skipped: no PostgreSQL server binaries (see testkit::postgres)");
        return;
    }
    run(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_log_or_any_answer_on_jetstream() {
    run(Backend::Jetstream).await;
}
