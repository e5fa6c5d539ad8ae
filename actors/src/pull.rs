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
//! **Where offers live.** In the process whose execution phase took the attempt. On NATS a
//! worker may poll any process of the federation: a poll that finds nothing here asks the
//! others (`pantheon.pull.take.<agent>`: the first process to answer with a claim wins, a
//! later claim is released at once), and the worker's result, failure, progress and
//! heartbeats reach the process that holds its lease the same way (`pantheon.pull.op.<task>`,
//! `pantheon.pull.beat.<agent>`). Without NATS (the embedded default) there is one process.
//! Workers that speak NATS instead of HTTP reach the same board through
//! [`crate::pull_nats`].

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use events::{AgentId, SealedEnvelope, SignedResult, TaskId};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
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

/// How often a poll that finds nothing asks the other processes (on NATS).
const REMOTE_TAKE_EVERY_MS: u64 = 250;

/// How long a poll waits for another process's claim.
const REMOTE_ANSWER_MS: u64 = 100;

/// How long a worker's call waits for the process that holds its lease.
const REMOTE_OP_MS: u64 = 2_000;

/// The subjects of pull work between a federation's processes.
const SUBJECT_TAKE: &str = "pantheon.pull.take";
const SUBJECT_OP: &str = "pantheon.pull.op";
const SUBJECT_BEAT: &str = "pantheon.pull.beat";
const SUBJECT_RELEASE: &str = "pantheon.pull.release";

/// A claim as one process hands it to another.
#[derive(Serialize, Deserialize)]
struct RemoteClaim {
    envelope: SealedEnvelope,
    lease_ms: u64,
}

/// A worker's call passed on to the process that holds its lease.
#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum RemoteOp {
    Complete { agent: AgentId, result: Box<SignedResult> },
    Fail { agent: AgentId, reason: String },
    Progress { agent: AgentId, percent: Option<u8>, message: String },
}

impl RemoteOp {
    fn agent(&self) -> &AgentId {
        match self {
            Self::Complete { agent, .. } | Self::Fail { agent, .. } | Self::Progress { agent, .. } => agent,
        }
    }
}

/// The holder's answer: `None` when it took the call.
#[derive(Serialize, Deserialize)]
struct RemoteAnswer {
    error: Option<PullError>,
}

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
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
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
    /// The federation's other processes, on NATS.
    nats: Option<async_nats::Client>,
}

impl std::fmt::Debug for PullBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullBoard").finish_non_exhaustive()
    }
}

impl PullBoard {
    /// A board that notes polls and heartbeats in `liveness` (when there is a read model) and
    /// reaches the federation's other processes on `nats` (when it runs on NATS).
    pub fn new(liveness: Option<projections::LivenessTable>, nats: Option<async_nats::Client>) -> Self {
        Self { queues: Mutex::default(), liveness, nats }
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
            if let Some(claim) = self.take_now(agent, lease) {
                return Some(claim);
            }
            if let Some(nats) = &self.nats
                && let Some(claim) = take_remote(nats, agent, lease).await
            {
                return Some(claim);
            }
            let notify = self.with_queue(agent, |queue| Arc::clone(&queue.notify))?;
            let until = match self.nats {
                Some(_) => {
                    deadline.min(tokio::time::Instant::now() + Duration::from_millis(REMOTE_TAKE_EVERY_MS))
                }
                None => deadline,
            };
            if tokio::time::timeout_at(until, notify.notified()).await.is_err()
                && tokio::time::Instant::now() >= deadline
            {
                return None;
            }
        }
    }

    /// Claims the oldest offer held here, if any, without waiting.
    fn take_now(&self, agent: &AgentId, lease: Duration) -> Option<Claim> {
        let claimed = self
            .with_queue(agent, |queue| {
                queue.leased.retain(|_, offer| offer.open());
                while let Some(offer) = queue.waiting.pop_front() {
                    if !offer.open() {
                        continue;
                    }
                    if let Ok(mut held) = offer.lease.lock() {
                        *held = Some((tokio::time::Instant::now() + lease, lease));
                    }
                    queue.leased.insert(offer.task_id(), Arc::clone(&offer));
                    return Some(offer);
                }
                None
            })
            .flatten()?;
        let envelope = claimed.envelope.clone();
        Some(Claim {
            task_id: envelope.envelope.task_id,
            attempt: envelope.envelope.attempt,
            envelope,
            lease_ms: u64::try_from(lease.as_millis()).unwrap_or(LEASE_MS_MAX),
        })
    }

    /// Puts a claimed offer back at the head of its queue (a claim another process's poll
    /// made but did not hand on).
    fn release(&self, task_id: TaskId) {
        let Ok(mut queues) = self.queues.lock() else { return };
        for queue in queues.values_mut() {
            if let Some(offer) = queue.leased.remove(&task_id) {
                if let Ok(mut held) = offer.lease.lock() {
                    *held = None;
                }
                queue.waiting.push_front(offer);
                queue.notify.notify_one();
                return;
            }
        }
    }

    /// Renews the leases `agent` holds here.
    fn renew(&self, agent: &AgentId) -> usize {
        self.with_queue(agent, |queue| {
            queue.leased.retain(|_, offer| offer.open());
            queue.leased.values().for_each(|offer| offer.renew());
            queue.leased.len()
        })
        .unwrap_or(0)
    }

    fn leased(&self, agent: &AgentId, task_id: TaskId) -> Result<Arc<Offer>, PullError> {
        self.with_queue(agent, |queue| queue.leased.get(&task_id).filter(|o| o.open()).cloned())
            .flatten()
            .ok_or_else(|| PullError::NotLeased { agent: agent.to_string(), task_id })
    }

    /// The worker's result for its leased attempt of `task_id` (passed on to the process
    /// that holds the lease, on NATS).
    pub async fn complete(
        &self,
        agent: &AgentId,
        task_id: TaskId,
        result: SignedResult,
    ) -> Result<(), PullError> {
        self.here_or_there(task_id, RemoteOp::Complete { agent: agent.clone(), result: Box::new(result) })
            .await
    }

    /// The worker gives up its leased attempt of `task_id`: the attempt fails with `reason`
    /// (the agent's fault).
    pub async fn fail(&self, agent: &AgentId, task_id: TaskId, reason: String) -> Result<(), PullError> {
        self.here_or_there(task_id, RemoteOp::Fail { agent: agent.clone(), reason }).await
    }

    /// Progress of the worker's leased attempt of `task_id` (renews the lease).
    pub async fn progress(
        &self,
        agent: &AgentId,
        task_id: TaskId,
        percent: Option<u8>,
        message: String,
    ) -> Result<(), PullError> {
        self.here_or_there(task_id, RemoteOp::Progress { agent: agent.clone(), percent, message }).await
    }

    /// A worker's call applied here when the lease is held here, else passed on to the
    /// process that holds it (on NATS).
    async fn here_or_there(&self, task_id: TaskId, op: RemoteOp) -> Result<(), PullError> {
        match self.apply_here(task_id, op.clone()) {
            Err(PullError::NotLeased { .. }) if self.nats.is_some() => self.remote(task_id, op).await,
            done => done,
        }
    }

    fn apply_here(&self, task_id: TaskId, op: RemoteOp) -> Result<(), PullError> {
        match op {
            RemoteOp::Complete { agent, result } => self.complete_here(&agent, task_id, *result),
            RemoteOp::Fail { agent, reason } => self.fail_here(&agent, task_id, reason),
            RemoteOp::Progress { agent, percent, message } => {
                self.progress_here(&agent, task_id, percent, message)
            }
        }
    }

    fn complete_here(&self, agent: &AgentId, task_id: TaskId, result: SignedResult) -> Result<(), PullError> {
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

    fn fail_here(&self, agent: &AgentId, task_id: TaskId, reason: String) -> Result<(), PullError> {
        let offer = self.leased(agent, task_id)?;
        self.forget(agent, task_id);
        if offer.answer(Err(AgentFailure::agent(reason))) {
            Ok(())
        } else {
            Err(PullError::NotLeased { agent: agent.to_string(), task_id })
        }
    }

    fn progress_here(
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

    /// A heartbeat of `agent`'s worker: renews every lease it holds (here, and in the other
    /// processes on NATS) and notes it alive.
    pub async fn heartbeat(&self, agent: &AgentId) {
        let in_flight = self.renew(agent);
        if let Some(nats) = &self.nats {
            let _ = nats.publish(format!("{SUBJECT_BEAT}.{agent}"), Vec::new().into()).await;
        }
        self.seen(agent, u32::try_from(in_flight).unwrap_or(u32::MAX)).await;
    }

    /// Passes a worker's call on to the process that holds the lease; `NotLeased` when none
    /// answers.
    async fn remote(&self, task_id: TaskId, op: RemoteOp) -> Result<(), PullError> {
        let agent = op.agent().to_string();
        let not_leased = || PullError::NotLeased { agent: agent.clone(), task_id };
        let Some(nats) = &self.nats else { return Err(not_leased()) };
        let Ok(body) = serde_json::to_vec(&op) else { return Err(not_leased()) };
        let request = nats.request(format!("{SUBJECT_OP}.{task_id}"), body.into());
        match tokio::time::timeout(Duration::from_millis(REMOTE_OP_MS), request).await {
            Ok(Ok(reply)) => match serde_json::from_slice::<RemoteAnswer>(&reply.payload) {
                Ok(RemoteAnswer { error: None }) => Ok(()),
                Ok(RemoteAnswer { error: Some(error) }) => Err(error),
                Err(_) => Err(not_leased()),
            },
            _ => Err(not_leased()),
        }
    }
}

/// Asks the other processes for an offer to `agent`: the first claim within
/// [`REMOTE_ANSWER_MS`] is taken, any later one released.
async fn take_remote(nats: &async_nats::Client, agent: &AgentId, lease: Duration) -> Option<Claim> {
    let inbox = nats.new_inbox();
    let mut replies = nats.subscribe(inbox.clone()).await.ok()?;
    let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(LEASE_MS_MAX);
    nats.publish_with_reply(format!("{SUBJECT_TAKE}.{agent}"), inbox, lease_ms.to_string().into())
        .await
        .ok()?;
    let first =
        tokio::time::timeout(Duration::from_millis(REMOTE_ANSWER_MS), replies.next()).await.ok()??;
    let claim: RemoteClaim = serde_json::from_slice(&first.payload).ok()?;
    // Another process may have claimed too: what comes after the first is given back.
    let nats = nats.clone();
    tokio::spawn(async move {
        let window = tokio::time::sleep(Duration::from_millis(REMOTE_ANSWER_MS));
        tokio::pin!(window);
        loop {
            tokio::select! {
                () = &mut window => break,
                extra = replies.next() => {
                    let Some(extra) = extra else { break };
                    if let Ok(extra) = serde_json::from_slice::<RemoteClaim>(&extra.payload) {
                        let task = extra.envelope.envelope.task_id;
                        let _ = nats.publish(format!("{SUBJECT_RELEASE}.{task}"), Vec::new().into()).await;
                    }
                }
            }
        }
    });
    let envelope = claim.envelope;
    Some(Claim {
        task_id: envelope.envelope.task_id,
        attempt: envelope.envelope.attempt,
        envelope,
        lease_ms: claim.lease_ms,
    })
}

/// Serves the other processes' calls on this process's offers until `shutdown` (on NATS):
/// takes, the workers' results, failures and progress for leases held here, heartbeats and
/// releases.
pub(crate) async fn serve_remote(
    board: Arc<PullBoard>,
    nats: async_nats::Client,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let subscribed = async {
        Ok::<_, async_nats::SubscribeError>((
            nats.subscribe(format!("{SUBJECT_TAKE}.*")).await?,
            nats.subscribe(format!("{SUBJECT_OP}.*")).await?,
            nats.subscribe(format!("{SUBJECT_BEAT}.*")).await?,
            nats.subscribe(format!("{SUBJECT_RELEASE}.*")).await?,
        ))
    };
    let (mut takes, mut ops, mut beats, mut releases) = match subscribed.await {
        Ok(subscriptions) => subscriptions,
        Err(error) => {
            tracing::warn!(%error, "pull work is not shared with the other processes");
            return;
        }
    };
    let last = |subject: &str| subject.rsplit('.').next().unwrap_or_default().to_string();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(message) = takes.next() => {
                let (Ok(agent), Some(reply)) = (AgentId::new(last(&message.subject)), message.reply) else { continue };
                let lease_ms = std::str::from_utf8(&message.payload).ok().and_then(|t| t.parse().ok()).unwrap_or(LEASE_MS_DEFAULT);
                if let Some(claim) = board.take_now(&agent, Duration::from_millis(lease_ms)) {
                    let answer = RemoteClaim { envelope: claim.envelope, lease_ms: claim.lease_ms };
                    match serde_json::to_vec(&answer) {
                        Ok(body) => { let _ = nats.publish(reply, body.into()).await; }
                        Err(_) => board.release(claim.task_id),
                    }
                }
            }
            Some(message) = ops.next() => {
                let (Ok(task_id), Some(reply)) = (last(&message.subject).parse::<TaskId>(), message.reply) else { continue };
                let Ok(op) = serde_json::from_slice::<RemoteOp>(&message.payload) else { continue };
                let done = board.apply_here(task_id, op);
                // Silent when the lease is not held here: the process that holds it answers.
                if matches!(done, Err(PullError::NotLeased { .. })) {
                    continue;
                }
                if let Ok(body) = serde_json::to_vec(&RemoteAnswer { error: done.err() }) {
                    let _ = nats.publish(reply, body.into()).await;
                }
            }
            Some(message) = beats.next() => {
                if let Ok(agent) = AgentId::new(last(&message.subject)) {
                    board.renew(&agent);
                }
            }
            Some(message) = releases.next() => {
                if let Ok(task_id) = last(&message.subject).parse::<TaskId>() {
                    board.release(task_id);
                }
            }
            else => break,
        }
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
        let board = Arc::new(PullBoard::new(None, None));
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
        board.complete(&agent, claim.task_id, result(&envelope, &key)).await.expect("accepted");
        assert!(attempt.await.unwrap().is_ok());
        // Answered once: a second result is refused.
        assert!(matches!(
            board.complete(&agent, claim.task_id, result(&envelope, &key)).await,
            Err(PullError::NotLeased { .. })
        ));
    }

    #[tokio::test]
    async fn a_lapsed_lease_fails_the_attempt_and_a_late_result_is_refused() {
        let board = Arc::new(PullBoard::new(None, None));
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
        assert!(
            board.complete(&agent, claim.task_id, result(&envelope, &KeyPair::generate())).await.is_err()
        );
    }

    #[tokio::test]
    async fn a_result_for_another_attempt_is_refused_and_the_lease_holds() {
        let board = Arc::new(PullBoard::new(None, None));
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
        let refused = board.complete(&agent, claim.task_id, result(&other, &KeyPair::generate())).await;
        assert!(matches!(refused, Err(PullError::Mismatch { attempt: 1, .. })), "{refused:?}");
        board.fail(&agent, claim.task_id, "cannot do it".into()).await.expect("still leased");
        assert!(attempt.await.unwrap().is_err());
    }
}
