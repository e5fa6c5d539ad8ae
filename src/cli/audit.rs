//! `pantheon audit`: verify the whole ledger and its signed tree heads, print inclusion and
//! consistency proofs, and check a proof offline with the federation public key.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use events::{KeyPair, PublicKey};
use projections::{ConsistencyProof, InclusionProof, ProjectionName};

use crate::Cli;

/// `pantheon audit [--nats URL] <command>`.
#[derive(Debug, clap::Args)]
pub(crate) struct AuditArgs {
    /// Where the log is (for `verify`'s comparison with the log and catching the ledger up).
    #[command(flatten)]
    pub(crate) backend: super::up::BackendArgs,
    #[command(subcommand)]
    pub(crate) command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Check every entry's hash and link and every signed tree head; name the first bad entry.
    Verify {
        /// Check the ledger alone, without comparing each entry with the event at its position
        /// in the log (faster; an event changed in the log is then not found).
        #[arg(long)]
        ledger_only: bool,
        /// Compare every entry with the event at its log position (the default; kept for
        /// scripts written before it was).
        #[arg(long, hide = true, conflicts_with = "ledger_only")]
        against_log: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the inclusion proof (JSON) of one entry under the latest signed tree head.
    Prove {
        /// The entry's sequence number (from 0).
        entry: u64,
    },
    /// Print the consistency proof (JSON) between two signed tree heads.
    ProveConsistency {
        /// The older tree size.
        old_size: u64,
        /// The newer tree size.
        new_size: u64,
    },
    /// Check a proof file (from `prove` or `prove-consistency`) offline.
    VerifyProof {
        /// The proof file (`-` for stdin).
        file: PathBuf,
        /// The federation public key, 64 hex digits (default: the public half of the data
        /// dir's federation key).
        #[arg(long)]
        public_key: Option<String>,
    },
    /// List the signed tree heads.
    Heads,
}

fn trusted_key(cli: &Cli, given: Option<&str>) -> anyhow::Result<PublicKey> {
    if let Some(text) = given {
        return PublicKey::try_from(text.to_string()).context("--public-key must be 64 hex digits");
    }
    let path = crate::cli::projections::federation_key_path(cli);
    let key = KeyPair::load(&path).with_context(|| {
        format!("no --public-key given and cannot read the federation key {}", path.display())
    })?;
    Ok(key.public_key())
}

pub(crate) async fn run(cli: &Cli, args: &AuditArgs) -> anyhow::Result<()> {
    let command = &args.command;
    if let AuditCommand::VerifyProof { file, public_key } = command {
        // Offline: no database, only the file and the key.
        let text = if file.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin()).context("cannot read stdin")?
        } else {
            std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?
        };
        let key = trusted_key(cli, public_key.as_deref())?;
        let value: serde_json::Value = serde_json::from_str(&text).context("the proof is not JSON")?;
        if value.get("audit_path").is_some() {
            let proof: InclusionProof = serde_json::from_value(value).context("not an inclusion proof")?;
            match proof.verify(&key) {
                Ok(()) => out!(
                    "valid: entry {} ({} on {} by {}) is in the ledger of {} entries signed by {}",
                    proof.entry.seq,
                    proof.entry.operation,
                    proof.entry.resource,
                    proof.entry.actor,
                    proof.tree_head.tree_size,
                    key.key_id()
                ),
                Err(reason) => bail!("invalid inclusion proof: {reason}"),
            }
        } else {
            let proof: ConsistencyProof = serde_json::from_value(value).context("not a consistency proof")?;
            match proof.verify(&key) {
                Ok(()) => out!(
                    "valid: the ledger of {} entries is a prefix of the ledger of {} entries, both signed by {}",
                    proof.old_tree_head.tree_size,
                    proof.new_tree_head.tree_size,
                    key.key_id()
                ),
                Err(reason) => bail!("invalid consistency proof: {reason}"),
            }
        }
        return Ok(());
    }
    let opened = crate::cli::projections::open(cli, &args.backend).await?;
    // Bring the ledger up to the log and sign a head over it, so proofs cover everything.
    opened.projections.catch_up(ProjectionName::Audit).await?;
    opened.projections.seal_audit().await?;
    match command {
        AuditCommand::Verify { ledger_only, against_log: _, json } => {
            let started = std::time::Instant::now();
            let report = projections::verify_ledger(&opened.db, &opened.key.public_key()).await?;
            let elapsed = started.elapsed();
            let mut problem = report.problem.clone();
            if problem.is_none() && !*ledger_only {
                problem = projections::verify_against_log(&opened.db, opened.log.as_ref()).await?;
            }
            if *json {
                let mut value = serde_json::to_value(&report)?;
                value["problem"] = serde_json::to_value(&problem)?;
                out!("{}", serde_json::to_string_pretty(&value)?);
            }
            match problem {
                None => {
                    if !*json {
                        out!(
                            "ledger intact: {} entries, {} signed tree heads, root {} ({:.2?})",
                            report.entries,
                            report.tree_heads,
                            report.root_hash,
                            elapsed
                        );
                    }
                    Ok(())
                }
                Some(p) => match p.entry {
                    Some(entry) => bail!("ledger damaged at entry {entry}: {}", p.reason),
                    None => bail!("ledger damaged: {}", p.reason),
                },
            }
        }
        AuditCommand::Prove { entry } => {
            let proof = projections::prove_inclusion(&opened.db, *entry).await?;
            out!("{}", serde_json::to_string_pretty(&proof)?);
            Ok(())
        }
        AuditCommand::ProveConsistency { old_size, new_size } => {
            let proof = projections::prove_consistency(&opened.db, *old_size, *new_size).await?;
            out!("{}", serde_json::to_string_pretty(&proof)?);
            Ok(())
        }
        AuditCommand::Heads => {
            for head in projections::verify::list_tree_heads(&opened.db).await? {
                out!(
                    "{:>10}  {}  {}  {}",
                    head.tree_size,
                    head.timestamp_ms,
                    head.root_hash,
                    head.public_key.key_id()
                );
            }
            Ok(())
        }
        AuditCommand::VerifyProof { .. } => Ok(()),
    }
}
