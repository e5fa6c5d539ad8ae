//! The agent protocol's test vectors (`schemas/agent-protocol-vectors.json`): fixed keys and
//! contents, their canonical encodings, hashes, signed messages and signatures, made here by
//! the Rust implementation. The test fails when the committed file and the implementation
//! drift (regenerate with `PANTHEON_UPDATE_SCHEMAS=1 cargo test -p events --test
//! protocol_vectors`), and checks that each committed vector verifies through the public API,
//! and that a changed byte does not.

use std::path::PathBuf;

use events::task::TaskSpec;
use events::{
    AgentId, AgentResult, KeyPair, Passport, SealedEnvelope, SignedPassport, SignedResult, SignedSubmission,
    TaskEnvelope, TaskId, codec,
};
use serde_json::{Value, json};

const FEDERATION_SEED: [u8; 32] = [1; 32];
const AGENT_SEED: [u8; 32] = [2; 32];
const PRODUCER_SEED: [u8; 32] = [3; 32];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One vector: the content as JSON, its canonical MessagePack, the blake3 hash, the signed
/// message (label then hash) and the signature.
fn vector(
    name: &str,
    label: &str,
    content: &impl serde::Serialize,
    signer: &KeyPair,
    signed: Value,
) -> Value {
    let encoding = codec::to_msgpack(content).expect("encodes");
    let hash = events::Hash::of(&encoding);
    let mut message = label.as_bytes().to_vec();
    message.extend_from_slice(&hash.0);
    json!({
        "name": name,
        "label": label,
        "signer_public_key": signer.public_key().to_string(),
        "content": serde_json::to_value(content).expect("json"),
        "canonical_msgpack_hex": hex(&encoding),
        "blake3_hex": hash.to_string(),
        "signed_message_hex": hex(&message),
        "signature_hex": signer.sign(&message).to_string(),
        "signed": signed,
    })
}

fn generated() -> Value {
    let federation = KeyPair::from_seed(FEDERATION_SEED);
    let agent = KeyPair::from_seed(AGENT_SEED);
    let producer = KeyPair::from_seed(PRODUCER_SEED);
    let task_id: TaskId = "0193a5b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b".parse().expect("a task id");
    let agent_id = AgentId::new("summarizer").expect("an agent id");

    let passport = Passport {
        agent_id: agent_id.clone(),
        public_key: agent.public_key(),
        capabilities: vec!["summarize".into(), "translate".into()],
        not_before_ms: 1_800_000_000_000,
        not_after_ms: 1_800_086_400_000,
    };
    let signed_passport = SignedPassport::issue(passport.clone(), &federation).expect("issued");

    let envelope = TaskEnvelope {
        task_id,
        attempt: 1,
        agent_id: agent_id.clone(),
        capability: "summarize".into(),
        description: "Summarise the quarterly report in three sentences.".into(),
        input: json!({"document": "Revenue grew 4 %.", "language": "en", "max_words": 60}),
        context: json!({"best_practices": ["keep numbers exact"], "pitfalls": [], "similar_tasks": []}),
        issued_at_ms: 1_800_000_100_000,
        expires_at_ms: 1_800_000_130_000,
    };
    let sealed = SealedEnvelope::seal(envelope.clone(), &federation).expect("sealed");

    let result = AgentResult {
        task_id,
        attempt: 1,
        agent_id,
        envelope_hash: sealed.hash,
        output: json!({"summary": "Revenue grew 4 %.", "words": 4}),
        completed_at_ms: 1_800_000_101_500,
    };
    let signed_result = SignedResult::sign(result.clone(), &agent).expect("signed");

    let mut spec = TaskSpec::new("summarize", "Summarise the quarterly report in three sentences.");
    spec.input = json!({"document": "Revenue grew 4 %."});
    spec.submitter = "a-producer".into();
    let submission = SignedSubmission::sign(task_id, spec.clone(), &producer).expect("signed");
    // The submission's hashed content is the pair (task_id, spec), in that order.
    #[derive(serde::Serialize)]
    struct SubmissionContent<'a> {
        task_id: &'a TaskId,
        spec: &'a TaskSpec,
    }
    let content = SubmissionContent { task_id: &task_id, spec: &submission.spec };

    json!({
        "protocol": "pantheon agent protocol v1",
        "keys": {
            "federation_seed_hex": hex(&FEDERATION_SEED),
            "federation_public_key": federation.public_key().to_string(),
            "agent_seed_hex": hex(&AGENT_SEED),
            "agent_public_key": agent.public_key().to_string(),
            "producer_seed_hex": hex(&PRODUCER_SEED),
            "producer_public_key": producer.public_key().to_string(),
        },
        "vectors": [
            vector("passport", "pantheon passport v1\n", &passport, &federation, serde_json::to_value(&signed_passport).unwrap()),
            vector("envelope", "pantheon envelope v1\n", &envelope, &federation, serde_json::to_value(&sealed).unwrap()),
            vector("result", "pantheon result v1\n", &result, &agent, serde_json::to_value(&signed_result).unwrap()),
            vector("submission", "pantheon submission v1\n", &content, &producer, serde_json::to_value(&submission).unwrap()),
        ],
    })
}

fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas/agent-protocol-vectors.json")
}

#[test]
fn the_committed_vectors_are_the_implementations() {
    let text = serde_json::to_string_pretty(&generated()).expect("json") + "\n";
    if std::env::var_os("PANTHEON_UPDATE_SCHEMAS").is_some() {
        std::fs::write(path(), &text).expect("write the vectors");
    }
    let committed = std::fs::read_to_string(path()).expect("the vectors: run with PANTHEON_UPDATE_SCHEMAS=1");
    assert_eq!(
        committed, text,
        "schemas/agent-protocol-vectors.json drifted: rerun with PANTHEON_UPDATE_SCHEMAS=1"
    );
}

#[test]
fn each_committed_vector_verifies_and_a_changed_byte_does_not() {
    let committed: Value =
        serde_json::from_str(&std::fs::read_to_string(path()).expect("the vectors")).expect("JSON");
    let federation: events::PublicKey =
        serde_json::from_value(committed["keys"]["federation_public_key"].clone()).expect("a key");
    let vectors = committed["vectors"].as_array().expect("vectors");
    let signed = |name: &str| vectors.iter().find(|v| v["name"] == name).expect(name)["signed"].clone();
    let passport: SignedPassport = serde_json::from_value(signed("passport")).unwrap();
    let envelope: SealedEnvelope = serde_json::from_value(signed("envelope")).unwrap();
    let result: SignedResult = serde_json::from_value(signed("result")).unwrap();
    let submission: SignedSubmission = serde_json::from_value(signed("submission")).unwrap();
    let now = 1_800_000_110_000;
    passport.verify(&federation, now).expect("the passport verifies");
    envelope.verify(&federation, now).expect("the envelope verifies");
    result.verify(&passport.passport, &envelope).expect("the result verifies");
    submission.verify(&[submission.signed_by]).expect("the submission verifies");
    // Each vector's parts agree with one another: the hash is blake3 of the encoding, the
    // message is the label then the hash, and the signature verifies on the message.
    for vector in vectors {
        let encoding = decode_hex(vector["canonical_msgpack_hex"].as_str().unwrap());
        let hash = events::Hash::of(&encoding);
        assert_eq!(hash.to_string(), vector["blake3_hex"], "{}", vector["name"]);
        let mut message = vector["label"].as_str().unwrap().as_bytes().to_vec();
        message.extend_from_slice(&hash.0);
        assert_eq!(hex(&message), vector["signed_message_hex"]);
        let key: events::PublicKey = serde_json::from_value(vector["signer_public_key"].clone()).unwrap();
        let signature: events::Signature = serde_json::from_value(vector["signature_hex"].clone()).unwrap();
        key.verify(&message, &signature, "vector").expect("the signature verifies");
        let mut tampered = message.clone();
        if let Some(last) = tampered.last_mut() {
            *last ^= 1;
        }
        assert!(key.verify(&tampered, &signature, "vector").is_err(), "a changed byte must not verify");
    }
    // A tampered output no longer answers the agent's signature.
    let mut forged = result.clone();
    forged.result.output = json!({"summary": "Revenue grew 40 %.", "words": 4});
    assert!(forged.verify(&passport.passport, &envelope).is_err());
}

fn decode_hex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex")).collect()
}
