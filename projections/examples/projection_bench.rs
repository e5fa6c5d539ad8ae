//! Projection throughput, rebuild time and audit verification speed.
//!
//! ```text
//! cargo run --release -p projections --example projection_bench -- [EVENTS] [postgres|sqlite]
//! ```
//! Generates about `EVENTS` task events (default 100,000: tasks of ~11 events through a
//! real log), then times, per projection, a rebuild from position 0 (events applied per
//! second), all four rebuilding at once, and the audit ledger's full verification (from the
//! database, and the hashing alone in memory). PostgreSQL runs on a private server with its
//! default durability (every commit flushed).

#[path = "../tests/common/mod.rs"]
mod common;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::Instant;

use common::{Outcome, World, fail, ok};
use events::Hash;
use events::task::FailureCause;
use projections::audit::AuditEntry;
use projections::merkle::Frontier;
use projections::{ProjectionName, verify_ledger};
use testkit::postgres::{Durability, PgServer};

const T0: i64 = 1_700_000_000_000;

/// Full verifications timed back to back: on a shared machine one run says little, the
/// median of several says more.
const VERIFY_RUNS: usize = 5;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let events: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let backend = args.next().unwrap_or_else(|| "postgres".into());
    let _server;
    let world = if backend == "sqlite" {
        World::sqlite().await
    } else {
        let server = PgServer::start_with(Durability::Durable).expect("start PostgreSQL");
        let url = server.fresh_database().await.expect("database");
        _server = server;
        World::open(url, None).await
    };
    let world = Arc::new(world);
    println!("backend: {backend}; generating about {events} events…");

    // Generate: four writers, one append per task (all of its events).
    let started = Instant::now();
    let tasks = events / 10;
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let world = Arc::clone(&world);
            tokio::spawn(async move {
                for i in (w..tasks).step_by(4) {
                    let at = T0 + i as i64 * 100;
                    let agent = ["scribe", "polyglot", "oracle", "flaky"][(i % 4) as usize];
                    let outcome = match i % 10 {
                        0 => fail(),
                        1 => Outcome::Timeout { timeout_ms: 30_000 },
                        2 => Outcome::Failure { cause: FailureCause::Transport, after_ms: 3 },
                        _ => ok(50 + (i % 500) as i64),
                    };
                    let description = format!("summarize invoice {i} for customer {}", i % 97);
                    world.task("summarize", &description, "bench", agent, outcome, at).await;
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    let head = world.log.read_all(1, 1).await.expect("read").first().map_or(0, |e| e.position);
    let total = count_events(&world).await;
    println!("generated {total} events in {:.1?} (first position {head})\n", started.elapsed());

    let projections = world.projections();
    println!("| projection | events applied | time | events/s |");
    println!("|---|---:|---:|---:|");
    for name in ProjectionName::ALL {
        let started = Instant::now();
        let applied = projections.rebuild(name).await.expect("rebuild");
        let elapsed = started.elapsed();
        println!(
            "| {name} (rebuild from 0) | {applied} | {:.2} s | {:.0} |",
            elapsed.as_secs_f64(),
            applied as f64 / elapsed.as_secs_f64()
        );
    }
    let started = Instant::now();
    let (a, b, c, d) = tokio::join!(
        projections.rebuild(ProjectionName::Tasks),
        projections.rebuild(ProjectionName::Reputation),
        projections.rebuild(ProjectionName::Health),
        projections.rebuild(ProjectionName::Audit),
    );
    let applied = a.expect("tasks") + b.expect("reputation") + c.expect("health") + d.expect("audit");
    let elapsed = started.elapsed();
    println!(
        "| all four at once | {applied} | {:.2} s | {:.0} |",
        elapsed.as_secs_f64(),
        applied as f64 / elapsed.as_secs_f64()
    );
    projections.seal_audit().await.expect("seal");

    println!();
    let mut rates = Vec::with_capacity(VERIFY_RUNS);
    let mut report = None;
    for run in 1..=VERIFY_RUNS {
        let started = Instant::now();
        let verified = verify_ledger(&world.db, &world.key.public_key()).await.expect("verify");
        let elapsed = started.elapsed();
        assert!(verified.is_intact(), "{verified:?}");
        let rate = verified.entries as f64 / elapsed.as_secs_f64();
        println!(
            "audit verify (from the database), run {run}: {} entries, {} tree heads in {:.3} s = {rate:.0} entries/s",
            verified.entries,
            verified.tree_heads,
            elapsed.as_secs_f64(),
        );
        rates.push(rate);
        report = Some(verified);
    }
    let report = report.expect("at least one run");
    rates.sort_by(f64::total_cmp);
    println!(
        "audit verify (from the database): median {:.0} entries/s, best {:.0} entries/s over {VERIFY_RUNS} runs",
        rates[rates.len() / 2],
        rates[rates.len() - 1]
    );
    let entries = load_entries(&world).await;
    let started = Instant::now();
    let (mut frontier, mut last) = (Frontier::default(), Hash::ZERO);
    for entry in &entries {
        assert_eq!(entry.prev_hash, last);
        assert_eq!(entry.compute_hash(), entry.entry_hash);
        last = entry.entry_hash;
        frontier.push(last);
    }
    assert_eq!(frontier.root(), report.root_hash);
    let elapsed = started.elapsed();
    println!(
        "audit verify (hash chain + Merkle root in memory): {} entries in {:.3} s = {:.0} entries/s",
        entries.len(),
        elapsed.as_secs_f64(),
        entries.len() as f64 / elapsed.as_secs_f64()
    );
}

async fn count_events(world: &World) -> u64 {
    let (mut from, mut count) = (1, 0u64);
    loop {
        let page = world.log.read_all(from, 1_000).await.expect("read");
        let Some(last) = page.last() else { return count };
        count += page.len() as u64;
        from = last.position + 1;
    }
}

async fn load_entries(world: &World) -> Vec<AuditEntry> {
    type Row = (i64, i64, String, String, String, String, i64, Option<String>, Vec<u8>, Vec<u8>, Vec<u8>);
    const SQL: &str = "SELECT seq, position, event_id, actor, resource, operation, occurred_at_ms, justification, \
         event_hash, prev_hash, entry_hash FROM audit_entries ORDER BY seq";
    let rows: Vec<Row> = if world.db.is_postgres() {
        let pool = sqlx::PgPool::connect(&world.url).await.expect("connect");
        sqlx::query_as(SQL).fetch_all(&pool).await.expect("rows")
    } else {
        let pool = sqlx::SqlitePool::connect(&world.url).await.expect("connect");
        sqlx::query_as(SQL).fetch_all(&pool).await.expect("rows")
    };
    let hash = |b: Vec<u8>| Hash(b.try_into().expect("32 bytes"));
    rows.into_iter()
        .map(
            |(
                seq,
                position,
                event_id,
                actor,
                resource,
                operation,
                occurred_at_ms,
                justification,
                e,
                p,
                n,
            )| AuditEntry {
                seq: seq as u64,
                position: position as u64,
                event_id,
                actor,
                resource,
                operation,
                occurred_at_ms,
                justification,
                event_hash: hash(e),
                prev_hash: hash(p),
                entry_hash: hash(n),
            },
        )
        .collect()
}
