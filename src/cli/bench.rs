//! `pantheon bench`: tasks per second and submit → result latency (p50, p99) through the whole
//! pipeline with the echo agent, at each concurrency asked for, then the resident memory with
//! many tasks in flight. Runs the pipeline in this process: on a fresh SQLite file in a temp
//! dir by default (never the data dir's), or on `--nats` / `--database`. Every figure comes with
//! the machine's load average (one minute) taken when it was measured: on a shared machine the
//! figures mean little without it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actors::config::AgentConfig;
use actors::{Config, Runtime};
use anyhow::Context as _;
use clap::{Args, Subcommand};
use events::{KeyPair, TaskSpec};

use super::up::{BackendArgs, open_backend, runtime_options};
use crate::Cli;

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Tasks per concurrency level.
    #[arg(long, default_value_t = 2_000)]
    pub(crate) tasks: usize,
    /// Concurrency levels (comma-separated): tasks submitted and awaited at once.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 64])]
    pub(crate) concurrency: Vec<usize>,
    /// Tasks to put in flight at once for the memory measurement: a round of this many and a
    /// round of twice as many, each in a fresh process (0 to skip).
    #[arg(long, default_value_t = 10_000)]
    pub(crate) in_flight: usize,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
    /// Internal: run one memory round of this many tasks in this process (a fresh one, which
    /// `--in-flight` starts for each round) and print it as JSON.
    #[arg(long, hide = true)]
    pub(crate) memory_round: Option<usize>,
    #[command(flatten)]
    pub(crate) backend: BackendArgs,
    #[command(subcommand)]
    pub(crate) command: Option<BenchCommand>,
}

/// Benchmarks other than the pipeline's.
#[derive(Debug, Clone, Subcommand)]
pub(crate) enum BenchCommand {
    /// Precision, recall and false-positive rate of the security scanner per category on the
    /// labelled corpora (prompt injection, secrets, PII), and its throughput.
    Scan(ScanArgs),
    /// Workflow runs with the echo agent: a 3-step chain per concurrency, a fan-out and its
    /// fan-in, and the cost as runs accumulate.
    Workflow(super::bench_workflow::WorkflowBenchArgs),
}

#[derive(Debug, Clone, Args)]
pub(crate) struct ScanArgs {
    /// Directory of labelled injection corpora (`*.jsonl`). Default: the corpora vendored in
    /// the source tree (`security/testdata/injection`).
    #[arg(long)]
    pub(crate) corpus: Option<std::path::PathBuf>,
}

/// `pantheon bench scan`: runs `security_bench` and prints its table.
fn run_scan(args: &ScanArgs) -> anyhow::Result<()> {
    let dir = args.corpus.clone().unwrap_or_else(|| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("security").join("testdata").join("injection")
    });
    let scanner = security::Scanner::new(security::ScanConfig::default())?;
    let report = security_bench::run(&scanner, &dir)?;
    print!("{report}");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    print!("\n{}", security_bench::throughput_table(&security_bench::text_throughput(&scanner, root)));
    Ok(())
}

/// Resident set size of this process, bytes (Linux), 0 elsewhere.
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()))
        })
        .map_or(0, |kb| kb * 1_024)
}

/// The one-minute load average (Linux), 0 elsewhere.
pub(crate) fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|l| l.parse().ok()))
        .unwrap_or(0.0)
}

/// Tasks the completion phase has finished since this runtime started.
async fn completed(runtime: &Runtime) -> u64 {
    runtime.handled().await.into_iter().find(|(phase, _)| *phase == "completion").map_or(0, |(_, n)| n)
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

async fn run_level(
    runtime: &Arc<Runtime>,
    tasks: usize,
    concurrency: usize,
) -> anyhow::Result<serde_json::Value> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (runtime, next) = (Arc::clone(runtime), Arc::clone(&next));
        workers.spawn(async move {
            let mut latencies = Vec::new();
            let mut failed = 0usize;
            while next.fetch_add(1, Ordering::Relaxed) < tasks {
                let t0 = Instant::now();
                let task = runtime.submit(TaskSpec::new("echo", "benchmark task")).await?;
                let state = runtime.wait_final(task, Duration::from_secs(60)).await?;
                if state.status != events::task::TaskStatus::Completed {
                    failed += 1;
                }
                latencies.push(t0.elapsed());
            }
            anyhow::Ok((latencies, failed))
        });
    }
    let mut latencies = Vec::with_capacity(tasks);
    let mut failed = 0;
    while let Some(done) = workers.join_next().await {
        let (mut l, f) = done.context("a bench worker panicked")??;
        latencies.append(&mut l);
        failed += f;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let ms = |d: Duration| (d.as_secs_f64() * 1_000.0 * 100.0).round() / 100.0;
    Ok(serde_json::json!({
        "concurrency": concurrency,
        "tasks": latencies.len(),
        "failed": failed,
        "seconds": (elapsed.as_secs_f64() * 100.0).round() / 100.0,
        "tasks_per_second": (latencies.len() as f64 / elapsed.as_secs_f64()).round(),
        "p50_ms": ms(percentile(&latencies, 0.50)),
        "p99_ms": ms(percentile(&latencies, 0.99)),
        "load_average": load_average(),
    }))
}

/// Tasks submitted at once by the memory measurement: enough for submissions to outpace the
/// pipeline, so that the tasks in flight pile up to (nearly) the number asked for. On SQLite a
/// submission waits in the writer's queue behind the phases' appends, so 64 submitters got
/// about one task in seven (at most about 700 in flight); 512 take enough of the queue.
const IN_FLIGHT_SUBMITTERS: usize = 512;

/// How long a memory round lets the pipeline settle after its warm-up burst before it reads
/// the RSS it counts the round's tasks against.
const WARM_SETTLE_MS: u64 = 500;

/// How often the memory measurement samples the RSS and the tasks in flight.
const IN_FLIGHT_SAMPLE_MS: u64 = 20;

async fn run_in_flight(runtime: &Arc<Runtime>, count: usize) -> anyhow::Result<serde_json::Value> {
    let baseline = rss_bytes();
    let done_before = completed(runtime).await;
    let started = Instant::now();
    let submitted = Arc::new(AtomicUsize::new(0));
    // Sampled while the tasks are submitted and while they drain: the peak RSS, and the most
    // tasks submitted and not yet completed at one time.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (stop, runtime, submitted) = (Arc::clone(&stop), Arc::clone(runtime), Arc::clone(&submitted));
        tokio::spawn(async move {
            // The peak over the whole run, and the RSS when the most tasks were in flight (a
            // backlog drains for a while after it peaks, and the pipeline's working memory
            // while it drains is in the peak but not in the tasks).
            let (mut peak, mut in_flight_max, mut rss_at_most) = (0, 0u64, 0);
            while !stop.load(Ordering::Relaxed) {
                let rss = rss_bytes();
                peak = peak.max(rss);
                let done = completed(&runtime).await.saturating_sub(done_before);
                let in_flight = (submitted.load(Ordering::Relaxed) as u64).saturating_sub(done);
                if in_flight > in_flight_max || (in_flight == in_flight_max && rss > rss_at_most) {
                    in_flight_max = in_flight;
                    rss_at_most = rss;
                }
                tokio::time::sleep(Duration::from_millis(IN_FLIGHT_SAMPLE_MS)).await;
            }
            (peak, in_flight_max, rss_at_most)
        })
    };
    let next = Arc::new(AtomicUsize::new(0));
    let mut submitters = tokio::task::JoinSet::new();
    for _ in 0..IN_FLIGHT_SUBMITTERS {
        let (runtime, next, submitted) = (Arc::clone(runtime), Arc::clone(&next), Arc::clone(&submitted));
        submitters.spawn(async move {
            let mut ids = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < count {
                ids.push(runtime.submit(TaskSpec::new("echo", "in-flight task")).await?);
                submitted.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(ids)
        });
    }
    let mut ids = Vec::with_capacity(count);
    while let Some(done) = submitters.join_next().await {
        ids.extend(done.context("a bench submitter panicked")??);
    }
    let submitted_in = started.elapsed();
    for id in &ids {
        runtime.wait_final(*id, Duration::from_secs(600)).await?;
    }
    stop.store(true, Ordering::Relaxed);
    let (peak, in_flight_max, rss_at_most) = sampler.await.unwrap_or((0, 0, 0));
    let peak = peak.max(rss_bytes());
    let elapsed = started.elapsed();
    let grown = peak.saturating_sub(baseline) as f64;
    Ok(serde_json::json!({
        "tasks": count,
        "submitted_in_seconds": (submitted_in.as_secs_f64() * 100.0).round() / 100.0,
        "drained_in_seconds": (elapsed.as_secs_f64() * 100.0).round() / 100.0,
        "rss_baseline_mib": baseline / (1024 * 1024),
        "rss_peak_mib": peak / (1024 * 1024),
        "rss_peak_bytes": peak,
        "rss_at_in_flight_max_bytes": rss_at_most,
        "rss_at_in_flight_max_mib": rss_at_most / (1024 * 1024),
        "rss_bytes_per_task": (grown / count.max(1) as f64).round(),
        "in_flight_max": in_flight_max,
        "rss_bytes_per_in_flight_task": (grown / in_flight_max.max(1) as f64).round(),
        "rss_bytes_per_in_flight_task_at_most": (rss_at_most.saturating_sub(baseline) as f64
            / in_flight_max.max(1) as f64)
            .round(),
        "load_average": load_average(),
    }))
}

/// One memory round: the RSS of a pipeline that has started (scanners built, connections
/// open) but has not been under load, then of one at rest after a first burst (a quarter of
/// the round), then the round itself. Its tasks are counted against the RSS at rest, as a
/// long-running `up` keeps its working memory (caches, read-ahead, the allocator's arenas)
/// between bursts; the RSS before any load is reported beside it.
async fn warm_then_in_flight(runtime: &Arc<Runtime>, count: usize) -> anyhow::Result<serde_json::Value> {
    let cold = rss_bytes();
    run_in_flight(runtime, (count / 4).max(1)).await?;
    tokio::time::sleep(Duration::from_millis(WARM_SETTLE_MS)).await;
    let warm = rss_bytes();
    let mut round = run_in_flight(runtime, count).await?;
    round["rss_cold_bytes"] = cold.into();
    round["rss_cold_mib"] = (cold / (1024 * 1024)).into();
    round["rss_warm_bytes"] = warm.into();
    let in_flight = round["in_flight_max"].as_f64().unwrap_or(0.0).max(1.0);
    let at_most = round["rss_at_in_flight_max_bytes"].as_u64().unwrap_or(0);
    round["rss_bytes_per_in_flight_task_over_cold"] =
        (at_most.saturating_sub(cold) as f64 / in_flight).round().into();
    Ok(round)
}

pub(crate) async fn run(cli: &Cli, args: &BenchArgs) -> anyhow::Result<()> {
    if let Some(BenchCommand::Scan(scan)) = &args.command {
        return run_scan(scan);
    }
    let given_database = cli.database.clone();
    let temp = tempdir_for_bench()?;
    let bench_cli;
    let cli = if cli.database.is_none() && args.backend.nats.is_none() {
        bench_cli = Cli {
            data_dir: temp.clone(),
            database: Some(format!("sqlite://{}?mode=rwc", temp.join("bench.db").display())),
            command: crate::Command::Bench(BenchArgs {
                tasks: args.tasks,
                concurrency: args.concurrency.clone(),
                in_flight: args.in_flight,
                json: args.json,
                memory_round: args.memory_round,
                backend: args.backend.clone(),
                command: args.command.clone(),
            }),
        };
        &bench_cli
    } else {
        cli
    };
    let backend = open_backend(cli, &args.backend).await?;
    let key = Arc::new(KeyPair::generate());
    let mut echo = AgentConfig::echo();
    echo.max_concurrency = 100_000;
    let config = Config { agents: vec![echo], ..Config::default() };
    let mut options = runtime_options(&backend, key, config);
    options.poll_interval = None; // everything happens in this process
    let runtime = Arc::new(Runtime::start(options).await.context("cannot start the pipeline")?);
    if !args.json {
        eprintln!(
            "bench on {} ({} cores)",
            backend.description,
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
    }
    if let Some(BenchCommand::Workflow(workflow)) = &args.command {
        let outcome = super::bench_workflow::run(Arc::clone(runtime.log()), workflow, args.json).await;
        if let Ok(runtime) = Arc::try_unwrap(runtime) {
            runtime.shutdown().await;
        }
        let _ = std::fs::remove_dir_all(&temp);
        return outcome;
    }
    // Warm up: the first tasks pay for connections and caches.
    run_level(&runtime, 20.min(args.tasks), 4).await?;
    if let Some(count) = args.memory_round {
        let round = warm_then_in_flight(&runtime, count).await;
        if let Ok(runtime) = Arc::try_unwrap(runtime) {
            runtime.shutdown().await;
        }
        let _ = std::fs::remove_dir_all(&temp);
        out!("{}", round?);
        return Ok(());
    }
    let mut levels = Vec::new();
    for &concurrency in &args.concurrency {
        let level = run_level(&runtime, args.tasks, concurrency).await?;
        if !args.json {
            out!(
                "concurrency {:>4}: {:>6} tasks/s, p50 {:>8} ms, p99 {:>8} ms ({} tasks, {} failed, {} s, load {})",
                level["concurrency"],
                level["tasks_per_second"],
                level["p50_ms"],
                level["p99_ms"],
                level["tasks"],
                level["failed"],
                level["seconds"],
                level["load_average"]
            );
        }
        levels.push(level);
    }
    // This process's pipeline stops before the memory rounds: on a shared log (NATS) it would
    // take some of a round's tasks, and the round would see them end only by polling.
    match Arc::try_unwrap(runtime) {
        Ok(runtime) => runtime.shutdown().await,
        Err(_) => tracing::warn!("bench runtime still shared at exit"),
    }
    let memory = if args.in_flight > 0 {
        // Two rounds, `--in-flight` tasks and then twice as many, each in a process of its own
        // started for it (a round run after another found the allocator holding what the first
        // one freed). What a busy pipeline uses whatever its backlog (handlers at work in each
        // phase, read-ahead, the subscription ring, the fold cache, SQLite's page caches, the
        // allocator's working set) is in both rounds, so the difference between them over the
        // difference in tasks in flight is what one more task in flight costs. Between two
        // rounds of the same size the RSS at the most in flight varies by a few MiB, which is
        // why the second round is twice the first rather than a little larger.
        let round = memory_round(given_database.as_deref(), &args.backend, args.in_flight)?;
        let double =
            memory_round(given_database.as_deref(), &args.backend, args.in_flight.saturating_mul(2))?;
        for memory in [&round, &double] {
            if !args.json {
                out!(
                    "{} tasks submitted at once: RSS {} MiB before any load, {} MiB at rest after a first burst, {} MiB with the most in flight ({}), peak {} MiB; per task in flight: {} bytes over the RSS at rest, {} over the RSS before any load (submitted in {} s, all done in {} s, load {})",
                    memory["tasks"],
                    memory["rss_cold_mib"],
                    memory["rss_baseline_mib"],
                    memory["rss_at_in_flight_max_mib"],
                    memory["in_flight_max"],
                    memory["rss_peak_mib"],
                    memory["rss_bytes_per_in_flight_task_at_most"],
                    memory["rss_bytes_per_in_flight_task_over_cold"],
                    memory["submitted_in_seconds"],
                    memory["drained_in_seconds"],
                    memory["load_average"]
                );
            }
        }
        let bytes = |m: &serde_json::Value, key: &str| m[key].as_f64().unwrap_or(0.0);
        let in_flight = |m: &serde_json::Value| m["in_flight_max"].as_f64().unwrap_or(0.0);
        let more_tasks = in_flight(&double) - in_flight(&round);
        // What one more task in flight costs, from the RSS when the most were in flight, and
        // from the peaks (which add the working memory of the drain that follows).
        let marginal = |key: &str| {
            (more_tasks >= 1.0).then(|| ((bytes(&double, key) - bytes(&round, key)) / more_tasks).round())
        };
        let at_most = marginal("rss_at_in_flight_max_bytes");
        let by_peak = marginal("rss_peak_bytes");
        if !args.json {
            let shown = |value: Option<f64>| match value {
                Some(b) if b > 0.0 => format!("{b} bytes"),
                Some(_) => "none measurable".to_string(),
                None => "not measurable".to_string(),
            };
            out!(
                "RSS per additional task in flight: {} ({} → {} MiB for {} → {} in flight); from the peaks: {} ({} → {} MiB)",
                shown(at_most),
                round["rss_at_in_flight_max_mib"],
                double["rss_at_in_flight_max_mib"],
                in_flight(&round),
                in_flight(&double),
                shown(by_peak),
                round["rss_peak_mib"],
                double["rss_peak_mib"]
            );
        }
        Some(serde_json::json!({
            "round": round,
            "double": double,
            "rss_bytes_per_additional_in_flight_task": at_most,
            "rss_bytes_per_additional_in_flight_task_from_peaks": by_peak,
        }))
    } else {
        None
    };
    if args.json {
        out!(
            "{}",
            serde_json::json!({ "backend": backend.description, "levels": levels, "in_flight": memory })
        );
    }
    let _ = std::fs::remove_dir_all(&temp);
    Ok(())
}

/// Runs one memory round of `count` tasks in a new `pantheon bench` process on the same
/// backend (a fresh temp database on the embedded default) and returns what it measured.
fn memory_round(
    database: Option<&str>,
    backend: &BackendArgs,
    count: usize,
) -> anyhow::Result<serde_json::Value> {
    let mut command =
        std::process::Command::new(std::env::current_exe().context("cannot find this program")?);
    if let Some(database) = database {
        command.args(["--database", database]);
    }
    command.args(["bench", "--json", "--concurrency", "1", "--tasks", "1"]);
    command.args(["--memory-round", &count.to_string()]);
    if let Some(nats) = &backend.nats {
        command.args(["--nats", nats]);
    }
    let output = command
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("cannot start a memory round")?;
    if !output.status.success() {
        anyhow::bail!("the memory round of {count} tasks failed ({})", output.status);
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let last = text.lines().rev().find(|line| !line.trim().is_empty()).unwrap_or_default();
    serde_json::from_str(last).with_context(|| format!("the memory round printed {last:?}"))
}

fn tempdir_for_bench() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("pantheon-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}
