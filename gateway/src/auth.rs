//! Bearer tokens and permissions: JWT verification (HS256, RS256, EdDSA; keys from secrets,
//! PEM files or a JWKS file), roles from a configurable claim, and the role → permission map.
//!
//! # Algorithm pinning
//! Every configured key carries the one algorithm it verifies. A token is checked only against
//! keys of the algorithm its header names, and `jsonwebtoken` refuses a key of another family
//! for that algorithm, so `alg: none` (not an algorithm `jsonwebtoken` knows), an RS256 public
//! key used as an HS256 secret, and any other algorithm confusion end as 401.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::state::AppState;

/// The default clock-skew allowance for `exp` and `nbf`, in seconds.
pub const TOKEN_LEEWAY_S_DEFAULT: u64 = 30;

/// The longest bearer token accepted, in bytes (a JWT with a few claims is well under 2 KiB).
pub const TOKEN_BYTES_MAX: usize = 8 * 1024;

/// What a principal may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Submit and execute tasks.
    Submit,
    /// Read one's own tasks.
    ReadOwn,
    /// Read every task and the agents.
    ReadAll,
    /// Cancel tasks one can read.
    Cancel,
    /// Register agents, suspend, reinstate and retire them.
    ManageAgents,
    /// Redeliver dead-lettered webhooks.
    ManageWebhooks,
    /// Register workflow definitions.
    ManageWorkflows,
    /// Send signals to runs (approvals, input): any run one can read.
    Signal,
    /// Pull work as an agent, report its progress and results, heartbeat: only for the agent
    /// the token's subject names.
    Work,
    /// Operate the gateway (metrics) — implies every other permission.
    Admin,
}

impl Permission {
    /// The permission's snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Submit => "submit",
            Self::ReadOwn => "read_own",
            Self::ReadAll => "read_all",
            Self::Cancel => "cancel",
            Self::ManageAgents => "manage_agents",
            Self::ManageWebhooks => "manage_webhooks",
            Self::ManageWorkflows => "manage_workflows",
            Self::Signal => "signal",
            Self::Work => "work",
            Self::Admin => "admin",
        }
    }
}

/// The default role map: `admin` (everything, and `/metrics`), `operator` (read every task and
/// the agents, cancel any task, register and manage agents, list and redeliver dead-lettered
/// webhooks), `producer` (submit, read and cancel its own tasks), `viewer`
/// (read its own tasks). The agents' endpoints take `read_all`. Workflows: `manage_workflows`
/// registers definitions (producers, operators, admins); a run is read, cancelled and signalled
/// like a task (`signal` on the runs one can read).
pub fn default_roles() -> BTreeMap<String, BTreeSet<Permission>> {
    use Permission as P;
    BTreeMap::from([
        (
            "admin".to_string(),
            BTreeSet::from([
                P::Submit,
                P::ReadOwn,
                P::ReadAll,
                P::Cancel,
                P::ManageAgents,
                P::ManageWebhooks,
                P::ManageWorkflows,
                P::Signal,
                P::Admin,
            ]),
        ),
        (
            "operator".to_string(),
            BTreeSet::from([
                P::ReadOwn,
                P::ReadAll,
                P::Cancel,
                P::ManageAgents,
                P::ManageWebhooks,
                P::ManageWorkflows,
                P::Signal,
            ]),
        ),
        (
            "producer".to_string(),
            BTreeSet::from([P::Submit, P::ReadOwn, P::Cancel, P::ManageWorkflows, P::Signal]),
        ),
        ("agent".to_string(), BTreeSet::from([P::Work])),
        ("viewer".to_string(), BTreeSet::from([P::ReadOwn])),
    ])
}

/// One key a token may be verified with.
#[derive(Clone)]
pub struct VerifyingKey {
    /// The key id tokens name in their `kid` header, if any.
    pub kid: Option<String>,
    /// The only algorithm this key verifies.
    pub algorithm: Algorithm,
    key: DecodingKey,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey").field("kid", &self.kid).field("algorithm", &self.algorithm).finish()
    }
}

impl VerifyingKey {
    /// An HS256 shared secret.
    pub fn hs256(secret: &[u8]) -> Self {
        Self { kid: None, algorithm: Algorithm::HS256, key: DecodingKey::from_secret(secret) }
    }

    /// An RS256 public key in PEM.
    pub fn rs256_pem(pem: &[u8]) -> Result<Self> {
        let key =
            DecodingKey::from_rsa_pem(pem).map_err(|e| Error::Startup(format!("bad RSA public key: {e}")))?;
        Ok(Self { kid: None, algorithm: Algorithm::RS256, key })
    }

    /// An Ed25519 (EdDSA) public key in PEM.
    pub fn eddsa_pem(pem: &[u8]) -> Result<Self> {
        let key = DecodingKey::from_ed_pem(pem)
            .map_err(|e| Error::Startup(format!("bad Ed25519 public key: {e}")))?;
        Ok(Self { kid: None, algorithm: Algorithm::EdDSA, key })
    }

    /// Names the key (`kid`).
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The RS256 and EdDSA keys of a JWKS document; other key types are skipped with a warning.
    pub fn from_jwks(json: &str) -> Result<Vec<Self>> {
        let set: JwkSet =
            serde_json::from_str(json).map_err(|e| Error::Startup(format!("bad JWKS document: {e}")))?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
                (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
                (AlgorithmParameters::OctetKeyPair(_), None | Some(KeyAlgorithm::EdDSA)) => Algorithm::EdDSA,
                _ => {
                    tracing::warn!(kid = ?jwk.common.key_id, "skipping a JWKS key that is neither RS256 nor EdDSA");
                    continue;
                }
            };
            let key = DecodingKey::from_jwk(jwk).map_err(|e| Error::Startup(format!("bad JWKS key: {e}")))?;
            keys.push(Self { kid: jwk.common.key_id.clone(), algorithm, key });
        }
        Ok(keys)
    }
}

/// The auth section of the gateway's configuration file (JSON).
///
/// ```json
/// {
///   "issuer": "https://id.example.com/",
///   "audience": "pantheon",
///   "leeway_s": 30,
///   "roles_claim": "roles",
///   "hs256_secrets": ["a long random secret"],
///   "rs256_public_keys": ["/etc/pantheon/rs256.pub.pem"],
///   "eddsa_public_keys": ["/etc/pantheon/ed25519.pub.pem"],
///   "jwks_file": "/etc/pantheon/jwks.json",
///   "roles": { "producer": ["submit", "read_own", "cancel"] }
/// }
/// ```
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    /// Required `iss`, if set.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Required `aud`, if set.
    #[serde(default)]
    pub audience: Option<String>,
    /// Clock-skew allowance, seconds.
    #[serde(default)]
    pub leeway_s: Option<u64>,
    /// The claim holding the roles (an array of strings or a space-separated string); a dotted
    /// path reaches into objects (`realm_access.roles`).
    #[serde(default)]
    pub roles_claim: Option<String>,
    /// HS256 shared secrets (UTF-8 text).
    #[serde(default)]
    pub hs256_secrets: Vec<String>,
    /// Files holding RS256 public keys (PEM).
    #[serde(default)]
    pub rs256_public_keys: Vec<PathBuf>,
    /// Files holding Ed25519 public keys (PEM).
    #[serde(default)]
    pub eddsa_public_keys: Vec<PathBuf>,
    /// A JWKS file with RS256 and/or EdDSA keys.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// Role → permissions; replaces the default map when given.
    #[serde(default)]
    pub roles: Option<BTreeMap<String, BTreeSet<Permission>>>,
    /// Rate limits by principal, role, subject and client address (defaults: 200 requests a
    /// second per principal, 500 per address; `"unlimited"` for trusted services).
    #[serde(default)]
    pub rate_limits: Option<crate::config::RateLimitsFile>,
}

/// How tokens are verified and mapped to permissions.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// Required `iss`, if set.
    pub issuer: Option<String>,
    /// Required `aud`, if set.
    pub audience: Option<String>,
    /// Clock-skew allowance for `exp` / `nbf`, seconds.
    pub leeway_s: u64,
    /// The claim (dotted path) holding the roles.
    pub roles_claim: String,
    /// The keys tokens may be signed with.
    pub keys: Vec<VerifyingKey>,
    /// Role → permissions.
    pub roles: BTreeMap<String, BTreeSet<Permission>>,
    /// The rate limits the file sets, if it sets any.
    pub rate_limits: Option<crate::config::RateLimits>,
}

impl AuthConfig {
    /// A configuration with these keys, default roles and no iss/aud requirement.
    pub fn with_keys(keys: Vec<VerifyingKey>) -> Self {
        Self {
            issuer: None,
            audience: None,
            leeway_s: TOKEN_LEEWAY_S_DEFAULT,
            roles_claim: "roles".to_string(),
            keys,
            roles: default_roles(),
            rate_limits: None,
        }
    }

    /// Reads an [`AuthFile`] (JSON) and loads the keys it names.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Startup(format!("cannot read {}: {e}", path.display())))?;
        let file: AuthFile = serde_json::from_str(&text)
            .map_err(|e| Error::Startup(format!("bad auth config {}: {e}", path.display())))?;
        Self::from_auth_file(file)
    }

    /// Loads the keys an [`AuthFile`] names.
    pub fn from_auth_file(file: AuthFile) -> Result<Self> {
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|e| Error::Startup(format!("cannot read {}: {e}", path.display())))
        };
        let mut keys: Vec<VerifyingKey> =
            file.hs256_secrets.iter().map(|s| VerifyingKey::hs256(s.as_bytes())).collect();
        for path in &file.rs256_public_keys {
            keys.push(VerifyingKey::rs256_pem(&read(path)?)?);
        }
        for path in &file.eddsa_public_keys {
            keys.push(VerifyingKey::eddsa_pem(&read(path)?)?);
        }
        if let Some(path) = &file.jwks_file {
            let text = String::from_utf8(read(path)?)
                .map_err(|_| Error::Startup(format!("{} is not UTF-8", path.display())))?;
            keys.extend(VerifyingKey::from_jwks(&text)?);
        }
        if keys.is_empty() {
            return Err(Error::Startup("the auth config names no keys".into()));
        }
        Ok(Self {
            issuer: file.issuer,
            audience: file.audience,
            leeway_s: file.leeway_s.unwrap_or(TOKEN_LEEWAY_S_DEFAULT),
            roles_claim: file.roles_claim.unwrap_or_else(|| "roles".to_string()),
            keys,
            roles: file.roles.unwrap_or_else(default_roles),
            rate_limits: file
                .rate_limits
                .as_ref()
                .map(crate::config::RateLimitsFile::limits)
                .transpose()
                .map_err(Error::Startup)?,
        })
    }
}

/// Who is calling, and what they may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The token's `sub`.
    pub subject: String,
    /// The union of its roles' permissions.
    pub permissions: BTreeSet<Permission>,
    /// Its roles, as the token names them (rate limits may be set by role).
    pub roles: Vec<String>,
}

impl Principal {
    /// Whether the principal holds `permission` (admin holds all).
    pub fn has(&self, permission: Permission) -> bool {
        self.permissions.contains(&permission) || self.permissions.contains(&Permission::Admin)
    }

    /// Refuses with 403 unless the principal holds `permission`.
    pub fn require(&self, permission: Permission) -> Result<()> {
        if self.has(permission) { Ok(()) } else { Err(Error::Forbidden { permission: permission.as_str() }) }
    }

    /// Whether the principal may read a task submitted by `submitter`.
    pub fn can_read(&self, submitter: &str) -> bool {
        self.has(Permission::ReadAll) || (self.has(Permission::ReadOwn) && submitter == self.subject)
    }
}

/// Verifies tokens against an [`AuthConfig`].
#[derive(Debug)]
pub struct Authenticator {
    config: AuthConfig,
}

impl Authenticator {
    /// An authenticator for `config`.
    pub fn new(config: AuthConfig) -> Self {
        Self { config }
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.leeway = self.config.leeway_s;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        match &self.config.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                validation.required_spec_claims.insert("aud".into());
            }
            None => validation.validate_aud = false,
        }
        if let Some(issuer) = &self.config.issuer {
            validation.set_issuer(&[issuer]);
            validation.required_spec_claims.insert("iss".into());
        }
        validation
    }

    /// Verifies a bearer token and maps its roles to permissions.
    pub fn verify(&self, token: &str) -> Result<Principal> {
        let refuse = |reason: String| Error::Unauthenticated { reason };
        if token.len() > TOKEN_BYTES_MAX {
            return Err(refuse("token too long".into()));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| refuse(format!("bad header: {e}")))?;
        let candidates = self.config.keys.iter().filter(|k| {
            k.algorithm == header.alg && (header.kid.is_none() || k.kid.is_none() || k.kid == header.kid)
        });
        let validation = self.validation(header.alg);
        let mut last_error = format!("no key for algorithm {:?}", header.alg);
        for key in candidates {
            match jsonwebtoken::decode::<serde_json::Value>(token, &key.key, &validation) {
                Ok(data) => return self.principal(&data.claims),
                Err(e) => last_error = e.to_string(),
            }
        }
        Err(refuse(last_error))
    }

    fn principal(&self, claims: &serde_json::Value) -> Result<Principal> {
        let subject = claims
            .get("sub")
            .and_then(|s| s.as_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Error::Unauthenticated { reason: "no sub claim".into() })?
            .to_string();
        let mut node = Some(claims);
        for part in self.config.roles_claim.split('.') {
            node = node.and_then(|n| n.get(part));
        }
        let roles: Vec<&str> = match node {
            Some(serde_json::Value::Array(items)) => items.iter().filter_map(|r| r.as_str()).collect(),
            Some(serde_json::Value::String(text)) => text.split_whitespace().collect(),
            _ => Vec::new(),
        };
        let permissions = roles
            .iter()
            .filter_map(|role| self.config.roles.get(*role))
            .flat_map(|permissions| permissions.iter().copied())
            .collect();
        let roles = roles.into_iter().map(String::from).collect();
        Ok(Principal { subject, permissions, roles })
    }
}

/// Middleware: authenticates the bearer token and puts the [`Principal`] in the request's
/// extensions, then applies the per-principal rate limit.
pub(crate) async fn require_token(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let principal = match bearer(&request).and_then(|token| state.auth.verify(token)) {
        Ok(principal) => principal,
        Err(error) => {
            state.metrics.auth_failures.inc();
            return axum::response::IntoResponse::into_response(error);
        }
    };
    if let Err(error) = state.limits.check_principal(&principal) {
        state.metrics.rate_limited.inc();
        return axum::response::IntoResponse::into_response(error);
    }
    request.extensions_mut().insert(Arc::new(principal));
    next.run(request).await
}

fn bearer(request: &Request) -> Result<&str> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| Error::Unauthenticated { reason: "no authorization header".into() })?;
    let text =
        value.to_str().map_err(|_| Error::Unauthenticated { reason: "authorization is not text".into() })?;
    let (scheme, token) =
        text.split_once(' ').ok_or_else(|| Error::Unauthenticated { reason: "not a bearer token".into() })?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Error::Unauthenticated { reason: "not a bearer token".into() });
    }
    Ok(token.trim())
}

/// Claims of a token the gateway issues itself (dev mode).
#[derive(Debug, Serialize)]
struct DevClaims<'a> {
    sub: &'a str,
    roles: &'a [&'a str],
    iat: u64,
    exp: u64,
}

/// Issues an HS256 token for `subject` with `roles`, valid for `ttl_s` seconds: the dev token
/// `pantheon up` prints on the embedded default, and a helper for tests.
pub fn issue_hs256_token(secret: &[u8], subject: &str, roles: &[&str], ttl_s: u64) -> Result<String> {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = DevClaims { sub: subject, roles, iat: now, exp: now.saturating_add(ttl_s) };
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret))
        .map_err(|e| Error::Internal(format!("cannot sign a token: {e}")))
}

/// Loads the local HS256 secret from `path`, creating it (32 random bytes, hex, mode 0600)
/// when missing: the dev mode of the embedded default.
pub fn load_or_create_secret(path: &Path) -> Result<Vec<u8>> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let text = text.trim();
        if text.len() >= 32 {
            return Ok(text.as_bytes().to_vec());
        }
        return Err(Error::Startup(format!("{} holds a secret shorter than 32 characters", path.display())));
    }
    let mut bytes = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Startup(format!("cannot create {}: {e}", dir.display())))?;
    }
    write_private(path, secret.as_bytes())?;
    Ok(secret.into_bytes())
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::Startup(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(bytes).map_err(|e| Error::Startup(format!("cannot write {}: {e}", path.display())))
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| Error::Startup(format!("cannot write {}: {e}", path.display())))
}
