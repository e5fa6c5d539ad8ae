//! # workflow
//!
//! Pantheon's workflows, the parts that decide and read no clock: [`define`] reads a
//! definition (YAML or JSON) and checks it, naming the field of any refusal; [`expr`] and
//! [`template`] are the small expression language of `when`, `for_each` and `${…}`; and
//! [`decide()`] is the pure decider of a run; [`commands`] register definitions and start,
//! cancel, read and wait for runs through the log (for the gateway, the command line and the
//! engine alike). The vocabulary (definitions, a run's events and
//! fold) is `events::workflow`; the engine that feeds the decider and does what it decides is
//! `actors::workflows`.

pub mod commands;
pub mod decide;
pub mod define;
pub mod expr;
pub mod template;

pub use commands::{
    LoadedRun, Registered, Start, StartRun, WorkflowError, cancel, load_run, register, signal, start,
    versions, wait,
};
pub use decide::{Trigger, decide, purpose, step_task_id};
pub use define::{DefinitionError, check, hash, parse};
