//! `pantheon keys`: the keys of a federation's members — `new` makes an agent's key pair (the
//! secret seed in a file readable by its owner only, the public key printed for the agent's
//! configuration), `federation` prints the federation's public key, the one agents verify
//! sealed envelopes and passports with.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use events::KeyPair;

use crate::Cli;

/// `pantheon keys <command>`.
#[derive(Debug, clap::Args)]
pub(crate) struct KeysArgs {
    #[command(subcommand)]
    pub(crate) command: KeysCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Make a key pair for an agent: the secret seed (64 hex digits) goes to FILE (mode 0600,
    /// never overwritten); the public key is printed, for the agent's `public-key` in
    /// `pantheon.toml`.
    New {
        /// Where to write the secret seed.
        file: PathBuf,
        /// Print the public key as JSON (`{"public_key": …, "key_id": …, "file": …}`).
        #[arg(long)]
        json: bool,
    },
    /// Print the federation's public key (from the data dir's `federation.key`): agents verify
    /// sealed envelopes and passports with it.
    Federation {
        /// Print it as JSON (`{"public_key": …, "key_id": …}`).
        #[arg(long)]
        json: bool,
    },
}

/// `pantheon federation <command>`: the federation's own key, by the name agents' authors look
/// for (the same as `pantheon keys federation`).
#[derive(Debug, clap::Args)]
pub(crate) struct FederationArgs {
    #[command(subcommand)]
    pub(crate) command: FederationCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum FederationCommand {
    /// Print the federation's public key: agents verify sealed envelopes and passports with it.
    Key {
        /// Print it as JSON (`{"public_key": …, "key_id": …}`).
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run_federation(cli: &Cli, args: &FederationArgs) -> anyhow::Result<()> {
    let FederationCommand::Key { json } = args.command;
    run(cli, &KeysArgs { command: KeysCommand::Federation { json } })
}

pub(crate) fn run(cli: &Cli, args: &KeysArgs) -> anyhow::Result<()> {
    match &args.command {
        KeysCommand::New { file, json } => {
            if file.exists() {
                bail!("{} exists already: a key file is never overwritten", file.display());
            }
            let key = KeyPair::generate();
            key.save(file).with_context(|| format!("cannot write {}", file.display()))?;
            let public = key.public_key();
            if *json {
                out!(
                    "{}",
                    serde_json::json!({"public_key": public.to_string(), "key_id": public.key_id(), "file": file})
                );
            } else {
                out!("{public}");
                eprintln!("secret key written to {} (readable by its owner only)", file.display());
            }
            Ok(())
        }
        KeysCommand::Federation { json } => {
            let path = cli.data_dir.join("federation.key");
            let key = KeyPair::load(&path).with_context(|| {
                format!(
                    "no federation key at {}: run `pantheon up` there first, or pass --data-dir",
                    path.display()
                )
            })?;
            let public = key.public_key();
            if *json {
                out!("{}", serde_json::json!({"public_key": public.to_string(), "key_id": public.key_id()}));
            } else {
                out!("{public}");
            }
            Ok(())
        }
    }
}
