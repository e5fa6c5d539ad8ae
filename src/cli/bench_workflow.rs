//! `pantheon bench workflow`: workflow runs with the echo agent on the pipeline of this
//! process — a 3-step chain at each concurrency (runs/s, p50, p99), a fan-out of `--items`
//! items with its fan-in (p50 of a few runs), and, with `--accumulate N`, the chain's cost in
//! batches as N runs pile up in the log (flat or not).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use events::{EventLog, EventType, Filter, StartFrom, SubscribeOptions, WorkflowId};
use tokio::sync::oneshot;
use workflow::{Start, StartRun};

/// The options of `pantheon bench workflow`.
#[derive(Debug, Clone, Args)]
pub(crate) struct WorkflowBenchArgs {
    /// Chain runs per concurrency level.
    #[arg(long, default_value_t = 1_000)]
    pub(crate) runs: usize,
    /// Concurrency levels (comma-separated): runs started and awaited at once.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 64])]
    pub(crate) concurrency: Vec<usize>,
    /// Items of the fan-out run (0 to skip).
    #[arg(long, default_value_t = 100)]
    pub(crate) items: usize,
    /// Chain runs to pile up after the levels, measured in batches of 1,000 at concurrency
    /// 64 (0 to skip): is a run's cost flat as runs accumulate?
    #[arg(long, default_value_t = 0)]
    pub(crate) accumulate: usize,
}

const CHAIN: &str = r#"
name: bench-chain
steps:
  - {name: first, capability: echo, input: "${input}"}
  - {name: second, capability: echo, needs: [first], input: "${steps.first.output}"}
  - {name: third, capability: echo, needs: [second], input: "${steps.second.output}"}
output: "${steps.third.output}"
"#;

fn fan_out(items: usize) -> String {
    format!(
        r#"
name: bench-fan-out
max_items: {items}
steps:
  - {{name: fan, capability: echo, for_each: "input", input: "${{item}}"}}
  - {{name: count, capability: echo, needs: [fan], input: "${{len(steps.fan.output)}}"}}
output: "${{steps.count.output}}"
"#,
        items = items.max(1)
    )
}

/// Waiters on runs' ends, fed by one subscription to the runs' final events.
#[derive(Default)]
struct Ends {
    waiting: std::sync::Mutex<HashMap<WorkflowId, oneshot::Sender<String>>>,
    early: std::sync::Mutex<HashMap<WorkflowId, String>>,
}

impl Ends {
    async fn follow(log: Arc<dyn EventLog>) -> anyhow::Result<Arc<Self>> {
        let types = ["workflow_completed", "workflow_failed", "workflow_cancelled"]
            .into_iter()
            .map(EventType::new)
            .collect::<Result<Vec<_>, _>>()?;
        let options = SubscribeOptions {
            filter: Filter::category("workflow").with_types(types),
            start: StartFrom::End,
        };
        let name = format!("bench-runs-{}", uuid::Uuid::new_v4().simple());
        let mut subscription = log.subscribe(&name, options).await?;
        let ends = Arc::new(Self::default());
        let feed = Arc::clone(&ends);
        tokio::spawn(async move {
            while let Ok(delivery) = subscription.next().await {
                let position = delivery.event.position;
                if let Ok(run) = delivery.event.stream_id.entity_id().parse::<WorkflowId>() {
                    let kind = delivery.event.event_type.to_string();
                    let waiter = feed.waiting.lock().ok().and_then(|mut w| w.remove(&run));
                    match waiter {
                        Some(waiter) => {
                            let _ = waiter.send(kind);
                        }
                        None => {
                            if let Ok(mut early) = feed.early.lock() {
                                early.insert(run, kind);
                            }
                        }
                    }
                }
                let _ = subscription.ack(position).await;
            }
        });
        Ok(ends)
    }

    async fn wait(&self, run: WorkflowId) -> anyhow::Result<String> {
        let (tx, rx) = oneshot::channel();
        if let Some(kind) = self.early.lock().ok().and_then(|mut e| e.remove(&run)) {
            return Ok(kind);
        }
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.insert(run, tx);
        }
        // The end may have come between the two looks.
        if let Some(kind) = self.early.lock().ok().and_then(|mut e| e.remove(&run)) {
            return Ok(kind);
        }
        Ok(tokio::time::timeout(Duration::from_secs(120), rx)
            .await
            .context("a run did not end in 2 minutes")??)
    }
}

async fn start_run(log: &dyn EventLog, name: &str, input: serde_json::Value) -> anyhow::Result<WorkflowId> {
    let request = StartRun {
        what: Start::Named(name.to_string(), None),
        input,
        submitter: "bench".into(),
        idempotency_key: None,
        offered: None,
        run_id: None,
        parent: None,
        webhook_url: None,
    };
    Ok(workflow::start(log, request).await?.0)
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000.0 * 100.0).round() / 100.0
}

/// `runs` chains at `concurrency`: runs/s, p50 and p99.
async fn chain_level(
    log: &Arc<dyn EventLog>,
    ends: &Arc<Ends>,
    runs: usize,
    concurrency: usize,
) -> anyhow::Result<serde_json::Value> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (log, ends, next) = (Arc::clone(log), Arc::clone(ends), Arc::clone(&next));
        workers.spawn(async move {
            let (mut latencies, mut failed) = (Vec::new(), 0usize);
            while next.fetch_add(1, Ordering::Relaxed) < runs {
                let t0 = Instant::now();
                let run = start_run(log.as_ref(), "bench-chain", serde_json::json!("hello")).await?;
                if ends.wait(run).await? != "workflow_completed" {
                    failed += 1;
                }
                latencies.push(t0.elapsed());
            }
            anyhow::Ok((latencies, failed))
        });
    }
    let (mut latencies, mut failed) = (Vec::with_capacity(runs), 0);
    while let Some(done) = workers.join_next().await {
        let (mut l, f) = done.context("a bench worker panicked")??;
        latencies.append(&mut l);
        failed += f;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Ok(serde_json::json!({
        "concurrency": concurrency,
        "runs": latencies.len(),
        "failed": failed,
        "seconds": (elapsed.as_secs_f64() * 100.0).round() / 100.0,
        "runs_per_second": (latencies.len() as f64 / elapsed.as_secs_f64()).round(),
        "p50_ms": ms(super::bench::percentile(&latencies, 0.50)),
        "p99_ms": ms(super::bench::percentile(&latencies, 0.99)),
        "load_average": super::bench::load_average(),
    }))
}

/// Runs the workflow benchmark on `log` (a pipeline runs in this process).
pub(crate) async fn run(log: Arc<dyn EventLog>, args: &WorkflowBenchArgs, json: bool) -> anyhow::Result<()> {
    let chain = workflow::parse(CHAIN).map_err(|e| anyhow::anyhow!("{e}"))?;
    workflow::register(log.as_ref(), chain, "bench").await?;
    if args.items > 0 {
        let definition = workflow::parse(&fan_out(args.items)).map_err(|e| anyhow::anyhow!("{e}"))?;
        workflow::register(log.as_ref(), definition, "bench").await?;
    }
    let ends = Ends::follow(Arc::clone(&log)).await?;
    chain_level(&log, &ends, 20, 4).await?; // warm up
    let mut report = serde_json::json!({ "levels": [] });
    for &concurrency in &args.concurrency {
        let level = chain_level(&log, &ends, args.runs, concurrency).await?;
        if !json {
            out!(
                "chain of 3, concurrency {:>3}: {:>6} runs/s, p50 {:>8} ms, p99 {:>8} ms ({} runs, {} failed, load {})",
                level["concurrency"],
                level["runs_per_second"],
                level["p50_ms"],
                level["p99_ms"],
                level["runs"],
                level["failed"],
                level["load_average"]
            );
        }
        if let Some(levels) = report["levels"].as_array_mut() {
            levels.push(level);
        }
    }
    if args.items > 0 {
        let mut took = Vec::new();
        for _ in 0..5 {
            let items: Vec<usize> = (0..args.items).collect();
            let t0 = Instant::now();
            let run = start_run(log.as_ref(), "bench-fan-out", serde_json::json!(items)).await?;
            let end = ends.wait(run).await?;
            anyhow::ensure!(end == "workflow_completed", "the fan-out run ended {end}");
            took.push(t0.elapsed());
        }
        took.sort();
        let p50 = ms(super::bench::percentile(&took, 0.5));
        if !json {
            out!(
                "fan-out of {} items and its fan-in: p50 {p50} ms over {} runs (load {})",
                args.items,
                took.len(),
                super::bench::load_average()
            );
        }
        report["fan_out"] = serde_json::json!({ "items": args.items, "p50_ms": p50, "runs": took.len() });
    }
    if args.accumulate > 0 {
        let mut batches = Vec::new();
        let mut done = 0;
        while done < args.accumulate {
            let batch = 1_000.min(args.accumulate - done);
            let level = chain_level(&log, &ends, batch, 64).await?;
            done += batch;
            if !json {
                out!(
                    "after {done:>6} runs: {:>6} runs/s, p50 {:>8} ms, p99 {:>8} ms (load {})",
                    level["runs_per_second"],
                    level["p50_ms"],
                    level["p99_ms"],
                    level["load_average"]
                );
            }
            batches.push(serde_json::json!({ "after": done, "level": level }));
        }
        report["accumulate"] = serde_json::json!(batches);
    }
    if json {
        out!("{report}");
    }
    Ok(())
}
