//! Hashing (blake3) and signing (ed25519): content hashes, key pairs, key files and typed
//! verification errors.

use std::fmt;
use std::path::Path;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Why something did not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The signature does not match the content and key.
    #[error("bad signature on {what}")]
    BadSignature {
        /// What was checked.
        what: String,
    },
    /// The signer's key is not one we trust.
    #[error("unknown key {key} for {what}")]
    UnknownKey {
        /// What was checked.
        what: String,
        /// The key's id.
        key: String,
    },
    /// The material's validity ended.
    #[error("{what} expired at {not_after_ms} (now {now_ms})")]
    Expired {
        /// What was checked.
        what: String,
        /// End of validity, ms since the epoch.
        not_after_ms: i64,
        /// The time of the check.
        now_ms: i64,
    },
    /// The material is not valid yet.
    #[error("{what} is not valid before {not_before_ms} (now {now_ms})")]
    NotYetValid {
        /// What was checked.
        what: String,
        /// Start of validity, ms since the epoch.
        not_before_ms: i64,
        /// The time of the check.
        now_ms: i64,
    },
    /// The content does not hash to the recorded hash.
    #[error("hash mismatch on {what}: recorded {recorded}, computed {computed}")]
    HashMismatch {
        /// What was checked.
        what: String,
        /// The hash it carries.
        recorded: Hash,
        /// The hash of its content.
        computed: Hash,
    },
    /// The material is well formed but not for this use (wrong task, wrong agent, replayed).
    #[error("{what} refused: {reason}")]
    Mismatch {
        /// What was checked.
        what: String,
        /// Why.
        reason: String,
    },
}

/// A blake3 hash, shown as 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(into = "String", try_from = "String")]
pub struct Hash(#[schemars(with = "String")] pub [u8; 32]);

impl Hash {
    /// The hash of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }

    /// The all-zero hash, the link before the first entry of a chain.
    pub const ZERO: Hash = Hash([0; 32]);
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({self})")
    }
}

impl From<Hash> for String {
    fn from(h: Hash) -> String {
        h.to_string()
    }
}

impl TryFrom<String> for Hash {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        let bytes = decode_hex_array::<32>(&s, "hash")?;
        Ok(Self(bytes))
    }
}

fn decode_hex_array<const N: usize>(text: &str, what: &'static str) -> Result<[u8; N]> {
    let bytes =
        hex::decode(text.trim()).map_err(|e| Error::Decode { what: what.into(), reason: e.to_string() })?;
    bytes.try_into().map_err(|v: Vec<u8>| Error::Decode {
        what: what.into(),
        reason: format!("expected {N} bytes, got {}", v.len()),
    })
}

/// An ed25519 public key, shown as 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(into = "String", try_from = "String")]
pub struct PublicKey(#[schemars(with = "String")] pub [u8; 32]);

impl PublicKey {
    /// A short id for the key: the first 16 hex digits of its blake3 hash.
    pub fn key_id(&self) -> String {
        hex::encode(&Hash::of(&self.0).0[..8])
    }

    /// Verifies `signature` over `message`; `what` names the material in the error.
    pub fn verify(&self, message: &[u8], signature: &Signature, what: &str) -> Result<(), VerifyError> {
        let bad = || VerifyError::BadSignature { what: what.to_string() };
        let key = verifying_key(&self.0).ok_or_else(bad)?;
        let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
        key.verify_strict(message, &signature).map_err(|_| bad())
    }
}

/// Keys decompressed at most; the cache starts over when full.
const VERIFYING_KEY_CACHE_COUNT_MAX: usize = 4_096;

/// The decompressed form of a public key, from a process-wide cache: decompressing a point
/// costs about a fifth of a verification, and the pipeline verifies with a handful of keys
/// (the federation's, the agents', the producers') over and over.
fn verifying_key(bytes: &[u8; 32]) -> Option<VerifyingKey> {
    use std::collections::HashMap;
    use std::sync::{LazyLock, RwLock};
    static CACHE: LazyLock<RwLock<HashMap<[u8; 32], VerifyingKey>>> = LazyLock::new(RwLock::default);
    if let Some(key) = CACHE.read().ok().and_then(|cache| cache.get(bytes).copied()) {
        return Some(key);
    }
    let key = VerifyingKey::from_bytes(bytes).ok()?;
    if let Ok(mut cache) = CACHE.write() {
        if cache.len() >= VERIFYING_KEY_CACHE_COUNT_MAX {
            cache.clear();
        }
        cache.insert(*bytes, key);
    }
    Some(key)
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.key_id())
    }
}

impl From<PublicKey> for String {
    fn from(k: PublicKey) -> String {
        k.to_string()
    }
}

impl TryFrom<String> for PublicKey {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Ok(Self(decode_hex_array::<32>(&s, "public key")?))
    }
}

/// An ed25519 signature, shown as 128 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(into = "String", try_from = "String")]
pub struct Signature(#[schemars(with = "String")] pub [u8; 64]);

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}…)", &hex::encode(&self.0[..8]))
    }
}

impl From<Signature> for String {
    fn from(s: Signature) -> String {
        s.to_string()
    }
}

impl TryFrom<String> for Signature {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Ok(Self(decode_hex_array::<64>(&s, "signature")?))
    }
}

/// An ed25519 key pair. The secret never prints.
#[derive(Clone)]
pub struct KeyPair(SigningKey);

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyPair({})", self.public_key().key_id())
    }
}

impl KeyPair {
    /// A new random key pair from the operating system's generator.
    pub fn generate() -> Self {
        Self(SigningKey::generate(&mut rand_core::OsRng))
    }

    /// A key pair from a 32-byte secret seed (deterministic: for tests and key files).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(SigningKey::from_bytes(&seed))
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.0.sign(message).to_bytes())
    }

    /// Loads a key pair from a file holding the 32-byte seed as 64 hex digits.
    pub fn load(path: &Path) -> Result<Self> {
        let key_error = |reason: String| Error::KeyFile { path: path.display().to_string(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| key_error(e.to_string()))?;
        let seed = decode_hex_array::<32>(&text, "secret key").map_err(|e| key_error(e.to_string()))?;
        Ok(Self::from_seed(seed))
    }

    /// Saves the seed as hex to a new file readable by its owner only (mode 0600). Refuses to
    /// overwrite an existing file.
    pub fn save(&self, path: &Path) -> Result<()> {
        use std::io::Write;
        let key_error = |reason: String| Error::KeyFile { path: path.display().to_string(), reason };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(|e| key_error(e.to_string()))?;
        file.write_all(hex::encode(self.0.to_bytes()).as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| key_error(e.to_string()))
    }

    /// Loads the key at `path`, or creates and saves a new one if there is none.
    pub fn load_or_generate(path: &Path) -> Result<Self> {
        if path.exists() {
            Self::load(path)
        } else {
            let key = Self::generate();
            key.save(path)?;
            Ok(key)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let key = KeyPair::generate();
        let signature = key.sign(b"hello");
        key.public_key().verify(b"hello", &signature, "greeting").unwrap();
        let err = key.public_key().verify(b"hellO", &signature, "greeting").unwrap_err();
        assert_eq!(err, VerifyError::BadSignature { what: "greeting".into() });
        let other = KeyPair::generate();
        assert!(other.public_key().verify(b"hello", &signature, "greeting").is_err());
    }

    #[test]
    fn key_files_round_trip_with_owner_only_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("federation.key");
        let key = KeyPair::load_or_generate(&path).unwrap();
        let again = KeyPair::load_or_generate(&path).unwrap();
        assert_eq!(key.public_key(), again.public_key());
        assert!(key.save(&path).is_err(), "save must not overwrite");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "not hex").unwrap();
        assert!(matches!(KeyPair::load(&path), Err(Error::KeyFile { .. })));
    }

    #[test]
    fn hex_forms_round_trip() {
        let key = KeyPair::generate();
        let public = key.public_key();
        let text: String = public.into();
        assert_eq!(PublicKey::try_from(text).unwrap(), public);
        let signature = key.sign(b"x");
        assert_eq!(Signature::try_from(String::from(signature)).unwrap(), signature);
        assert!(Hash::try_from("zz".to_string()).is_err());
    }
}
