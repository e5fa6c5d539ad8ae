//! Phase 6, result verification and storage: `result_received` → `result_verified` +
//! `result_stored`, or `execution_failed` (cause `verification`, with the reason) when the
//! result does not verify: the attempt failed by the agent's doing, so it counts against the
//! agent's health and reputation, and the retry policy decides what comes next. The
//! agent's signature is checked against the public key of its passport (read from the agent's
//! stream, the passport itself checked against the federation key), and the result must
//! answer exactly the envelope sealed for this attempt: forged, tampered and replayed results
//! are refused.
//!
//! The two events are one append, but an append of several events is not atomic everywhere
//! (JetStream before 2.12 publishes them one by one), so the decider ([`decide`]) also
//! completes a task left `verified` without `result_stored`: whichever prefix of its output
//! reached the log, the redelivered input emits the rest.

use async_trait::async_trait;
use events::task::{ExecutionFailed, FailureCause, ResultStored, ResultVerified, TaskEvent, TaskStatus};
use events::{DomainEvent, PublicKey, RecordedEvent, codec};

use crate::error::Result;
use crate::phase::{Ctx, Handled, Loaded, Output, Phase, decide_and_append};
use crate::registry::KnownAgent;

/// What verification decides on besides the task: the agent that answered, as its stream
/// says, and the federation's key.
pub(crate) struct Facts<'a> {
    pub(crate) agent: &'a KnownAgent,
    pub(crate) federation: &'a PublicKey,
}

/// The verdict on the task's received result: `Ok` when the agent's passport is signed by the
/// federation and valid `now`, and the result is signed by the passport's key and answers
/// the sealed envelope; the reason otherwise.
fn verdict(loaded: &Loaded, facts: &Facts<'_>, now: i64) -> std::result::Result<(), String> {
    let state = &loaded.state;
    let (Some(result), Some(envelope)) = (&state.result, &state.envelope) else {
        return Err("the task holds no result or envelope".into());
    };
    let agent = &result.result.agent_id;
    let Some(registration) = &facts.agent.state.registration else {
        return Err(format!("agent {agent} has no passport"));
    };
    let passport = &registration.passport.passport;
    if !(facts.agent.passport_signed && (passport.not_before_ms..=passport.not_after_ms).contains(&now)) {
        // Unsigned, or outside its window: the full check says which.
        registration.passport.verify(facts.federation, now).map_err(|e| e.to_string())?;
    }
    match &state.result_redaction {
        None => result.verify(passport, envelope),
        Some(redaction) => result.verify_redacted(passport, envelope, redaction),
    }
    .map_err(|e| e.to_string())
}

/// The decider: on a received result, `result_verified` and `result_stored`, or `task_failed`
/// when it does not verify; on a verified one (a cut batch), `result_stored`; else nothing.
pub(crate) fn decide(loaded: &Loaded, facts: &Facts<'_>, now: i64) -> Vec<Output> {
    let state = &loaded.state;
    let Some(result) = &state.result else { return Vec::new() };
    let stored = || {
        let output_bytes = codec::to_msgpack(&result.result.output).map_or(0, |b| b.len() as u64);
        ("stored".into(), TaskEvent::ResultStored(ResultStored { result_hash: result.hash, output_bytes }))
    };
    match state.status {
        TaskStatus::ResultReceived => match verdict(loaded, facts, now) {
            Ok(()) => vec![
                (
                    "verified".into(),
                    TaskEvent::ResultVerified(ResultVerified {
                        agent_id: result.result.agent_id.clone(),
                        result_hash: result.hash,
                    }),
                ),
                stored(),
            ],
            // The attempt failed, by the agent's doing: counted against it (health and
            // reputation read `execution_failed` with its cause), and the retry policy tries
            // another agent while attempts remain.
            Err(reason) => vec![(
                "refused".into(),
                TaskEvent::ExecutionFailed(ExecutionFailed {
                    agent_id: result.result.agent_id.clone(),
                    attempt: result.result.attempt,
                    cause: FailureCause::Verification,
                    reason: format!("the result did not verify: {reason}"),
                }),
            )],
        },
        TaskStatus::Verified => vec![stored()],
        _ => Vec::new(),
    }
}

/// Phase 6. The answering agent comes from the registry's view, checked against its stream's
/// version ([`crate::registry::Registry::agent_now`]): a result costs one look at the version,
/// and any change to the agent (suspension, retirement, a renewed passport) is read first.
pub(crate) struct Verification;

#[async_trait]
impl Phase for Verification {
    fn name(&self) -> &'static str {
        "verification"
    }

    fn inputs(&self) -> &'static [events::TaskEventKind] {
        &[events::TaskEventKind::ResultReceived]
    }

    async fn handle(&self, ctx: &Ctx, input: &RecordedEvent) -> Result<Handled> {
        let TaskEvent::ResultReceived(received) = TaskEvent::from_recorded(input)? else {
            return Ok(Handled::Done);
        };
        let federation = ctx.federation.public_key();
        let agent =
            ctx.registry.agent_now(ctx.log.as_ref(), &received.result.result.agent_id, &federation).await?;
        let facts = Facts { agent: &agent, federation: &federation };
        decide_and_append(ctx, input, self.name(), |loaded| {
            // Only the result that woke the phase: a later attempt's has an input of its own.
            if loaded.state.result.as_ref().map(|r| r.hash) != Some(received.result.hash) {
                return Vec::new();
            }
            decide(loaded, &facts, ctx.clock.now_ms())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use events::agent::{AgentEvent, AgentRegistered, AgentTransport};
    use events::task::ResultReceived;
    use events::{
        AgentId, AgentResult, AgentState, Aggregate, KeyPair, Passport, SignedPassport, SignedResult,
        TaskSpec,
    };

    use super::*;
    use crate::phase::tests::attempt_started;

    const NOW: i64 = 1_800_000_000_000;

    struct World {
        federation: KeyPair,
        agent_key: KeyPair,
        agent: KnownAgent,
        task: Loaded,
    }

    /// A task whose agent answered with a result signed by `signer`, and the agent's stream.
    fn given(signer: Option<&KeyPair>) -> World {
        let federation = KeyPair::generate();
        let agent_key = KeyPair::generate();
        let agent_id = AgentId::new("a1").expect("id");
        let passport = SignedPassport::issue(
            Passport {
                agent_id: agent_id.clone(),
                public_key: agent_key.public_key(),
                capabilities: vec!["echo".into()],
                not_before_ms: NOW - 1_000,
                not_after_ms: NOW + 1_000_000,
            },
            &federation,
        )
        .expect("passport");
        let mut state = AgentState::default();
        state
            .apply(&AgentEvent::Registered(AgentRegistered {
                passport,
                max_concurrency: 1,
                transport: AgentTransport::InProcess { builtin: "echo".into() },
                slo: None,
            }))
            .expect("registered");
        let agent = KnownAgent { state, passport_signed: true };
        let mut spec = TaskSpec::new("echo", "say hi");
        spec.input = serde_json::json!("hi");
        let task = attempt_started(spec, &federation, &agent_id, NOW - 100, |envelope| {
            let result = AgentResult {
                task_id: envelope.envelope.task_id,
                attempt: 1,
                agent_id: agent_id.clone(),
                envelope_hash: envelope.hash,
                output: serde_json::json!("hi"),
                completed_at_ms: NOW - 10,
            };
            let signed = SignedResult::sign(result, signer.unwrap_or(&agent_key)).expect("signed");
            vec![TaskEvent::ResultReceived(ResultReceived { result: signed, redaction: None })]
        });
        World { federation, agent_key, agent, task }
    }

    fn types(outputs: &[Output]) -> Vec<String> {
        outputs.iter().map(|(_, event)| event.event_type().to_string()).collect()
    }

    #[test]
    fn a_signed_result_is_verified_and_stored_in_one_decision() {
        let world = given(None);
        let federation = world.federation.public_key();
        let outputs = decide(&world.task, &Facts { agent: &world.agent, federation: &federation }, NOW);
        assert_eq!(types(&outputs), ["result_verified", "result_stored"]);
        let _ = world.agent_key;
    }

    #[test]
    fn a_task_left_verified_by_a_cut_batch_is_stored() {
        let world = given(None);
        let federation = world.federation.public_key();
        let facts = Facts { agent: &world.agent, federation: &federation };
        let outputs = decide(&world.task, &facts, NOW);
        let mut cut = world.task.clone();
        cut.state.apply(&outputs[0].1).expect("verified applies");
        assert_eq!(cut.state.status, TaskStatus::Verified);
        let rest = decide(&cut, &facts, NOW);
        assert_eq!(types(&rest), ["result_stored"]);
        assert_eq!(rest[0].0, outputs[1].0, "the same purpose, so a redelivery derives the same id");
        cut.state.apply(&rest[0].1).expect("stored applies");
        assert!(decide(&cut, &facts, NOW).is_empty(), "nothing is left once stored");
    }

    #[test]
    fn a_result_signed_by_another_key_fails_the_task_with_the_reason() {
        let forger = KeyPair::generate();
        let world = given(Some(&forger));
        let federation = world.federation.public_key();
        let outputs = decide(&world.task, &Facts { agent: &world.agent, federation: &federation }, NOW);
        assert_eq!(types(&outputs), ["execution_failed"]);
        let TaskEvent::ExecutionFailed(failed) = &outputs[0].1 else { unreachable!() };
        assert_eq!(failed.cause, FailureCause::Verification, "counted against the agent");
        assert_eq!(failed.attempt, 1);
        assert!(failed.reason.contains("did not verify"), "{}", failed.reason);
    }

    #[test]
    fn an_expired_passport_fails_verification_at_the_injected_time() {
        let world = given(None);
        let federation = world.federation.public_key();
        let facts = Facts { agent: &world.agent, federation: &federation };
        let outputs = decide(&world.task, &facts, NOW + 2_000_000);
        assert_eq!(types(&outputs), ["execution_failed"]);
        let TaskEvent::ExecutionFailed(failed) = &outputs[0].1 else { unreachable!() };
        assert!(failed.reason.contains("expired"), "{}", failed.reason);
    }

    #[test]
    fn an_agent_without_a_passport_is_refused() {
        let mut world = given(None);
        world.agent.state = AgentState::default();
        let federation = world.federation.public_key();
        let outputs = decide(&world.task, &Facts { agent: &world.agent, federation: &federation }, NOW);
        let TaskEvent::ExecutionFailed(failed) = &outputs[0].1 else { panic!("refused: {outputs:?}") };
        assert!(failed.reason.contains("has no passport"), "{}", failed.reason);
    }
}
