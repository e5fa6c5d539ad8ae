//! The subcommands, one file each.

pub(crate) mod agents;
pub(crate) mod archive;
pub(crate) mod audit;
pub(crate) mod bench;
pub(crate) mod bench_workflow;
pub(crate) mod config;
pub(crate) mod events;
pub(crate) mod keys;
pub(crate) mod projections;
pub(crate) mod reload;
pub(crate) mod replay;
pub(crate) mod submit;
pub(crate) mod tail;
pub(crate) mod tasks;
pub(crate) mod token;
pub(crate) mod up;
pub(crate) mod webhooks;
pub(crate) mod workflow;
