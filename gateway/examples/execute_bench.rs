//! Synchronous execute through the gateway next to submitting directly on the log, in one
//! run, with the real pipeline (`actors::Runtime`) and its echo agent on a fresh SQLite file:
//! requests per second and p50/p99 latency at each concurrency level.
//!
//! ```text
//! cargo run --release -p gateway --example execute_bench -- [TASKS_PER_LEVEL] [LEVELS…]
//! ```
//! Defaults: 500 tasks, levels 1 and 64. The direct path is `Runtime::submit` +
//! `Runtime::wait_final` (what an in-process producer does); the gateway path is an HTTP/1.1
//! `POST /tasks/execute` with a bearer token over loopback, which admits, signs, appends and
//! waits through the gateway's own log follower.

use std::sync::Arc;
use std::time::{Duration, Instant};

use events::{KeyPair, TaskSpec};
use gateway::{AuthConfig, GatewayConfig, VerifyingKey};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SECRET: &[u8] = b"benchmark secret, benchmark secret";

struct Level {
    path: &'static str,
    concurrency: usize,
    tasks: usize,
    seconds: f64,
    latencies_ms: Vec<f64>,
}

impl Level {
    fn print(&self) {
        let mut sorted = self.latencies_ms.clone();
        sorted.sort_by(|a, b| a.total_cmp(b));
        let at =
            |q: f64| sorted.get(((sorted.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0.0);
        println!(
            "{:<8} c={:<3} tasks={:<5} {:>8.1} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms",
            self.path,
            self.concurrency,
            self.tasks,
            self.tasks as f64 / self.seconds,
            at(0.5),
            at(0.99)
        );
    }
}

async fn run<F, Fut>(path: &'static str, tasks: usize, concurrency: usize, one: F) -> Level
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let one = Arc::new(one);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (one, next) = (one.clone(), next.clone());
        workers.spawn(async move {
            let mut latencies = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < tasks {
                let t = Instant::now();
                one().await;
                latencies.push(t.elapsed().as_secs_f64() * 1_000.0);
            }
            latencies
        });
    }
    let mut latencies_ms = Vec::with_capacity(tasks);
    while let Some(done) = workers.join_next().await {
        latencies_ms.extend(done.expect("worker"));
    }
    Level { path, concurrency, tasks, seconds: started.elapsed().as_secs_f64(), latencies_ms }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let tasks: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(500);
    let mut levels: Vec<usize> = args.filter_map(|a| a.parse().ok()).collect();
    if levels.is_empty() {
        levels = vec![1, 64];
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("bench.db").display());
    let log = store::open(&url).await.expect("log");

    let gateway_key = KeyPair::generate();
    let mut config = actors::Config::default();
    config.producers.push(actors::config::ProducerConfig {
        name: "gateway".into(),
        public_key: gateway_key.public_key(),
    });
    let mut options = actors::RuntimeOptions::new(log.clone(), Arc::new(KeyPair::generate()));
    options.config = config;
    options.next_is_cancel_safe = true;
    let runtime = Arc::new(actors::Runtime::start(options).await.expect("pipeline"));

    let mut gateway_config = GatewayConfig::new(
        "127.0.0.1:0".parse().expect("addr"),
        AuthConfig::with_keys(vec![VerifyingKey::hs256(SECRET)]),
        gateway_key,
        b"benchmark webhook secret".to_vec(),
    );
    gateway_config.rate_limits.per_principal = gateway::Limit::Unlimited;
    gateway_config.rate_limits.per_ip = gateway::Limit::Unlimited;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(gateway::serve_on(listener, gateway_config, log.clone(), async move {
        let _ = stopped.await;
    }));
    gateway::webhooks::install_crypto_provider();
    let token = gateway::auth::issue_hs256_token(SECRET, "bench", &["producer"], 3_600).expect("token");
    let http = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(256).build().expect("client");
    let execute_url = format!("http://{addr}/tasks/execute");
    let body = serde_json::json!({"capability": "echo", "description": "benchmark task"}).to_string();

    let direct = {
        let runtime = runtime.clone();
        move || {
            let runtime = runtime.clone();
            async move {
                let id = runtime.submit(TaskSpec::new("echo", "benchmark task")).await.expect("submit");
                let state = runtime.wait_final(id, Duration::from_secs(60)).await.expect("wait");
                assert!(state.status.is_final());
            }
        }
    };
    let through_gateway = {
        let (http, execute_url, token, body) =
            (http.clone(), execute_url.clone(), token.clone(), body.clone());
        move || {
            let (http, execute_url, token, body) =
                (http.clone(), execute_url.clone(), token.clone(), body.clone());
            async move {
                let response = http
                    .post(&execute_url)
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .expect("request");
                assert_eq!(response.status(), 200);
                let _ = response.bytes().await;
            }
        }
    };
    // Warm-up: connections, caches, the SQLite file.
    run("warmup", 50.min(tasks), 4, direct.clone()).await;
    run("warmup", 50.min(tasks), 4, through_gateway.clone()).await;
    println!(
        "{tasks} tasks per level, echo agent, SQLite file, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for &concurrency in &levels {
        run("direct", tasks, concurrency, direct.clone()).await.print();
        run("gateway", tasks, concurrency, through_gateway.clone()).await.print();
    }
    let _ = stop.send(());
    let _ = server.await;
    if let Ok(runtime) = Arc::try_unwrap(runtime) {
        runtime.shutdown().await;
    }
}
