//! Reloading `pantheon up`'s configuration without a restart (SIGHUP, `POST /admin/reload`):
//! `pantheon.toml` read again (the screening policy; the configured agents' capabilities and
//! concurrency) and the rate limits of the auth config; the outcome — what was applied, what
//! takes a restart, or why nothing was (the file does not load) — recorded on the policy
//! stream (`policy_reloaded`, `policy_reload_refused`), so history shows when policy changed
//! and who asked.

use std::path::PathBuf;
use std::sync::Arc;

use actors::Config;
use events::policy::{PolicyEvent, PolicyReloadRefused, PolicyReloaded, policy_stream};
use events::{DomainEvent, EventId, EventLog, ExpectedVersion, Metadata};
use gateway::{Limit, RateLimits, ReloadOutcome};

/// What reloads and where it reads from.
#[derive(Debug)]
pub(crate) struct ConfigReload {
    /// `pantheon.toml` (or `--config`), and whether it was named (then it must exist).
    pub(crate) config_path: PathBuf,
    pub(crate) config_named: bool,
    /// `--auth-config`, whose `rate_limits` are reloaded.
    pub(crate) auth_path: Option<PathBuf>,
    /// The producers `up` adds to the file's (the gateway's key).
    pub(crate) added_producers: Vec<actors::config::ProducerConfig>,
    pub(crate) limiters: Arc<gateway::limits::Limiters>,
    pub(crate) pipeline: actors::Reloader,
    pub(crate) log: Arc<dyn EventLog>,
    /// One reload at a time.
    pub(crate) running: tokio::sync::Mutex<()>,
}

impl ConfigReload {
    /// Reloads, `by` whom, and records the outcome.
    pub(crate) async fn run(&self, by: &str) -> Result<ReloadOutcome, String> {
        let _one = self.running.lock().await;
        let outcome = self.apply().await;
        let event = match &outcome {
            Ok(applied) => PolicyEvent::Reloaded(PolicyReloaded {
                by: by.to_string(),
                changes: applied.changes.clone(),
                not_applied: applied.not_applied.clone(),
                config_hash: applied.config_hash.clone(),
            }),
            Err(reason) => {
                PolicyEvent::ReloadRefused(PolicyReloadRefused { by: by.to_string(), reason: reason.clone() })
            }
        };
        let recorded = match event.to_new_event(EventId::new(), Metadata::now("up")) {
            Ok(new_event) => self
                .log
                .append(&policy_stream(), ExpectedVersion::Any, vec![new_event])
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        };
        if let Err(error) = recorded {
            tracing::error!(%error, "the reload's outcome was not recorded");
            return Err(format!(
                "{}; and its outcome was not recorded: {error}",
                outcome.err().unwrap_or_else(|| "applied".into())
            ));
        }
        outcome
    }

    async fn apply(&self) -> Result<ReloadOutcome, String> {
        let text = match std::fs::read_to_string(&self.config_path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !self.config_named => String::new(),
            Err(e) => return Err(format!("{}: {e}", self.config_path.display())),
        };
        let mut config =
            Config::parse(&text, &self.config_path.display().to_string()).map_err(|e| e.to_string())?;
        config.producers.extend(self.added_producers.iter().cloned());
        let limits = match &self.auth_path {
            Some(path) => Some(
                gateway::AuthConfig::from_file(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?
                    .rate_limits
                    .unwrap_or_default(),
            ),
            None => None,
        };
        let report = self.pipeline.reload(&config).await.map_err(|e| events::error_chain(&e))?;
        let mut changes = report.changes;
        if let Some(limits) = limits {
            let before = self.limiters.limits();
            if before != limits {
                changes.extend(limit_changes(&before, &limits));
                self.limiters.replace(&limits);
            }
        }
        let auth_text =
            self.auth_path.as_ref().and_then(|p| std::fs::read_to_string(p).ok()).unwrap_or_default();
        let config_hash = events::Hash::of(format!("{text}\n{auth_text}").as_bytes()).to_string();
        Ok(ReloadOutcome { changes, not_applied: report.not_applied, config_hash })
    }
}

fn show(limit: &Limit) -> String {
    match limit {
        Limit::Unlimited => "unlimited".into(),
        Limit::Rate { per_s, burst } => format!("{per_s}/s burst {burst}"),
    }
}

/// One line per rate limit that differs.
fn limit_changes(before: &RateLimits, after: &RateLimits) -> Vec<String> {
    let mut lines = Vec::new();
    let mut one = |what: String, a: Option<&Limit>, b: Option<&Limit>| {
        if a != b {
            let show = |l: Option<&Limit>| l.map_or_else(|| "unset".to_string(), show);
            lines.push(format!("rate_limits.{what}: {} → {}", show(a), show(b)));
        }
    };
    one("per_principal".into(), Some(&before.per_principal), Some(&after.per_principal));
    one("per_ip".into(), Some(&before.per_ip), Some(&after.per_ip));
    for (kind, a, b) in
        [("roles", &before.per_role, &after.per_role), ("subjects", &before.per_subject, &after.per_subject)]
    {
        let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
        keys.sort();
        keys.dedup();
        for key in keys {
            one(format!("{kind}.{key}"), a.get(key), b.get(key));
        }
    }
    lines
}

impl gateway::Reload for ConfigReload {
    fn reload(&self, by: String) -> futures::future::BoxFuture<'_, Result<ReloadOutcome, String>> {
        Box::pin(async move { self.run(&by).await })
    }
}

/// Reloads on every SIGHUP until the process ends, saying what changed on standard error.
pub(crate) fn on_sighup(reload: Arc<ConfigReload>) -> Option<tokio::task::JoinHandle<()>> {
    #[cfg(unix)]
    {
        let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!(%error, "SIGHUP cannot be caught; reload with POST /admin/reload");
                return None;
            }
        };
        Some(tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                match reload.run("sighup").await {
                    Ok(outcome) => {
                        eprintln!(
                            "reloaded ({} applied, {} take a restart)",
                            outcome.changes.len(),
                            outcome.not_applied.len()
                        );
                        for line in &outcome.changes {
                            eprintln!("  applied: {line}");
                        }
                        for line in &outcome.not_applied {
                            eprintln!("  not applied: {line}");
                        }
                    }
                    Err(reason) => eprintln!("not reloaded: {reason}"),
                }
            }
        }))
    }
    #[cfg(not(unix))]
    {
        let _ = reload;
        None
    }
}
