//! The subcommands, one file each.

pub(crate) mod events;
pub(crate) mod audit;
pub(crate) mod projections;
pub(crate) mod tasks;
