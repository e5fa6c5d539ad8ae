//! The projection machinery: each projection reads the log from its checkpoint and applies a
//! batch of events and the new checkpoint in **one** transaction, so every event is applied
//! exactly once across crashes, restarts and concurrent instances.
//!
//! # How a batch is applied
//! 1. Read up to [`BATCH_COUNT_MAX`] events after the in-memory checkpoint (the next batch is
//!    read while the current one is written).
//! 2. Begin a transaction and lock the projection's checkpoint row (`FOR UPDATE` on
//!    PostgreSQL; SQLite's `BEGIN IMMEDIATE` holds the database's write lock). If the stored
//!    checkpoint is not the one this runner expected — another instance, or a rebuild, moved
//!    it — roll back and continue from the stored one.
//! 3. Apply the events to the read model, write the last event's position as the checkpoint,
//!    commit. A crash anywhere before the commit loses both, and the batch is applied again.

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use events::{EventLog, KeyPair, Position, RecordedEvent};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::audit::AuditLedger;
use crate::db::{Db, Tx, execute, fetch, read, to_i64, to_u64};
use crate::health::HealthProjection;
use crate::reputation::ReputationProjection;
use crate::tasks::TaskView;
use crate::{Error, Result};

/// The most events applied in one transaction. Larger batches amortise the commit (an fsync)
/// and the per-statement round trips; 1,000 is also the most one `read_all` returns from the
/// SQL store, and keeps one transaction's locks and memory small.
pub const BATCH_COUNT_MAX: usize = 1_000;

/// How long an idle projection waits before looking at the log again, in ms.
pub const POLL_INTERVAL_MS: u64 = 50;

/// How long a projection waits after a failed batch (database down, log unreachable) before
/// trying again, in ms.
pub const RETRY_DELAY_MS: u64 = 1_000;

/// The most events [`Projections::status`] counts when measuring lag; beyond it the lag is
/// reported as at least this many (counting pages through the log is not free).
pub const LAG_SCAN_COUNT_MAX: u64 = 100_000;

const _: () = assert!(BATCH_COUNT_MAX >= 1 && BATCH_COUNT_MAX <= 1_000);

/// The projections there are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProjectionName {
    /// The task view with full-text search ([`crate::TaskReader`]).
    Tasks,
    /// Reputation per agent and capability ([`crate::ReputationReader`]).
    Reputation,
    /// Health and SLOs per agent and capability ([`crate::HealthReader`]).
    Health,
    /// The hash-chained, Merkle-checkpointed audit ledger ([`crate::verify_ledger`]).
    Audit,
    /// The workflow runs view ([`crate::RunReader`]).
    Runs,
}

impl ProjectionName {
    /// All projections.
    pub const ALL: [ProjectionName; 5] =
        [Self::Tasks, Self::Reputation, Self::Health, Self::Audit, Self::Runs];

    /// The name used in the CLI, metrics and the checkpoint table.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tasks => "tasks",
            Self::Reputation => "reputation",
            Self::Health => "health",
            Self::Audit => "audit",
            Self::Runs => "runs",
        }
    }
}

impl std::fmt::Display for ProjectionName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProjectionName {
    type Err = Error;
    fn from_str(name: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name).ok_or_else(|| Error::UnknownProjection {
            name: name.to_string(),
            known: Self::ALL.map(Self::as_str).join(", "),
        })
    }
}

/// One projection: how it applies a batch, which tables hold its read model, and how to
/// digest that model (to prove a rebuild gives the same result).
#[async_trait]
pub(crate) trait Projection: Send + Sync {
    /// The tables of the read model, emptied by a rebuild (children before parents).
    fn tables(&self) -> &'static [&'static str];

    /// Queries returning one TEXT column whose rows, in order, describe the read model.
    fn digest_queries(&self, postgres: bool) -> &'static [&'static str];

    /// Applies events (in position order) inside the transaction.
    async fn apply(&mut self, tx: &mut Tx, events: &[RecordedEvent]) -> Result<()>;

    /// Called once at shutdown inside a transaction (the audit ledger signs a tree head).
    async fn finish(&mut self, _tx: &mut Tx) -> Result<()> {
        Ok(())
    }
}

/// Where one projection stands.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ProjectionStatus {
    /// The projection.
    pub name: &'static str,
    /// The last log position applied (0: nothing yet).
    pub position: Position,
    /// The last position in the log, as far as the lag scan went.
    pub head_position: Position,
    /// Events in the log not yet applied (at most [`LAG_SCAN_COUNT_MAX`]).
    pub lag_events: u64,
    /// Whether the scan stopped at [`LAG_SCAN_COUNT_MAX`] (the lag is at least that).
    pub lag_capped: bool,
}

/// The projections over one log and one database.
#[derive(Clone, Debug)]
pub struct Projections {
    db: Db,
    log: Arc<dyn EventLog>,
    audit_key: KeyPair,
    tree_head_interval: u64,
    health_cool_down_ms: i64,
}

/// The running projections of [`Projections::spawn`]: one task per projection.
#[derive(Debug)]
pub struct RunningProjections {
    handles: Vec<(ProjectionName, JoinHandle<Result<()>>)>,
}

impl RunningProjections {
    /// Waits for every projection to stop (after the shutdown signal), returning the first
    /// failure.
    pub async fn join(self) -> Result<()> {
        let mut first_error = None;
        for (name, handle) in self.handles {
            match handle.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    warn!(projection = %name, error = %e, "projection stopped with an error");
                    first_error.get_or_insert(e);
                }
                Err(e) => warn!(projection = %name, error = %e, "projection task panicked or was aborted"),
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Opens the read models at `database_url` and runs every projection over `log` until
/// `shutdown` resolves; the audit ledger signs tree heads with `audit_key` (the federation
/// key). This is what `pantheon up` calls.
pub async fn run_all(
    log: Arc<dyn EventLog>,
    database_url: &str,
    audit_key: KeyPair,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<RunningProjections> {
    let db = Db::connect(database_url).await?;
    Ok(Projections::new(db, log, audit_key).spawn(shutdown))
}

impl Projections {
    /// The projections of `log`, kept in `db`, the audit ledger signed with `audit_key`.
    pub fn new(db: Db, log: Arc<dyn EventLog>, audit_key: KeyPair) -> Self {
        Self {
            db,
            log,
            audit_key,
            tree_head_interval: crate::audit::TREE_HEAD_INTERVAL,
            health_cool_down_ms: crate::health::COOL_DOWN_MS,
        }
    }

    /// Lets an unhealthy agent have its trial task after `cool_down_ms` instead of
    /// [`crate::health::COOL_DOWN_MS`] (readers must use the same:
    /// [`crate::HealthReader::with_cool_down_ms`]). A rebuild with another cool-down can
    /// yield another health model.
    pub fn with_health_cool_down_ms(mut self, cool_down_ms: i64) -> Self {
        self.health_cool_down_ms = cool_down_ms.max(0);
        self
    }

    /// Signs audit tree heads every `entries` entries instead of every
    /// [`crate::audit::TREE_HEAD_INTERVAL`] (at least 1).
    pub fn with_tree_head_interval(mut self, entries: u64) -> Self {
        self.tree_head_interval = entries.max(1);
        self
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    fn projection(&self, name: ProjectionName) -> Box<dyn Projection> {
        match name {
            ProjectionName::Tasks => Box::new(TaskView),
            ProjectionName::Reputation => Box::new(ReputationProjection),
            ProjectionName::Health => Box::new(HealthProjection { cool_down_ms: self.health_cool_down_ms }),
            ProjectionName::Audit => {
                Box::new(AuditLedger::new(self.audit_key.clone(), self.tree_head_interval))
            }
            ProjectionName::Runs => Box::new(crate::runs::RunView),
        }
    }

    /// Applies everything the log holds now to one projection; returns the events applied.
    pub async fn catch_up(&self, name: ProjectionName) -> Result<u64> {
        let mut projection = self.projection(name);
        let mut checkpoint = self.checkpoint(name).await?;
        let mut applied = 0;
        let mut next = self.log.read_all(checkpoint + 1, BATCH_COUNT_MAX).await?;
        while !next.is_empty() {
            let batch = std::mem::take(&mut next);
            let (step, prefetched) = tokio::join!(
                apply_batch(&self.db, name, projection.as_mut(), checkpoint, &batch),
                prefetch(self.log.as_ref(), &batch),
            );
            match step? {
                Step::Applied(position) => {
                    applied += batch.len() as u64;
                    checkpoint = position;
                    next = prefetched?;
                }
                Step::Moved(position) => {
                    checkpoint = position;
                    next = self.log.read_all(checkpoint + 1, BATCH_COUNT_MAX).await?;
                }
            }
        }
        Ok(applied)
    }

    /// Catches every projection up (see [`Projections::catch_up`]).
    pub async fn catch_up_all(&self) -> Result<u64> {
        let mut applied = 0;
        for name in ProjectionName::ALL {
            applied += self.catch_up(name).await?;
        }
        Ok(applied)
    }

    /// Signs the audit ledger's tree head now if entries were added since the last one (what
    /// the running ledger does at shutdown).
    pub async fn seal_audit(&self) -> Result<()> {
        let mut projection = self.projection(ProjectionName::Audit);
        let mut tx = self.db.begin().await?;
        projection.finish(&mut tx).await?;
        tx.commit().await
    }

    /// Empties a projection's read model and applies the whole log again from position 0;
    /// returns the events applied. Readers see a partial model until it finishes.
    pub async fn rebuild(&self, name: ProjectionName) -> Result<u64> {
        let projection = self.projection(name);
        let mut tx = self.db.begin().await?;
        lock_checkpoint(&mut tx, name).await?;
        for table in projection.tables() {
            execute!(&mut tx, sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))?;
        }
        write_checkpoint(&mut tx, name, 0).await?;
        tx.commit().await?;
        info!(projection = %name, "read model emptied; rebuilding from position 0");
        self.catch_up(name).await
    }

    /// A blake3 digest of a projection's read model: equal digests, equal models.
    pub async fn digest(&self, name: ProjectionName) -> Result<String> {
        let mut hasher = blake3::Hasher::new();
        for query in self.projection(name).digest_queries(self.db.is_postgres()) {
            let rows: Vec<(String,)> = read!(&self.db, fetch_all, (String,), *query)?;
            for (row,) in rows {
                hasher.update(&(row.len() as u64).to_be_bytes());
                hasher.update(row.as_bytes());
            }
        }
        Ok(hasher.finalize().to_hex().to_string())
    }

    /// The stored checkpoint of one projection (0 when it never ran).
    pub async fn checkpoint(&self, name: ProjectionName) -> Result<Position> {
        let row: Option<(i64,)> = read!(
            &self.db,
            fetch_optional,
            (i64,),
            "SELECT position FROM projection_checkpoints WHERE name = $1",
            name.as_str()
        )?;
        row.map_or(Ok(0), |(position,)| to_u64(position, "projection_checkpoints"))
    }

    /// Where every projection stands, with its lag behind the log.
    pub async fn status(&self) -> Result<Vec<ProjectionStatus>> {
        let mut statuses = Vec::with_capacity(ProjectionName::ALL.len());
        for name in ProjectionName::ALL {
            let position = self.checkpoint(name).await?;
            let (head_position, lag_events, lag_capped) = self.scan_lag(position).await?;
            statuses.push(ProjectionStatus {
                name: name.as_str(),
                position,
                head_position,
                lag_events,
                lag_capped,
            });
        }
        Ok(statuses)
    }

    async fn scan_lag(&self, from: Position) -> Result<(Position, u64, bool)> {
        let (mut head, mut lag) = (from, 0u64);
        loop {
            let page = self.log.read_all(head + 1, BATCH_COUNT_MAX).await?;
            let Some(last) = page.last() else { return Ok((head, lag, false)) };
            head = last.position;
            lag += page.len() as u64;
            if lag >= LAG_SCAN_COUNT_MAX {
                return Ok((head, lag, true));
            }
        }
    }

    /// Runs every projection in its own task until `shutdown` resolves; each then finishes
    /// its batch, and the audit ledger signs a final tree head.
    pub fn spawn(self, shutdown: impl Future<Output = ()> + Send + 'static) -> RunningProjections {
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(true);
        });
        let handles = ProjectionName::ALL
            .into_iter()
            .map(|name| {
                let this = self.clone();
                let stopped = stopped.clone();
                let span = tracing::info_span!("projection", name = name.as_str());
                let handle = tokio::spawn(tracing::Instrument::instrument(this.run(name, stopped), span));
                (name, handle)
            })
            .collect();
        RunningProjections { handles }
    }

    async fn run(self, name: ProjectionName, mut stopped: watch::Receiver<bool>) -> Result<()> {
        let mut projection = self.projection(name);
        let mut checkpoint = None;
        while !*stopped.borrow() {
            let pause_ms = match self.run_once(name, projection.as_mut(), &mut checkpoint).await {
                Ok(0) => POLL_INTERVAL_MS,
                Ok(_) => 0,
                Err(e) => {
                    warn!(projection = %name, error = %e, "batch failed; retrying");
                    checkpoint = None;
                    RETRY_DELAY_MS
                }
            };
            if pause_ms > 0 {
                tokio::select! {
                    _ = stopped.changed() => {}
                    () = tokio::time::sleep(Duration::from_millis(pause_ms)) => {}
                }
            }
        }
        let mut tx = self.db.begin().await?;
        projection.finish(&mut tx).await?;
        tx.commit().await
    }

    /// One batch; returns the events applied (0 when idle).
    async fn run_once(
        &self,
        name: ProjectionName,
        projection: &mut dyn Projection,
        checkpoint: &mut Option<Position>,
    ) -> Result<usize> {
        let from = match *checkpoint {
            Some(position) => position,
            None => self.checkpoint(name).await?,
        };
        let batch = self.log.read_all(from + 1, BATCH_COUNT_MAX).await?;
        if batch.is_empty() {
            *checkpoint = Some(from);
            return Ok(0);
        }
        match apply_batch(&self.db, name, projection, from, &batch).await? {
            Step::Applied(position) => {
                *checkpoint = Some(position);
                Ok(batch.len())
            }
            Step::Moved(position) => {
                *checkpoint = Some(position);
                Ok(1)
            }
        }
    }
}

/// What one batch did.
enum Step {
    /// Applied; the checkpoint is now this position.
    Applied(Position),
    /// Nothing applied: the stored checkpoint was not the expected one; it is this.
    Moved(Position),
}

/// Reads the batch after `batch` (while `batch` is being written).
async fn prefetch(log: &dyn EventLog, batch: &[RecordedEvent]) -> Result<Vec<RecordedEvent>> {
    match batch.last() {
        Some(last) => Ok(log.read_all(last.position + 1, BATCH_COUNT_MAX).await?),
        None => Ok(Vec::new()),
    }
}

async fn apply_batch(
    db: &Db,
    name: ProjectionName,
    projection: &mut dyn Projection,
    expected: Position,
    batch: &[RecordedEvent],
) -> Result<Step> {
    let Some(last) = batch.last() else { return Ok(Step::Applied(expected)) };
    let mut tx = db.begin().await?;
    let stored = lock_checkpoint(&mut tx, name).await?;
    if stored != expected {
        tx.rollback().await?;
        return Ok(Step::Moved(stored));
    }
    // Pair assertion: the batch starts after the checkpoint and is in position order.
    debug_assert!(batch.windows(2).all(|w| w[0].position < w[1].position));
    debug_assert!(batch.first().is_some_and(|e| e.position > expected));
    projection.apply(&mut tx, batch).await?;
    write_checkpoint(&mut tx, name, last.position).await?;
    tx.commit().await?;
    Ok(Step::Applied(last.position))
}

/// Creates the checkpoint row if needed and locks it for this transaction; returns it.
async fn lock_checkpoint(tx: &mut Tx, name: ProjectionName) -> Result<Position> {
    execute!(
        &mut *tx,
        "INSERT INTO projection_checkpoints (name, position, updated_at_ms) VALUES ($1, 0, $2) \
         ON CONFLICT (name) DO NOTHING",
        name.as_str(),
        events::now_ms()
    )?;
    let (position,): (i64,) = match tx {
        Tx::Sqlite(_) => fetch!(
            &mut *tx,
            fetch_one,
            (i64,),
            "SELECT position FROM projection_checkpoints WHERE name = $1",
            name.as_str()
        )?,
        Tx::Postgres(_) => fetch!(
            &mut *tx,
            fetch_one,
            (i64,),
            "SELECT position FROM projection_checkpoints WHERE name = $1 FOR UPDATE",
            name.as_str()
        )?,
    };
    to_u64(position, "projection_checkpoints")
}

async fn write_checkpoint(tx: &mut Tx, name: ProjectionName, position: Position) -> Result<()> {
    execute!(
        tx,
        "UPDATE projection_checkpoints SET position = $2, updated_at_ms = $3 WHERE name = $1",
        name.as_str(),
        to_i64(position),
        events::now_ms()
    )?;
    Ok(())
}

/// The projections' state in the Prometheus text format (for the gateway's `/metrics`).
pub fn prometheus_metrics(statuses: &[ProjectionStatus]) -> String {
    let mut out = String::new();
    out.push_str("# HELP pantheon_projection_position Last log position applied by the projection.\n");
    out.push_str("# TYPE pantheon_projection_position gauge\n");
    for s in statuses {
        out.push_str(&format!("pantheon_projection_position{{projection=\"{}\"}} {}\n", s.name, s.position));
    }
    out.push_str(&format!(
        "# HELP pantheon_projection_lag_events Events in the log not yet applied (counted up to {LAG_SCAN_COUNT_MAX}).\n"
    ));
    out.push_str("# TYPE pantheon_projection_lag_events gauge\n");
    for s in statuses {
        out.push_str(&format!(
            "pantheon_projection_lag_events{{projection=\"{}\"}} {}\n",
            s.name, s.lag_events
        ));
    }
    out.push_str("# HELP pantheon_projection_head_position Last log position seen by the lag scan.\n");
    out.push_str("# TYPE pantheon_projection_head_position gauge\n");
    for s in statuses {
        out.push_str(&format!(
            "pantheon_projection_head_position{{projection=\"{}\"}} {}\n",
            s.name, s.head_position
        ));
    }
    out
}
