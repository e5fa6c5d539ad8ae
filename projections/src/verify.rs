//! Checking the audit ledger: [`verify_ledger`] walks every entry and every signed tree head
//! and names the first thing wrong; [`prove_inclusion`] / [`prove_consistency`] make proofs
//! that [`InclusionProof::verify`] / [`ConsistencyProof::verify`] check offline with nothing
//! but the federation public key.
//!
//! # What the verifier catches
//! - an edited entry (its recomputed hash differs from the stored one, or the next entry's
//!   link does not match),
//! - a deleted entry (a gap in the sequence numbers),
//! - an inserted or reordered entry (sequence numbers are hashed, and so is the link to the
//!   previous entry; rewriting every later hash to hide it changes the Merkle root under the
//!   next signed tree head),
//! - a truncated ledger (a signed tree head covers more entries than there are, or the
//!   ledger's writer appended more entries than there are: a tail cut together with the heads
//!   that covered it),
//! - a forged or altered tree head (the signature over size, time and root fails, or the key
//!   is not the federation's).
//!
//! What no verifier of the ledger alone can catch: entries appended, removed or rewritten
//! after the last signed tree head by someone who recomputes the chain (and the writer's
//! state). [`verify_against_log`] walks the log beside the ledger: every entry must record the
//! audited event at its position, unchanged (its payload and every metadata field, see
//! [`crate::audit::event_hash`]), and every audited event the ledger has applied must have its
//! entry — which catches those too.

use events::{EventLog, Hash, PublicKey, Signature};
use serde::{Deserialize, Serialize};
use sqlx::{Column, ColumnIndex, Database, Decode, Row, Type};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::audit::{AuditEntry, EntryFields, LEAF_ENCODING_BYTES_TYPICAL, SignedTreeHead, hash_from};
use crate::db::{Db, read, to_i64};
use crate::merkle::{self, Frontier};
use crate::{Error, Result};

/// Entries per page while verifying (a page is the entries whose sequence numbers fall in one
/// range of this many). A page is held three ways at its peak (the driver's rows, about 400
/// bytes an entry; the leaf encodings, about 300; the stored hashes, about 80), about 1.6 MB
/// at 2,000. Small pages keep the pipeline full (the verifier starts on the first page
/// sooner and waits less between pages) while a query's fixed cost (a round trip, an index
/// descent) stays a few percent of reading its page; 2,000 measured faster than 10,000 on
/// PostgreSQL.
pub const VERIFY_PAGE_COUNT_MAX: i64 = 2_000;

/// Reader tasks on PostgreSQL, each reading every this-many-th page on its own connection
/// while the verifier hashes: reading (the server producing rows, the driver parsing them,
/// the fields encoded) costs about twice the hashing, so two readers keep one verifier busy.
/// More would only contend for the same cores and connections.
pub const VERIFY_READER_COUNT: usize = 2;

/// Reader tasks on SQLite: one. Its reads already run on the driver's worker thread (one per
/// connection); a second reader adds threads contending for the same cores and measured no
/// faster.
pub const VERIFY_SQLITE_READER_COUNT: usize = 1;

/// Pages each reader may finish ahead of the verifier before it waits. One is enough to keep
/// the verifier fed; memory stays bounded at about (2 × readers + 1) pages: one queued and
/// one being read per reader, one being hashed (about 8 MB).
pub const VERIFY_PAGES_AHEAD: usize = 1;

const _: () = assert!(
    VERIFY_READER_COUNT >= 1
        && VERIFY_SQLITE_READER_COUNT >= 1
        && VERIFY_PAGES_AHEAD >= 1
        && VERIFY_PAGE_COUNT_MAX >= 1
);

/// The most entries a proof may cover: the prover holds every leaf hash of the tree in
/// memory (32 bytes each, 320 MB at this limit).
pub const PROOF_TREE_SIZE_MAX: u64 = 10_000_000;

/// What is wrong with the ledger: the first problem found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerProblem {
    /// The first bad entry (its sequence number), when an entry is to blame.
    pub entry: Option<u64>,
    /// The tree head involved, when one is.
    pub tree_size: Option<u64>,
    /// What is wrong.
    pub reason: String,
}

/// The outcome of [`verify_ledger`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerReport {
    /// Entries checked.
    pub entries: u64,
    /// Signed tree heads checked.
    pub tree_heads: u64,
    /// The Merkle root over every entry checked.
    pub root_hash: Hash,
    /// The latest signed tree head, if any.
    pub latest_tree_head: Option<SignedTreeHead>,
    /// The first problem, or `None` when the ledger is intact.
    pub problem: Option<LedgerProblem>,
}

impl LedgerReport {
    /// Whether the ledger verified.
    pub fn is_intact(&self) -> bool {
        self.problem.is_none()
    }
}

type TreeHeadRow = (i64, i64, Vec<u8>, Vec<u8>, Vec<u8>);

type EntryRow = (i64, i64, String, String, String, String, i64, Option<String>, Vec<u8>, Vec<u8>, Vec<u8>);

/// An entry from its row; `Err` names what is malformed.
fn entry_from(row: EntryRow) -> Result<AuditEntry, (i64, String)> {
    let (seq, position, event_id, actor, resource, operation, occurred_at_ms, justification, eh, ph, nh) =
        row;
    let bad = |what: &str| (seq, format!("{what} is not a 32-byte hash"));
    Ok(AuditEntry {
        seq: u64::try_from(seq).map_err(|_| (seq, "negative sequence number".to_string()))?,
        position: u64::try_from(position).map_err(|_| (seq, "negative position".to_string()))?,
        event_id,
        actor,
        resource,
        operation,
        occurred_at_ms,
        justification,
        event_hash: hash_from(&eh).ok_or_else(|| bad("event_hash"))?,
        prev_hash: hash_from(&ph).ok_or_else(|| bad("prev_hash"))?,
        entry_hash: hash_from(&nh).ok_or_else(|| bad("entry_hash"))?,
    })
}

const SELECT_ENTRIES: &str = "SELECT seq, position, event_id, actor, resource, operation, occurred_at_ms, \
     justification, event_hash, prev_hash, entry_hash FROM audit_entries WHERE seq >= $1 ORDER BY seq LIMIT $2";

/// Reads the signed tree heads, smallest first; malformed rows become problems.
async fn tree_heads(db: &Db) -> Result<Vec<Result<SignedTreeHead, LedgerProblem>>> {
    let rows: Vec<TreeHeadRow> = read!(
        db,
        fetch_all,
        TreeHeadRow,
        "SELECT tree_size, timestamp_ms, root_hash, public_key, signature FROM audit_tree_heads ORDER BY tree_size"
    )?;
    Ok(rows
        .into_iter()
        .map(|(size, timestamp_ms, root, key, signature)| {
            let problem = |reason: &str| LedgerProblem {
                entry: None,
                tree_size: u64::try_from(size).ok(),
                reason: reason.to_string(),
            };
            Ok(SignedTreeHead {
                tree_size: u64::try_from(size).map_err(|_| problem("negative tree size"))?,
                timestamp_ms,
                root_hash: hash_from(&root).ok_or_else(|| problem("the root is not 32 bytes"))?,
                public_key: PublicKey(
                    <[u8; 32]>::try_from(key.as_slice()).map_err(|_| problem("bad public key"))?,
                ),
                signature: Signature(
                    <[u8; 64]>::try_from(signature.as_slice()).map_err(|_| problem("bad signature bytes"))?,
                ),
            })
        })
        .collect())
}

/// Entries read from the database, ready to hash: their leaf encodings back to back (one
/// buffer per page, not a few allocations per entry) and what each hash is checked against.
#[derive(Default)]
struct Page {
    /// The leaf encodings ([`EntryFields::encode_leaf`]) of `entries`, in order.
    encodings: Vec<u8>,
    /// The entries, in sequence order.
    entries: Vec<PageEntry>,
    /// A row after `entries` that is not an entry (a negative number, a hash that is not 32
    /// bytes): the verifier reports it once everything before it checked out. Nothing is read
    /// after it.
    malformed: Option<LedgerProblem>,
}

/// What one entry's hash is checked against.
struct PageEntry {
    /// Its sequence number, as stored.
    seq: u64,
    /// Where its encoding ends in [`Page::encodings`] (it starts where the previous one ends).
    end: usize,
    /// The stored link to the previous entry (also inside the encoding).
    prev_hash: Hash,
    /// The stored hash of the entry.
    entry_hash: Hash,
}

/// 32 bytes as a hash, or what is wrong with the column `what`.
fn hash32<'a>(bytes: &'a [u8], what: &str) -> Result<&'a [u8; 32], String> {
    <&[u8; 32]>::try_from(bytes).map_err(|_| format!("{what} is not a 32-byte hash"))
}

/// Whether a result's columns have the types [`SELECT_ENTRIES`] decodes them as.
fn columns_as_expected<R>(row: &R) -> bool
where
    R: Row,
    for<'r> i64: Type<R::Database>,
    for<'r> &'r str: Type<R::Database>,
    for<'r> &'r [u8]: Type<R::Database>,
{
    let (int, text, bytes): (TypeCheck<R>, TypeCheck<R>, TypeCheck<R>) = (
        <i64 as Type<R::Database>>::compatible,
        <&str as Type<R::Database>>::compatible,
        <&[u8]>::compatible,
    );
    let expected = [int, int, text, text, text, text, int, text, bytes, bytes, bytes];
    row.columns().len() == expected.len()
        && row.columns().iter().zip(expected).all(|(column, compatible)| compatible(column.type_info()))
}

/// A [`Type::compatible`] check of one backend.
type TypeCheck<R> = fn(&<<R as Row>::Database as Database>::TypeInfo) -> bool;

/// One value of a row: type-checked, or (`checked` false, when the caller checked the
/// column's type) decoded straight away.
fn value<'r, T, R>(row: &'r R, index: usize, checked: bool) -> Result<T, sqlx::Error>
where
    R: Row,
    usize: ColumnIndex<R>,
    T: Decode<'r, R::Database> + Type<R::Database>,
{
    if checked { row.try_get(index) } else { row.try_get_unchecked(index) }
}

/// Encodes a page of rows ([`SELECT_ENTRIES`]), borrowing every field from the rows: no
/// string or buffer per field. Stops at the first malformed row.
///
/// `per_column_types`: the backend types values per column (PostgreSQL), so checking the
/// columns' types once stands for checking every value; otherwise (SQLite, where each value
/// has its own type) every value is checked as it is decoded. Either way a value of the
/// wrong type is an error, as with `query_as`.
fn encode_page<R>(rows: &[R], per_column_types: bool) -> Result<Page>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> &'r str: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<&'r str>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> &'r [u8]: Decode<'r, R::Database> + Type<R::Database>,
{
    let mut page = Page {
        encodings: Vec::with_capacity(rows.len() * LEAF_ENCODING_BYTES_TYPICAL),
        entries: Vec::with_capacity(rows.len()),
        malformed: None,
    };
    // With unexpected column types, the checked decoding names the column in its error.
    let checked = !(per_column_types && rows.first().is_some_and(columns_as_expected));
    for row in rows {
        let seq: i64 = value(row, 0, checked)?;
        let position: i64 = value(row, 1, checked)?;
        let (event_id, actor, resource, operation): (&str, &str, &str, &str) = (
            value(row, 2, checked)?,
            value(row, 3, checked)?,
            value(row, 4, checked)?,
            value(row, 5, checked)?,
        );
        let occurred_at_ms: i64 = value(row, 6, checked)?;
        let justification: Option<&str> = value(row, 7, checked)?;
        let (event_hash, prev_hash, entry_hash): (&[u8], &[u8], &[u8]) =
            (value(row, 8, checked)?, value(row, 9, checked)?, value(row, 10, checked)?);
        let malformed =
            |reason: String| Some(LedgerProblem { entry: u64::try_from(seq).ok(), tree_size: None, reason });
        let fields = (|| {
            Ok::<_, String>(EntryFields {
                seq: u64::try_from(seq).map_err(|_| "negative sequence number".to_string())?,
                position: u64::try_from(position).map_err(|_| "negative position".to_string())?,
                event_id: event_id.as_bytes(),
                actor: actor.as_bytes(),
                resource: resource.as_bytes(),
                operation: operation.as_bytes(),
                occurred_at_ms,
                justification: justification.map(str::as_bytes),
                event_hash: hash32(event_hash, "event_hash")?,
                prev_hash: hash32(prev_hash, "prev_hash")?,
            })
        })();
        let (fields, entry_hash) = match (fields, hash32(entry_hash, "entry_hash")) {
            (Ok(fields), Ok(entry_hash)) => (fields, Hash(*entry_hash)),
            (Err(reason), _) | (_, Err(reason)) => {
                page.malformed = malformed(reason);
                break;
            }
        };
        fields.encode_leaf(&mut page.encodings);
        page.entries.push(PageEntry {
            seq: fields.seq,
            end: page.encodings.len(),
            prev_hash: Hash(*fields.prev_hash),
            entry_hash,
        });
    }
    Ok(page)
}

/// The entries of one page: sequence numbers in `[$1, $2)`, in order. The primary key keeps
/// it to [`VERIFY_PAGE_COUNT_MAX`] rows; the limit bounds memory even without it.
const SELECT_PAGE: &str = "SELECT seq, position, event_id, actor, resource, operation, occurred_at_ms, \
     justification, event_hash, prev_hash, entry_hash FROM audit_entries WHERE seq >= $1 AND seq < $2 \
     ORDER BY seq LIMIT $3";

/// Reads and encodes page `index` (sequence numbers from `index × VERIFY_PAGE_COUNT_MAX`).
async fn read_page(db: &Db, index: i64) -> Result<Page> {
    let from = index.saturating_mul(VERIFY_PAGE_COUNT_MAX);
    let to = from.saturating_add(VERIFY_PAGE_COUNT_MAX);
    Ok(match db {
        Db::Postgres(pool) => {
            let rows = sqlx::query(SELECT_PAGE)
                .bind(from)
                .bind(to)
                .bind(VERIFY_PAGE_COUNT_MAX)
                .fetch_all(pool)
                .await?;
            encode_page(&rows, true)?
        }
        Db::Sqlite { readers, .. } => {
            let rows = sqlx::query(SELECT_PAGE)
                .bind(from)
                .bind(to)
                .bind(VERIFY_PAGE_COUNT_MAX)
                .fetch_all(readers)
                .await?;
            encode_page(&rows, false)?
        }
    })
}

/// A reader task: sends pages `first`, `first + step`, … below `page_count`
/// in order, and stops after a page with a malformed row, after a failed read (the error is
/// sent), or when the verifier hangs up.
async fn read_pages(db: Db, first: usize, step: usize, page_count: i64, pages: mpsc::Sender<Result<Page>>) {
    let (Ok(first), Ok(step)) = (i64::try_from(first), i64::try_from(step)) else { return };
    let mut index = first;
    while index < page_count {
        let page = read_page(&db, index).await;
        let last = page.as_ref().map_or(true, |page| page.malformed.is_some());
        if pages.send(page).await.is_err() || last {
            return;
        }
        index = index.saturating_add(step);
    }
}

/// The reader tasks, aborted when verification ends however it ends (a problem found, an
/// error, the caller dropping the future).
struct Readers(Vec<JoinHandle<()>>);

impl Drop for Readers {
    fn drop(&mut self) {
        for reader in &self.0 {
            reader.abort();
        }
    }
}

/// The running check over entries in sequence order.
struct Walk {
    frontier: Frontier,
    last_hash: Hash,
}

impl Walk {
    /// Checks the next entry, given its leaf encoding; returns the problem if it is bad.
    fn check(&mut self, entry: &PageEntry, encoding: &[u8]) -> Option<LedgerProblem> {
        let expected = self.frontier.size();
        let bad = |reason: String| Some(LedgerProblem { entry: Some(expected), tree_size: None, reason });
        if entry.seq != expected {
            return bad(format!("entry {expected} is missing (the next entry found is {})", entry.seq));
        }
        if entry.prev_hash != self.last_hash {
            return bad(format!(
                "entry {expected} does not link to the previous entry (prev_hash {}, previous entry hash {})",
                entry.prev_hash, self.last_hash
            ));
        }
        let computed = Hash(*blake3::hash(encoding).as_bytes());
        if computed != entry.entry_hash {
            return bad(format!(
                "entry {expected} was altered: its content hashes to {computed}, the stored hash is {}",
                entry.entry_hash
            ));
        }
        self.last_hash = entry.entry_hash;
        self.frontier.push(entry.entry_hash);
        None
    }
}

/// Checks the whole ledger against the federation key: every entry's hash and link, every
/// signed tree head's signature and Merkle root, and that no entry the ledger's writer
/// appended is gone from the end (with the tree heads that covered it). Stops at the first
/// problem.
///
/// The entries are those present when it starts (up to the largest sequence number then).
/// Reader tasks ([`VERIFY_READER_COUNT`], [`VERIFY_SQLITE_READER_COUNT`]) read and encode
/// pages of entries
/// ([`VERIFY_PAGE_COUNT_MAX`]) up to [`VERIFY_PAGES_AHEAD`] ahead while this hashes them in
/// order.
pub async fn verify_ledger(db: &Db, federation_key: &PublicKey) -> Result<LedgerReport> {
    let heads = tree_heads(db).await?;
    let latest_tree_head = heads.iter().rev().find_map(|head| head.as_ref().ok().cloned());
    let mut report = LedgerReport {
        entries: 0,
        tree_heads: 0,
        root_hash: merkle::empty_root(),
        latest_tree_head,
        problem: None,
    };
    // Read before the entries: the writer commits entries and its count together, so every
    // entry it counted here is in the walk below unless it was removed.
    let written: Option<(i64,)> =
        read!(db, fetch_optional, (i64,), "SELECT tree_size FROM audit_writer_state WHERE id = 1")?;
    let written = written.and_then(|(size,)| u64::try_from(size).ok());
    let (last_seq,): (Option<i64>,) =
        read!(db, fetch_one, (Option<i64>,), "SELECT MAX(seq) FROM audit_entries")?;
    // Pages from sequence number 0 up to the last one; negative numbers are never read.
    let page_count = last_seq.filter(|last| *last >= 0).map_or(0, |last| last / VERIFY_PAGE_COUNT_MAX + 1);
    let reader_count = if db.is_postgres() { VERIFY_READER_COUNT } else { VERIFY_SQLITE_READER_COUNT };
    let mut channels = Vec::with_capacity(reader_count);
    let mut readers = Readers(Vec::with_capacity(reader_count));
    for first in 0..reader_count {
        let (sender, receiver) = mpsc::channel(VERIFY_PAGES_AHEAD);
        readers.0.push(tokio::spawn(read_pages(db.clone(), first, reader_count, page_count, sender)));
        channels.push(receiver);
    }
    let mut pending = heads.into_iter().peekable();
    let mut walk = Walk { frontier: Frontier::default(), last_hash: Hash::ZERO };
    'pages: for index in 0..usize::try_from(page_count).unwrap_or(usize::MAX) {
        let reader = index % reader_count;
        let Some(page) = channels[reader].recv().await else {
            // A reader sends every page it is given unless it stopped after a malformed page
            // or an error, which end the walk first: it panicked or was cancelled (the
            // runtime shutting down).
            match readers.0.swap_remove(reader).await {
                Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                _ => return Err(sqlx::Error::WorkerCrashed.into()),
            }
        };
        let page = page?;
        let mut start = 0;
        for entry in &page.entries {
            let encoding = page.encodings.get(start..entry.end).unwrap_or_default();
            start = entry.end;
            if let Some(problem) = walk.check(entry, encoding) {
                report.problem = Some(problem);
                break 'pages;
            }
            // Tree heads covering exactly the entries so far.
            while let Some(head) =
                pending.next_if(|h| h.as_ref().map_or(true, |h| h.tree_size <= walk.frontier.size()))
            {
                if let Some(problem) = check_head(head, &walk.frontier, federation_key) {
                    report.problem = Some(problem);
                    break 'pages;
                }
                report.tree_heads += 1;
            }
        }
        if let Some(problem) = page.malformed {
            report.problem = Some(problem);
            break;
        }
    }
    report.entries = walk.frontier.size();
    report.root_hash = walk.frontier.root();
    if report.problem.is_none() {
        // A head beyond the last entry: the ledger was cut short.
        if let Some(head) = pending.next() {
            report.problem = Some(match head {
                Ok(head) => LedgerProblem {
                    entry: Some(walk.frontier.size()),
                    tree_size: Some(head.tree_size),
                    reason: format!(
                        "the ledger was truncated: a signed tree head covers {} entries, only {} are left; \
                         entry {} is the first missing",
                        head.tree_size,
                        walk.frontier.size(),
                        walk.frontier.size()
                    ),
                },
                Err(problem) => problem,
            });
        }
    }
    if report.problem.is_none() {
        // The writer appended more entries than are left: the tail was cut, and the heads
        // that covered it with it (or the check above would have named them).
        let left = walk.frontier.size();
        if let Some(written) = written.filter(|written| *written > left) {
            report.problem = Some(LedgerProblem {
                entry: Some(left),
                tree_size: None,
                reason: format!(
                    "the ledger was truncated: its writer appended {written} entries, only {left} are left; \
                     entry {left} is the first missing (the signed tree heads covering it were removed too)"
                ),
            });
        }
    }
    Ok(report)
}

fn check_head(
    head: Result<SignedTreeHead, LedgerProblem>,
    frontier: &Frontier,
    federation_key: &PublicKey,
) -> Option<LedgerProblem> {
    let head = match head {
        Ok(head) => head,
        Err(problem) => return Some(problem),
    };
    let problem =
        |reason: String| Some(LedgerProblem { entry: None, tree_size: Some(head.tree_size), reason });
    if head.tree_size != frontier.size() {
        return problem(format!("tree head of size {} matches no prefix of the ledger", head.tree_size));
    }
    if let Err(reason) = head.verify(federation_key) {
        return problem(format!("tree head of size {} is forged: {reason}", head.tree_size));
    }
    let root = frontier.root();
    if head.root_hash != root {
        return Some(LedgerProblem {
            // The head is genuine, so some entry before it was rewritten (hashes recomputed).
            entry: None,
            tree_size: Some(head.tree_size),
            reason: format!(
                "the first {} entries were rewritten: their Merkle root is {root}, the signed root is {}",
                head.tree_size, head.root_hash
            ),
        });
    }
    None
}

async fn latest_tree_head(db: &Db) -> Result<Option<SignedTreeHead>> {
    Ok(tree_heads(db).await?.into_iter().rev().find_map(Result::ok))
}

/// Walks the log beside the ledger and returns the first mismatch, or `None`:
/// - every entry must record the audited event at its log position, with the same id and the
///   same [`crate::audit::event_hash`] (payload and every metadata field);
/// - every audited event of the log up to where the ledger has applied it (the audit
///   projection's checkpoint, or the last entry's position if that is further) must have its
///   entry, in order: an event the ledger lacks names the entry that should record it.
///
/// The checkpoint is read first: the projection commits entries and checkpoint together, so
/// every event up to it has its entry, and entries appended meanwhile are checked as well. A
/// rebuild of the ledger running meanwhile makes it report damage that is not there.
pub async fn verify_against_log(db: &Db, log: &dyn EventLog) -> Result<Option<LedgerProblem>> {
    let checkpoint: Option<(i64,)> = read!(
        db,
        fetch_optional,
        (i64,),
        "SELECT position FROM projection_checkpoints WHERE name = $1",
        crate::ProjectionName::Audit.as_str()
    )?;
    let mut applied = checkpoint.and_then(|(position,)| u64::try_from(position).ok()).unwrap_or(0);
    let mut audited = AuditedEvents::new(log);
    let mut next_seq = 0u64;
    let mut from = 0i64;
    loop {
        let rows: Vec<EntryRow> =
            read!(db, fetch_all, EntryRow, SELECT_ENTRIES, from, VERIFY_PAGE_COUNT_MAX)?;
        let Some(last) = rows.last() else { break };
        from = last.0.saturating_add(1);
        for row in rows {
            let entry = match entry_from(row) {
                Ok(entry) => entry,
                Err((seq, reason)) => {
                    return Ok(Some(LedgerProblem {
                        entry: u64::try_from(seq).ok(),
                        tree_size: None,
                        reason,
                    }));
                }
            };
            next_seq = entry.seq.saturating_add(1);
            applied = applied.max(entry.position);
            let problem =
                |reason: String| Ok(Some(LedgerProblem { entry: Some(entry.seq), tree_size: None, reason }));
            match audited.peek().await? {
                // The ledger passed an audited event by.
                Some(event) if event.position < entry.position => {
                    return problem(format!(
                        "the ledger lacks {}; entry {} should record it, and records position {} instead",
                        describe(event),
                        entry.seq,
                        entry.position
                    ));
                }
                Some(event) if event.position == entry.position => {
                    if let Some(reason) = mismatch(&entry, event) {
                        return problem(reason);
                    }
                }
                // No audited event at the entry's position.
                _ => {
                    let there = log.read_all(entry.position, 1).await?;
                    let there = there.first().filter(|event| event.position == entry.position);
                    return problem(format!(
                        "entry {} claims event {} at position {}, the log holds {}",
                        entry.seq,
                        entry.event_id,
                        entry.position,
                        there.map_or("nothing there".to_string(), |event| {
                            let audited = if crate::audit::is_audited(event) { "" } else { ", not audited" };
                            format!("{}{audited}", describe(event))
                        })
                    ));
                }
            }
            // The entry recorded the event it matched.
            audited.advance();
        }
    }
    // Past the last entry: an audited event the ledger has applied has no entry.
    match audited.peek().await? {
        Some(event) if event.position <= applied => Ok(Some(LedgerProblem {
            entry: Some(next_seq),
            tree_size: None,
            reason: format!(
                "the ledger lacks {}, which it applied (it has applied the log up to position {applied}): \
                 entry {next_seq} is the first missing ({})",
                describe(event),
                match next_seq {
                    0 => "the ledger is empty".to_string(),
                    n => format!("the ledger ends at entry {}", n - 1),
                }
            ),
        })),
        _ => Ok(None),
    }
}

/// An event, for a problem's reason.
fn describe(event: &events::RecordedEvent) -> String {
    format!(
        "event {} ({} at version {} of {}) at position {}",
        event.id, event.event_type, event.version, event.stream_id, event.position
    )
}

/// What differs between an entry and the event at its position, or `None` when they agree.
fn mismatch(entry: &AuditEntry, event: &events::RecordedEvent) -> Option<String> {
    if event.id.to_string() != entry.event_id {
        return Some(format!(
            "entry {} claims event {} at position {}, the log holds {}",
            entry.seq,
            entry.event_id,
            entry.position,
            describe(event)
        ));
    }
    let hash = crate::audit::event_hash(event);
    if hash == entry.event_hash {
        return None;
    }
    if event.content_hash() == entry.event_hash {
        return Some(format!(
            "entry {} keeps the hash older ledgers kept of {}, which leaves its metadata out: the log's \
             metadata cannot be checked against it; rebuild the ledger from the log \
             (`pantheon projections rebuild audit`) to cover it",
            entry.seq,
            describe(event)
        ));
    }
    // Name what differs among the fields the entry keeps in the clear.
    let mut differences: Vec<String> = [
        ("emitter", entry.actor.as_str(), event.metadata.emitter.as_str()),
        ("stream", entry.resource.as_str(), event.stream_id.as_str()),
        ("type", entry.operation.as_str(), event.event_type.as_str()),
    ]
    .into_iter()
    .filter(|(_, ledger, log)| ledger != log)
    .map(|(what, ledger, log)| format!("{what} {ledger:?} in the ledger, {log:?} in the log"))
    .collect();
    if entry.occurred_at_ms != event.metadata.occurred_at_ms {
        differences.push(format!(
            "time {} ms in the ledger, {} ms in the log",
            entry.occurred_at_ms, event.metadata.occurred_at_ms
        ));
    }
    let which = if differences.is_empty() {
        "its payload, version, schema version, causation id, correlation id or traceparent differ".to_string()
    } else {
        differences.join("; ")
    };
    Some(format!(
        "{} was altered after entry {} recorded it: it hashes to {hash}, the entry recorded {} ({which})",
        describe(event),
        entry.seq,
        entry.event_hash
    ))
}

/// The log's audited events in order, read a page at a time.
struct AuditedEvents<'a> {
    log: &'a dyn EventLog,
    /// Audited events read and not yet taken.
    buffer: std::collections::VecDeque<events::RecordedEvent>,
    /// The next position to read from.
    from: events::Position,
    /// Whether the log had nothing more to read.
    exhausted: bool,
}

impl<'a> AuditedEvents<'a> {
    /// Events read from the log at once: the most one `read_all` of the SQL store returns
    /// (it cuts larger asks to it), so no read is wasted and at most a page is held.
    const PAGE_COUNT: usize = 1_000;

    fn new(log: &'a dyn EventLog) -> Self {
        Self { log, buffer: std::collections::VecDeque::new(), from: 0, exhausted: false }
    }

    /// The next audited event, reading pages (and skipping unaudited events) until one comes.
    async fn peek(&mut self) -> Result<Option<&events::RecordedEvent>> {
        while self.buffer.is_empty() && !self.exhausted {
            let page = self.log.read_all(self.from, Self::PAGE_COUNT).await?;
            match page.last() {
                Some(last) => self.from = last.position.saturating_add(1),
                None => self.exhausted = true,
            }
            self.buffer.extend(page.into_iter().filter(crate::audit::is_audited));
        }
        Ok(self.buffer.front())
    }

    /// Moves past the event [`Self::peek`] returned.
    fn advance(&mut self) {
        self.buffer.pop_front();
    }
}

/// A proof that one entry is in the ledger under a signed tree head, checkable offline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionProof {
    /// The entry (its hash is recomputed from its fields by the verifier).
    pub entry: AuditEntry,
    /// The audit path, leaf to root (RFC 9162 §2.1.3).
    pub audit_path: Vec<Hash>,
    /// The signed tree head the path leads to.
    pub tree_head: SignedTreeHead,
}

impl InclusionProof {
    /// Checks the proof with nothing but the federation key.
    pub fn verify(&self, federation_key: &PublicKey) -> Result<(), String> {
        self.tree_head.verify(federation_key)?;
        let leaf = self.entry.compute_hash();
        if leaf != self.entry.entry_hash {
            return Err(format!(
                "the entry's fields hash to {leaf}, not to its stated hash {}",
                self.entry.entry_hash
            ));
        }
        if merkle::verify_inclusion(
            self.entry.seq,
            self.tree_head.tree_size,
            &leaf,
            &self.audit_path,
            &self.tree_head.root_hash,
        ) {
            Ok(())
        } else {
            Err(format!(
                "the audit path does not lead from entry {} to the signed root of the tree of size {}",
                self.entry.seq, self.tree_head.tree_size
            ))
        }
    }
}

/// A proof that the ledger under one signed tree head is a prefix of the ledger under a later
/// one (nothing before was rewritten), checkable offline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyProof {
    /// The older head.
    pub old_tree_head: SignedTreeHead,
    /// The newer head.
    pub new_tree_head: SignedTreeHead,
    /// The proof nodes (RFC 9162 §2.1.4).
    pub proof: Vec<Hash>,
}

impl ConsistencyProof {
    /// Checks the proof with nothing but the federation key.
    pub fn verify(&self, federation_key: &PublicKey) -> Result<(), String> {
        self.old_tree_head.verify(federation_key)?;
        self.new_tree_head.verify(federation_key)?;
        if merkle::verify_consistency(
            self.old_tree_head.tree_size,
            self.new_tree_head.tree_size,
            &self.old_tree_head.root_hash,
            &self.new_tree_head.root_hash,
            &self.proof,
        ) {
            Ok(())
        } else {
            Err(format!(
                "the tree of size {} is not a prefix of the tree of size {}",
                self.old_tree_head.tree_size, self.new_tree_head.tree_size
            ))
        }
    }
}

async fn leaf_hashes(db: &Db, tree_size: u64) -> Result<Vec<Hash>> {
    if tree_size > PROOF_TREE_SIZE_MAX {
        return Err(Error::NoProof {
            reason: format!("trees over {PROOF_TREE_SIZE_MAX} entries are not proved"),
        });
    }
    let rows: Vec<(i64, Vec<u8>)> = read!(
        db,
        fetch_all,
        (i64, Vec<u8>),
        "SELECT seq, entry_hash FROM audit_entries WHERE seq < $1 ORDER BY seq",
        to_i64(tree_size)
    )?;
    let mut leaves = Vec::with_capacity(rows.len());
    for (i, (seq, hash)) in rows.into_iter().enumerate() {
        let hash = hash_from(&hash).filter(|_| seq == i as i64).ok_or_else(|| Error::NoProof {
            reason: format!("the ledger is damaged at entry {i}: run `pantheon audit verify`"),
        })?;
        leaves.push(hash);
    }
    if leaves.len() as u64 != tree_size {
        return Err(Error::NoProof {
            reason: format!(
                "the ledger has {} of the {tree_size} entries the tree head covers",
                leaves.len()
            ),
        });
    }
    Ok(leaves)
}

async fn head_covering(db: &Db, at_least: u64) -> Result<SignedTreeHead> {
    tree_heads(db)
        .await?
        .into_iter()
        .filter_map(Result::ok)
        .find(|h| h.tree_size >= at_least)
        .ok_or_else(|| Error::NoProof {
            reason: format!(
                "no signed tree head covers {at_least} entries yet (heads are signed every {} entries and at shutdown)",
                crate::audit::TREE_HEAD_INTERVAL
            ),
        })
}

/// The inclusion proof of entry `seq` under the latest signed tree head that covers it.
pub async fn prove_inclusion(db: &Db, seq: u64) -> Result<InclusionProof> {
    let head = latest_tree_head(db).await?.filter(|h| h.tree_size > seq);
    let head = match head {
        Some(head) => head,
        None => head_covering(db, seq + 1).await?,
    };
    let leaves = leaf_hashes(db, head.tree_size).await?;
    let index = usize::try_from(seq).map_err(|_| Error::NoProof { reason: "entry out of range".into() })?;
    let audit_path = merkle::inclusion_proof(index, &leaves)
        .ok_or_else(|| Error::NoProof { reason: format!("no entry {seq}") })?;
    let sql = sqlx::AssertSqlSafe(SELECT_ENTRIES.to_string());
    let row: Option<EntryRow> = read!(db, fetch_optional, EntryRow, sql, to_i64(seq), 1i64)?;
    let entry = row
        .map(entry_from)
        .transpose()
        .map_err(|(_, reason)| Error::NoProof { reason })?
        .filter(|e| e.seq == seq)
        .ok_or_else(|| Error::NoProof { reason: format!("no entry {seq}") })?;
    Ok(InclusionProof { entry, audit_path, tree_head: head })
}

/// The consistency proof between the signed tree heads of sizes `old_size` and `new_size`.
pub async fn prove_consistency(db: &Db, old_size: u64, new_size: u64) -> Result<ConsistencyProof> {
    let heads: Vec<SignedTreeHead> = tree_heads(db).await?.into_iter().filter_map(Result::ok).collect();
    let find = |size: u64| {
        heads
            .iter()
            .find(|h| h.tree_size == size)
            .cloned()
            .ok_or_else(|| Error::NoProof { reason: format!("no signed tree head of size {size}") })
    };
    let (old_tree_head, new_tree_head) = (find(old_size)?, find(new_size)?);
    let leaves = leaf_hashes(db, new_size).await?;
    let size =
        usize::try_from(old_size).map_err(|_| Error::NoProof { reason: "size out of range".into() })?;
    let proof = merkle::consistency_proof(size, &leaves)
        .ok_or_else(|| Error::NoProof { reason: format!("{old_size} is not between 1 and {new_size}") })?;
    Ok(ConsistencyProof { old_tree_head, new_tree_head, proof })
}

/// Every signed tree head, smallest first (malformed ones left out).
pub async fn list_tree_heads(db: &Db) -> Result<Vec<SignedTreeHead>> {
    Ok(tree_heads(db).await?.into_iter().filter_map(Result::ok).collect())
}
