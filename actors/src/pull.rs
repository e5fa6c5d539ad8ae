//! Pull workers (the Temporal and Celery model): an agent with no reachable address
//! (registered with transport `pull`) long-polls for the work it is offered, holds a lease
//! while it runs it, reports progress and heartbeats, and posts its signed result.
//!
//! The execution phase treats a pull agent as any other: it records `execution_started`, calls
//! the agent's endpoint (`PullAgent`) with the sealed envelope and the attempt's deadline,
//! and records what comes back — so the result's redaction, verification, retries and the
//! exactly-once rules are those of pushed attempts. The endpoint puts an offer on this
//! process's [`PullBoard`] and waits: a worker's poll ([`PullBoard::take`]) leases it, and
//! the worker's result, failure or progress reach the waiting attempt through the board.
//!
//! **Leases.** A claimed offer is leased for the lease the worker asked for (1 s to 5 min,
//! [`LEASE_MS_DEFAULT`] by default); any call of the worker for it (progress, a heartbeat)
//! renews it. A lease that lapses fails the attempt (cause `transport`: the worker stopped
//! answering), and the retry phase gives the task another attempt — for a worker that polls
//! again, or another agent. A result for an attempt that moved on is refused (409), so a
//! worker that comes back late records nothing.
//!
//! **Liveness.** Each poll and heartbeat notes the agent in the liveness table, so a pull
//! agent's health follows its polling: one that stops is stale, then lost, then left out.
//!
//! **Where offers live.** In the process whose execution phase took the attempt: a worker
//! polls that process's gateway. With several processes, run each worker against every
//! process (or against one process that alone hosts the pull agents' executions).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use events::{AgentId, SealedEnvelope, SignedResult, TaskId};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::agents::{AgentEndpoint, AgentFailure, Progress};

/// The lease of a claimed offer when the worker asks for none: 30 s.
pub const LEASE_MS_DEFAULT: u64 = 30_000;

/// The shortest lease a worker may ask for.
pub const LEASE_MS_MIN: u64 = 1_000;

/// The longest lease a worker may ask for: 5 min.
pub const LEASE_MS_MAX: u64 = 300_000;

/// The longest a poll waits for an offer.
pub const POLL_WAIT_MS_MAX: u64 = 60_000;

/// How often a waiting attempt looks at its lease.
const LEASE_CHECK_MS: u64 = 200;

/// Work handed to a worker.
#[derive(Clone, Debug)]
pub struct Claim {
    /// The task.
    pub task_id: TaskId,
    /// The attempt.
    pub attempt: u32,
    /// What to run, sealed by the federation.
    pub envelope: SealedEnvelope,
    /// The lease: renewed by progress and heartbeats, lapsed after this long without them.
    pub lease_ms: u64,
}

/// Why the board refused a worker's call.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PullError {
    /// The worker holds no lease on this task's current attempt (never claimed, lapsed,
    /// answered already, or the attempt moved on).
    #[error(
        "agent {agent} holds no lease on task {task_id}: never claimed, lapsed, answered, or the attempt moved on"
    )]
    NotLeased {
        /// The agent.
        agent: String,
        /// The task.
        task_id: TaskId,
    },
    /// The result does not answer the leased attempt.
    #[error("the result is for task {task_id} attempt {attempt} of agent {agent}, not the leased attempt")]
    Mismatch {
        /// The task it claims.
        task_id: TaskId,
        /// The attempt it claims.
        attempt: u32,
        /// The agent it claims.
        agent: String,
    },
}

/// One offer: an attempt waiting for a worker, or leased to one.
struct Offer {
    envelope: SealedEnvelope,
    reply: Mutex<Option<oneshot::Sender<Result<SignedResult, AgentFailure>>>>,
    progress: mpsc::Sender<Progress>,
    /// When the lease lapses, once claimed; and the lease's length.
    lease: Mutex<Option<(tokio::time::Instant, Duration)>>,
}

impl Offer {
    fn task_id(&self) -> TaskId {
        self.envelope.envelope.task_id
    }

    /// Whether the attempt still waits (its endpoint call has not ended).
    fn open(&self) -> bool {
        self.reply.lock().map(|reply| reply.as_ref().is_some_and(|tx| !tx.is_closed())).unwrap_or(false)
    }

    fn renew(&self) {
        if let Ok(mut lease) = self.lease.lock()
            && let Some((until, length)) = lease.as_mut()
        {
            *until = tokio::time::Instant::now() + *length;
        }
    }

    fn lapsed(&self) -> bool {
        self.lease
            .lock()
            .map(|lease| lease.is_some_and(|(until, _)| tokio::time::Instant::now() >= until))
            .unwrap_or(false)
    }

    fn answer(&self, outcome: Result<SignedResult, AgentFailure>) -> bool {
        let sender = self.reply.lock().ok().and_then(|mut reply| reply.take());
        sender.is_some_and(|tx| tx.send(outcome).is_ok())
    }
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Arc<Offer>>,
    leased: HashMap<TaskId, Arc<Offer>>,
    notify: Arc<Notify>,
}

/// The offers of this process's pull agents. Shared by the execution phase (which offers)
/// and the gateway (whose workers' polls take).
#[derive(Default)]
pub struct PullBoard {
    queues: Mutex<HashMap<AgentId, Queue>>,
    liveness: Option<projections::LivenessTable>,
}

impl std::fmt::Debug for PullBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullBoard").finish_non_exhaustive()
    }
}

impl PullBoard {
    /// A board that notes polls and heartbeats in `liveness` (when there is a read model).
    pub fn new(liveness: Option<projections::LivenessTable>) -> Self {
        Self { queues: Mutex::default(), liveness }
    }

    fn with_queue<T>(&self, agent: &AgentId, f: impl FnOnce(&mut Queue) -> T) -> Option<T> {
        let mut queues = self.queues.lock().ok()?;
        Some(f(queues.entry(agent.clone()).or_default()))
    }

    fn offer(&self, agent: &AgentId, offer: Arc<Offer>) {
        self.with_queue(agent, |queue| {
            queue.waiting.push_back(offer);
            queue.notify.notify_one();
        });
    }

    fn forget(&self, agent: &AgentId, task_id: TaskId) {
        self.with_queue(agent, |queue| {
            queue.leased.remove(&task_id);
            queue.waiting.retain(|o| o.task_id() != task_id);
        });
    }

    /// Notes that `agent`'s worker is alive (a poll or a heartbeat).
    async fn seen(&self, agent: &AgentId, in_flight: u32) {
        if let Some(table) = &self.liveness
            && let Err(error) = table.beat(agent.as_str(), events::now_ms(), i64::from(in_flight)).await
        {
            tracing::warn!(%agent, %error, "a pull worker's liveness was not noted");
        }
    }

    /// Takes the oldest offer for `agent`, waiting up to `wait` for one, and leases it for
    /// `lease` (clamped to [`LEASE_MS_MIN`]..=[`LEASE_MS_MAX`]).
    pub async fn take(&self, agent: &AgentId, wait: Duration, lease: Duration) -> Option<Claim> {
        let lease = lease.clamp(Duration::from_millis(LEASE_MS_MIN), Duration::from_millis(LEASE_MS_MAX));
        let deadline = tokio::time::Instant::now() + wait.min(Duration::from_millis(POLL_WAIT_MS_MAX));
        let in_flight = self.with_queue(agent, |q| q.leased.len()).unwrap_or(0);
        self.seen(agent, u32::try_from(in_flight).unwrap_or(u32::MAX)).await;
        loop {
            let (claimed, notify) = self.with_queue(agent, |queue| {
                queue.leased.retain(|_, offer| offer.open());
                let mut claimed = None;
                while let Some(offer) = queue.waiting.pop_front() {
                    if !offer.open() {
                        continue;
                    }
                    if let Ok(mut held) = offer.lease.lock() {
                        *held = Some((tokio::time::Instant::now() + lease, lease));
                    }
                    queue.leased.insert(offer.task_id(), Arc::clone(&offer));
                    claimed = Some(offer);
                    break;
                }
                (claimed, Arc::clone(&queue.notify))
            })?;
            if let Some(offer) = claimed {
                let envelope = offer.envelope.clone();
                return Some(Claim {
                    task_id: envelope.envelope.task_id,
                    attempt: envelope.envelope.attempt,
                    envelope,
                    lease_ms: u64::try_from(lease.as_millis()).unwrap_or(LEASE_MS_MAX),
                });
            }
            if tokio::time::timeout_at(deadline, notify.notified()).await.is_err() {
                return None;
            }
        }
    }

    fn leased(&self, agent: &AgentId, task_id: TaskId) -> Result<Arc<Offer>, PullError> {
        self.with_queue(agent, |queue| queue.leased.get(&task_id).filter(|o| o.open()).cloned())
            .flatten()
            .ok_or_else(|| PullError::NotLeased { agent: agent.to_string(), task_id })
    }

    /// The worker's result for its leased attempt of `task_id`.
    pub fn complete(&self, agent: &AgentId, task_id: TaskId, result: SignedResult) -> Result<(), PullError> {
        let offer = self.leased(agent, task_id)?;
        let (claimed, envelope) = (&result.result, &offer.envelope.envelope);
        if claimed.task_id != envelope.task_id
            || claimed.attempt != envelope.attempt
            || claimed.agent_id != *agent
        {
            return Err(PullError::Mismatch {
                task_id: claimed.task_id,
                attempt: claimed.attempt,
                agent: claimed.agent_id.to_string(),
            });
        }
        self.forget(agent, task_id);
        if offer.answer(Ok(result)) {
            Ok(())
        } else {
            Err(PullError::NotLeased { agent: agent.to_string(), task_id })
        }
    }

    /// The worker gives up its leased attempt of `task_id`: the attempt fails with `reason`
    /// (the agent's fault).
    pub fn fail(&self, agent: &AgentId, task_id: TaskId, reason: String) -> Result<(), PullError> {
        let offer = self.leased(agent, task_id)?;
        self.forget(agent, task_id);
        if offer.answer(Err(AgentFailure::agent(reason))) {
            Ok(())
        } else {
            Err(PullError::NotLeased { agent: agent.to_string(), task_id })
        }
    }

    /// Progress of the worker's leased attempt of `task_id` (renews the lease).
    pub fn progress(
        &self,
        agent: &AgentId,
        task_id: TaskId,
        percent: Option<u8>,
        message: String,
    ) -> Result<(), PullError> {
        let offer = self.leased(agent, task_id)?;
        offer.renew();
        // A full queue drops the report, as for pushed attempts (progress is advisory).
        let _ = offer.progress.try_send(Progress { percent, message });
        Ok(())
    }

    /// A heartbeat of `agent`'s worker: renews every lease it holds and notes it alive.
    pub async fn heartbeat(&self, agent: &AgentId) {
        let in_flight = self
            .with_queue(agent, |queue| {
                queue.leased.retain(|_, offer| offer.open());
                queue.leased.values().for_each(|offer| offer.renew());
                queue.leased.len()
            })
            .unwrap_or(0);
        self.seen(agent, u32::try_from(in_flight).unwrap_or(u32::MAX)).await;
    }
}

/// The endpoint of a pull agent: offers each attempt on the board and waits for its worker.
pub(crate) struct PullAgent {
    pub(crate) board: Arc<PullBoard>,
    pub(crate) agent: AgentId,
}

#[async_trait]
impl AgentEndpoint for PullAgent {
    async fn execute(
        &self,
        envelope: &SealedEnvelope,
        progress: mpsc::Sender<Progress>,
    ) -> Result<SignedResult, AgentFailure> {
        let (tx, mut rx) = oneshot::channel();
        let offer = Arc::new(Offer {
            envelope: envelope.clone(),
            reply: Mutex::new(Some(tx)),
            progress,
            lease: Mutex::new(None),
        });
        self.board.offer(&self.agent, Arc::clone(&offer));
        // Taken off the board however this call ends (answered, lapsed, or dropped at the
        // attempt's deadline or at shutdown).
        struct Off<'a>(&'a PullBoard, &'a AgentId, TaskId);
        impl Drop for Off<'_> {
            fn drop(&mut self) {
                self.0.forget(self.1, self.2);
            }
        }
        let _off = Off(&self.board, &self.agent, envelope.envelope.task_id);
        let mut check = tokio::time::interval(Duration::from_millis(LEASE_CHECK_MS));
        loop {
            tokio::select! {
                answer = &mut rx => {
                    return answer.unwrap_or_else(|_| Err(AgentFailure::transport("the pull board dropped the attempt")));
                }
                _ = check.tick() => {
                    if offer.lapsed() {
                        return Err(AgentFailure::transport(format!(
                            "the lease of pull worker {} lapsed: no result, progress or heartbeat in time",
                            self.agent
                        )));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use events::{AgentResult, KeyPair, TaskEnvelope};

    fn sealed(agent: &AgentId, attempt: u32) -> SealedEnvelope {
        let federation = KeyPair::generate();
        let envelope = TaskEnvelope {
            task_id: TaskId::new(),
            attempt,
            agent_id: agent.clone(),
            capability: "work".into(),
            description: "x".into(),
            input: serde_json::Value::Null,
            context: serde_json::Value::Null,
            issued_at_ms: 0,
            expires_at_ms: i64::MAX,
        };
        SealedEnvelope::seal(envelope, &federation).expect("sealed")
    }

    fn result(envelope: &SealedEnvelope, key: &KeyPair) -> SignedResult {
        let result = AgentResult {
            task_id: envelope.envelope.task_id,
            attempt: envelope.envelope.attempt,
            agent_id: envelope.envelope.agent_id.clone(),
            envelope_hash: envelope.hash,
            output: serde_json::json!("done"),
            completed_at_ms: 1,
        };
        SignedResult::sign(result, key).expect("signed")
    }

    #[tokio::test]
    async fn a_worker_takes_an_offer_and_its_result_answers_the_attempt_once() {
        let board = Arc::new(PullBoard::new(None));
        let agent = AgentId::new("worker").unwrap();
        let endpoint = PullAgent { board: Arc::clone(&board), agent: agent.clone() };
        let envelope = sealed(&agent, 1);
        let (tx, _rx) = mpsc::channel(4);
        let attempt = tokio::spawn({
            let envelope = envelope.clone();
            async move { endpoint.execute(&envelope, tx).await }
        });
        let claim =
            board.take(&agent, Duration::from_secs(5), Duration::from_secs(5)).await.expect("a claim");
        assert_eq!((claim.task_id, claim.attempt), (envelope.envelope.task_id, 1));
        // Nothing more to take.
        assert!(board.take(&agent, Duration::from_millis(50), Duration::from_secs(5)).await.is_none());
        let key = KeyPair::generate();
        board.complete(&agent, claim.task_id, result(&envelope, &key)).expect("accepted");
        assert!(attempt.await.unwrap().is_ok());
        // Answered once: a second result is refused.
        assert!(matches!(
            board.complete(&agent, claim.task_id, result(&envelope, &key)),
            Err(PullError::NotLeased { .. })
        ));
    }

    #[tokio::test]
    async fn a_lapsed_lease_fails_the_attempt_and_a_late_result_is_refused() {
        let board = Arc::new(PullBoard::new(None));
        let agent = AgentId::new("worker").unwrap();
        let endpoint = PullAgent { board: Arc::clone(&board), agent: agent.clone() };
        let envelope = sealed(&agent, 1);
        let (tx, _rx) = mpsc::channel(4);
        let attempt = tokio::spawn({
            let envelope = envelope.clone();
            async move { endpoint.execute(&envelope, tx).await }
        });
        let claim =
            board.take(&agent, Duration::from_secs(5), Duration::from_millis(1)).await.expect("a claim");
        assert_eq!(claim.lease_ms, LEASE_MS_MIN, "clamped");
        let failure = attempt.await.unwrap().expect_err("lapsed");
        assert!(failure.reason.contains("lease"), "{failure:?}");
        assert!(board.complete(&agent, claim.task_id, result(&envelope, &KeyPair::generate())).is_err());
    }

    #[tokio::test]
    async fn a_result_for_another_attempt_is_refused_and_the_lease_holds() {
        let board = Arc::new(PullBoard::new(None));
        let agent = AgentId::new("worker").unwrap();
        let endpoint = PullAgent { board: Arc::clone(&board), agent: agent.clone() };
        let envelope = sealed(&agent, 2);
        let (tx, _rx) = mpsc::channel(4);
        let attempt = tokio::spawn({
            let envelope = envelope.clone();
            async move { endpoint.execute(&envelope, tx).await }
        });
        let claim =
            board.take(&agent, Duration::from_secs(5), Duration::from_secs(5)).await.expect("a claim");
        let mut other = sealed(&agent, 1);
        other.envelope.task_id = claim.task_id;
        let refused = board.complete(&agent, claim.task_id, result(&other, &KeyPair::generate()));
        assert!(matches!(refused, Err(PullError::Mismatch { attempt: 1, .. })), "{refused:?}");
        board.fail(&agent, claim.task_id, "cannot do it".into()).expect("still leased");
        assert!(attempt.await.unwrap().is_err());
    }
}
