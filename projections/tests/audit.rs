//! The audit ledger on SQLite and on PostgreSQL: built from a real log, verified intact, then
//! tampered with directly in the database — an edit, a deletion, an insertion (naive, and with
//! the whole chain recomputed), a reordering, a truncation (also together with the tree heads
//! and the writer's state covering it), forged tree heads, events' metadata edited in the log
//! — and the verifier catches each. Proofs round-trip through JSON and are checked offline.

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

/// What `pantheon audit verify` does, with a log opened afresh (as the command's own process
/// does: the SQLite log's ring of recent events would not see edits made behind its back):
/// catch the ledger up, sign a head over it, verify it alone, then against the log. The first
/// problem, if any.
async fn audit_verify(world: &World) -> Option<projections::LedgerProblem> {
    let log = store::open(&world.url).await.expect("open the log again");
    let projections = projections::Projections::new(world.db.clone(), log.clone(), world.key.clone())
        .with_tree_head_interval(INTERVAL);
    projections.catch_up(ProjectionName::Audit).await.expect("catch up");
    projections.seal_audit().await.expect("seal");
    let report = verify_ledger(&world.db, &world.key.public_key()).await.expect("verify the ledger");
    match report.problem {
        Some(problem) => Some(problem),
        None => verify_against_log(&world.db, log.as_ref()).await.expect("verify against the log"),
    }
}

/// The event id of entry `seq`.
async fn event_id_of(world: &World, seq: u64) -> String {
    prove_inclusion(&world.db, seq).await.unwrap().entry.event_id
}

async fn event_metadata_edits_are_caught(world: World) {
    ledger(&world).await;
    let postgres = world.db.is_postgres();
    // (field, entry whose event is edited, the edit on SQLite, on PostgreSQL)
    let edits = [
        (
            "emitter",
            0,
            "json_set(metadata, '$.emitter', 'admin')",
            "jsonb_set(metadata, '{emitter}', '\"admin\"')",
        ),
        (
            "occurred_at_ms",
            17,
            "json_set(metadata, '$.occurred_at_ms', json_extract(metadata, '$.occurred_at_ms') + 1)",
            "jsonb_set(metadata, '{occurred_at_ms}', to_jsonb((metadata->>'occurred_at_ms')::bigint + 1))",
        ),
        (
            "causation_id",
            40,
            "json_set(metadata, '$.causation_id', '0190c1f2-7a3b-7c4d-8e5f-60718293a4b5')",
            "jsonb_set(metadata, '{causation_id}', '\"0190c1f2-7a3b-7c4d-8e5f-60718293a4b5\"')",
        ),
        (
            "correlation_id",
            77,
            "json_set(metadata, '$.correlation_id', '0190c1f2-7a3b-7c4d-8e5f-60718293a4b5')",
            "jsonb_set(metadata, '{correlation_id}', '\"0190c1f2-7a3b-7c4d-8e5f-60718293a4b5\"')",
        ),
        (
            "traceparent",
            100,
            "json_set(metadata, '$.traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01')",
            "jsonb_set(metadata, '{traceparent}', '\"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\"')",
        ),
    ];
    assert_eq!(audit_verify(&world).await, None);
    for (field, seq, sqlite_edit, postgres_edit) in edits {
        let event_id = event_id_of(&world, seq).await;
        let original = metadata_text(&world, &event_id).await;
        let edit = if postgres { postgres_edit } else { sqlite_edit };
        sql(&world, &[&format!("UPDATE events SET metadata = {edit} WHERE event_id = '{event_id}'")]).await;
        assert_ne!(metadata_text(&world, &event_id).await, original, "{field}: the edit changed nothing");
        let Some(p) = audit_verify(&world).await else { panic!("an edited {field} went unnoticed") };
        assert_eq!(p.entry, Some(seq), "{field}: {p:?}");
        assert!(p.reason.contains("altered") && p.reason.contains(&event_id), "{field}: {p:?}");
        if field == "emitter" {
            assert!(p.reason.contains("emitter \"gateway\" in the ledger, \"admin\" in the log"), "{p:?}");
        }
        // Put it back: intact again.
        let cast = if postgres { "::jsonb" } else { "" };
        let restore = format!(
            "UPDATE events SET metadata = '{}'{cast} WHERE event_id = '{event_id}'",
            original.replace('\'', "''")
        );
        sql(&world, &[&restore]).await;
        assert_eq!(audit_verify(&world).await, None, "{field} restored");
    }
}

/// An event's metadata as stored (JSON text).
async fn metadata_text(world: &World, event_id: &str) -> String {
    let query = format!("SELECT CAST(metadata AS TEXT) FROM events WHERE event_id = '{event_id}'");
    if world.db.is_postgres() {
        let pool = sqlx::PgPool::connect(&world.url).await.unwrap();
        let (text,): (String,) = sqlx::query_as(sqlx::AssertSqlSafe(query)).fetch_one(&pool).await.unwrap();
        text
    } else {
        let pool = sqlx::SqlitePool::connect(&world.url).await.unwrap();
        let (text,): (String,) = sqlx::query_as(sqlx::AssertSqlSafe(query)).fetch_one(&pool).await.unwrap();
        text
    }
}

async fn old_event_hashes_are_named_and_a_rebuild_covers_metadata(world: World) {
    ledger(&world).await;
    // A ledger written before the event hash covered metadata: each entry keeps the event's
    // `content_hash`.
    let mut entries = all_entries(&world).await;
    for entry in &mut entries {
        let event = world.log.read_all(entry.position, 1).await.unwrap().remove(0);
        assert_eq!(event.id.to_string(), entry.event_id);
        entry.event_hash = event.content_hash();
    }
    rewrite(&world, entries).await;
    let p = verify_against_log(&world.db, world.log.as_ref()).await.unwrap().expect("an old ledger");
    assert_eq!(p.entry, Some(0), "{p:?}");
    assert!(p.reason.contains("rebuild"), "{p:?}");
    let projections = world.projections().with_tree_head_interval(INTERVAL);
    projections.rebuild(ProjectionName::Audit).await.unwrap();
    projections.seal_audit().await.unwrap();
    assert_eq!(audit_verify(&world).await, None);
}

/// Deletes the entries from `first` on and the signed tree heads covering any of them.
async fn cut_tail(world: &World, first: u64) {
    sql(
        world,
        &[
            &format!("DELETE FROM audit_entries WHERE seq >= {first}"),
            &format!("DELETE FROM audit_tree_heads WHERE tree_size > {first}"),
        ],
    )
    .await;
}

/// The log position of the event entry `seq` recorded.
async fn position_of(world: &World, seq: u64) -> u64 {
    prove_inclusion(&world.db, seq).await.unwrap().entry.position
}

async fn tail_cut_with_its_tree_heads_is_caught(world: World) {
    let size = ledger(&world).await;
    assert!(size > 100 + INTERVAL);
    cut_tail(&world, 100).await;
    // `pantheon audit verify` used to stop at signing a head: "database error: no rows returned".
    let p = audit_verify(&world).await.expect("a cut tail");
    assert_eq!(p.entry, Some(100), "{p:?}");
    assert!(p.reason.contains("truncated") && p.reason.contains("entry 100 is the first missing"), "{p:?}");
}

async fn tail_cut_with_its_tree_heads_and_the_writer_state_is_caught(world: World) {
    let size = ledger(&world).await;
    let missing_position = position_of(&world, 100).await;
    let missing_id = event_id_of(&world, 100).await;
    // The attacker also sets the writer back, so that its state agrees with what is left.
    let entries = all_entries(&world).await;
    let mut frontier = projections::merkle::Frontier::default();
    for entry in &entries[..100] {
        frontier.push(entry.entry_hash);
    }
    cut_tail(&world, 100).await;
    let blob = |bytes: &[u8]| {
        if world.db.is_postgres() {
            format!("'\\x{}'::bytea", hex_bytes(bytes))
        } else {
            format!("X'{}'", hex_bytes(bytes))
        }
    };
    sql(
        &world,
        &[&format!(
            "UPDATE audit_writer_state SET tree_size = 100, last_hash = {}, frontier = {}",
            blob(&entries[99].entry_hash.0),
            blob(&frontier.to_bytes())
        )],
    )
    .await;
    // The ledger alone now looks whole (a head is even signed over its 100 entries); the log
    // holds the events it lacks.
    let p = audit_verify(&world).await.expect("a cut tail");
    assert_eq!(p.entry, Some(100), "{p:?} of {size}");
    assert!(p.reason.contains("entry 100 is the first missing"), "{p:?}");
    assert!(p.reason.contains(&format!("at position {missing_position}")), "{p:?}");
    assert!(p.reason.contains(&missing_id), "{p:?}");
}

async fn an_entry_dropped_after_the_last_tree_head_is_caught_against_the_log(world: World) {
    ledger(&world).await;
    let missing_position = position_of(&world, 110).await;
    // Past the last head the attacker drops entry 110 and recomputes the chain after it.
    let mut entries = all_entries(&world).await;
    sql(&world, &["DELETE FROM audit_tree_heads WHERE tree_size > 96"]).await;
    entries.remove(110);
    rewrite(&world, entries).await;
    let p = verify_against_log(&world.db, world.log.as_ref()).await.unwrap().expect("a dropped entry");
    assert_eq!(p.entry, Some(110), "{p:?}");
    assert!(
        p.reason.contains("lacks") && p.reason.contains(&format!("at position {missing_position}")),
        "{p:?}"
    );
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
    tail_cut_with_its_tree_heads_is_caught,
    tail_cut_with_its_tree_heads_and_the_writer_state_is_caught,
    an_entry_dropped_after_the_last_tree_head_is_caught_against_the_log,
    event_metadata_edits_are_caught,
    old_event_hashes_are_named_and_a_rebuild_covers_metadata,
    forged_tree_heads_are_caught,
    proofs_check_offline,
    rebuild_gives_the_same_ledger,
);
