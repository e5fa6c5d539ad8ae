//! `pantheon agents`: the registered agents — status, capabilities, maximum concurrency,
//! tasks in flight (from the log), success rate, latency, and the health and reputation the
//! projections hold (as matching sees them) — and `pantheon agents suspend|reinstate|retire <id>`.

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
    /// Register an HTTP or NATS agent (or renew its passport): matching can choose it a
    /// moment later, without a restart. Prints its passport.
    Register {
        /// The agent's id.
        agent: AgentId,
        /// A capability it offers; repeat for several.
        #[arg(long = "capability", required = true)]
        capabilities: Vec<String>,
        /// The public key its results are signed with (64 hex digits; `pantheon keys new`).
        #[arg(long)]
        public_key: String,
        /// Where it answers over HTTP.
        #[arg(long, conflicts_with_all = ["nats_subject", "pull"], required_unless_present_any = ["nats_subject", "pull"])]
        url: Option<String>,
        /// The NATS subject it answers on (the pipeline must run on NATS).
        #[arg(long, conflicts_with = "pull")]
        nats_subject: Option<String>,
        /// A pull worker: it polls `POST /agents/{id}/work` with a token of role `agent` whose
        /// subject is its id (`pantheon token --role agent --sub ID`).
        #[arg(long)]
        pull: bool,
        /// The most tasks it takes at once.
        #[arg(long, default_value_t = 4)]
        max_concurrency: u32,
    },
}

pub(crate) async fn run(cli: &Cli, args: &AgentsArgs) -> anyhow::Result<()> {
    let backend = open_backend(cli, &args.backend).await?;
    let log = backend.log.as_ref();
    if let Some(AgentsAction::Register {
        agent,
        capabilities,
        public_key,
        url,
        nats_subject,
        pull,
        max_concurrency,
    }) = &args.action
    {
        let public_key: events::PublicKey =
            serde_json::from_value(serde_json::Value::String(public_key.clone()))
                .map_err(|e| anyhow::anyhow!("--public-key must be 64 hex digits: {e}"))?;
        anyhow::ensure!((1..=1_024).contains(max_concurrency), "--max-concurrency must be 1 to 1,024");
        anyhow::ensure!(
            capabilities.iter().all(|c| !c.trim().is_empty() && c.chars().count() <= 128),
            "each --capability must be 1 to 128 characters"
        );
        let transport = match (url, nats_subject) {
            _ if *pull => events::agent::AgentTransport::Pull,
            (Some(url), _) => {
                let host = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
                anyhow::ensure!(host.is_some_and(|h| !h.is_empty()), "--url must be an http or https URL");
                events::agent::AgentTransport::Http { url: url.clone() }
            }
            (None, Some(subject)) => {
                anyhow::ensure!(
                    backend.nats.is_some(),
                    "this federation runs without NATS (no --nats): a NATS agent could never be reached; register an HTTP agent (--url)"
                );
                events::agent::AgentTransport::Nats { subject: subject.clone() }
            }
            (None, None) => anyhow::bail!("give --url or --nats-subject"),
        };
        let federation = super::up::federation_key(cli)?;
        let passport = actors::registry::register_agent(
            log,
            &federation,
            agent,
            &public_key,
            capabilities.clone(),
            *max_concurrency,
            transport,
        )
        .await?;
        out!("{}", serde_json::to_string_pretty(&passport)?);
        return Ok(());
    }
    if let Some(action) = &args.action {
        use actors::registry::{AgentAction, change_agent};
        let (agent, what, reason) = match action {
            AgentsAction::Register { .. } => return Ok(()), // handled above
            AgentsAction::Suspend { agent, reason } => (agent, AgentAction::Suspend, reason),
            AgentsAction::Reinstate { agent, reason } => (agent, AgentAction::Reinstate, reason),
            AgentsAction::Retire { agent, reason } => (agent, AgentAction::Retire, reason),
        };
        change_agent(log, agent, what, "cli", reason).await?;
        out!("agent {agent}: {what:?} recorded");
        if matches!(what, AgentAction::Retire)
            && super::up::load_config(cli, &args.backend)
                .is_ok_and(|c| c.agents.iter().any(|a| &a.id == agent))
        {
            eprintln!(
                "note: {agent} is in the config; `pantheon up` now skips it (remove it there, or give it another id)"
            );
        }
        return Ok(());
    }
    let registry = actors::Registry::new();
    registry.refresh(log).await?;
    let open = registry.open_tasks_by_agent();
    let agents = registry.agents();
    let now = events::now_ms();
    let standings = standings(cli, &args.backend, now).await;
    let rows: Vec<serde_json::Value> = agents
        .iter()
        .map(|(id, view)| {
            let registration = view.state.registration.as_ref();
            let passport = registration.map(|r| &r.passport.passport);
            let valid = passport.is_some_and(|p| p.not_before_ms <= now && now < p.not_after_ms);
            let (health, health_reason) = match view.state.status {
                AgentStatus::Active if valid => match &standings {
                    Some(standings) => {
                        let (status, reason, _) = standings.health(id.as_str());
                        (status.as_str().to_string(), Some(reason))
                    }
                    None => ("active".to_string(), None),
                },
                AgentStatus::Active => ("passport invalid".to_string(), None),
                AgentStatus::Suspended => ("suspended".to_string(), None),
                AgentStatus::Retired => ("retired".to_string(), None),
                AgentStatus::Unknown => ("unknown".to_string(), None),
            };
            let reputation: serde_json::Map<String, serde_json::Value> = standings
                .iter()
                .flat_map(|standings| {
                    standings.reputation(id.as_str()).iter().map(|r| {
                        let score = (standings.score(r) * 1_000.0).round() / 1_000.0;
                        (r.capability.clone(), score.into())
                    })
                })
                .collect();
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
        out!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        out!("no agents registered in {} (`pantheon up` registers the configured ones)", backend.description);
        return Ok(());
    }
    out!(
        "{:<16} {:<10} {:<24} {:>5} {:>9} {:>8} {:>8} {:>9} {:>10}  health",
        "agent",
        "status",
        "capabilities",
        "max",
        "in flight",
        "ok",
        "failed",
        "latency",
        "reputation"
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
        out!(
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

/// Health and reputation as the projections last saw them (what matching reads), or `None`
/// when the read models cannot be opened (with a note on stderr).
async fn standings(cli: &Cli, backend: &BackendArgs, now_ms: i64) -> Option<projections::Standings> {
    let read = async {
        let db = projections::Db::connect(&cli.database_url()?).await?;
        let cool_down_ms = super::up::load_config(cli, backend)?.health.cool_down_ms_i64();
        anyhow::Ok(projections::Standings::read(&db, cool_down_ms, now_ms).await?)
    };
    match read.await {
        Ok(standings) => Some(standings),
        Err(error) => {
            eprintln!("note: health and reputation unavailable ({error:#})");
            None
        }
    }
}
