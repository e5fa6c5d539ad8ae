//! `pantheon config check`: loads the deployment's configuration the way `pantheon up` would —
//! `pantheon.toml` (agents, screening, context sources, producers, the webhook allow-list) and
//! the gateway's auth config (keys, roles, rate limits) — and says what it found, or what is
//! wrong and where, without starting anything.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::Cli;
use crate::cli::up::{BackendArgs, load_config};

/// `pantheon config …`.
#[derive(Debug, clap::Args)]
pub(crate) struct ConfigArgs {
    #[command(subcommand)]
    pub(crate) command: ConfigCommand,
}

/// What `pantheon config` does.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ConfigCommand {
    /// Check the configuration `pantheon up` would load; exit 1 naming the first problem.
    Check {
        /// The config file. Default: `<data-dir>/pantheon.toml`.
        #[arg(long, env = "PANTHEON_CONFIG")]
        config: Option<PathBuf>,
        /// The gateway's auth config (keys, roles, rate limits), if the deployment has one.
        #[arg(long, env = "PANTHEON_AUTH_CONFIG")]
        auth_config: Option<PathBuf>,
    },
}

pub(crate) fn run(cli: &Cli, args: &ConfigArgs) -> anyhow::Result<()> {
    let ConfigCommand::Check { config, auth_config } = &args.command;
    let mut backend = BackendArgs::none();
    backend.config = config.clone();
    let path = config.clone().unwrap_or_else(|| cli.data_dir.join("pantheon.toml"));
    let loaded =
        load_config(cli, &backend).with_context(|| format!("{} is not a usable config", path.display()))?;
    let mut webhooks = gateway::WebhookConfig::new(vec![0; 32]);
    webhooks
        .allow(&loaded.webhooks.allow)
        .map_err(anyhow::Error::msg)
        .with_context(|| path.display().to_string())?;
    let origin = if path.exists() {
        path.display().to_string()
    } else {
        format!("{} (absent: the defaults)", path.display())
    };
    println!("config ok: {origin}");
    let agents: Vec<String> =
        loaded.agents.iter().map(|a| format!("{} ({})", a.id, a.capabilities().join(", "))).collect();
    println!("  agents: {}", if agents.is_empty() { "none".into() } else { agents.join("; ") });
    println!(
        "  screening: descriptions up to {} bytes, inputs up to {} bytes",
        loaded.screening.description_bytes_max, loaded.screening.input_bytes_max
    );
    let sources: Vec<&str> = loaded.context.sources.iter().map(|s| s.name.as_str()).collect();
    println!("  context sources: history{}", sources.iter().map(|s| format!(", {s}")).collect::<String>());
    println!("  trusted producers: {}", loaded.producers.len());
    println!(
        "  webhook allow-list: {}",
        if loaded.webhooks.allow.is_empty() {
            "none (public addresses only)".into()
        } else {
            loaded.webhooks.allow.join(", ")
        }
    );
    if let Some(auth) = auth_config {
        let auth = gateway::AuthConfig::from_file(auth)
            .with_context(|| format!("{} is not a usable auth config", auth.display()))?;
        let limits = auth.rate_limits.clone().unwrap_or_default();
        println!(
            "auth ok: {} key(s); roles {}",
            auth.keys.len(),
            auth.roles.keys().cloned().collect::<Vec<_>>().join(", ")
        );
        println!(
            "  rate limits: {:?} per principal, {:?} per address; by role {:?}; by subject {:?}",
            limits.per_principal, limits.per_ip, limits.per_role, limits.per_subject
        );
    }
    Ok(())
}
