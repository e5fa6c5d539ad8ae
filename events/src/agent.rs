//! An agent's events (`agent-<agent_id>`) and its state as a fold: registered with a passport,
//! suspended, reinstated, retired.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::domain::domain_events;
use crate::envelope::SignedPassport;
use crate::event::Version;
use crate::state::{Aggregate, TransitionError};

/// How the federation reaches an agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum AgentTransport {
    /// A built-in agent running inside the Pantheon process.
    InProcess {
        /// Which built-in (`echo`, `command`).
        builtin: String,
    },
    /// NATS request/reply on a subject.
    Nats {
        /// The subject the agent listens on.
        subject: String,
    },
    /// HTTP: `POST {url}` with envelope and passport.
    Http {
        /// The endpoint.
        url: String,
    },
    /// A worker with no reachable address: it long-polls the gateway for the work it is
    /// offered (`POST /agents/{id}/work`), holds a lease while it runs, and posts its result.
    Pull,
}

/// What an agent promises about its service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Slo {
    /// The share of tasks that must succeed, e.g. 0.99.
    pub success_target: f64,
    /// The latency within which tasks should finish, ms.
    pub latency_ms: u64,
}

/// An agent joined the federation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentRegistered {
    /// The federation-signed passport (id, key, capabilities, validity).
    pub passport: SignedPassport,
    /// How many tasks it runs at once at most.
    pub max_concurrency: u32,
    /// How to reach it.
    pub transport: AgentTransport,
    /// Its declared service level, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<Slo>,
}

/// An agent got a new passport (new key, capabilities or validity).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PassportRenewed {
    /// The new passport.
    pub passport: SignedPassport,
}

/// An agent was taken out of matching for now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentSuspended {
    /// Why.
    pub reason: String,
    /// Who did it.
    pub by: String,
}

/// A suspended agent was put back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentReinstated {
    /// Why.
    pub reason: String,
    /// Who did it.
    pub by: String,
}

/// An agent left for good.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentRetired {
    /// Why.
    pub reason: String,
    /// Who did it.
    pub by: String,
}

domain_events! {
    /// Every event of an agent's stream.
    pub enum AgentEvent: "agent", kinds AgentEventKind {
        /// Joined.
        Registered(AgentRegistered) = "agent_registered" @ 1,
        /// New passport.
        PassportRenewed(PassportRenewed) = "passport_renewed" @ 1,
        /// Taken out of matching.
        Suspended(AgentSuspended) = "agent_suspended" @ 1,
        /// Put back.
        Reinstated(AgentReinstated) = "agent_reinstated" @ 1,
        /// Left for good.
        Retired(AgentRetired) = "agent_retired" @ 1,
    }
}

/// Where an agent is in its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    /// Not registered.
    #[default]
    Unknown,
    /// Takes tasks.
    Active,
    /// Takes no tasks for now.
    Suspended,
    /// Gone for good.
    Retired,
}

/// An agent's state: the fold of its events.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AgentState {
    /// Events applied.
    pub version: Version,
    /// Where it is.
    pub status: AgentStatus,
    /// Its registration (with the latest passport).
    pub registration: Option<AgentRegistered>,
    /// Why it was last suspended or retired.
    pub status_reason: Option<String>,
}

impl AgentState {
    fn refuse(&self, event: &AgentEvent, reason: &str) -> TransitionError {
        use crate::domain::DomainEvent;
        TransitionError {
            entity: "agent",
            state: format!("{:?}", self.status).to_lowercase(),
            event_type: event.event_type().to_string(),
            reason: reason.to_string(),
        }
    }
}

impl Aggregate for AgentState {
    type Event = AgentEvent;

    fn version(&self) -> Version {
        self.version
    }

    fn apply(&mut self, event: &AgentEvent) -> Result<(), TransitionError> {
        use AgentStatus as S;
        match (self.status, event) {
            (S::Unknown, AgentEvent::Registered(e)) => {
                self.registration = Some(e.clone());
                self.status = S::Active;
            }
            (S::Active | S::Suspended, AgentEvent::PassportRenewed(e)) => {
                let same_agent = self
                    .registration
                    .as_ref()
                    .is_some_and(|r| r.passport.passport.agent_id == e.passport.passport.agent_id);
                if !same_agent {
                    return Err(self.refuse(event, "the passport is for another agent"));
                }
                if let Some(registration) = self.registration.as_mut() {
                    registration.passport = e.passport.clone();
                }
            }
            (S::Active, AgentEvent::Suspended(e)) => {
                self.status_reason = Some(e.reason.clone());
                self.status = S::Suspended;
            }
            (S::Suspended, AgentEvent::Reinstated(_)) => {
                self.status_reason = None;
                self.status = S::Active;
            }
            (S::Active | S::Suspended, AgentEvent::Retired(e)) => {
                self.status_reason = Some(e.reason.clone());
                self.status = S::Retired;
            }
            (S::Retired, _) => return Err(self.refuse(event, "the agent is retired")),
            (S::Unknown, _) => return Err(self.refuse(event, "the agent is not registered")),
            (_, AgentEvent::Registered(_)) => {
                return Err(self.refuse(event, "the agent is registered already"));
            }
            _ => return Err(self.refuse(event, "not allowed in this state")),
        }
        self.version += 1;
        Ok(())
    }
}
