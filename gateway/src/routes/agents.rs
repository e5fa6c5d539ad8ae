//! `/agents`: the federation's agents, folded from their streams (`agent-<id>`); and their
//! management at run time (`manage_agents`): `POST /agents` registers an HTTP or NATS agent
//! (the federation issues its passport; matching can choose it a second later, no restart),
//! `POST /agents/{id}/suspend` and `/reinstate`, `DELETE /agents/{id}` retires it.
//!
//! Capabilities, status and limits come from the agents' own events. Load (tasks held now,
//! from the task view), health and reputation come from the projections' read models; on a
//! gateway without read models those fields are absent.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use events::agent::AgentTransport;
use events::{AgentEvent, AgentId, AgentState, Aggregate, DomainEvent, EventLog, StreamId};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::auth::{Permission, Principal};
use crate::config::LIST_SCAN_EVENT_COUNT_MAX;
use crate::error::{Error, Result};
use crate::extract::{IdPath, QueryParams};
use crate::state::AppState;

/// The most agents one page lists.
pub const AGENTS_PAGE_COUNT_MAX: usize = 100;

/// Events of one agent's stream read at most (registrations, renewals, suspensions are rare).
const AGENT_EVENT_COUNT_MAX: usize = 1_000;

/// Log events read per page while listing.
const LIST_PAGE_COUNT: usize = 500;

/// An agent as the API shows it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AgentView {
    /// The agent's id.
    pub agent_id: String,
    /// `active`, `suspended` or `retired`.
    pub status: String,
    /// What it can do.
    pub capabilities: Vec<String>,
    /// How many tasks it runs at once at most.
    pub max_concurrency: u32,
    /// How it is reached: `in_process`, `nats`, `http` or `pull`.
    pub transport: String,
    /// Its passport's validity, ms since the epoch.
    pub passport_valid_until_ms: i64,
    /// Why it was suspended or retired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// Tasks it holds now: chosen for it, sealed for it or running on it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load: Option<i64>,
    /// Its health now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthView>,
    /// Its reputation per capability it has outcomes for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reputation: Option<Vec<ReputationView>>,
}

/// An agent's health as matching sees it now.
#[derive(Debug, Serialize, JsonSchema)]
pub struct HealthView {
    /// `healthy`, `degraded`, `unhealthy`, `half_open` (one trial task allowed) or `trial`.
    pub status: String,
    /// Why, in words.
    pub reason: String,
    /// Its last heartbeat, ms since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_heartbeat_ms: Option<i64>,
    /// Running bad-outcome rate, 0 to 1.
    pub error_rate: f64,
    /// Running mean latency, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
}

/// An agent's reputation for one capability.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ReputationView {
    /// The capability.
    pub capability: String,
    /// The smoothed, decayed success estimate now, 0 to 1 (0.5 with no evidence).
    pub score: f64,
    /// Verified results, all time.
    pub successes: i64,
    /// Failures that count against the agent (its own, timeouts, transport, verification).
    pub failures: i64,
}

fn view(state: &AgentState) -> Option<AgentView> {
    let registration = state.registration.as_ref()?;
    let passport = &registration.passport.passport;
    Some(AgentView {
        agent_id: passport.agent_id.to_string(),
        status: format!("{:?}", state.status).to_lowercase(),
        capabilities: passport.capabilities.clone(),
        max_concurrency: registration.max_concurrency,
        transport: match registration.transport {
            AgentTransport::InProcess { .. } => "in_process",
            AgentTransport::Pull => "pull",
            AgentTransport::Nats { .. } => "nats",
            AgentTransport::Http { .. } => "http",
        }
        .to_string(),
        passport_valid_until_ms: passport.not_after_ms,
        status_reason: state.status_reason.clone(),
        load: None,
        health: None,
        reputation: None,
    })
}

/// Adds load, health and reputation from the read models, when the gateway has them.
async fn enrich(state: &AppState, agents: &mut [AgentView]) -> Result<()> {
    let Some(read) = &state.read else { return Ok(()) };
    if agents.is_empty() {
        return Ok(());
    }
    let load = read.tasks.load_by_agent().await?;
    let standings =
        projections::Standings::read(&read.db, state.config.health_cool_down_ms, events::now_ms()).await?;
    for agent in agents {
        agent.load = Some(load.get(&agent.agent_id).copied().unwrap_or(0));
        let (status, reason, record) = standings.health(&agent.agent_id);
        agent.health = Some(HealthView {
            status: status.as_str().to_string(),
            reason,
            last_heartbeat_ms: record.and_then(|r| r.last_heartbeat_ms),
            error_rate: record.map_or(0.0, |r| r.error_rate_ewma),
            latency_ms: record.and_then(|r| r.latency_ms_ewma),
        });
        let reputation = standings.reputation(&agent.agent_id).iter().map(|r| ReputationView {
            score: standings.score(r),
            successes: r.successes,
            failures: r.failures_agent + r.failures_timeout + r.failures_transport + r.failures_verification,
            capability: r.capability.clone(),
        });
        agent.reputation = Some(reputation.collect());
    }
    Ok(())
}

async fn load(log: &dyn EventLog, agent_id: &AgentId) -> Result<Option<AgentView>> {
    let events = log.read_stream(&StreamId::agent(agent_id), 1, AGENT_EVENT_COUNT_MAX).await?;
    let mut state = AgentState::default();
    for recorded in &events {
        let event = AgentEvent::from_recorded(recorded)?;
        if let Err(error) = state.apply(&event) {
            tracing::warn!(%agent_id, %error, "skipping an agent event the fold refuses");
        }
    }
    Ok(view(&state))
}

/// The agents (their capabilities, load, health and reputation) are the federation's, not a
/// principal's own: reading them takes `read_all` (operators and admins). A producer or a
/// viewer reads its own tasks, which name the agent that ran them.
fn require_read(principal: &Principal) -> Result<()> {
    principal.require(Permission::ReadAll)
}

/// `?cursor=&limit=`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentsQuery {
    /// The `next_cursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<u64>,
    /// Agents per page (default and maximum 100).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// A page of agents.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AgentPage {
    /// The agents, in registration order.
    pub agents: Vec<AgentView>,
    /// Pass as `cursor` to continue, when there may be more.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<u64>,
}

/// `GET /agents`.
pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    QueryParams(query): QueryParams<AgentsQuery>,
) -> Result<axum::Json<AgentPage>> {
    require_read(&principal)?;
    let limit = crate::config::in_range("limit", query.limit, 1, AGENTS_PAGE_COUNT_MAX)?
        .unwrap_or(AGENTS_PAGE_COUNT_MAX);
    let log: &dyn EventLog = state.log.as_ref();
    let mut cursor =
        crate::config::in_range("cursor", query.cursor, 0, crate::config::VERSION_MAX)?.unwrap_or(0);
    let mut scanned = 0;
    let mut agents = Vec::new();
    loop {
        let page = log.read_all(cursor, LIST_PAGE_COUNT).await?;
        let exhausted = page.len() < LIST_PAGE_COUNT;
        for event in page {
            cursor = event.position + 1;
            scanned += 1;
            if event.event_type.as_str() != "agent_registered" {
                continue;
            }
            let Ok(agent_id) = AgentId::new(event.stream_id.entity_id()) else { continue };
            if let Some(agent) = load(log, &agent_id).await? {
                agents.push(agent);
            }
            if agents.len() == limit {
                enrich(&state, &mut agents).await?;
                return Ok(axum::Json(AgentPage { agents, next_cursor: Some(cursor) }));
            }
        }
        if exhausted || scanned >= LIST_SCAN_EVENT_COUNT_MAX {
            enrich(&state, &mut agents).await?;
            let next_cursor = (!exhausted).then_some(cursor);
            return Ok(axum::Json(AgentPage { agents, next_cursor }));
        }
    }
}

/// `GET /agents/{id}`.
pub(crate) async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    IdPath(id): IdPath,
) -> Result<axum::Json<AgentView>> {
    require_read(&principal)?;
    let not_found = || Error::NotFound { what: format!("agent {id}") };
    let agent_id = AgentId::new(id.as_str()).map_err(|_| not_found())?;
    let mut agent = load(state.log.as_ref(), &agent_id).await?.ok_or_else(not_found)?;
    enrich(&state, std::slice::from_mut(&mut agent)).await?;
    Ok(axum::Json(agent))
}

/// The longest list of capabilities an agent registers with.
pub const AGENT_CAPABILITY_COUNT_MAX: usize = 32;

/// The most tasks a registered agent may be given at once.
pub const AGENT_CONCURRENCY_MAX: u32 = 1_024;

/// An agent to register: who it is, what it can do, how to reach it and its public key.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterAgent {
    /// The agent's id: 1 to 64 letters, digits, `-`, `_` or `.`.
    #[schemars(length(min = 1, max = 64), pattern(r"^[A-Za-z0-9._-]+$"))]
    pub agent_id: String,
    /// The capabilities it offers (1 to 32, each 1 to 128 characters).
    #[schemars(length(min = 1, max = 32), inner(length(min = 1, max = 128)))]
    pub capabilities: Vec<String>,
    /// The Ed25519 public key its results are signed with (64 hex digits; `pantheon keys new`).
    #[schemars(with = "String", regex(pattern = r"^[0-9a-fA-F]{64}$"))]
    pub public_key: events::PublicKey,
    /// How to reach it: `{"kind": "http", "url": "…"}` or `{"kind": "nats", "subject": "…"}`.
    pub transport: AgentTransport,
    /// The most tasks it takes at once (default 4, at most 1,024).
    #[serde(default)]
    #[schemars(range(min = 1, max = 1024))]
    pub max_concurrency: Option<u32>,
}

/// The body of a suspend, reinstate or retire (optional).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeAgentRequest {
    /// Why (recorded with the change).
    #[serde(default)]
    #[schemars(length(max = 1024))]
    pub reason: Option<String>,
}

/// A registered agent and its passport.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Registered {
    /// The agent.
    pub agent_id: String,
    /// The federation-signed passport in force.
    pub passport: events::SignedPassport,
}

fn admin(state: &AppState, principal: &Principal) -> Result<Arc<dyn crate::config::AgentAdmin>> {
    principal.require(Permission::ManageAgents)?;
    state.config.agent_admin.clone().ok_or_else(|| Error::Unavailable {
        what: "agent management (this gateway runs without the pipeline's federation key)",
    })
}

fn admin_error(error: crate::config::AgentAdminError) -> Error {
    use crate::config::AgentAdminError as E;
    match error {
        E::NotFound(what) => Error::NotFound { what },
        E::Conflict(reason) => Error::AgentConflict { reason },
        E::Failed(message) => Error::Internal(message),
    }
}

fn invalid(field: &str, message: impl Into<String>) -> Error {
    Error::InvalidBody { field: Some(field.to_string()), message: message.into(), unknown_field: false }
}

/// `POST /agents`: registers an agent (or renews its passport); `201` with the passport.
pub(crate) async fn register(
    State(state): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    crate::extract::JsonBody(request): crate::extract::JsonBody<RegisterAgent>,
) -> Result<(axum::http::StatusCode, axum::Json<Registered>)> {
    let admin = admin(&state, &principal)?;
    let agent_id = AgentId::new(request.agent_id.as_str()).map_err(|e| invalid("agent_id", e.to_string()))?;
    if request.agent_id.len() > 64
        || !request.agent_id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(invalid("agent_id", "1 to 64 letters, digits, '-', '_' or '.'"));
    }
    let capabilities = &request.capabilities;
    if capabilities.is_empty() || capabilities.len() > AGENT_CAPABILITY_COUNT_MAX {
        return Err(invalid("capabilities", format!("1 to {AGENT_CAPABILITY_COUNT_MAX} capabilities")));
    }
    if capabilities.iter().any(|c| c.is_empty() || c.chars().count() > events::task::CAPABILITY_BYTES_MAX) {
        return Err(invalid("capabilities", "each capability 1 to 128 characters"));
    }
    if request.max_concurrency.is_some_and(|n| n == 0 || n > AGENT_CONCURRENCY_MAX) {
        return Err(invalid("max_concurrency", format!("1 to {AGENT_CONCURRENCY_MAX}")));
    }
    match &request.transport {
        AgentTransport::Http { url } => {
            let parsed =
                reqwest::Url::parse(url).map_err(|e| invalid("transport", format!("not a URL: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
                return Err(invalid("transport", "an http or https URL with a host"));
            }
        }
        AgentTransport::Nats { subject } => {
            if subject.is_empty()
                || subject.len() > 256
                || subject.chars().any(|c| c.is_whitespace() || c == '*' || c == '>')
            {
                return Err(invalid(
                    "transport",
                    "a NATS subject: no spaces or wildcards, at most 256 bytes",
                ));
            }
        }
        AgentTransport::Pull => {}
        AgentTransport::InProcess { .. } => {
            return Err(invalid(
                "transport",
                "built-in agents are configured in pantheon.toml, not registered",
            ));
        }
    }
    let passport = admin.register(request, principal.subject.clone()).await.map_err(admin_error)?;
    Ok((axum::http::StatusCode::CREATED, axum::Json(Registered { agent_id: agent_id.to_string(), passport })))
}

async fn change(
    state: AppState,
    principal: &Principal,
    id: &str,
    change: crate::config::AgentChange,
    request: ChangeAgentRequest,
) -> Result<axum::Json<AgentView>> {
    let admin = admin(&state, principal)?;
    let not_found = || Error::NotFound { what: format!("agent {id}") };
    let agent_id = AgentId::new(id).map_err(|_| not_found())?;
    let reason = request.reason.unwrap_or_default();
    if reason.len() > 1_024 {
        return Err(invalid("reason", "at most 1,024 bytes"));
    }
    let reason = security::scrub(&reason).unwrap_or(reason);
    admin.change(agent_id.clone(), change, principal.subject.clone(), reason).await.map_err(admin_error)?;
    let agent = load(state.log.as_ref(), &agent_id).await?.ok_or_else(not_found)?;
    Ok(axum::Json(agent))
}

/// `POST /agents/{id}/suspend`: out of matching until reinstated.
pub(crate) async fn suspend(
    State(state): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    IdPath(id): IdPath,
    crate::extract::OptionalJsonBody(request): crate::extract::OptionalJsonBody<ChangeAgentRequest>,
) -> Result<axum::Json<AgentView>> {
    change(state, &principal, &id, crate::config::AgentChange::Suspend, request).await
}

/// `POST /agents/{id}/reinstate`: back into matching.
pub(crate) async fn reinstate(
    State(state): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    IdPath(id): IdPath,
    crate::extract::OptionalJsonBody(request): crate::extract::OptionalJsonBody<ChangeAgentRequest>,
) -> Result<axum::Json<AgentView>> {
    change(state, &principal, &id, crate::config::AgentChange::Reinstate, request).await
}

/// `DELETE /agents/{id}`: retired for good.
pub(crate) async fn retire(
    State(state): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    IdPath(id): IdPath,
    crate::extract::OptionalJsonBody(request): crate::extract::OptionalJsonBody<ChangeAgentRequest>,
) -> Result<axum::Json<AgentView>> {
    change(state, &principal, &id, crate::config::AgentChange::Retire, request).await
}
