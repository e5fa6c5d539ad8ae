//! Signed material: the federation-sealed task envelope, the agent's passport, the agent-signed
//! result, and the signed submission a producer (or the gateway) makes.
//!
//! Everything signed is hashed first: `hash = blake3(canonical MessagePack of the content)`,
//! and the signature covers a domain-separation label followed by that hash, so a signature
//! made for one kind of material can never pass as another kind.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::codec;
use crate::crypto::{Hash, KeyPair, PublicKey, Signature, VerifyError};
use crate::error::Result;
use crate::id::{AgentId, TaskId};
use crate::task::TaskSpec;

const ENVELOPE_LABEL: &[u8] = b"pantheon envelope v1\n";
const PASSPORT_LABEL: &[u8] = b"pantheon passport v1\n";
const RESULT_LABEL: &[u8] = b"pantheon result v1\n";
const SUBMISSION_LABEL: &[u8] = b"pantheon submission v1\n";

fn hash_of<T: Serialize>(value: &T) -> Result<Hash> {
    Ok(Hash::of(&codec::to_msgpack(value)?))
}

fn message(label: &[u8], hash: &Hash) -> Vec<u8> {
    let mut message = Vec::with_capacity(label.len() + 32);
    message.extend_from_slice(label);
    message.extend_from_slice(&hash.0);
    message
}

fn check_window(what: &str, not_before_ms: i64, not_after_ms: i64, now_ms: i64) -> Result<(), VerifyError> {
    if now_ms < not_before_ms {
        return Err(VerifyError::NotYetValid { what: what.to_string(), not_before_ms, now_ms });
    }
    if now_ms >= not_after_ms {
        return Err(VerifyError::Expired { what: what.to_string(), not_after_ms, now_ms });
    }
    Ok(())
}

/// What an agent is asked to do: immutable once sealed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskEnvelope {
    /// The task.
    pub task_id: TaskId,
    /// Which attempt this is (1 for the first).
    pub attempt: u32,
    /// The agent it is sealed for.
    pub agent_id: AgentId,
    /// The capability asked for.
    pub capability: String,
    /// What to do.
    pub description: String,
    /// The task's input data.
    pub input: serde_json::Value,
    /// Context gathered for the task (similar tasks, practices, pitfalls).
    pub context: serde_json::Value,
    /// When the envelope was sealed, ms since the epoch.
    pub issued_at_ms: i64,
    /// When the agent must have answered by, ms since the epoch (the task's deadline).
    pub expires_at_ms: i64,
}

/// A task envelope with its hash and the federation's signature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SealedEnvelope {
    /// The content.
    pub envelope: TaskEnvelope,
    /// blake3 of the content's canonical encoding.
    pub hash: Hash,
    /// The federation key that sealed it.
    pub sealed_by: PublicKey,
    /// The federation's signature.
    pub signature: Signature,
}

impl SealedEnvelope {
    /// Seals an envelope with the federation key.
    pub fn seal(envelope: TaskEnvelope, federation: &KeyPair) -> Result<Self> {
        let hash = hash_of(&envelope)?;
        let signature = federation.sign(&message(ENVELOPE_LABEL, &hash));
        Ok(Self { envelope, hash, sealed_by: federation.public_key(), signature })
    }

    /// Verifies the seal against the trusted federation key, and that it has not expired at
    /// `now_ms`. An agent calls this before executing anything.
    pub fn verify(&self, federation: &PublicKey, now_ms: i64) -> Result<(), VerifyError> {
        let what = format!("envelope for task {}", self.envelope.task_id);
        if &self.sealed_by != federation {
            return Err(VerifyError::UnknownKey { what, key: self.sealed_by.key_id() });
        }
        let computed = hash_of(&self.envelope)
            .map_err(|e| VerifyError::Mismatch { what: what.clone(), reason: e.to_string() })?;
        if computed != self.hash {
            return Err(VerifyError::HashMismatch { what, recorded: self.hash, computed });
        }
        federation.verify(&message(ENVELOPE_LABEL, &self.hash), &self.signature, &what)?;
        check_window(&what, i64::MIN, self.envelope.expires_at_ms, now_ms)
    }
}

/// What the federation vouches for about an agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Passport {
    /// The agent.
    pub agent_id: AgentId,
    /// The key the agent signs its results with.
    pub public_key: PublicKey,
    /// What the agent can do.
    pub capabilities: Vec<String>,
    /// Valid from, ms since the epoch.
    pub not_before_ms: i64,
    /// Valid until (exclusive), ms since the epoch.
    pub not_after_ms: i64,
}

/// A passport with the federation's signature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SignedPassport {
    /// The content.
    pub passport: Passport,
    /// The federation key that issued it.
    pub issued_by: PublicKey,
    /// The federation's signature.
    pub signature: Signature,
}

impl SignedPassport {
    /// Issues a passport.
    pub fn issue(passport: Passport, federation: &KeyPair) -> Result<Self> {
        let hash = hash_of(&passport)?;
        let signature = federation.sign(&message(PASSPORT_LABEL, &hash));
        Ok(Self { passport, issued_by: federation.public_key(), signature })
    }

    /// Verifies the passport was issued by `federation` and is valid at `now_ms`.
    pub fn verify(&self, federation: &PublicKey, now_ms: i64) -> Result<(), VerifyError> {
        let what = format!("passport of agent {}", self.passport.agent_id);
        if &self.issued_by != federation {
            return Err(VerifyError::UnknownKey { what, key: self.issued_by.key_id() });
        }
        let hash = hash_of(&self.passport)
            .map_err(|e| VerifyError::Mismatch { what: what.clone(), reason: e.to_string() })?;
        federation.verify(&message(PASSPORT_LABEL, &hash), &self.signature, &what)?;
        check_window(&what, self.passport.not_before_ms, self.passport.not_after_ms, now_ms)
    }
}

/// What an agent answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentResult {
    /// The task.
    pub task_id: TaskId,
    /// The attempt answered.
    pub attempt: u32,
    /// The agent answering.
    pub agent_id: AgentId,
    /// The hash of the envelope answered: binds the result to one sealed envelope, so a
    /// result replayed from another task or attempt is refused.
    pub envelope_hash: Hash,
    /// The output.
    pub output: serde_json::Value,
    /// When the agent finished, ms since the epoch.
    pub completed_at_ms: i64,
}

/// A result with the agent's signature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SignedResult {
    /// The content.
    pub result: AgentResult,
    /// blake3 of the content's canonical encoding.
    pub hash: Hash,
    /// The agent's signature.
    pub signature: Signature,
}

impl SignedResult {
    /// Signs a result with the agent's key.
    pub fn sign(result: AgentResult, agent_key: &KeyPair) -> Result<Self> {
        let hash = hash_of(&result)?;
        let signature = agent_key.sign(&message(RESULT_LABEL, &hash));
        Ok(Self { result, hash, signature })
    }

    /// Verifies the result against the agent's passport and the envelope it answers: the
    /// agent's signature, the hash, and that it answers exactly this envelope.
    pub fn verify(&self, passport: &Passport, envelope: &SealedEnvelope) -> Result<(), VerifyError> {
        let what = format!("result of task {} from agent {}", self.result.task_id, self.result.agent_id);
        self.verify_binding(passport, envelope, &what)?;
        let mismatch = |reason: String| VerifyError::Mismatch { what: what.clone(), reason };
        let computed = hash_of(&self.result).map_err(|e| mismatch(e.to_string()))?;
        if computed != self.hash {
            return Err(VerifyError::HashMismatch { what, recorded: self.hash, computed });
        }
        passport.public_key.verify(&message(RESULT_LABEL, &self.hash), &self.signature, &what)
    }

    /// That the result is the passport's agent's, for exactly this envelope.
    fn verify_binding(
        &self,
        passport: &Passport,
        envelope: &SealedEnvelope,
        what: &str,
    ) -> Result<(), VerifyError> {
        let mismatch = |reason: String| VerifyError::Mismatch { what: what.to_string(), reason };
        if self.result.agent_id != passport.agent_id || envelope.envelope.agent_id != passport.agent_id {
            return Err(mismatch(format!(
                "the result claims agent {}, the envelope was sealed for {}",
                self.result.agent_id, envelope.envelope.agent_id
            )));
        }
        if self.result.envelope_hash != envelope.hash
            || self.result.task_id != envelope.envelope.task_id
            || self.result.attempt != envelope.envelope.attempt
        {
            return Err(mismatch("the result answers another envelope (replayed or misrouted)".into()));
        }
        Ok(())
    }
}

/// What the federation took out of a result's output before recording it: the agent signed
/// its raw output, and secrets or personal data in it must never reach the log.
///
/// The federation checks the raw result in memory (its canonical encoding must hash to the
/// agent-signed [`SignedResult::hash`]), replaces each redacted value by a placeholder, and
/// records the redacted result with the agent's hash and signature unchanged and this record
/// beside it. So the log proves that the agent signed *some* result for this envelope
/// (the signature over the hash verifies with the passport's key), binds the redacted content
/// to the record ([`Self::redacted_hash`]), and anyone holding the raw output can check it
/// against the agent's hash and signature. The audit ledger chains the recorded events as
/// always.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OutputRedaction {
    /// Whether the raw result hashed to the agent's [`SignedResult::hash`] (checked in memory
    /// before redacting); a result that did not is refused by verification.
    pub raw_hash_matched: bool,
    /// blake3 of the canonical encoding of the result as recorded (redacted).
    pub redacted_hash: Hash,
    /// What was redacted and where: kinds and byte ranges, never the values.
    pub spans: Vec<RedactedSpan>,
    /// How many values were redacted in all (`spans` lists the first ones).
    pub count: u64,
}

/// One redacted value of a result's output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RedactedSpan {
    /// What it was (`secret.aws_access_key`, `pii.email`, …).
    pub kind: String,
    /// The JSON Pointer (RFC 6901) of the string that held it (`""`: the output itself),
    /// written with object keys as recorded (redacted); with `in_key`, the pointer of the
    /// member whose key held it.
    pub pointer: String,
    /// Byte offset of its start in that string (or key), before redaction.
    pub start: u64,
    /// Byte offset of its end (exclusive).
    pub end: u64,
    /// Whether it was in the key of the member `pointer` names rather than in a string value.
    /// Default: false (left out of the record when false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_key: bool,
}

impl SignedResult {
    /// The result with its output replaced by `redacted_output`, keeping the agent's hash and
    /// signature, and the record of the redaction (see [`OutputRedaction`]).
    pub fn redact(
        self,
        redacted_output: serde_json::Value,
        spans: Vec<RedactedSpan>,
        count: u64,
    ) -> Result<(Self, OutputRedaction)> {
        let raw_hash_matched = hash_of(&self.result)? == self.hash;
        let mut result = self;
        result.result.output = redacted_output;
        let redacted_hash = hash_of(&result.result)?;
        Ok((result, OutputRedaction { raw_hash_matched, redacted_hash, spans, count }))
    }

    /// Verifies a result recorded redacted: what [`Self::verify`] checks, except that the
    /// agent's hash is of the raw result, which the log does not hold; the federation's check
    /// of it in memory ([`OutputRedaction::raw_hash_matched`]) stands for it, and the recorded
    /// content must hash to [`OutputRedaction::redacted_hash`].
    pub fn verify_redacted(
        &self,
        passport: &Passport,
        envelope: &SealedEnvelope,
        redaction: &OutputRedaction,
    ) -> Result<(), VerifyError> {
        let what = format!("result of task {} from agent {}", self.result.task_id, self.result.agent_id);
        self.verify_binding(passport, envelope, &what)?;
        if !redaction.raw_hash_matched {
            return Err(VerifyError::Mismatch {
                what,
                reason: "the raw result did not hash to the agent's signed hash (checked before redaction)"
                    .into(),
            });
        }
        let computed = hash_of(&self.result)
            .map_err(|e| VerifyError::Mismatch { what: what.clone(), reason: e.to_string() })?;
        if computed != redaction.redacted_hash {
            return Err(VerifyError::HashMismatch { what, recorded: redaction.redacted_hash, computed });
        }
        passport.public_key.verify(&message(RESULT_LABEL, &self.hash), &self.signature, &what)
    }
}

/// A task submission signed by whoever admits it: the gateway's key, or a registered producer's
/// key for submissions published on NATS.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SignedSubmission {
    /// The task id chosen for it.
    pub task_id: TaskId,
    /// What is asked.
    pub spec: TaskSpec,
    /// The signer's key.
    pub signed_by: PublicKey,
    /// The signature over task id and spec.
    pub signature: Signature,
}

#[derive(Serialize)]
struct SubmissionContent<'a> {
    task_id: &'a TaskId,
    spec: &'a TaskSpec,
}

impl SignedSubmission {
    /// Signs a submission.
    pub fn sign(task_id: TaskId, spec: TaskSpec, key: &KeyPair) -> Result<Self> {
        let hash = hash_of(&SubmissionContent { task_id: &task_id, spec: &spec })?;
        let signature = key.sign(&message(SUBMISSION_LABEL, &hash));
        Ok(Self { task_id, spec, signed_by: key.public_key(), signature })
    }

    /// Verifies the signature, and that the signer is one of `trusted` keys.
    pub fn verify(&self, trusted: &[PublicKey]) -> Result<(), VerifyError> {
        let what = format!("submission of task {}", self.task_id);
        if !trusted.contains(&self.signed_by) {
            return Err(VerifyError::UnknownKey { what, key: self.signed_by.key_id() });
        }
        let hash = hash_of(&SubmissionContent { task_id: &self.task_id, spec: &self.spec })
            .map_err(|e| VerifyError::Mismatch { what: what.clone(), reason: e.to_string() })?;
        self.signed_by.verify(&message(SUBMISSION_LABEL, &hash), &self.signature, &what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn envelope(agent: &AgentId) -> TaskEnvelope {
        TaskEnvelope {
            task_id: TaskId::new(),
            attempt: 1,
            agent_id: agent.clone(),
            capability: "echo".into(),
            description: "say hi".into(),
            input: json!({"b": 1, "a": [1, 2]}),
            context: json!({}),
            issued_at_ms: 1_000,
            expires_at_ms: 31_000,
        }
    }

    fn passport(agent: &AgentId, key: &KeyPair) -> Passport {
        Passport {
            agent_id: agent.clone(),
            public_key: key.public_key(),
            capabilities: vec!["echo".into()],
            not_before_ms: 0,
            not_after_ms: 100_000,
        }
    }

    #[test]
    fn a_redacted_result_still_proves_the_agents_signature_and_refuses_tampering() {
        let federation = KeyPair::generate();
        let agent = AgentId::new("echo").unwrap();
        let key = KeyPair::generate();
        let sealed = SealedEnvelope::seal(envelope(&agent), &federation).unwrap();
        let raw_output = json!({"text": "key AKIAIOSFODNN7EXAMPLE"});
        let raw = SignedResult::sign(
            AgentResult {
                task_id: sealed.envelope.task_id,
                attempt: 1,
                agent_id: agent.clone(),
                envelope_hash: sealed.hash,
                output: raw_output.clone(),
                completed_at_ms: 2_000,
            },
            &key,
        )
        .unwrap();
        let spans = vec![RedactedSpan {
            kind: "secret.aws_access_key".into(),
            pointer: "/text".into(),
            start: 4,
            end: 24,
            in_key: false,
        }];
        let (redacted, record) = raw.clone().redact(json!({"text": "key [REDACTED]"}), spans, 1).unwrap();
        assert!(record.raw_hash_matched);
        assert_eq!(redacted.hash, raw.hash, "the agent's hash and signature are kept");
        let passport = passport(&agent, &key);
        redacted.verify_redacted(&passport, &sealed, &record).unwrap();
        // Whoever holds the raw output checks it against the agent's hash and signature.
        let mut restored = redacted.clone();
        restored.result.output = raw_output;
        restored.verify(&passport, &sealed).unwrap();
        // The recorded content is bound to the record.
        let mut edited = redacted.clone();
        edited.result.output = json!({"text": "something else"});
        assert!(matches!(
            edited.verify_redacted(&passport, &sealed, &record),
            Err(VerifyError::HashMismatch { .. })
        ));
        // A result whose raw content did not match its hash is refused after redaction too.
        let mut tampered = raw.clone();
        tampered.result.output = json!({"text": "tampered AKIAIOSFODNN7EXAMPLE"});
        let (redacted, record) =
            tampered.redact(json!({"text": "tampered [REDACTED]"}), Vec::new(), 1).unwrap();
        assert!(!record.raw_hash_matched);
        assert!(redacted.verify_redacted(&passport, &sealed, &record).is_err());
        // A forged signature is still caught.
        let forged = SignedResult::sign(raw.result.clone(), &KeyPair::generate()).unwrap();
        let (redacted, record) = forged.redact(json!({"text": "key [REDACTED]"}), Vec::new(), 1).unwrap();
        assert!(redacted.verify_redacted(&passport, &sealed, &record).is_err());
    }

    #[test]
    fn envelopes_verify_and_refuse_tampering_expiry_and_strangers() {
        let federation = KeyPair::generate();
        let agent = AgentId::new("echo").unwrap();
        let sealed = SealedEnvelope::seal(envelope(&agent), &federation).unwrap();
        sealed.verify(&federation.public_key(), 2_000).unwrap();

        let mut tampered = sealed.clone();
        tampered.envelope.description = "rm -rf /".into();
        assert!(matches!(
            tampered.verify(&federation.public_key(), 2_000),
            Err(VerifyError::HashMismatch { .. })
        ));
        let mut rehashed = tampered.clone();
        rehashed.hash = hash_of(&rehashed.envelope).unwrap();
        assert!(matches!(
            rehashed.verify(&federation.public_key(), 2_000),
            Err(VerifyError::BadSignature { .. })
        ));
        assert!(matches!(sealed.verify(&federation.public_key(), 31_000), Err(VerifyError::Expired { .. })));
        let stranger = KeyPair::generate();
        let forged = SealedEnvelope::seal(envelope(&agent), &stranger).unwrap();
        assert!(matches!(
            forged.verify(&federation.public_key(), 2_000),
            Err(VerifyError::UnknownKey { .. })
        ));
    }

    #[test]
    fn passports_have_a_validity_window() {
        let federation = KeyPair::generate();
        let agent = AgentId::new("echo").unwrap();
        let mut content = passport(&agent, &KeyPair::generate());
        content.not_before_ms = 10;
        let signed = SignedPassport::issue(content, &federation).unwrap();
        signed.verify(&federation.public_key(), 50).unwrap();
        assert!(matches!(signed.verify(&federation.public_key(), 5), Err(VerifyError::NotYetValid { .. })));
        assert!(matches!(signed.verify(&federation.public_key(), 100_000), Err(VerifyError::Expired { .. })));
        let mut widened = signed.clone();
        widened.passport.capabilities.push("admin".into());
        assert!(matches!(
            widened.verify(&federation.public_key(), 50),
            Err(VerifyError::BadSignature { .. })
        ));
    }

    #[test]
    fn results_bind_to_their_envelope_and_agent_key() {
        let federation = KeyPair::generate();
        let agent_key = KeyPair::generate();
        let agent = AgentId::new("echo").unwrap();
        let passport = passport(&agent, &agent_key);
        let sealed = SealedEnvelope::seal(envelope(&agent), &federation).unwrap();
        let result = AgentResult {
            task_id: sealed.envelope.task_id,
            attempt: 1,
            agent_id: agent.clone(),
            envelope_hash: sealed.hash,
            output: json!("hi"),
            completed_at_ms: 2_000,
        };
        let signed = SignedResult::sign(result.clone(), &agent_key).unwrap();
        signed.verify(&passport, &sealed).unwrap();

        // Forged: signed by another key.
        let forged = SignedResult::sign(result.clone(), &KeyPair::generate()).unwrap();
        assert!(matches!(forged.verify(&passport, &sealed), Err(VerifyError::BadSignature { .. })));
        // Tampered: output changed after signing.
        let mut tampered = signed.clone();
        tampered.result.output = json!("bye");
        assert!(matches!(tampered.verify(&passport, &sealed), Err(VerifyError::HashMismatch { .. })));
        // Replayed: a genuine result for another envelope.
        let other = SealedEnvelope::seal(envelope(&agent), &federation).unwrap();
        assert!(matches!(signed.verify(&passport, &other), Err(VerifyError::Mismatch { .. })));
    }

    #[test]
    fn submissions_verify_against_trusted_keys() {
        let producer = KeyPair::generate();
        let spec = TaskSpec::new("echo", "hello");
        let signed = SignedSubmission::sign(TaskId::new(), spec, &producer).unwrap();
        signed.verify(&[producer.public_key()]).unwrap();
        assert!(matches!(signed.verify(&[]), Err(VerifyError::UnknownKey { .. })));
        let mut tampered = signed.clone();
        tampered.spec.description = "something else".into();
        assert!(matches!(tampered.verify(&[producer.public_key()]), Err(VerifyError::BadSignature { .. })));
    }
}
