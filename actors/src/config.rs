//! The TOML configuration of a Pantheon process: which agents run in it, the screening limits,
//! the producer keys trusted for NATS submissions. Every field has a documented default, and a
//! missing file means the defaults: one `echo` agent.
//!
//! ```toml
//! # <data-dir>/pantheon.toml
//! [[agents]]
//! id = "echo"
//! builtin = "echo"
//! capabilities = ["echo"]
//! max-concurrency = 256
//!
//! # a program gets the whole task as JSON on stdin ({"task_id", "attempt", "capability",
//! # "description", "input", "context"}) and answers on stdout; `wc -w` counts the words of
//! # that JSON, so a real agent reads the field it needs (e.g. `jq -r .description | …`
//! # inside a script of its own: no shell runs the command)
//! [[agents]]
//! id = "wc"
//! builtin = "command"
//! capabilities = ["count-words"]
//! command = { program = "wc", args = ["-w"], timeout-ms = 5000 }
//!
//! # an agent outside the process: envelopes are POSTed to `url`, results must be signed
//! # with `public-key` (see `agents::http`)
//! [[agents]]
//! id = "translator"
//! builtin = "http"
//! capabilities = ["translate"]
//! url = "http://10.0.0.7:9000/execute"
//! public-key = "<64 hex digits>"
//!
//! # an agent outside the process on NATS request/reply (with `pantheon up --nats`)
//! [[agents]]
//! id = "summarizer"
//! builtin = "nats"
//! capabilities = ["summarize"]
//! subject = "agents.summarizer"
//! public-key = "<64 hex digits>"
//!
//! [screening]
//! description-bytes-max = 16384
//!
//! # a context source: asked in parallel with the others for each task (see `context`)
//! [[context.sources]]
//! name = "runbooks"
//! url = "http://10.0.0.9:7000/context"
//! timeout-ms = 200
//! capabilities = ["translate"]
//!
//! [health]
//! cool-down-ms = 30000
//!
//! [[producers]]
//! name = "billing"
//! public-key = "<64 hex digits>"
//! ```

use std::path::Path;

use events::{AgentId, PublicKey};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The whole configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    /// # Agents
    /// The built-in agents this process registers and runs. Default: one `echo` agent with the
    /// capability `echo`.
    #[serde(default = "default_agents")]
    pub agents: Vec<AgentConfig>,
    /// # Screening
    /// Limits and scanning of ingress and egress. Default: see [`ScreeningConfig`].
    #[serde(default)]
    pub screening: ScreeningConfig,
    /// # Trusted producers
    /// Keys whose signed submissions are accepted on NATS. The federation key (the CLI's) is
    /// always trusted. Default: none.
    #[serde(default)]
    pub producers: Vec<ProducerConfig>,
    /// # NATS
    /// Where submissions arrive in NATS mode. Default: see [`NatsConfig`].
    #[serde(default)]
    pub nats: NatsConfig,
    /// # Health
    /// How matching treats unhealthy agents. Default: see [`HealthConfig`].
    #[serde(default)]
    pub health: HealthConfig,
    /// # Context
    /// Where the context phase looks besides the capability's history. Default: see
    /// [`ContextConfig`].
    #[serde(default)]
    pub context: ContextConfig,
    /// # Webhooks
    /// Which webhook targets are allowed besides public addresses. Default: none.
    #[serde(default)]
    pub webhooks: WebhooksConfig,
}

/// The `[webhooks]` section: the gateway's allow-list of webhook targets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Targets allowed although they are loopback, private or another special-purpose address:
    /// host names (`hooks.internal`, `*.corp.example`: whatever they resolve to) and networks
    /// (`10.1.0.0/16`, `127.0.0.1`). Off by default: only public addresses.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Attempts before a webhook is dead-lettered (1 to [`WEBHOOK_ATTEMPTS_MAX`]; default 6).
    #[serde(default)]
    pub attempts: Option<u32>,
    /// The delay before the second attempt, ms (doubling after each, with ±50 % jitter;
    /// default 1,000).
    #[serde(default)]
    pub backoff_initial_ms: Option<u64>,
    /// The longest delay between two attempts, ms (default 60,000).
    #[serde(default)]
    pub backoff_max_ms: Option<u64>,
}

/// The most attempts `[webhooks] attempts` may ask for.
pub const WEBHOOK_ATTEMPTS_MAX: u32 = 50;

/// The longest backoff `[webhooks]` may ask for, ms (a day).
pub const WEBHOOK_BACKOFF_MS_MAX: u64 = 86_400_000;

impl Default for Config {
    fn default() -> Self {
        Self {
            agents: default_agents(),
            screening: ScreeningConfig::default(),
            producers: Vec::new(),
            nats: NatsConfig::default(),
            health: HealthConfig::default(),
            context: ContextConfig::default(),
            webhooks: WebhooksConfig::default(),
        }
    }
}

fn default_agents() -> Vec<AgentConfig> {
    vec![AgentConfig::echo()]
}

impl Config {
    /// Reads the file at `path`; a missing file gives the defaults.
    pub fn load_or_default(path: &Path) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(Error::Config { path: path.display().to_string(), reason: e.to_string() }),
        }
    }

    /// Parses TOML text (`origin` names it in errors) and validates it.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let config: Self = toml::from_str(text)
            .map_err(|e| Error::Config { path: origin.to_string(), reason: e.to_string() })?;
        config.validate().map_err(|reason| Error::Config { path: origin.to_string(), reason })?;
        Ok(config)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for agent in &self.agents {
            if !seen.insert(agent.id.clone()) {
                return Err(format!("agent {} is configured twice", agent.id));
            }
            if agent.capabilities().iter().any(|c| c.trim().is_empty()) {
                return Err(format!("agent {} declares an empty capability", agent.id));
            }
            if agent.max_concurrency == 0 {
                return Err(format!("agent {}: max-concurrency must be at least 1", agent.id));
            }
            agent.validate_kind()?;
        }
        if self.screening.description_bytes_max == 0 || self.screening.input_bytes_max == 0 {
            return Err(
                "screening: description-bytes-max and input-bytes-max must be at least 1 (0 would refuse every task)"
                    .into(),
            );
        }
        if self.webhooks.attempts.is_some_and(|n| n == 0 || n > WEBHOOK_ATTEMPTS_MAX) {
            return Err(format!("webhooks: attempts must be 1 to {WEBHOOK_ATTEMPTS_MAX}"));
        }
        for (key, value) in [
            ("backoff-initial-ms", self.webhooks.backoff_initial_ms),
            ("backoff-max-ms", self.webhooks.backoff_max_ms),
        ] {
            if value.is_some_and(|ms| ms == 0 || ms > WEBHOOK_BACKOFF_MS_MAX) {
                return Err(format!("webhooks: {key} must be 1 to {WEBHOOK_BACKOFF_MS_MAX}"));
            }
        }
        let mut names = std::collections::HashSet::new();
        for source in &self.context.sources {
            let name = source.name.trim();
            if name.is_empty() {
                return Err("a context source has an empty name".into());
            }
            if name == crate::context::HISTORY_SOURCE || !names.insert(name) {
                return Err(format!("context source {name:?} is configured twice (`history` is built in)"));
            }
            if !(source.url.starts_with("http://") || source.url.starts_with("https://")) {
                return Err(format!("context source {name}: url must start with http:// or https://"));
            }
            if source.timeout_ms == 0 || source.timeout_ms > CONTEXT_SOURCE_TIMEOUT_MS_MAX {
                return Err(format!(
                    "context source {name}: timeout-ms must be 1 to {CONTEXT_SOURCE_TIMEOUT_MS_MAX}"
                ));
            }
        }
        Ok(())
    }
}

/// The longest `timeout-ms` a context source may be given: the context phase waits for its
/// slowest source, and every task waits for the context phase.
pub const CONTEXT_SOURCE_TIMEOUT_MS_MAX: u64 = 10_000;

/// Where the context phase looks for context.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct ContextConfig {
    /// # Sources
    /// Services asked for context about each task, in parallel with each other and with the
    /// built-in `history` source. Default: none.
    pub sources: Vec<ContextSourceConfig>,
}

/// One context source: an HTTP service the context phase `POST`s
/// `{"task_id", "capability", "description"}` to, answering
/// `{"best_practices": [...], "pitfalls": [...]}` (both optional) within its timeout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ContextSourceConfig {
    /// # Name
    /// How `context_gathered` names it. Required, unique, not `history`.
    pub name: String,
    /// # URL
    /// Where the request is `POST`ed (`http://…` or `https://…`). Required.
    pub url: String,
    /// # Timeout
    /// How long the source may take, in ms; a later answer is left out and the source is
    /// recorded as late. Default: 200 ([`crate::CONTEXT_SOURCE_MS_MAX`]); at most 10,000.
    #[serde(default = "default_context_timeout_ms")]
    pub timeout_ms: u64,
    /// # Capabilities
    /// The capabilities whose tasks it is asked about. Default: empty, meaning every task.
    #[serde(default)]
    pub capabilities: Vec<String>,
}

fn default_context_timeout_ms() -> u64 {
    crate::context::CONTEXT_SOURCE_MS_MAX
}

impl AgentConfig {
    /// Checks that the fields given are the ones its kind uses, and that those it needs are
    /// there and well-formed (the config file's check, and the runtime's for a config built
    /// in code).
    pub(crate) fn validate_kind(&self) -> std::result::Result<(), String> {
        let id = &self.id;
        let kind = match self.builtin {
            Builtin::Echo => "an echo",
            Builtin::Command => "a command",
            Builtin::Http => "an http",
            Builtin::Nats => "a nats",
        };
        let unused = [
            ("command", self.command.is_some() && self.builtin != Builtin::Command),
            ("url", self.url.is_some() && self.builtin != Builtin::Http),
            ("subject", self.subject.is_some() && self.builtin != Builtin::Nats),
            (
                "public-key",
                self.public_key.is_some() && !matches!(self.builtin, Builtin::Http | Builtin::Nats),
            ),
        ];
        if let Some((field, _)) = unused.iter().find(|(_, set)| *set) {
            return Err(format!("agent {id}: `{field}` does not apply to {kind} agent"));
        }
        match self.builtin {
            Builtin::Http | Builtin::Nats if self.public_key.is_none() => {
                Err(format!("agent {id}: an agent outside the process needs its public-key"))
            }
            Builtin::Http => match &self.url {
                None => Err(format!("agent {id}: an http agent needs a url")),
                Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => {
                    Err(format!("agent {id}: the url must start with http:// or https://"))
                }
                Some(_) => Ok(()),
            },
            Builtin::Nats => match &self.subject {
                None => Err(format!("agent {id}: a nats agent needs a subject")),
                Some(subject) if subject.is_empty() || subject.contains([' ', '*', '>']) => Err(format!(
                    "agent {id}: the subject must be a plain NATS subject (no spaces or wildcards)"
                )),
                Some(_) => Ok(()),
            },
            Builtin::Command => match &self.command {
                None => Err(format!("agent {id} is a command agent without `command`")),
                Some(command) if command.program.is_empty() => {
                    Err(format!("agent {id}: command.program is empty"))
                }
                Some(command) if command.timeout_ms == 0 => {
                    Err(format!("agent {id}: command.timeout-ms must be at least 1"))
                }
                Some(command) if command.output_bytes_max == 0 => {
                    Err(format!("agent {id}: command.output-bytes-max must be at least 1"))
                }
                Some(_) => Ok(()),
            },
            Builtin::Echo => Ok(()),
        }
    }
}

/// Which built-in agent to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Builtin {
    /// Returns the task's input, or its description when the input is null.
    Echo,
    /// Runs a configured program with the task JSON on stdin and returns its stdout.
    Command,
    /// Not built in: an agent outside the process, reached over HTTP at `url`, whose results
    /// are signed with the key `public-key` ([`crate::agents::http`]).
    Http,
    /// Not built in: an agent outside the process, reached by NATS request/reply on
    /// `subject` (NATS mode only), whose results are signed with the key `public-key`
    /// ([`crate::agents::nats`]).
    Nats,
}

/// One built-in agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AgentConfig {
    /// # Agent id
    /// Lowercase letters, digits, `_`, `-`. Required.
    pub id: AgentId,
    /// # Built-in
    /// `echo`, `command`, or `http` / `nats` for an agent outside the process. Required.
    pub builtin: Builtin,
    /// # Capabilities
    /// What tasks it can take. Default: its id.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// # Max concurrency
    /// Tasks it runs at once at most. Default: 256.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: u32,
    /// # Command
    /// For `builtin = "command"`: the program to run. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandConfig>,
    /// # URL
    /// For `builtin = "http"`: where the executor `POST`s envelopes. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// # Subject
    /// For `builtin = "nats"`: the subject the agent serves requests on. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// # Public key
    /// For `builtin = "http"` and `"nats"`: the agent's ed25519 public key (64 hex digits), which its
    /// passport carries and its results must be signed with. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<events::PublicKey>,
}

fn default_max_concurrency() -> u32 {
    256
}

impl AgentConfig {
    /// The default agent: `echo`, capability `echo`.
    pub fn echo() -> Self {
        Self {
            id: AgentId::new("echo").unwrap_or_else(|_| unreachable!("a valid literal id")),
            builtin: Builtin::Echo,
            capabilities: vec!["echo".into()],
            max_concurrency: default_max_concurrency(),
            command: None,
            url: None,
            subject: None,
            public_key: None,
        }
    }

    /// The capabilities, or the id when none are listed.
    pub fn capabilities(&self) -> Vec<String> {
        if self.capabilities.is_empty() { vec![self.id.to_string()] } else { self.capabilities.clone() }
    }
}

/// The program a `command` agent runs. Never through a shell: the program and its arguments
/// are passed as they are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CommandConfig {
    /// # Program
    /// A path, or a name looked up in `PATH`. Required.
    pub program: String,
    /// # Arguments
    /// Passed as they are, no interpolation. Default: none.
    #[serde(default)]
    pub args: Vec<String>,
    /// # Timeout
    /// The program is killed after this long (and the task's deadline applies too).
    /// Default: 10,000 ms.
    #[serde(default = "default_command_timeout_ms")]
    pub timeout_ms: u64,
    /// # Output limit
    /// Stdout beyond this many bytes fails the attempt (an event holds at most 512 KiB).
    /// Default: 262,144.
    #[serde(default = "default_command_output_bytes_max")]
    pub output_bytes_max: usize,
}

fn default_command_timeout_ms() -> u64 {
    10_000
}

fn default_command_output_bytes_max() -> usize {
    256 * 1024
}

/// Screening limits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct ScreeningConfig {
    /// # Description limit
    /// A longer description is rejected. Default: 16,384 bytes.
    pub description_bytes_max: usize,
    /// # Input limit
    /// A larger input (as JSON) is rejected. Default: 262,144 bytes.
    pub input_bytes_max: usize,
    /// # Content scanning
    /// Scan descriptions and outputs for prompt injection, secrets and personal data with the
    /// `security` crate (block, redact or flag by its default policy). Default: true.
    pub scan: bool,
}

impl Default for ScreeningConfig {
    fn default() -> Self {
        Self { description_bytes_max: 16 * 1024, input_bytes_max: 256 * 1024, scan: true }
    }
}

/// A producer allowed to submit tasks on NATS.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ProducerConfig {
    /// # Name
    /// For people. Required.
    pub name: String,
    /// # Public key
    /// Its ed25519 key, 64 hex digits. Required.
    pub public_key: PublicKey,
}

/// Submissions on NATS.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct NatsConfig {
    /// # Submission subject
    /// Producers publish (or request) JSON `SignedSubmission`s here. Default: `pantheon-submit`.
    pub submit_subject: String,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self { submit_subject: SUBMIT_SUBJECT_DEFAULT.into() }
    }
}

/// Agent health as matching reads it from the health projection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct HealthConfig {
    /// # Cool-down
    /// How long an unhealthy agent is left out of matching before it gets one trial task
    /// (half-open); the trial's success brings it back. `pantheon up` gives the same value to
    /// the health projection and to matching. Default: 30,000 ms
    /// ([`projections::health::COOL_DOWN_MS`]).
    pub cool_down_ms: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self { cool_down_ms: projections::health::COOL_DOWN_MS.unsigned_abs() }
    }
}

impl HealthConfig {
    /// The cool-down as the projections count it (ms, saturating).
    pub fn cool_down_ms_i64(&self) -> i64 {
        i64::try_from(self.cool_down_ms).unwrap_or(i64::MAX)
    }
}

/// The default subject of NATS submissions. Outside `pantheon.*.*` so it never lands in the
/// event stream.
pub const SUBMIT_SUBJECT_DEFAULT: &str = "pantheon-submit";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_parsing() {
        let config = Config::parse("", "test").unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.agents[0].id.as_str(), "echo");
        let config = Config::parse(
            r#"
            [[agents]]
            id = "wc"
            builtin = "command"
            capabilities = ["count"]
            command = { program = "wc", args = ["-w"] }
            [screening]
            scan = false
            [health]
            cool-down-ms = 2000
            "#,
            "test",
        )
        .unwrap();
        assert_eq!(config.agents.len(), 1);
        assert_eq!(config.agents[0].command.as_ref().unwrap().timeout_ms, 10_000);
        assert!(!config.screening.scan);
        assert_eq!(config.health.cool_down_ms, 2_000);
        assert_eq!(Config::default().health.cool_down_ms, 30_000);
        assert!(Config::parse("[[agents]]\nid = \"x\"\nbuiltin = \"command\"", "t").is_err());
        assert!(Config::parse("bogus = 1", "t").is_err());
    }

    #[test]
    fn agents_with_values_that_cannot_work_are_refused() {
        let key = "public-key = \"0000000000000000000000000000000000000000000000000000000000000000\"";
        for (bad, needle) in [
            ("[[agents]]\nid = \"c\"\nbuiltin = \"command\"\ncommand = { program = \"cat\", timeout-ms = 0 }".to_string(), "timeout-ms"),
            ("[[agents]]\nid = \"c\"\nbuiltin = \"command\"\ncommand = { program = \"cat\", output-bytes-max = 0 }".to_string(), "output-bytes-max"),
            ("[[agents]]\nid = \"e\"\nbuiltin = \"echo\"\ncommand = { program = \"cat\" }".to_string(), "`command` does not apply to an echo agent"),
            ("[[agents]]\nid = \"e\"\nbuiltin = \"echo\"\nurl = \"http://a/\"".to_string(), "`url` does not apply"),
            (format!("[[agents]]\nid = \"h\"\nbuiltin = \"http\"\n{key}"), "needs a url"),
            (format!("[[agents]]\nid = \"h\"\nbuiltin = \"http\"\nurl = \"ftp://a/\"\n{key}"), "http://"),
            ("[[agents]]\nid = \"h\"\nbuiltin = \"http\"\nurl = \"http://a/\"".to_string(), "public-key"),
            (format!("[[agents]]\nid = \"n\"\nbuiltin = \"nats\"\nsubject = \"a.*\"\n{key}"), "wildcards"),
            ("[screening]\ndescription-bytes-max = 0".to_string(), "at least 1"),
        ] {
            let error = Config::parse(&bad, "pantheon.toml").expect_err(&bad).to_string();
            assert!(error.contains(needle) && error.contains("pantheon.toml"), "{bad}: {error}");
        }
        let good = format!("[[agents]]\nid = \"h\"\nbuiltin = \"http\"\nurl = \"http://a/\"\n{key}");
        assert!(Config::parse(&good, "t").is_ok());
    }

    #[test]
    fn context_sources_parse_with_defaults_and_bad_ones_are_refused() {
        let config = Config::parse(
            r#"
            [[context.sources]]
            name = "runbooks"
            url = "http://127.0.0.1:7000/context"
            [[context.sources]]
            name = "wiki"
            url = "https://wiki.example/context"
            timeout-ms = 1500
            capabilities = ["translate"]
            "#,
            "test",
        )
        .unwrap();
        let sources = &config.context.sources;
        assert_eq!(sources.len(), 2);
        assert_eq!(sources[0].timeout_ms, crate::CONTEXT_SOURCE_MS_MAX);
        assert!(sources[0].capabilities.is_empty());
        assert_eq!(
            (sources[1].timeout_ms, sources[1].capabilities.as_slice()),
            (1500, &["translate".to_string()][..])
        );
        assert!(Config::default().context.sources.is_empty());

        let source = |body: &str| format!("[[context.sources]]\n{body}");
        for (bad, needle) in [
            (source("name = \"\"\nurl = \"http://a/\""), "empty name"),
            (source("name = \"history\"\nurl = \"http://a/\""), "twice"),
            (
                format!(
                    "{}\n{}",
                    source("name = \"a\"\nurl = \"http://a/\""),
                    source("name = \"a\"\nurl = \"http://b/\"")
                ),
                "twice",
            ),
            (source("name = \"a\"\nurl = \"ftp://a/\""), "http://"),
            (source("name = \"a\"\nurl = \"http://a/\"\ntimeout-ms = 0"), "timeout-ms"),
            (source("name = \"a\"\nurl = \"http://a/\"\ntimeout-ms = 60000"), "timeout-ms"),
            (source("name = \"a\""), "url"),
            (source("name = \"a\"\nurl = \"http://a/\"\nretries = 3"), "retries"),
        ] {
            let error = Config::parse(&bad, "test").expect_err(&bad).to_string();
            assert!(error.contains(needle), "{bad}: {error}");
        }
    }
}
