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
//! - a truncated ledger (a signed tree head covers more entries than there are),
//! - a forged or altered tree head (the signature over size, time and root fails, or the key
//!   is not the federation's).
//!
//! What no verifier of the ledger alone can catch: entries appended after the last signed tree
//! head by someone who recomputes the chain. [`verify_against_log`] compares every entry with
//! the event at its position in the log, which catches those too.

use events::{EventLog, Hash, PublicKey, Signature};
use serde::{Deserialize, Serialize};

use crate::audit::{AuditEntry, SignedTreeHead, hash_from};
use crate::db::{Db, read, to_i64};
use crate::merkle::{self, Frontier};
use crate::{Error, Result};

/// Entries read per query while verifying: bounds memory (about 300 bytes an entry) while
/// keeping round trips few.
pub const VERIFY_PAGE_COUNT_MAX: i64 = 10_000;

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

/// The running check over entries in sequence order.
struct Walk {
    frontier: Frontier,
    last_hash: Hash,
}

impl Walk {
    /// Checks the next entry; returns the problem if it is bad.
    fn check(&mut self, entry: &AuditEntry) -> Option<LedgerProblem> {
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
        let computed = entry.compute_hash();
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
/// signed tree head's signature and Merkle root. Stops at the first problem.
pub async fn verify_ledger(db: &Db, federation_key: &PublicKey) -> Result<LedgerReport> {
    let heads = tree_heads(db).await?;
    let mut report = LedgerReport {
        entries: 0,
        tree_heads: 0,
        root_hash: merkle::empty_root(),
        latest_tree_head: None,
        problem: None,
    };
    let mut pending = heads.into_iter().peekable();
    let mut walk = Walk { frontier: Frontier::default(), last_hash: Hash::ZERO };
    let mut from = 0i64;
    'pages: loop {
        let rows: Vec<EntryRow> =
            read!(db, fetch_all, EntryRow, SELECT_ENTRIES, from, VERIFY_PAGE_COUNT_MAX)?;
        let Some(last) = rows.last() else { break };
        from = last.0.saturating_add(1);
        for row in rows {
            let entry = match entry_from(row) {
                Ok(entry) => entry,
                Err((seq, reason)) => {
                    report.problem =
                        Some(LedgerProblem { entry: u64::try_from(seq).ok(), tree_size: None, reason });
                    break 'pages;
                }
            };
            if let Some(problem) = walk.check(&entry) {
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
    report.latest_tree_head = latest_tree_head(db).await?;
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

/// Compares every entry with the event at its log position: same event id and same content
/// hash. Returns the first mismatch, or `None`.
pub async fn verify_against_log(db: &Db, log: &dyn EventLog) -> Result<Option<LedgerProblem>> {
    let mut from = 0i64;
    loop {
        let rows: Vec<EntryRow> =
            read!(db, fetch_all, EntryRow, SELECT_ENTRIES, from, VERIFY_PAGE_COUNT_MAX)?;
        let Some(last) = rows.last() else { return Ok(None) };
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
            let event = log.read_all(entry.position, 1).await?.into_iter().next();
            let matches = event.as_ref().is_some_and(|event| {
                event.position == entry.position
                    && event.id.to_string() == entry.event_id
                    && event.content_hash() == entry.event_hash
            });
            if !matches {
                return Ok(Some(LedgerProblem {
                    entry: Some(entry.seq),
                    tree_size: None,
                    reason: format!(
                        "entry {} claims event {} at position {}, the log holds {}",
                        entry.seq,
                        entry.event_id,
                        entry.position,
                        event.map_or("nothing there".to_string(), |e| format!(
                            "event {} (hash {})",
                            e.id,
                            e.content_hash()
                        ))
                    ),
                }));
            }
        }
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
