//! The HTTP endpoints, one file per group.

pub mod agents;
pub mod system;
pub mod tasks;
pub mod webhooks;
pub mod work;
pub mod workflows;
