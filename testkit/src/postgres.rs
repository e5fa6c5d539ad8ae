//! A throwaway PostgreSQL for tests and benchmarks.
//!
//! [`PgServer::start`] runs Debian's `initdb` and `postgres` (from `/usr/lib/postgresql/*/bin`)
//! in a temp dir, listening on a free port of 127.0.0.1 and on a unix socket in that dir. When
//! the test process runs as root, the server runs as the `postgres` system user (initdb refuses
//! root) and the temp dir is handed to that user. Dropping the server stops it (immediate
//! shutdown) and removes the dir. A watchdog process stops it too when the test process dies
//! without dropping it (a panic that aborts, a killed test, the shared server of
//! [`PgServer::shared`], which lives in a static and is never dropped), so no server outlives
//! its tests.
//!
//! Tests normally call [`fresh_database_url`]: a new empty database per test, on the server
//! named by `PANTHEON_TEST_DATABASE_URL` when that is set, else on the process's shared
//! private server.

use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};

use crate::{Error, Result};

/// The environment variable naming an existing server to use instead of a private one
/// (`postgres://user:password@host:port/db`): each test gets a fresh database on it. Those
/// databases (`pantheon_test_*`) are left behind for the server's owner to drop.
pub const DATABASE_URL_VAR: &str = "PANTHEON_TEST_DATABASE_URL";

/// How long a starting server may take to accept connections.
const START_TIMEOUT_S: u64 = 60;

/// How long a stopping server may take before it is killed.
const STOP_TIMEOUT_MS: u64 = 5_000;

/// How often the watchdog checks that the test process is alive, in seconds.
const WATCHDOG_INTERVAL_S: u64 = 1;

/// Connections the private server accepts: a test log opens about a dozen, and tests run in
/// parallel on the shared server.
const MAX_CONNECTIONS: u32 = 300;

/// Where Debian installs PostgreSQL's server binaries, one dir per major version.
const DEBIAN_PG_ROOT: &str = "/usr/lib/postgresql";

/// How the private server trades durability for speed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// `fsync=off`, `synchronous_commit=off`, `full_page_writes=off`: fast, for tests.
    #[default]
    Fast,
    /// The server's defaults (every commit flushed): for honest benchmarks.
    Durable,
}

/// A private PostgreSQL server, stopped and removed on drop.
#[derive(Debug)]
pub struct PgServer {
    port: u16,
    postgres: Child,
    watchdog: Option<Child>,
    dir: PathBuf,
    /// How the server was started, to start it again after [`PgServer::restart`].
    launch: Launch,
}

#[derive(Clone, Debug)]
struct Launch {
    bin: PathBuf,
    owner: Option<(u32, u32)>,
    durability: Durability,
}

/// How [`PgServer::restart`] stops the server before starting it again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopMode {
    /// `pg_ctl stop -m fast` (SIGINT): sessions are ended, the server checkpoints.
    Fast,
    /// `pg_ctl stop -m immediate` (SIGQUIT): no checkpoint; crash recovery on the next start.
    Immediate,
}

/// Starts `postgres` on the data dir in `dir`, appending to its log.
fn spawn_postgres(launch: &Launch, dir: &Path, port: u16) -> Result<Child> {
    let log = fs::OpenOptions::new().create(true).append(true).open(dir.join("postgres.log"))?;
    if let Some((uid, gid)) = launch.owner {
        std::os::unix::fs::chown(dir.join("postgres.log"), Some(uid), Some(gid))?;
    }
    let mut command = Command::new(launch.bin.join("postgres"));
    command
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
        .arg("-k")
        .arg(dir.join("socket"))
        .args(["-c", &format!("max_connections={MAX_CONNECTIONS}")])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group: a signal meant for the test's group (Ctrl-C, a runner
        // killing the test) leaves the server to the watchdog's orderly stop.
        .process_group(0);
    if launch.durability == Durability::Fast {
        command.args(["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]);
    }
    as_owner(&mut command, launch.owner)
        .spawn()
        .map_err(|e| Error::Command { command: "postgres".into(), detail: e.to_string() })
}

/// Whether Debian's PostgreSQL server binaries are installed.
pub fn available() -> bool {
    bin_dir().is_ok()
}

/// A new, empty database for one test, as a URL: on `PANTHEON_TEST_DATABASE_URL` when set, else
/// on this process's shared private server.
pub async fn fresh_database_url() -> Result<String> {
    match std::env::var(DATABASE_URL_VAR) {
        Ok(url) if !url.is_empty() => create_database(&url).await,
        _ => PgServer::shared()?.fresh_database().await,
    }
}

impl PgServer {
    /// Starts a private server for tests (`fsync=off`). Blocks for the `initdb` and start-up
    /// (a second or two).
    pub fn start() -> Result<Self> {
        Self::start_with(Durability::Fast)
    }

    /// Starts a private server with the given durability.
    pub fn start_with(durability: Durability) -> Result<Self> {
        let bin = bin_dir()?;
        let owner = if running_as_root()? { Some(postgres_user()?) } else { None };
        let dir = tempfile::Builder::new().prefix("pantheon-pg-").tempdir()?.keep();
        let result = Self::start_in(&bin, &dir, owner, durability);
        if result.is_err() {
            let _ = fs::remove_dir_all(&dir);
        }
        result
    }

    fn start_in(bin: &Path, dir: &Path, owner: Option<(u32, u32)>, durability: Durability) -> Result<Self> {
        let data = dir.join("data");
        let socket = dir.join("socket");
        fs::create_dir(&socket)?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir, Some(uid), Some(gid))?;
            std::os::unix::fs::chown(&socket, Some(uid), Some(gid))?;
        }
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"])
            .stdin(Stdio::null());
        run(as_owner(&mut initdb, owner), "initdb")?;

        let port = crate::free_port()?;
        let launch = Launch { bin: bin.to_path_buf(), owner, durability };
        let postgres = spawn_postgres(&launch, dir, port)?;
        let mut server = Self { port, postgres, watchdog: None, dir: dir.to_path_buf(), launch };
        server.watchdog = Some(server.spawn_watchdog()?);
        server.wait_ready(bin)?;
        Ok(server)
    }

    /// Stops the server (`mode`), waits for it to exit, and starts it again on the same port
    /// and data dir; returns once it accepts connections. For fault tests.
    pub fn restart(&mut self, mode: StopMode) -> Result<()> {
        self.stop(mode);
        self.resume()
    }

    /// Starts the server again after [`PgServer::stop`], on the same port and data dir; returns
    /// once it accepts connections.
    pub fn resume(&mut self) -> Result<()> {
        if self.postgres.try_wait().ok().flatten().is_none() {
            return Ok(()); // still running
        }
        self.postgres = spawn_postgres(&self.launch, &self.dir, self.port)?;
        self.watchdog = Some(self.spawn_watchdog()?);
        let bin = self.launch.bin.clone();
        self.wait_ready(&bin)
    }

    /// Stops the server (`mode`) and waits for it to exit (killing it after a few seconds);
    /// [`PgServer::resume`] starts it again. For fault tests.
    pub fn stop(&mut self, mode: StopMode) {
        let signal = match mode {
            StopMode::Fast => "-INT",
            StopMode::Immediate => "-QUIT",
        };
        let _ = Command::new("kill").arg(signal).arg(self.postgres.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_millis(STOP_TIMEOUT_MS);
        while self.postgres.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = self.postgres.kill();
                let _ = self.postgres.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }

    /// Starts a process that stops the server and removes its dir once this process is gone.
    fn spawn_watchdog(&self) -> Result<Child> {
        let script = format!(
            "while kill -0 \"$1\" 2>/dev/null; do sleep {WATCHDOG_INTERVAL_S}; done; \
             kill -QUIT \"$2\" 2>/dev/null; sleep 2; kill -KILL \"$2\" 2>/dev/null; rm -rf \"$3\""
        );
        Command::new("sh")
            .args(["-c", &script, "pantheon-pg-watchdog"])
            .arg(std::process::id().to_string())
            .arg(self.postgres.id().to_string())
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| Error::Command { command: "sh (watchdog)".into(), detail: e.to_string() })
    }

    fn wait_ready(&mut self, bin: &Path) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(START_TIMEOUT_S);
        loop {
            if let Ok(Some(status)) = self.postgres.try_wait() {
                return Err(Error::Command {
                    command: "postgres".into(),
                    detail: format!("exited with {status}: {}", self.log_tail()),
                });
            }
            let ready = Command::new(bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres"])
                .status()
                .is_ok_and(|status| status.success());
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::StartTimeout { seconds: START_TIMEOUT_S, detail: self.log_tail() });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_tail(&self) -> String {
        let mut text = String::new();
        let _ = fs::File::open(self.dir.join("postgres.log")).and_then(|mut f| f.read_to_string(&mut text));
        let start = text.len().saturating_sub(2_000);
        text.get(start..).unwrap_or_default().to_string()
    }

    /// The process's shared private server, started on first use. It lives until the process
    /// exits; its watchdog then stops it and removes its dir.
    pub fn shared() -> Result<&'static PgServer> {
        static SHARED: Mutex<Option<&'static PgServer>> = Mutex::new(None);
        let mut shared = SHARED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(server) = *shared {
            return Ok(server);
        }
        let server: &'static PgServer = Box::leak(Box::new(Self::start()?));
        *shared = Some(server);
        Ok(server)
    }

    /// The TCP port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of `database` on this server (user `postgres`, no password).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a new, empty database and returns its URL.
    pub async fn fresh_database(&self) -> Result<String> {
        create_database(&self.url("postgres")).await
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // SIGQUIT: immediate shutdown, the server takes its backends down with it.
        let _ = Command::new("kill").args(["-QUIT", &self.postgres.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_millis(STOP_TIMEOUT_MS);
        while matches!(self.postgres.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.postgres.kill();
        let _ = self.postgres.wait();
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Creates a fresh database on the server of `url` and returns the new database's URL.
async fn create_database(url: &str) -> Result<String> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let name =
        format!("pantheon_test_{}_{}_{nanos}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    let mut conn = PgConnection::connect(url).await?;
    // The name is ours (digits and underscores), so formatting it into the statement is safe.
    conn.execute(AssertSqlSafe(format!("CREATE DATABASE {name}"))).await?;
    conn.close().await?;
    Ok(with_database(url, &name))
}

/// `url` with its database name replaced by `database` (query parameters kept).
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let root = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{root}/{database}?{query}"),
        None => format!("{root}/{database}"),
    }
}

/// The newest installed PostgreSQL's server binary dir.
fn bin_dir() -> Result<PathBuf> {
    let not_installed = || Error::NotInstalled {
        program: "initdb",
        hint: "install Debian's postgresql package (apt-get install postgresql)",
    };
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir(DEBIAN_PG_ROOT)
        .map_err(|_| not_installed())?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(not_installed)
}

fn running_as_root() -> Result<bool> {
    Ok(fs::metadata("/proc/self")?.uid() == 0)
}

/// The uid and gid of the `postgres` system user.
fn postgres_user() -> Result<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd")?;
    passwd
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let _password = fields.next()?;
            let uid = fields.next()?.parse().ok()?;
            let gid = fields.next()?.parse().ok()?;
            (name == "postgres").then_some((uid, gid))
        })
        .next()
        .ok_or(Error::NotInstalled {
            program: "the postgres user",
            hint: "running as root needs the postgres system user (Debian's postgresql package creates it)",
        })
}

fn as_owner(command: &mut Command, owner: Option<(u32, u32)>) -> &mut Command {
    if let Some((uid, gid)) = owner {
        command.gid(gid).uid(uid);
    }
    command
}

fn run(command: &mut Command, name: &str) -> Result<()> {
    let output =
        command.output().map_err(|e| Error::Command { command: name.to_string(), detail: e.to_string() })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::Command {
            command: name.to_string(),
            detail: format!(
                "{}: {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_replaced_in_urls() {
        assert_eq!(with_database("postgres://u:p@h:5432/db", "x"), "postgres://u:p@h:5432/x");
        assert_eq!(with_database("postgres://u@h:5432", "x"), "postgres://u@h:5432/x");
        assert_eq!(with_database("postgres://h/db?sslmode=disable", "x"), "postgres://h/x?sslmode=disable");
    }
}
