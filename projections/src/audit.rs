//! The audit ledger: every operation recorded in the log — submissions, admissions and
//! rejections, selections, sealing, execution, results, cancellations, agent registrations and
//! other admin actions — appended as an entry with its actor (the event's emitter), resource
//! (the stream), operation (the event type), time, justification (the reason the event gives,
//! where it has one), the hash of the event (its content and all its metadata) and the previous
//! entry's hash.
//!
//! # Hashes
//! An entry's hash is its RFC 6962 leaf hash, `blake3(0x00 ‖ encoding)`, where the encoding
//! length-prefixes every field above plus the entry's sequence number and log position. The
//! previous entry's hash is part of the encoding, so the entries form a blake3 chain, and the
//! same hashes are the leaves of a Merkle tree ([`crate::merkle`]).
//!
//! The event's hash ([`event_hash`]) covers everything recorded about the event: stream,
//! version, id, type, schema version, payload and all its metadata (time, causation and
//! correlation ids, emitter, trace context). Only the log position is left out: it is the
//! entry's own field, and the same event has another position in a JetStream archive's own
//! numbering. [`crate::verify_against_log`] recomputes it from the log, so an event edited in
//! the log — its payload or any of its metadata — no longer matches its entry.
//!
//! Ledgers written before the event hash covered metadata (it was
//! [`RecordedEvent::content_hash`], which leaves metadata out) still verify on their own, but
//! not against the log: the verifier says so, and `pantheon projections rebuild audit`
//! rewrites them from the log. The entries have no version field to tell the two apart.
//!
//! # Signed tree heads (the ledger's checkpoints)
//! Every [`TREE_HEAD_INTERVAL`] entries, and at shutdown, the ledger signs with the federation
//! key (ed25519) the message `"pantheon audit tree head v1\0" ‖ size ‖ timestamp ‖ root` (u64 /
//! i64 big-endian, 32-byte root). The timestamp is the last entry's time, so a rebuild from the
//! log signs the same heads again (ed25519 signatures are deterministic).
//!
//! Heartbeats are not operations and are left out ([`is_audited`]).

use async_trait::async_trait;
use events::{AgentEvent, DomainEvent, Hash, KeyPair, PublicKey, RecordedEvent, Signature, TaskEvent};
use serde::{Deserialize, Serialize};

use crate::db::{Tx, execute, fetch, to_i64, to_u64};
use crate::merkle::Frontier;
use crate::runner::Projection;
use crate::{Error, Result};

/// Entries between two signed tree heads. A head per 1,000 entries bounds how much of the
/// ledger an attacker with database access could rewrite undetected (the tail after the last
/// head) while keeping signing cost negligible (one ed25519 signature per 1,000 entries).
pub const TREE_HEAD_INTERVAL: u64 = 1_000;

/// The longest justification kept, in bytes (longer reasons are cut at a char boundary).
pub const JUSTIFICATION_BYTES_MAX: usize = 1_024;

/// The domain separation label of signed tree heads.
const TREE_HEAD_LABEL: &[u8] = b"pantheon audit tree head v1\0";

/// Stream categories whose events are not audited: heartbeats say an agent is alive, they
/// are not operations, and they would dwarf everything else.
const UNAUDITED_CATEGORIES: &[&str] = &["heartbeat"];

const _: () = assert!(TREE_HEAD_INTERVAL >= 1);

/// Whether an event goes into the ledger.
pub fn is_audited(event: &RecordedEvent) -> bool {
    !UNAUDITED_CATEGORIES.contains(&event.stream_id.category())
}

/// The blake3 key-derivation context of [`event_hash`]: its domain separation.
const EVENT_HASH_CONTEXT: &str = "pantheon audit event v2";

/// The hash an entry keeps of its event: everything [`RecordedEvent`] records but the log
/// position — stream, version, id, type, schema version, payload, and every metadata field
/// (time, causation id, correlation id, emitter, traceparent).
///
/// Every field is length-prefixed (u64 big-endian), numbers are big-endian, ids are their 16
/// bytes, and a last part says which optional fields are present (a missing traceparent
/// differs from an empty one). The position is left out because it is the entry's own
/// (hashed) field, checked against the log separately, and because the same event has
/// another position in the SQL archive of a JetStream log than in JetStream.
pub fn event_hash(event: &RecordedEvent) -> Hash {
    let metadata = &event.metadata;
    let id_bytes = |id: Option<events::EventId>| id.map_or([0; 16], |id| *id.0.as_bytes());
    let (causation_id, correlation_id) = (id_bytes(metadata.causation_id), id_bytes(metadata.correlation_id));
    let present = [
        u8::from(metadata.causation_id.is_some()),
        u8::from(metadata.correlation_id.is_some()),
        u8::from(metadata.traceparent.is_some()),
    ];
    let mut hasher = blake3::Hasher::new_derive_key(EVENT_HASH_CONTEXT);
    for part in [
        event.stream_id.as_str().as_bytes(),
        &event.version.to_be_bytes(),
        event.id.0.as_bytes(),
        event.event_type.as_str().as_bytes(),
        &event.schema_version.to_be_bytes(),
        &event.payload,
        &metadata.occurred_at_ms.to_be_bytes(),
        &causation_id,
        &correlation_id,
        metadata.emitter.as_bytes(),
        metadata.traceparent.as_deref().unwrap_or("").as_bytes(),
        &present,
    ] {
        hasher.update(&(part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    Hash(*hasher.finalize().as_bytes())
}

/// One ledger entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Its place in the ledger, from 0 (also its Merkle leaf index).
    pub seq: u64,
    /// The log position of the event.
    pub position: u64,
    /// The event's id.
    pub event_id: String,
    /// Who did it: the event's emitter.
    pub actor: String,
    /// What it was done to: the stream.
    pub resource: String,
    /// What was done: the event type.
    pub operation: String,
    /// When, ms since the epoch.
    pub occurred_at_ms: i64,
    /// Why, where the event says.
    pub justification: Option<String>,
    /// The hash of everything recorded about the event but its position ([`event_hash`]).
    pub event_hash: Hash,
    /// The previous entry's hash ([`Hash::ZERO`] for the first).
    pub prev_hash: Hash,
    /// This entry's hash (see [`AuditEntry::compute_hash`]).
    pub entry_hash: Hash,
}

impl AuditEntry {
    /// The entry's hash from its fields (not trusting `entry_hash`): the RFC 6962 leaf hash of
    /// its length-prefixed encoding.
    pub fn compute_hash(&self) -> Hash {
        let mut encoding = Vec::with_capacity(LEAF_ENCODING_BYTES_TYPICAL);
        self.fields().encode_leaf(&mut encoding);
        Hash(*blake3::hash(&encoding).as_bytes())
    }

    /// The fields the entry's hash covers, borrowed.
    pub(crate) fn fields(&self) -> EntryFields<'_> {
        EntryFields {
            seq: self.seq,
            position: self.position,
            event_id: self.event_id.as_bytes(),
            actor: self.actor.as_bytes(),
            resource: self.resource.as_bytes(),
            operation: self.operation.as_bytes(),
            occurred_at_ms: self.occurred_at_ms,
            justification: self.justification.as_deref().map(str::as_bytes),
            event_hash: &self.event_hash.0,
            prev_hash: &self.prev_hash.0,
        }
    }
}

/// The usual size of a leaf encoding (an entry's hash input), for buffer capacities: the
/// length prefixes, numbers and hashes take 185 bytes, an event id 36, and the stream,
/// emitter, event type and justification rarely more than 100 together.
pub(crate) const LEAF_ENCODING_BYTES_TYPICAL: usize = 320;

/// The fields an entry's hash covers, borrowed from an [`AuditEntry`] or straight from a
/// database row (the verifier reads rows without building entries). The text fields are
/// their UTF-8 bytes: the hash covers bytes, not characters.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EntryFields<'a> {
    pub(crate) seq: u64,
    pub(crate) position: u64,
    pub(crate) event_id: &'a [u8],
    pub(crate) actor: &'a [u8],
    pub(crate) resource: &'a [u8],
    pub(crate) operation: &'a [u8],
    pub(crate) occurred_at_ms: i64,
    pub(crate) justification: Option<&'a [u8]>,
    pub(crate) event_hash: &'a [u8; 32],
    pub(crate) prev_hash: &'a [u8; 32],
}

impl EntryFields<'_> {
    /// Appends the leaf encoding to `out`: `0x00 ‖ (len ‖ field)… ‖ has_justification`, every
    /// length a u64 big-endian, numbers big-endian. Its blake3 hash is the entry's hash.
    /// Building the input in one buffer and hashing it in one call is much cheaper than
    /// feeding the hasher 21 small pieces.
    pub(crate) fn encode_leaf(&self, out: &mut Vec<u8>) {
        out.push(0x00);
        let parts: [&[u8]; 10] = [
            &self.seq.to_be_bytes(),
            &self.position.to_be_bytes(),
            self.event_id,
            self.actor,
            self.resource,
            self.operation,
            &self.occurred_at_ms.to_be_bytes(),
            self.justification.unwrap_or(b""),
            self.event_hash,
            self.prev_hash,
        ];
        for part in parts {
            out.extend_from_slice(&(part.len() as u64).to_be_bytes());
            out.extend_from_slice(part);
        }
        // A missing justification differs from an empty one.
        out.push(u8::from(self.justification.is_some()));
    }
}

/// A signed tree head: the ledger's checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTreeHead {
    /// Entries covered.
    pub tree_size: u64,
    /// The time of the last entry covered, ms since the epoch.
    pub timestamp_ms: i64,
    /// The Merkle root over the entries' hashes.
    pub root_hash: Hash,
    /// The key that signed.
    pub public_key: PublicKey,
    /// The ed25519 signature over [`SignedTreeHead::message`].
    pub signature: Signature,
}

impl SignedTreeHead {
    /// The signed message for a size, timestamp and root.
    pub fn message(tree_size: u64, timestamp_ms: i64, root_hash: &Hash) -> Vec<u8> {
        let mut message = Vec::with_capacity(TREE_HEAD_LABEL.len() + 48);
        message.extend_from_slice(TREE_HEAD_LABEL);
        message.extend_from_slice(&tree_size.to_be_bytes());
        message.extend_from_slice(&timestamp_ms.to_be_bytes());
        message.extend_from_slice(&root_hash.0);
        message
    }

    /// Signs a head.
    pub fn sign(key: &KeyPair, tree_size: u64, timestamp_ms: i64, root_hash: Hash) -> Self {
        let signature = key.sign(&Self::message(tree_size, timestamp_ms, &root_hash));
        Self { tree_size, timestamp_ms, root_hash, public_key: key.public_key(), signature }
    }

    /// Checks the signature against `trusted` (the federation key), not the key the head names.
    pub fn verify(&self, trusted: &PublicKey) -> Result<(), String> {
        if self.public_key != *trusted {
            return Err(format!(
                "signed by key {}, not the federation key {}",
                self.public_key.key_id(),
                trusted.key_id()
            ));
        }
        trusted
            .verify(
                &Self::message(self.tree_size, self.timestamp_ms, &self.root_hash),
                &self.signature,
                "tree head",
            )
            .map_err(|e| e.to_string())
    }
}

/// The ledger's projection: appends entries and signs tree heads with the federation key.
pub(crate) struct AuditLedger {
    key: KeyPair,
    tree_head_interval: u64,
}

impl AuditLedger {
    pub(crate) fn new(key: KeyPair, tree_head_interval: u64) -> Self {
        Self { key, tree_head_interval: tree_head_interval.max(1) }
    }
}

/// The writer's running state.
struct WriterState {
    last_hash: Hash,
    frontier: Frontier,
}

async fn load_state(tx: &mut Tx) -> Result<WriterState> {
    let row: Option<(i64, Vec<u8>, Vec<u8>)> = fetch!(
        tx,
        fetch_optional,
        (i64, Vec<u8>, Vec<u8>),
        "SELECT tree_size, last_hash, frontier FROM audit_writer_state WHERE id = 1"
    )?;
    let Some((size, last_hash, frontier)) = row else {
        return Ok(WriterState { last_hash: Hash::ZERO, frontier: Frontier::default() });
    };
    let corrupt = |reason: &str| Error::Corrupt { table: "audit_writer_state", reason: reason.to_string() };
    let size = to_u64(size, "audit_writer_state")?;
    let last_hash = hash_from(&last_hash).ok_or_else(|| corrupt("last_hash is not 32 bytes"))?;
    let frontier =
        Frontier::from_bytes(size, &frontier).ok_or_else(|| corrupt("frontier does not fit the size"))?;
    Ok(WriterState { last_hash, frontier })
}

async fn save_state(tx: &mut Tx, state: &WriterState) -> Result<()> {
    execute!(
        tx,
        "INSERT INTO audit_writer_state (id, tree_size, last_hash, frontier) VALUES (1, $1, $2, $3) \
         ON CONFLICT (id) DO UPDATE SET tree_size = excluded.tree_size, last_hash = excluded.last_hash, \
         frontier = excluded.frontier",
        to_i64(state.frontier.size()),
        state.last_hash.0.to_vec(),
        state.frontier.to_bytes()
    )?;
    Ok(())
}

/// 32 bytes as a hash.
pub(crate) fn hash_from(bytes: &[u8]) -> Option<Hash> {
    <[u8; 32]>::try_from(bytes).ok().map(Hash)
}

fn cut(mut text: String) -> String {
    if text.len() > JUSTIFICATION_BYTES_MAX {
        let mut end = JUSTIFICATION_BYTES_MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// The reason an event gives for itself, if it has one.
pub fn justification(event: &RecordedEvent) -> Option<String> {
    use events::{AgentEventKind as Agent, TaskEventKind as Kind};
    let kind = event.event_type.as_str();
    let reason = match event.stream_id.category() {
        "task"
            if Kind::of(kind).is_some_and(|kind| {
                matches!(
                    kind,
                    Kind::Rejected
                        | Kind::Failed
                        | Kind::Cancelled
                        | Kind::ExecutionFailed
                        | Kind::NoAgentAvailable
                        | Kind::AgentSelected
                        | Kind::RetryScheduled
                )
            }) =>
        {
            match TaskEvent::from_recorded(event).ok()? {
                TaskEvent::Rejected(e) => format!("{:?}: {}", e.code, e.reason),
                TaskEvent::Failed(e) => format!("{:?}: {}", e.code, e.reason),
                TaskEvent::Cancelled(e) => format!("by {}: {}", e.by, e.reason),
                TaskEvent::ExecutionFailed(e) => format!("{:?} failure: {}", e.cause, e.reason),
                TaskEvent::NoAgentAvailable(e) => e.reason,
                TaskEvent::AgentSelected(e) => {
                    let best = e.candidates.first().map_or(0.0, |c| c.total);
                    format!("best of {} candidates, score {best:.3}", e.candidates.len())
                }
                TaskEvent::RetryScheduled(e) => format!("attempt {} after a failure", e.attempt),
                _ => return None,
            }
        }
        "agent"
            if Agent::of(kind).is_some_and(|kind| {
                matches!(kind, Agent::Suspended | Agent::Reinstated | Agent::Retired)
            }) =>
        {
            match AgentEvent::from_recorded(event).ok()? {
                AgentEvent::Suspended(e) => format!("by {}: {}", e.by, e.reason),
                AgentEvent::Reinstated(e) => format!("by {}: {}", e.by, e.reason),
                AgentEvent::Retired(e) => format!("by {}: {}", e.by, e.reason),
                _ => return None,
            }
        }
        _ => return None,
    };
    Some(cut(reason))
}

#[async_trait]
impl Projection for AuditLedger {
    fn tables(&self) -> &'static [&'static str] {
        &["audit_entries", "audit_tree_heads", "audit_writer_state"]
    }

    fn digest_queries(&self, postgres: bool) -> &'static [&'static str] {
        if postgres {
            &[
                "SELECT CAST(seq AS TEXT) || '|' || CAST(position AS TEXT) || '|' || event_id || '|' || actor || '|' \
               || resource || '|' || operation || '|' || CAST(occurred_at_ms AS TEXT) || '|' \
               || COALESCE(justification, '-') || '|' || encode(entry_hash, 'hex') FROM audit_entries ORDER BY seq",
            ]
        } else {
            &[
                "SELECT CAST(seq AS TEXT) || '|' || CAST(position AS TEXT) || '|' || event_id || '|' || actor || '|' \
               || resource || '|' || operation || '|' || CAST(occurred_at_ms AS TEXT) || '|' \
               || COALESCE(justification, '-') || '|' || lower(hex(entry_hash)) FROM audit_entries ORDER BY seq",
            ]
        }
    }

    async fn apply(&mut self, tx: &mut Tx, events: &[RecordedEvent]) -> Result<()> {
        let mut state = load_state(tx).await?;
        let mut entries = Vec::with_capacity(events.len());
        let mut heads = Vec::new();
        for event in events.iter().filter(|e| is_audited(e)) {
            let mut entry = AuditEntry {
                seq: state.frontier.size(),
                position: event.position,
                event_id: event.id.to_string(),
                actor: event.metadata.emitter.clone(),
                resource: event.stream_id.to_string(),
                operation: event.event_type.to_string(),
                occurred_at_ms: event.metadata.occurred_at_ms,
                justification: justification(event),
                event_hash: event_hash(event),
                prev_hash: state.last_hash,
                entry_hash: Hash::ZERO,
            };
            entry.entry_hash = entry.compute_hash();
            state.last_hash = entry.entry_hash;
            state.frontier.push(entry.entry_hash);
            if state.frontier.size() % self.tree_head_interval == 0 {
                heads.push(SignedTreeHead::sign(
                    &self.key,
                    state.frontier.size(),
                    entry.occurred_at_ms,
                    state.frontier.root(),
                ));
            }
            entries.push(entry);
        }
        if entries.is_empty() {
            return Ok(());
        }
        insert_entries(tx, entries).await?;
        for head in &heads {
            insert_head(tx, head).await?;
        }
        save_state(tx, &state).await
    }

    async fn finish(&mut self, tx: &mut Tx) -> Result<()> {
        let state = load_state(tx).await?;
        let size = state.frontier.size();
        if size == 0 {
            return Ok(());
        }
        let (latest,): (Option<i64>,) =
            fetch!(&mut *tx, fetch_one, (Option<i64>,), "SELECT MAX(tree_size) FROM audit_tree_heads")?;
        let signed = latest.unwrap_or(0);
        if signed >= to_i64(size) {
            return Ok(());
        }
        let last: Option<(i64, Vec<u8>)> = fetch!(
            &mut *tx,
            fetch_optional,
            (i64, Vec<u8>),
            "SELECT occurred_at_ms, entry_hash FROM audit_entries WHERE seq = $1",
            to_i64(size - 1)
        )?;
        // Sign only over the entries the writer wrote. If its last entry is gone or another
        // stands in its place, the ledger was cut or rewritten (with the heads that covered
        // it): signing now would vouch for the damage. Leave it to the verifier to name it.
        let timestamp_ms = match last {
            Some((timestamp_ms, hash)) if hash_from(&hash) == Some(state.last_hash) => timestamp_ms,
            found => {
                tracing::warn!(
                    entry = size - 1,
                    found = found.is_some(),
                    "the audit ledger's last entry is not the one its writer appended: no tree head \
                     signed; run `pantheon audit verify`"
                );
                return Ok(());
            }
        };
        let head = SignedTreeHead::sign(&self.key, size, timestamp_ms, state.frontier.root());
        insert_head(tx, &head).await
    }
}

async fn insert_head(tx: &mut Tx, head: &SignedTreeHead) -> Result<()> {
    execute!(
        tx,
        "INSERT INTO audit_tree_heads (tree_size, timestamp_ms, root_hash, public_key, signature) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tree_size) DO NOTHING",
        to_i64(head.tree_size),
        head.timestamp_ms,
        head.root_hash.0.to_vec(),
        head.public_key.0.to_vec(),
        head.signature.0.to_vec()
    )?;
    Ok(())
}

const INSERT_ENTRY: &str = "INSERT INTO audit_entries (seq, position, event_id, actor, resource, operation, \
     occurred_at_ms, justification, event_hash, prev_hash, entry_hash)";

async fn insert_entries(tx: &mut Tx, entries: Vec<AuditEntry>) -> Result<()> {
    match tx {
        Tx::Postgres(pg) => {
            let n = entries.len();
            let (mut seq, mut position, mut event_id, mut actor, mut resource, mut operation) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            let (mut occurred, mut justification, mut event_hash, mut prev_hash, mut entry_hash) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            for e in entries {
                seq.push(to_i64(e.seq));
                position.push(to_i64(e.position));
                event_id.push(e.event_id);
                actor.push(e.actor);
                resource.push(e.resource);
                operation.push(e.operation);
                occurred.push(e.occurred_at_ms);
                justification.push(e.justification);
                event_hash.push(e.event_hash.0.to_vec());
                prev_hash.push(e.prev_hash.0.to_vec());
                entry_hash.push(e.entry_hash.0.to_vec());
            }
            let sql = sqlx::AssertSqlSafe(format!(
                "{INSERT_ENTRY} SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], \
                 $5::text[], $6::text[], $7::bigint[], $8::text[], $9::bytea[], $10::bytea[], $11::bytea[])"
            ));
            sqlx::query(sql)
                .bind(seq)
                .bind(position)
                .bind(event_id)
                .bind(actor)
                .bind(resource)
                .bind(operation)
                .bind(occurred)
                .bind(justification)
                .bind(event_hash)
                .bind(prev_hash)
                .bind(entry_hash)
                .execute(&mut **pg)
                .await?;
        }
        Tx::Sqlite(_) => {
            for e in entries {
                let sql = sqlx::AssertSqlSafe(format!(
                    "{INSERT_ENTRY} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                ));
                execute!(
                    &mut *tx,
                    sql,
                    to_i64(e.seq),
                    to_i64(e.position),
                    e.event_id,
                    e.actor,
                    e.resource,
                    e.operation,
                    e.occurred_at_ms,
                    e.justification,
                    e.event_hash.0.to_vec(),
                    e.prev_hash.0.to_vec(),
                    e.entry_hash.0.to_vec()
                )?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash as first specified: the hasher fed piece by piece. The one-buffer encoding
    /// must agree with it, or ledgers written before would no longer verify.
    fn hash_piecewise(e: &AuditEntry) -> Hash {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&[0x00]);
        let justification = e.justification.as_deref().map(str::as_bytes);
        let parts: [&[u8]; 10] = [
            &e.seq.to_be_bytes(),
            &e.position.to_be_bytes(),
            e.event_id.as_bytes(),
            e.actor.as_bytes(),
            e.resource.as_bytes(),
            e.operation.as_bytes(),
            &e.occurred_at_ms.to_be_bytes(),
            justification.unwrap_or(b""),
            &e.event_hash.0,
            &e.prev_hash.0,
        ];
        for part in parts {
            hasher.update(&(part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
        hasher.update(&[u8::from(justification.is_some())]);
        Hash(*hasher.finalize().as_bytes())
    }

    fn entry(justification: Option<&str>) -> AuditEntry {
        AuditEntry {
            seq: 41,
            position: 977,
            event_id: "0190c1f2-7a3b-7c4d-8e5f-60718293a4b5".into(),
            actor: "gateway".into(),
            resource: "task-0190c1f2-7a3b-7c4d-8e5f-60718293a4b5".into(),
            operation: "task_rejected".into(),
            occurred_at_ms: 1_700_000_000_123,
            justification: justification.map(str::to_string),
            event_hash: Hash([3; 32]),
            prev_hash: Hash([5; 32]),
            entry_hash: Hash::ZERO,
        }
    }

    fn recorded() -> RecordedEvent {
        RecordedEvent {
            stream_id: events::StreamId::new("task-0190c1f2-7a3b-7c4d-8e5f-60718293a4b5").unwrap(),
            version: 3,
            position: 977,
            id: "0190c1f2-7a3b-7c4d-8e5f-60718293a4b6".parse().unwrap(),
            event_type: events::EventType::new("task_rejected").unwrap(),
            schema_version: 1,
            payload: vec![0x81, 0xa1, 0x61, 0x01],
            metadata: events::Metadata {
                occurred_at_ms: 1_700_000_000_123,
                causation_id: None,
                correlation_id: None,
                emitter: "gateway".into(),
                traceparent: None,
            },
        }
    }

    #[test]
    fn the_event_hash_covers_everything_recorded_but_the_position() {
        let event = recorded();
        let hash = event_hash(&event);
        let mut moved = event.clone();
        moved.position = 5;
        assert_eq!(event_hash(&moved), hash, "the position is the entry's, not the event's");
        let other_id = || "0190c1f2-7a3b-7c4d-8e5f-60718293a4b7".parse().unwrap();
        type Edit = fn(&mut RecordedEvent);
        let edits: [(&str, Edit); 12] = [
            ("stream", |e| e.stream_id = events::StreamId::new("task-other").unwrap()),
            ("version", |e| e.version += 1),
            ("id", |e| e.id = "0190c1f2-7a3b-7c4d-8e5f-60718293a4b7".parse().unwrap()),
            ("type", |e| e.event_type = events::EventType::new("task_failed").unwrap()),
            ("schema version", |e| e.schema_version += 1),
            ("payload", |e| e.payload.push(0)),
            ("occurred_at_ms", |e| e.metadata.occurred_at_ms += 1),
            ("causation id", |e| e.metadata.causation_id = Some(e.id)),
            ("correlation id", |e| e.metadata.correlation_id = Some(e.id)),
            ("emitter", |e| e.metadata.emitter = "admin".into()),
            ("traceparent", |e| {
                e.metadata.traceparent =
                    Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into())
            }),
            ("empty traceparent", |e| e.metadata.traceparent = Some(String::new())),
        ];
        let mut seen = std::collections::HashSet::from([hash]);
        for (what, edit) in edits {
            let mut edited = event.clone();
            edit(&mut edited);
            assert!(seen.insert(event_hash(&edited)), "{what} is not covered (or collides)");
        }
        let mut both = event.clone();
        both.metadata.causation_id = Some(other_id());
        both.metadata.correlation_id = Some(other_id());
        assert!(seen.insert(event_hash(&both)));
        assert_ne!(event.content_hash(), hash, "not the hash that leaves metadata out");
        // Ledgers keep this hash: changing the encoding makes every entry mismatch its event.
        assert_eq!(hash.to_string(), "561dcd72f71e60935ef7ad7897ffc3ef6fb0da17c696d5dc090ee3e2d03308ea");
    }

    #[test]
    fn the_entry_hash_is_unchanged() {
        for justification in [None, Some(""), Some("Policy: résumé ".repeat(90).as_str())] {
            let e = entry(justification);
            assert_eq!(e.compute_hash(), hash_piecewise(&e), "{justification:?}");
        }
        assert_ne!(entry(None).compute_hash(), entry(Some("")).compute_hash());
        assert_eq!(
            entry(None).compute_hash().to_string(),
            "8f7cc31ab07221a9f08ac7f96d86da7117f46299afa13e5b6225696ff3a15f1d"
        );
    }
}
