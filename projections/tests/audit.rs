//! The audit ledger on SQLite and on PostgreSQL: built from a real log, verified intact, then
//! tampered with directly in the database — an edit, a deletion, an insertion (naive, and with
//! the whole chain recomputed), a reordering, a truncation, forged tree heads — and the
//! verifier catches each. Proofs round-trip through JSON and are checked offline.

mod common;

use common::{World, fail, ok};
use events::{Hash, KeyPair};
use projections::audit::AuditEntry;
use projections::{ProjectionName, prove_consistency, prove_inclusion, verify_against_log, verify_ledger};

/// Tree heads every 16 entries in these tests (many heads, small ledger).
const INTERVAL: u64 = 16;

/// A world with a ledger of 14 tasks (~130 entries), heads every 16 entries and a final one.
async fn ledger(world: &World) -> u64 {
    let t0 = 1_700_000_000_000;
    for i in 0..14 {
        let outcome = if i % 4 == 3 { fail() } else { ok(100 + i) };
        world
            .task("summarize", &format!("summarize report {i}"), "alice", "echo", outcome, t0 + i * 1_000)
            .await;
    }
    let projections = world.projections().with_tree_head_interval(INTERVAL);
    projections.catch_up(ProjectionName::Audit).await.unwrap();
    projections.seal_audit().await.unwrap();
    let report = verify_ledger(&world.db, &world.key.public_key()).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert!(report.entries > 100);
    assert_eq!(report.tree_heads, report.entries / INTERVAL + u64::from(report.entries % INTERVAL != 0));
    assert_eq!(verify_against_log(&world.db, world.log.as_ref()).await.unwrap(), None);
    report.entries
}

async fn sql(world: &World, statements: &[&str]) {
    if world.db.is_postgres() {
        let pool = sqlx::PgPool::connect(&world.url).await.unwrap();
        for s in statements {
            sqlx::query(sqlx::AssertSqlSafe(s.to_string())).execute(&pool).await.unwrap();
        }
    } else {
        let pool = sqlx::SqlitePool::connect(&world.url).await.unwrap();
        for s in statements {
            sqlx::query(sqlx::AssertSqlSafe(s.to_string())).execute(&pool).await.unwrap();
        }
    }
}

async fn problem(world: &World) -> projections::LedgerProblem {
    let report = verify_ledger(&world.db, &world.key.public_key()).await.unwrap();
    let Some(problem) = report.problem.clone() else { panic!("tampering went unnoticed: {report:?}") };
    problem
}

/// Every entry, to rewrite them as an attacker who recomputes hashes would.
async fn all_entries(world: &World) -> Vec<AuditEntry> {
    let report = verify_ledger(&world.db, &world.key.public_key()).await.unwrap();
    let mut entries = Vec::new();
    for seq in 0..report.entries {
        // Inclusion proofs carry the stored entry: a convenient reader.
        entries.push(prove_inclusion(&world.db, seq).await.unwrap().entry);
    }
    entries
}

fn hex(hash: &Hash) -> String {
    hash.to_string()
}

/// Writes `entries` back, recomputing every link and hash (what an attacker with database
/// access but without the federation key can do).
async fn rewrite(world: &World, mut entries: Vec<AuditEntry>) {
    let mut prev = Hash::ZERO;
    let mut statements = vec!["DELETE FROM audit_entries".to_string()];
    for (i, entry) in entries.iter_mut().enumerate() {
        entry.seq = i as u64;
        entry.prev_hash = prev;
        entry.entry_hash = entry.compute_hash();
        prev = entry.entry_hash;
        let blob = |h: &Hash| {
            if world.db.is_postgres() { format!("'\\x{}'::bytea", hex(h)) } else { format!("X'{}'", hex(h)) }
        };
        statements.push(format!(
            "INSERT INTO audit_entries (seq, position, event_id, actor, resource, operation, occurred_at_ms, \
             justification, event_hash, prev_hash, entry_hash) VALUES ({}, {}, '{}', '{}', '{}', '{}', {}, {}, {}, {}, {})",
            entry.seq,
            entry.position,
            entry.event_id,
            entry.actor,
            entry.resource,
            entry.operation,
            entry.occurred_at_ms,
            entry.justification.as_ref().map_or("NULL".to_string(), |j| format!("'{}'", j.replace('\'', "''"))),
            blob(&entry.event_hash),
            blob(&entry.prev_hash),
            blob(&entry.entry_hash),
        ));
    }
    let refs: Vec<&str> = statements.iter().map(String::as_str).collect();
    sql(world, &refs).await;
}

async fn edit_is_caught(world: World) {
    ledger(&world).await;
    sql(&world, &["UPDATE audit_entries SET actor = 'mallory' WHERE seq = 40"]).await;
    let p = problem(&world).await;
    assert_eq!(p.entry, Some(40), "{p:?}");
    assert!(p.reason.contains("altered"), "{p:?}");
}

async fn justification_edit_is_caught(world: World) {
    ledger(&world).await;
    // Entry 3 of the first task is its selection, which carries a justification.
    sql(&world, &["UPDATE audit_entries SET justification = 'because I said so' WHERE seq = 3"]).await;
    assert_eq!(problem(&world).await.entry, Some(3));
}

async fn deletion_is_caught(world: World) {
    ledger(&world).await;
    sql(&world, &["DELETE FROM audit_entries WHERE seq = 40"]).await;
    let p = problem(&world).await;
    assert_eq!(p.entry, Some(40), "{p:?}");
    assert!(p.reason.contains("missing"), "{p:?}");
}

async fn insertion_is_caught(world: World) {
    ledger(&world).await;
    sql(
        &world,
        &[
            "UPDATE audit_entries SET seq = seq + 1000000 WHERE seq >= 40",
            "UPDATE audit_entries SET seq = seq - 999999 WHERE seq >= 1000000",
            "INSERT INTO audit_entries (seq, position, event_id, actor, resource, operation, occurred_at_ms, \
             justification, event_hash, prev_hash, entry_hash) SELECT 40, position, event_id, 'mallory', resource, \
             operation, occurred_at_ms, justification, event_hash, entry_hash, entry_hash FROM audit_entries WHERE seq = 39",
        ],
    )
    .await;
    assert_eq!(problem(&world).await.entry, Some(40));
}

async fn insertion_with_recomputed_chain_is_caught(world: World) {
    ledger(&world).await;
    let mut entries = all_entries(&world).await;
    let mut forged = entries[40].clone();
    forged.actor = "mallory".into();
    forged.operation = "agent_retired".into();
    entries.insert(40, forged);
    rewrite(&world, entries).await;
    let p = problem(&world).await;
    // The chain is consistent again; the signed root of the first head past entry 40 is not.
    assert_eq!(p.tree_size, Some(48), "{p:?}");
    assert!(p.reason.contains("rewritten"), "{p:?}");
}

async fn reordering_is_caught(world: World) {
    ledger(&world).await;
    sql(
        &world,
        &[
            "UPDATE audit_entries SET seq = -1 WHERE seq = 40",
            "UPDATE audit_entries SET seq = 40 WHERE seq = 41",
            "UPDATE audit_entries SET seq = 41 WHERE seq = -1",
        ],
    )
    .await;
    assert_eq!(problem(&world).await.entry, Some(40));
}

async fn reordering_with_recomputed_chain_is_caught(world: World) {
    ledger(&world).await;
    let mut entries = all_entries(&world).await;
    entries.swap(40, 41);
    rewrite(&world, entries).await;
    assert_eq!(problem(&world).await.tree_size, Some(48));
}

async fn truncation_is_caught(world: World) {
    let size = ledger(&world).await;
    sql(&world, &["DELETE FROM audit_entries WHERE seq >= 100"]).await;
    let p = problem(&world).await;
    assert_eq!(p.entry, Some(100), "{p:?}");
    assert_eq!(p.tree_size, Some(112), "{p:?}");
    assert!(p.reason.contains("truncated"), "{p:?} of {size}");
}

async fn forged_tree_heads_are_caught(world: World) {
    let size = ledger(&world).await;
    // An altered root under the genuine signature.
    sql(&world, &["UPDATE audit_tree_heads SET timestamp_ms = timestamp_ms + 1 WHERE tree_size = 32"]).await;
    let p = problem(&world).await;
    assert_eq!(p.tree_size, Some(32), "{p:?}");
    assert!(p.reason.contains("forged"), "{p:?}");

    // A head signed by another key over a rewritten ledger.
    let world2 = world;
    sql(&world2, &["DELETE FROM audit_tree_heads"]).await;
    let mallory = KeyPair::from_seed([66; 32]);
    let head = projections::SignedTreeHead::sign(&mallory, size, 0, Hash::ZERO);
    let bytes = |b: &[u8]| {
        if world2.db.is_postgres() {
            format!("'\\x{}'::bytea", hex_bytes(b))
        } else {
            format!("X'{}'", hex_bytes(b))
        }
    };
    let insert = format!(
        "INSERT INTO audit_tree_heads (tree_size, timestamp_ms, root_hash, public_key, signature) VALUES ({size}, 0, {}, {}, {})",
        bytes(&head.root_hash.0),
        bytes(&head.public_key.0),
        bytes(&head.signature.0)
    );
    sql(&world2, &[&insert]).await;
    let p = problem(&world2).await;
    assert!(p.reason.contains("not the federation key"), "{p:?}");
}

fn hex_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn proofs_check_offline(world: World) {
    let size = ledger(&world).await;
    let federation = world.key.public_key();
    for seq in [0, 1, 40, size - 1] {
        let proof = prove_inclusion(&world.db, seq).await.unwrap();
        let json = serde_json::to_string_pretty(&proof).unwrap();
        let back: projections::InclusionProof = serde_json::from_str(&json).unwrap();
        back.verify(&federation).unwrap();
        let mut forged = back.clone();
        forged.entry.actor = "mallory".into();
        assert!(forged.verify(&federation).is_err());
        let mut forged = back.clone();
        forged.entry.entry_hash = forged.entry.compute_hash();
        forged.entry.seq = (seq + 1) % size;
        assert!(forged.verify(&federation).is_err());
        assert!(back.verify(&KeyPair::from_seed([1; 32]).public_key()).is_err());
    }
    let consistency = prove_consistency(&world.db, 32, size).await.unwrap();
    consistency.verify(&federation).unwrap();
    let mut forged = consistency.clone();
    forged.proof.reverse();
    assert!(forged.verify(&federation).is_err() || consistency.proof.len() < 2);
    assert!(prove_inclusion(&world.db, size + 5).await.is_err());
}

async fn rebuild_gives_the_same_ledger(world: World) {
    ledger(&world).await;
    let projections = world.projections().with_tree_head_interval(INTERVAL);
    let before = projections.digest(ProjectionName::Audit).await.unwrap();
    projections.rebuild(ProjectionName::Audit).await.unwrap();
    projections.seal_audit().await.unwrap();
    assert_eq!(projections.digest(ProjectionName::Audit).await.unwrap(), before);
    assert!(verify_ledger(&world.db, &world.key.public_key()).await.unwrap().is_intact());
}

macro_rules! on_both {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $case() { super::$case(super::World::sqlite().await).await } )*
        }
        mod postgres {
            $( #[tokio::test] async fn $case() { super::$case(super::World::postgres().await).await } )*
        }
    };
}

on_both!(
    edit_is_caught,
    justification_edit_is_caught,
    deletion_is_caught,
    insertion_is_caught,
    insertion_with_recomputed_chain_is_caught,
    reordering_is_caught,
    reordering_with_recomputed_chain_is_caught,
    truncation_is_caught,
    forged_tree_heads_are_caught,
    proofs_check_offline,
    rebuild_gives_the_same_ledger,
);
