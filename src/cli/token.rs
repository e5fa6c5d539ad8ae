//! `pantheon token`: a bearer token for the gateway, signed with its HS256 secret — the data
//! dir's `gateway-hs256.secret` (what `pantheon up` creates on the embedded default), a
//! secret file, or the first `hs256_secrets` entry of an `--auth-config` file — so that no one
//! has to write a JWT by hand.

use std::path::PathBuf;

use anyhow::{Context as _, bail};

use crate::Cli;

/// The longest validity `pantheon token` issues: a year.
const TOKEN_TTL_MAX: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3_600);

/// `pantheon token --role ROLE --sub NAME --ttl 1h`.
#[derive(Debug, clap::Args)]
pub(crate) struct TokenArgs {
    /// A role the token grants (admin, operator, producer, viewer, or one of the auth config's
    /// roles); repeat for several.
    #[arg(long = "role", required = true)]
    pub(crate) roles: Vec<String>,
    /// Who the token names (`sub`): the principal its tasks are submitted and read as.
    #[arg(long)]
    pub(crate) sub: String,
    /// How long the token is valid (`1h`, `30d`; at most a year).
    #[arg(long, default_value = "1h")]
    pub(crate) ttl: humantime::Duration,
    /// The gateway's auth config: its first HS256 secret signs, and its roles are the ones
    /// known. Default: the data dir's `gateway-hs256.secret` and the default roles.
    #[arg(long, env = "PANTHEON_AUTH_CONFIG", conflicts_with = "secret_file")]
    pub(crate) auth_config: Option<PathBuf>,
    /// A file holding the HS256 secret (at least 32 characters).
    #[arg(long)]
    pub(crate) secret_file: Option<PathBuf>,
    /// Print `{"token", "sub", "roles", "expires_at_s"}` as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) fn run(cli: &Cli, args: &TokenArgs) -> anyhow::Result<()> {
    let ttl: std::time::Duration = args.ttl.into();
    if ttl.is_zero() || ttl > TOKEN_TTL_MAX {
        bail!("--ttl must be more than 0 and at most 365 days, not {}", args.ttl);
    }
    if args.sub.trim().is_empty() {
        bail!("--sub must name someone");
    }
    let (secret, roles) = match (&args.auth_config, &args.secret_file) {
        (Some(path), _) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            let file: gateway::AuthFile =
                serde_json::from_str(&text).with_context(|| format!("bad auth config {}", path.display()))?;
            if file.issuer.is_some() || file.audience.is_some() {
                bail!(
                    "{} requires an issuer or audience: tokens for it come from your identity provider",
                    path.display()
                );
            }
            let Some(secret) = file.hs256_secrets.first() else {
                bail!("{} names no hs256_secrets to sign with", path.display());
            };
            (secret.as_bytes().to_vec(), file.roles.unwrap_or_else(gateway::auth::default_roles))
        }
        (None, Some(path)) => (read_secret(path)?, gateway::auth::default_roles()),
        (None, None) => {
            (read_secret(&cli.data_dir.join("gateway-hs256.secret"))?, gateway::auth::default_roles())
        }
    };
    for role in &args.roles {
        if !roles.contains_key(role) {
            let known: Vec<&str> = roles.keys().map(String::as_str).collect();
            bail!("unknown role {role:?}: the gateway knows {}", known.join(", "));
        }
    }
    let role_refs: Vec<&str> = args.roles.iter().map(String::as_str).collect();
    let token = gateway::auth::issue_hs256_token(&secret, &args.sub, &role_refs, ttl.as_secs())?;
    if args.json {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        out!(
            "{}",
            serde_json::json!({"token": token, "sub": args.sub, "roles": args.roles, "expires_at_s": now + ttl.as_secs()})
        );
    } else {
        out!("{token}");
    }
    Ok(())
}

/// An HS256 secret from a file: at least 32 characters, never created here.
fn read_secret(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "no gateway secret at {}: run `pantheon up` there first, or pass --secret-file or --auth-config",
            path.display()
        )
    })?;
    let text = text.trim();
    if text.len() < 32 {
        bail!("{} holds a secret shorter than 32 characters", path.display());
    }
    Ok(text.as_bytes().to_vec())
}
