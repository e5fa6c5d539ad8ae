//! What the command-line tests share: the `pantheon` binary run on a data dir, with nothing
//! of the caller's environment choosing another backend, and a child process stopped at the
//! end of a test whatever happens.

#![allow(dead_code, unreachable_pub)]

use std::process::{Child, Command};

/// `pantheon --data-dir <data_dir>`, ignoring any database, NATS server or auth config named
/// in the environment.
pub fn pantheon(data_dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pantheon"));
    command
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("PANTHEON_DATABASE_URL")
        .env_remove("PANTHEON_NATS_URL")
        .env_remove("PANTHEON_AUTH_CONFIG");
    command
}

/// Kills the child at the end of the test whatever happens.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
