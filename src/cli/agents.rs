//! `pantheon agents`: the registered agents — status, capabilities, maximum concurrency,
//! tasks in flight (from the log), success rate, latency, and the health and reputation the
//! projections hold (as matching sees them) — and `pantheon agents suspend|reinstate|retire <id>`.

use anyhow::Context as _;
use clap::{Args, Subcommand};
use events::{AgentId, AgentStatus};

use super::up::{BackendArgs, open_backend};
use crate::Cli;

#[derive(Debug, Args)]
pub(crate) struct AgentsArgs {
    #[command(subcommand)]
    pub(crate) action: Option<AgentsAction>,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) backend: BackendArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AgentsAction {
    /// Take an agent out of matching.
    Suspend {
        /// The agent.
        agent: AgentId,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Put a suspended agent back.
    Reinstate {
        /// The agent.
        agent: AgentId,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Remove an agent for good.
    Retire {
        /// The agent.
        agent: AgentId,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
    },
}

pub(crate) async fn run(cli: &Cli, args: &AgentsArgs) -> anyhow::Result<()> {
    let backend = open_backend(cli, &args.backend).await?;
    let log = backend.log.as_ref();
    if let Some(action) = &args.action {
        use actors::registry::{AgentAction, change_agent};
        let (agent, what, reason) = match action {
            AgentsAction::Suspend { agent, reason } => (agent, AgentAction::Suspend, reason),
            AgentsAction::Reinstate { agent, reason } => (agent, AgentAction::Reinstate, reason),
            AgentsAction::Retire { agent, reason } => (agent, AgentAction::Retire, reason),
        };
        change_agent(log, agent, what, "cli", reason).await.with_context(|| format!("agent {agent}"))?;
        println!("agent {agent}: {what:?} recorded");
        return Ok(());
    }
    let registry = actors::Registry::new();
    registry.refresh(log).await?;
    let open = registry.open_tasks_by_agent();
    let agents = registry.agents();
    let now = events::now_ms();
    let standing = Standing::read(cli, &args.backend, now).await;
    let rows: Vec<serde_json::Value> = agents
        .iter()
        .map(|(id, view)| {
            let registration = view.state.registration.as_ref();
            let passport = registration.map(|r| &r.passport.passport);
            let valid = passport.is_some_and(|p| p.not_before_ms <= now && now < p.not_after_ms);
            let (health, health_reason) = match view.state.status {
                AgentStatus::Active if valid => standing.health(id.as_str()),
                AgentStatus::Active => ("passport invalid".to_string(), None),
                AgentStatus::Suspended => ("suspended".to_string(), None),
                AgentStatus::Retired => ("retired".to_string(), None),
                AgentStatus::Unknown => ("unknown".to_string(), None),
            };
            let reputation = standing.reputation(id.as_str());
            serde_json::json!({
                "agent_id": id,
                "status": view.state.status,
                "capabilities": passport.map(|p| p.capabilities.clone()).unwrap_or_default(),
                "max_concurrency": registration.map(|r| r.max_concurrency),
                "transport": registration.map(|r| &r.transport),
                "in_flight": open.get(id).copied().unwrap_or(0),
                "succeeded": view.stats.succeeded,
                "failed": view.stats.failed,
                "refused": view.stats.refused,
                "success_rate": (view.stats.success_rate() * 1_000.0).round() / 1_000.0,
                "latency_ms": view.stats.latency_ms.round(),
                "health": health,
                "health_reason": health_reason,
                "reputation": reputation,
                "status_reason": view.state.status_reason,
                "key": passport.map(|p| p.public_key.key_id()),
            })
        })
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!(
            "no agents registered in {} (`pantheon up` registers the configured ones)",
            backend.description
        );
        return Ok(());
    }
    println!(
        "{:<16} {:<10} {:<24} {:>5} {:>9} {:>8} {:>8} {:>9} {:>10}  health",
        "agent", "status", "capabilities", "max", "in flight", "ok", "failed", "latency", "reputation"
    );
    for row in rows {
        let caps: Vec<String> = row["capabilities"]
            .as_array()
            .map(|a| a.iter().filter_map(|c| c.as_str().map(String::from)).collect())
            .unwrap_or_default();
        let reputation = row["reputation"]
            .as_object()
            .map(|scores| {
                let values: Vec<f64> = scores.values().filter_map(serde_json::Value::as_f64).collect();
                if values.is_empty() {
                    "-".to_string()
                } else {
                    format!("{:.2}", values.iter().sum::<f64>() / values.len() as f64)
                }
            })
            .unwrap_or_else(|| "-".to_string());
        println!(
            "{:<16} {:<10} {:<24} {:>5} {:>9} {:>8} {:>8} {:>7}ms {:>10}  {}",
            row["agent_id"].as_str().unwrap_or("?"),
            row["status"].as_str().unwrap_or("?"),
            caps.join(","),
            row["max_concurrency"].to_string(),
            row["in_flight"].to_string(),
            row["succeeded"].to_string(),
            row["failed"].to_string(),
            row["latency_ms"].to_string(),
            reputation,
            row["health"].as_str().unwrap_or("?"),
        );
    }
    Ok(())
}

/// Health and reputation as the projections last saw them (what matching reads); empty
/// when the read models cannot be opened (with a warning).
#[derive(Default)]
struct Standing {
    now_ms: i64,
    cool_down_ms: i64,
    health: std::collections::HashMap<String, projections::AgentHealth>,
    reputation: std::collections::HashMap<String, serde_json::Map<String, serde_json::Value>>,
    available: bool,
}

impl Standing {
    async fn read(cli: &Cli, backend: &BackendArgs, now_ms: i64) -> Self {
        match Self::try_read(cli, backend, now_ms).await {
            Ok(standing) => standing,
            Err(error) => {
                eprintln!("note: health and reputation unavailable ({error:#})");
                Self { now_ms, ..Self::default() }
            }
        }
    }

    async fn try_read(cli: &Cli, backend: &BackendArgs, now_ms: i64) -> anyhow::Result<Self> {
        let db = projections::Db::connect(&cli.database_url()?).await?;
        let cool_down_ms = super::up::load_config(cli, backend)?.health.cool_down_ms_i64();
        let health = projections::HealthReader::new(db.clone())
            .list()
            .await?
            .into_iter()
            .map(|h| (h.agent_id.clone(), h))
            .collect();
        let mut reputation: std::collections::HashMap<String, serde_json::Map<String, serde_json::Value>> =
            std::collections::HashMap::new();
        for r in projections::ReputationReader::new(db).list(None).await? {
            let score = (r.score_at(now_ms) * 1_000.0).round() / 1_000.0;
            reputation.entry(r.agent_id.clone()).or_default().insert(r.capability, score.into());
        }
        Ok(Self { now_ms, cool_down_ms, health, reputation, available: true })
    }

    /// The agent's health status and its reason.
    fn health(&self, agent_id: &str) -> (String, Option<String>) {
        if !self.available {
            return ("active".to_string(), None);
        }
        match self.health.get(agent_id) {
            Some(record) => {
                let (status, reason) = record.status_with_cool_down(self.now_ms, self.cool_down_ms);
                (status.as_str().to_string(), Some(reason))
            }
            None => ("healthy".to_string(), Some("no outcomes or heartbeats yet".to_string())),
        }
    }

    /// The agent's reputation score per capability.
    fn reputation(&self, agent_id: &str) -> serde_json::Map<String, serde_json::Value> {
        self.reputation.get(agent_id).cloned().unwrap_or_default()
    }
}
