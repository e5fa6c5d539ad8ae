//! Canonical encoding, by property: every payload type of the vocabulary (task, agent, workflow
//! and signal events) round-trips through MessagePack and JSON, and equal values encode to equal
//! bytes whatever order their maps were built in.

use std::collections::BTreeMap;
use std::fmt::Debug;

use events::agent::*;
use events::signals::*;
use events::task::*;
use events::workflow::*;
use events::*;
use proptest::prelude::*;
use serde_json::Value;

// ---- Strategies ----------------------------------------------------------------------------

/// Any text, line breaks and all of Unicode included.
fn text() -> impl Strategy<Value = String> {
    "(?s).{0,24}"
}

/// Any finite number (NaN is not equal to itself, and JSON has no infinities).
fn number() -> impl Strategy<Value = f64> {
    use prop::num::f64;
    f64::POSITIVE | f64::NEGATIVE | f64::NORMAL | f64::SUBNORMAL | f64::ZERO
}

/// A small JSON document: every kind of scalar, nested arrays and objects.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        number().prop_map(Value::from),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(text(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A JSON document that is not `null`: an `Option<Value>` field skipped when `None` reads a
/// `null` back as `None`, so `Some(null)` does not survive encoding (see the test below).
fn json_value_not_null() -> impl Strategy<Value = Value> {
    json_value().prop_filter("not null", |v| !v.is_null())
}

fn task_id() -> impl Strategy<Value = TaskId> {
    any::<u128>().prop_map(|n| TaskId(uuid::Uuid::from_u128(n)))
}

fn workflow_id() -> impl Strategy<Value = WorkflowId> {
    any::<u128>().prop_map(|n| WorkflowId(uuid::Uuid::from_u128(n)))
}

fn agent_id() -> impl Strategy<Value = AgentId> {
    "[a-z0-9][a-z0-9_-]{0,63}".prop_map(|s| AgentId::new(s).expect("the pattern makes valid agent ids"))
}

fn hash() -> impl Strategy<Value = Hash> {
    any::<[u8; 32]>().prop_map(Hash)
}

fn public_key() -> impl Strategy<Value = PublicKey> {
    any::<[u8; 32]>().prop_map(PublicKey)
}

fn signature() -> impl Strategy<Value = Signature> {
    (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(a, b)| {
        let mut bytes = [0; 64];
        bytes[..32].copy_from_slice(&a);
        bytes[32..].copy_from_slice(&b);
        Signature(bytes)
    })
}

fn labels() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(text(), text(), 0..4)
}

fn texts() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(text(), 0..4)
}

fn agent_ids() -> impl Strategy<Value = Vec<AgentId>> {
    prop::collection::vec(agent_id(), 0..4)
}

fn task_spec() -> impl Strategy<Value = TaskSpec> {
    (
        text(),
        text(),
        json_value(),
        any::<u64>(),
        any::<u32>(),
        text(),
        prop::option::of(text()),
        prop::option::of(text()),
        prop::option::of(
            (workflow_id(), text()).prop_map(|(workflow_id, step)| WorkflowStepRef { workflow_id, step }),
        ),
        labels(),
    )
        .prop_map(
            |(
                capability,
                description,
                input,
                timeout_ms,
                max_attempts,
                submitter,
                idempotency_key,
                webhook_url,
                workflow,
                labels,
            )| TaskSpec {
                capability,
                description,
                input,
                timeout_ms,
                max_attempts,
                submitter,
                idempotency_key,
                webhook_url,
                workflow,
                labels,
            },
        )
}

fn channel() -> impl Strategy<Value = Channel> {
    prop_oneof![Just(Channel::Gateway), Just(Channel::Nats), Just(Channel::Local), Just(Channel::Workflow)]
}

fn findings() -> impl Strategy<Value = Vec<ScreeningFinding>> {
    let action =
        prop_oneof![Just(FindingAction::Block), Just(FindingAction::Redact), Just(FindingAction::Flag)];
    let finding = (text(), text(), any::<usize>(), any::<usize>(), action).prop_map(
        |(kind, rule_id, start, end, action)| ScreeningFinding { kind, rule_id, start, end, action },
    );
    prop::collection::vec(finding, 0..3)
}

fn rejection_code() -> impl Strategy<Value = RejectionCode> {
    prop_oneof![
        Just(RejectionCode::InvalidSubmission),
        Just(RejectionCode::UnknownCapability),
        Just(RejectionCode::Unauthenticated),
        Just(RejectionCode::Blocked),
    ]
}

fn failure_cause() -> impl Strategy<Value = FailureCause> {
    prop_oneof![
        Just(FailureCause::Agent),
        Just(FailureCause::Transport),
        Just(FailureCause::Task),
        Just(FailureCause::Verification),
    ]
}

fn failure_code() -> impl Strategy<Value = FailureCode> {
    prop_oneof![
        Just(FailureCode::DeadlineExceeded),
        Just(FailureCode::AttemptsExhausted),
        Just(FailureCode::NoAgent),
        Just(FailureCode::VerificationFailed),
        Just(FailureCode::ResultWithheld),
        Just(FailureCode::TaskError),
        Just(FailureCode::Internal),
    ]
}

fn sealed_envelope() -> impl Strategy<Value = SealedEnvelope> {
    let envelope = (
        task_id(),
        any::<u32>(),
        agent_id(),
        text(),
        text(),
        json_value(),
        json_value(),
        any::<i64>(),
        any::<i64>(),
    )
        .prop_map(
            |(
                task_id,
                attempt,
                agent_id,
                capability,
                description,
                input,
                context,
                issued_at_ms,
                expires_at_ms,
            )| {
                TaskEnvelope {
                    task_id,
                    attempt,
                    agent_id,
                    capability,
                    description,
                    input,
                    context,
                    issued_at_ms,
                    expires_at_ms,
                }
            },
        );
    (envelope, hash(), public_key(), signature()).prop_map(|(envelope, hash, sealed_by, signature)| {
        SealedEnvelope { envelope, hash, sealed_by, signature }
    })
}

fn signed_result() -> impl Strategy<Value = SignedResult> {
    let result = (task_id(), any::<u32>(), agent_id(), hash(), json_value(), any::<i64>()).prop_map(
        |(task_id, attempt, agent_id, envelope_hash, output, completed_at_ms)| AgentResult {
            task_id,
            attempt,
            agent_id,
            envelope_hash,
            output,
            completed_at_ms,
        },
    );
    (result, hash(), signature()).prop_map(|(result, hash, signature)| SignedResult {
        result,
        hash,
        signature,
    })
}

fn task_event() -> impl Strategy<Value = TaskEvent> {
    let similar = (task_id(), number(), any::<bool>(), prop::option::of(agent_id())).prop_map(
        |(task_id, similarity, succeeded, agent_id)| SimilarTask { task_id, similarity, succeeded, agent_id },
    );
    let source = (text(), any::<bool>(), any::<u64>(), prop::option::of(text()))
        .prop_map(|(name, ok, elapsed_ms, error)| ContextSource { name, ok, elapsed_ms, error });
    let candidate = (agent_id(), number(), number(), number(), number(), number(), number(), number())
        .prop_map(|(agent_id, total, capability_fit, load, success_rate, latency, reputation, health)| {
            CandidateScore {
                agent_id,
                total,
                capability_fit,
                load,
                success_rate,
                latency,
                reputation,
                health,
            }
        });
    prop_oneof![
        (task_id(), task_spec(), channel(), public_key(), signature()).prop_map(
            |(task_id, spec, channel, signed_by, signature)| TaskEvent::Submitted(TaskSubmitted {
                task_id,
                spec,
                channel,
                signed_by,
                signature,
            })
        ),
        (findings(), prop::option::of(text())).prop_map(|(findings, redacted_description)| {
            TaskEvent::IngressScreened(IngressScreened { findings, redacted_description })
        }),
        (rejection_code(), text(), findings()).prop_map(|(code, reason, findings)| TaskEvent::Rejected(
            TaskRejected { code, reason, findings }
        )),
        (
            prop::collection::vec(similar, 0..3),
            texts(),
            texts(),
            number(),
            prop::collection::vec(source, 0..3)
        )
            .prop_map(|(similar_tasks, best_practices, pitfalls, complexity, sources)| {
                TaskEvent::ContextGathered(ContextGathered {
                    similar_tasks,
                    best_practices,
                    pitfalls,
                    complexity,
                    sources,
                })
            }),
        (agent_id(), any::<u32>(), prop::collection::vec(candidate, 0..3)).prop_map(
            |(agent_id, attempt, candidates)| TaskEvent::AgentSelected(AgentSelected {
                agent_id,
                attempt,
                candidates
            })
        ),
        (text(), any::<i64>()).prop_map(|(reason, retry_at_ms)| {
            TaskEvent::NoAgentAvailable(NoAgentAvailable { reason, retry_at_ms })
        }),
        sealed_envelope().prop_map(|envelope| TaskEvent::EnvelopeSealed(EnvelopeSealed { envelope })),
        (agent_id(), any::<u32>()).prop_map(|(agent_id, attempt)| TaskEvent::ExecutionStarted(
            ExecutionStarted { agent_id, attempt }
        )),
        (agent_id(), any::<u32>(), prop::option::of(any::<u8>()), text()).prop_map(
            |(agent_id, attempt, percent, message)| TaskEvent::ProgressReported(ProgressReported {
                agent_id,
                attempt,
                percent,
                message
            })
        ),
        signed_result()
            .prop_map(|result| TaskEvent::ResultReceived(ResultReceived { result, redaction: None })),
        (agent_id(), any::<u32>(), failure_cause(), text()).prop_map(|(agent_id, attempt, cause, reason)| {
            TaskEvent::ExecutionFailed(ExecutionFailed { agent_id, attempt, cause, reason })
        }),
        (agent_id(), any::<u32>(), any::<u64>()).prop_map(|(agent_id, attempt, timeout_ms)| {
            TaskEvent::ExecutionTimedOut(ExecutionTimedOut { agent_id, attempt, timeout_ms })
        }),
        (any::<u32>(), any::<i64>(), agent_ids()).prop_map(|(attempt, not_before_ms, exclude_agents)| {
            TaskEvent::RetryScheduled(RetryScheduled { attempt, not_before_ms, exclude_agents })
        }),
        (agent_id(), hash()).prop_map(|(agent_id, result_hash)| {
            TaskEvent::ResultVerified(ResultVerified { agent_id, result_hash })
        }),
        (hash(), any::<u64>()).prop_map(|(result_hash, output_bytes)| {
            TaskEvent::ResultStored(ResultStored { result_hash, output_bytes })
        }),
        (findings(), prop::option::of(json_value_not_null())).prop_map(|(findings, redacted_output)| {
            TaskEvent::EgressScreened(EgressScreened { findings, redacted_output })
        }),
        (agent_id(), json_value())
            .prop_map(|(agent_id, output)| TaskEvent::Completed(TaskCompleted { agent_id, output })),
        (failure_code(), text()).prop_map(|(code, reason)| TaskEvent::Failed(TaskFailed { code, reason })),
        (text(), text()).prop_map(|(by, reason)| TaskEvent::Cancelled(TaskCancelled { by, reason })),
        (text(), any::<u32>(), prop::option::of(any::<u16>()), any::<bool>(), prop::option::of(text()))
            .prop_map(|(webhook_id, attempt, status, delivered, error)| TaskEvent::WebhookAttempted(
                WebhookAttempted { webhook_id, attempt, status, delivered, error }
            )),
        (text(), text()).prop_map(|(webhook_id, reason)| {
            TaskEvent::WebhookDeadLettered(WebhookDeadLettered { webhook_id, reason })
        }),
        (text(), text()).prop_map(|(webhook_id, by)| {
            TaskEvent::WebhookRedeliveryRequested(WebhookRedeliveryRequested { webhook_id, by })
        }),
    ]
}

fn signed_passport() -> impl Strategy<Value = SignedPassport> {
    let passport = (agent_id(), public_key(), texts(), any::<i64>(), any::<i64>()).prop_map(
        |(agent_id, public_key, capabilities, not_before_ms, not_after_ms)| Passport {
            agent_id,
            public_key,
            capabilities,
            not_before_ms,
            not_after_ms,
        },
    );
    (passport, public_key(), signature()).prop_map(|(passport, issued_by, signature)| SignedPassport {
        passport,
        issued_by,
        signature,
    })
}

fn agent_event() -> impl Strategy<Value = AgentEvent> {
    let transport = prop_oneof![
        text().prop_map(|builtin| AgentTransport::InProcess { builtin }),
        Just(AgentTransport::Pull),
        text().prop_map(|subject| AgentTransport::Nats { subject }),
        text().prop_map(|url| AgentTransport::Http { url }),
    ];
    let slo =
        (number(), any::<u64>()).prop_map(|(success_target, latency_ms)| Slo { success_target, latency_ms });
    prop_oneof![
        (signed_passport(), any::<u32>(), transport, prop::option::of(slo)).prop_map(
            |(passport, max_concurrency, transport, slo)| AgentEvent::Registered(AgentRegistered {
                passport,
                max_concurrency,
                transport,
                slo
            })
        ),
        signed_passport().prop_map(|passport| AgentEvent::PassportRenewed(PassportRenewed { passport })),
        (text(), text()).prop_map(|(reason, by)| AgentEvent::Suspended(AgentSuspended { reason, by })),
        (text(), text()).prop_map(|(reason, by)| AgentEvent::Reinstated(AgentReinstated { reason, by })),
        (text(), text()).prop_map(|(reason, by)| AgentEvent::Retired(AgentRetired { reason, by })),
    ]
}

fn workflow_event() -> impl Strategy<Value = WorkflowEvent> {
    let step = (
        text(),
        text(),
        text(),
        json_value(),
        texts(),
        prop::option::of(text()),
        prop::option::of(any::<u32>()),
    )
        .prop_map(|(name, capability, description, input, needs, when, max_parallel)| Step {
            name,
            capability,
            workflow: Some(ChildWorkflow { name: "inner".into(), version: Some(2) }),
            compensate: Some(Compensation {
                capability: "undo".into(),
                description: "undo".into(),
                input: Value::Null,
            }),
            approval: Some(Approval {
                signal: "approve".into(),
                timeout: Some("1h".into()),
                on_timeout: OnTimeout::Skip,
            }),
            description,
            input,
            needs,
            when,
            for_each: None,
            max_parallel,
            max_items: None,
            on_item_failure: ItemFailure::Continue,
            on_skipped_needs: SkippedNeeds::Run,
            timeout: Some("30s".into()),
            retry: Some(Retry { attempts: 2, backoff: Some("1s".into()), backoff_max: None }),
        });
    // A null output template reads back as none (JSON's null and an absent field are one).
    let definition = (text(), prop::collection::vec(step, 0..4), prop::option::of(json_value())).prop_map(
        |(name, steps, output)| Definition {
            name,
            description: String::new(),
            steps,
            output: output.filter(|o| !o.is_null()),
            max_items: Some(5),
            deadline: Some("10m".into()),
        },
    );
    prop_oneof![
        (workflow_id(), text(), any::<u32>(), definition, json_value(), text(), prop::option::of(text()))
            .prop_map(|(run_id, name, version, definition, input, submitter, idempotency_key)| {
                WorkflowEvent::Started(WorkflowStarted {
                    run_id,
                    name,
                    version,
                    definition_hash: "ab".repeat(32),
                    definition,
                    input,
                    submitter,
                    idempotency_key,
                    started_at_ms: 7,
                    parent: Some(ParentRun { run_id, step: "call".into() }),
                    depth: 1,
                    webhook_url: Some("https://hooks.example.com/runs".into()),
                })
            }),
        (
            text(),
            prop::option::of(any::<u32>()),
            any::<u32>(),
            task_id(),
            text(),
            json_value(),
            prop::option::of(any::<u64>())
        )
            .prop_map(|(step, item, attempt, task_id, description, input, timeout_ms)| {
                WorkflowEvent::StepScheduled(StepScheduled {
                    step,
                    item,
                    attempt,
                    task_id,
                    capability: "echo".into(),
                    description,
                    input,
                    timeout_ms,
                })
            }),
        (text(), prop::collection::vec(json_value(), 0..4))
            .prop_map(|(step, items)| WorkflowEvent::StepExpanded(StepExpanded { step, items })),
        (text(), text()).prop_map(|(step, reason)| WorkflowEvent::StepSkipped(StepSkipped { step, reason })),
        (
            text(),
            prop::option::of(any::<u32>()),
            any::<u32>(),
            task_id(),
            any::<bool>(),
            json_value(),
            prop::option::of(text())
        )
            .prop_map(|(step, item, attempt, task_id, ok, output, error)| {
                WorkflowEvent::StepTaskEnded(StepTaskEnded {
                    step,
                    item,
                    attempt,
                    task_id,
                    ok,
                    output,
                    error,
                })
            }),
        (text(), json_value())
            .prop_map(|(step, output)| WorkflowEvent::StepCompleted(StepCompleted { step, output })),
        (text(), text()).prop_map(|(step, reason)| WorkflowEvent::StepFailed(StepFailed { step, reason })),
        json_value().prop_map(|output| WorkflowEvent::Completed(WorkflowCompleted { output })),
        text().prop_map(|reason| WorkflowEvent::Failed(WorkflowFailed { reason })),
        (text(), text())
            .prop_map(|(by, reason)| WorkflowEvent::CancelRequested(CancelRequested { by, reason })),
        (text(), text()).prop_map(|(by, reason)| WorkflowEvent::Cancelled(WorkflowCancelled { by, reason })),
        (text(), any::<i64>())
            .prop_map(|(timer, fire_at_ms)| WorkflowEvent::TimerSet(TimerSet { timer, fire_at_ms })),
        text().prop_map(|timer| WorkflowEvent::TimerFired(TimerFired { timer })),
        (text(), text(), prop::option::of(any::<i64>())).prop_map(|(step, signal, deadline_at_ms)| {
            WorkflowEvent::ApprovalRequested(ApprovalRequested { step, signal, deadline_at_ms })
        }),
        (text(), prop::option::of(text()), json_value(), text()).prop_map(|(name, step, payload, by)| {
            WorkflowEvent::SignalReceived(SignalReceived { name, step, payload, by })
        }),
        text().prop_map(|reason| WorkflowEvent::CompensationStarted(CompensationStarted { reason })),
        (text(), task_id(), json_value()).prop_map(|(step, task_id, input)| {
            WorkflowEvent::CompensationScheduled(CompensationScheduled {
                step,
                task_id,
                capability: "undo".into(),
                description: String::new(),
                input,
            })
        }),
        (text(), task_id(), any::<bool>(), prop::option::of(text())).prop_map(
            |(step, task_id, ok, error)| {
                WorkflowEvent::CompensationEnded(CompensationEnded { step, task_id, ok, error })
            }
        ),
        (text(), workflow_id(), text(), json_value()).prop_map(|(step, run_id, name, input)| {
            WorkflowEvent::ChildScheduled(ChildScheduled { step, run_id, name, version: None, input })
        }),
        (text(), workflow_id(), any::<bool>(), json_value(), prop::option::of(text())).prop_map(
            |(step, run_id, ok, output, error)| WorkflowEvent::ChildEnded(ChildEnded {
                step,
                run_id,
                ok,
                output,
                error
            })
        ),
        (text(), any::<u32>(), prop::option::of(any::<u16>()), any::<bool>(), prop::option::of(text()))
            .prop_map(|(webhook_id, attempt, status, delivered, error)| WorkflowEvent::WebhookAttempted(
                WebhookAttempted { webhook_id, attempt, status, delivered, error }
            )),
        (text(), text()).prop_map(|(webhook_id, reason)| {
            WorkflowEvent::WebhookDeadLettered(WebhookDeadLettered { webhook_id, reason })
        }),
    ]
}

fn heartbeat_event() -> impl Strategy<Value = HeartbeatEvent> {
    prop_oneof![
        (agent_id(), any::<u32>(), any::<i64>()).prop_map(|(agent_id, tasks_in_flight, sent_at_ms)| {
            HeartbeatEvent::Beat(AgentHeartbeat { agent_id, tasks_in_flight, sent_at_ms })
        }),
        (
            agent_id(),
            prop::sample::select(vec![Liveness::Live, Liveness::Stale, Liveness::Lost]),
            any::<i64>()
        )
            .prop_map(|(agent_id, liveness, last_seen_ms)| {
                HeartbeatEvent::LivenessChanged(AgentLivenessChanged { agent_id, liveness, last_seen_ms })
            }),
    ]
}

fn policy_event() -> impl Strategy<Value = events::policy::PolicyEvent> {
    use events::policy::{PolicyEvent, PolicyReloadRefused, PolicyReloaded};
    prop_oneof![
        (text(), prop::collection::vec(text(), 0..3), prop::collection::vec(text(), 0..3), text()).prop_map(
            |(by, changes, not_applied, config_hash)| {
                PolicyEvent::Reloaded(PolicyReloaded { by, changes, not_applied, config_hash })
            }
        ),
        (text(), text())
            .prop_map(|(by, reason)| PolicyEvent::ReloadRefused(PolicyReloadRefused { by, reason })),
    ]
}

fn feedback_event() -> impl Strategy<Value = FeedbackEvent> {
    (task_id(), agent_id(), text(), number(), text()).prop_map(
        |(task_id, agent_id, capability, score, by)| {
            FeedbackEvent::QualityRated(QualityRated { task_id, agent_id, capability, score, by })
        },
    )
}

// ---- Properties ----------------------------------------------------------------------------

/// An event survives every way the vocabulary encodes it:
/// - its payload as canonical MessagePack decodes to the same event, and re-encoding that gives
///   the same bytes (canonical);
/// - the payload read as JSON (what upcasting works on) is the payload's JSON form;
/// - its payload as JSON decodes to the same event, as a value and through text;
/// - the tagged enum form (`{"type": …, "data": …}`) does too.
fn assert_round_trips<E>(event: &E) -> Result<(), TestCaseError>
where
    E: DomainEvent + PartialEq + Debug + serde::Serialize + serde::de::DeserializeOwned,
{
    let event_type = EventType::new(event.event_type())?;

    let bytes = event.to_payload()?;
    let back = E::from_payload(&event_type, event.schema_version(), &bytes)?;
    prop_assert_eq!(&back, event);
    prop_assert_eq!(back.to_payload()?, bytes.clone(), "re-encoding the decoded event changed its bytes");

    let json = event.to_json()?;
    prop_assert_eq!(
        codec::msgpack_to_json(&bytes)?,
        json.clone(),
        "MessagePack and JSON hold different documents"
    );
    prop_assert_eq!(&E::from_json(&event_type, json.clone())?, event);
    let text = serde_json::to_string(&json)?;
    prop_assert_eq!(&E::from_json(&event_type, serde_json::from_str(&text)?)?, event);

    let tagged = codec::to_msgpack(event)?;
    prop_assert_eq!(&codec::from_msgpack::<E>(&tagged)?, event);
    let tagged = serde_json::to_string(event)?;
    prop_assert_eq!(&codec::from_json::<E>(&tagged)?, event);
    Ok(())
}

proptest! {
    #[test]
    fn task_events_round_trip(event in task_event()) {
        assert_round_trips(&event)?;
    }

    #[test]
    fn agent_events_round_trip(event in agent_event()) {
        assert_round_trips(&event)?;
    }

    #[test]
    fn workflow_events_round_trip(event in workflow_event()) {
        assert_round_trips(&event)?;
    }

    #[test]
    fn signal_events_round_trip(beat in heartbeat_event(), rating in feedback_event(), policy in policy_event()) {
        assert_round_trips(&beat)?;
        assert_round_trips(&rating)?;
        assert_round_trips(&policy)?;
    }
}

/// Every type of every category is generated by the strategies above, so a new event type
/// fails here until it gets a strategy.
#[test]
fn the_strategies_cover_every_event_type() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    use std::collections::BTreeSet;

    fn seen<E: DomainEvent>(
        strategy: impl Strategy<Value = E>,
    ) -> (BTreeSet<&'static str>, BTreeSet<&'static str>) {
        let mut runner = TestRunner::deterministic();
        let mut generated = BTreeSet::new();
        for _ in 0..2_000 {
            generated.insert(strategy.new_tree(&mut runner).expect("a value").current().event_type());
        }
        (generated, E::TYPES.iter().map(|(name, _)| *name).collect())
    }
    for (seen, all) in [
        seen(task_event()),
        seen(agent_event()),
        seen(workflow_event()),
        seen(heartbeat_event()),
        seen(feedback_event()),
        seen(policy_event()),
    ] {
        assert_eq!(seen, all, "event types without a strategy");
    }
}

/// An `Option<Value>` skipped when `None` cannot tell `Some(null)` from `None`: the strategies
/// leave `Some(null)` out, and this pins the behaviour so a change to it is noticed.
#[test]
fn some_null_redacted_output_reads_back_as_none() {
    let event = EgressScreened { findings: vec![], redacted_output: Some(Value::Null) };
    let back: EgressScreened = codec::from_msgpack(&codec::to_msgpack(&event).unwrap()).unwrap();
    assert_eq!(back.redacted_output, None);
}

// ---- Determinism ---------------------------------------------------------------------------

/// Builds a JSON object by inserting `entries` in the order given.
fn object_in_order(entries: &[(String, Value)]) -> Value {
    let mut map = serde_json::Map::new();
    for (key, value) in entries {
        map.insert(key.clone(), value.clone());
    }
    Value::Object(map)
}

/// Builds a map by inserting `entries` in the order given.
fn btree_in_order<V: Clone>(entries: &[(String, V)]) -> BTreeMap<String, V> {
    let mut map = BTreeMap::new();
    for (key, value) in entries {
        map.insert(key.clone(), value.clone());
    }
    map
}

/// The bytes of every map-carrying payload built from `entries` in one order, their blake3
/// hashes, and the hashes and signatures over sealed and signed material built from them.
fn encode_in_order(
    json: &[(String, Value)],
    labels: &[(String, String)],
) -> Result<(Vec<Vec<u8>>, Vec<Hash>), events::Error> {
    let object = object_in_order(json);
    // Nested: an object inside an array inside an object.
    let nested = object_in_order(&[
        ("outer".to_string(), Value::Array(vec![object.clone(), Value::Null])),
        ("inner".to_string(), object.clone()),
    ]);
    let mut spec = TaskSpec::new("echo", "say hi");
    spec.input = nested.clone();
    spec.labels = btree_in_order(labels);
    let task_id = TaskId(uuid::Uuid::from_u128(1));
    let federation = KeyPair::from_seed([7; 32]);
    let submitted = SignedSubmission::sign(task_id, spec, &federation)?;
    let sealed = SealedEnvelope::seal(
        TaskEnvelope {
            task_id,
            attempt: 1,
            agent_id: AgentId::new("echo")?,
            capability: "echo".into(),
            description: "say hi".into(),
            input: nested.clone(),
            context: object.clone(),
            issued_at_ms: 0,
            expires_at_ms: 1,
        },
        &federation,
    )?;
    let mut outputs = json.to_vec();
    outputs.push(("nested".to_string(), nested.clone()));
    let payloads = vec![
        TaskEvent::Submitted(TaskSubmitted {
            task_id,
            spec: submitted.spec.clone(),
            channel: Channel::Local,
            signed_by: submitted.signed_by,
            signature: submitted.signature,
        })
        .to_payload()?,
        TaskEvent::EnvelopeSealed(EnvelopeSealed { envelope: sealed.clone() }).to_payload()?,
        WorkflowEvent::Completed(WorkflowCompleted { output: object_in_order(&outputs) }).to_payload()?,
        codec::to_msgpack(&nested)?,
        // Signatures (ed25519 is deterministic) over hashes of the canonical bytes.
        submitted.signature.0.to_vec(),
        sealed.signature.0.to_vec(),
    ];
    let mut hashes: Vec<Hash> = payloads.iter().map(|bytes| Hash::of(bytes)).collect();
    hashes.push(sealed.hash);
    Ok((payloads, hashes))
}

/// A map's entries, in the order they are inserted.
type Entries<V> = Vec<(String, V)>;

/// Distinct keys with values, and the same entries in a shuffled order.
fn entries_and_shuffle<V: Clone + Debug>(
    value: impl Strategy<Value = V>,
) -> impl Strategy<Value = (Entries<V>, Entries<V>)> {
    prop::collection::btree_map("(?s).{0,8}", value, 2..8).prop_flat_map(|map| {
        let entries: Entries<V> = map.into_iter().collect();
        (Just(entries.clone()), Just(entries).prop_shuffle())
    })
}

proptest! {
    #[test]
    fn equal_maps_encode_to_equal_bytes_whatever_the_insertion_order(
        (json, json_shuffled) in entries_and_shuffle(json_value()),
        (labels, labels_shuffled) in entries_and_shuffle(text()),
    ) {
        let reversed_json: Vec<_> = json.iter().rev().cloned().collect();
        let reversed_labels: Vec<_> = labels.iter().rev().cloned().collect();
        // The values are equal whatever the order...
        prop_assert_eq!(object_in_order(&json), object_in_order(&reversed_json));
        // ...and so are their bytes and hashes.
        let sorted = encode_in_order(&json, &labels)?;
        prop_assert_eq!(&encode_in_order(&reversed_json, &reversed_labels)?, &sorted);
        prop_assert_eq!(&encode_in_order(&json_shuffled, &labels_shuffled)?, &sorted);
    }
}

/// The bytes of a small document built in reverse order are pinned: maps are written with their
/// keys sorted. This fails if serde_json's `preserve_order` feature were turned on anywhere in
/// the build (objects would keep insertion order) or a map of the vocabulary became a
/// `HashMap` (random order).
#[test]
fn maps_encode_with_sorted_keys() {
    let mut inner = serde_json::Map::new();
    inner.insert("d".into(), Value::Array(vec![]));
    inner.insert("c".into(), Value::from(2));
    let mut outer = serde_json::Map::new();
    outer.insert("b".into(), Value::Object(inner));
    outer.insert("a".into(), Value::from(1));
    let document = Value::Object(outer);
    assert_eq!(
        document.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["a".to_string(), "b".to_string()]),
        "serde_json objects must iterate in key order (is `preserve_order` on?)"
    );
    #[rustfmt::skip]
    let expected: &[u8] = &[
        0x82,                   // map of 2
        0xa1, b'a', 0x01,       // "a": 1
        0xa1, b'b', 0x82,       // "b": map of 2
        0xa1, b'c', 0x02,       //   "c": 2
        0xa1, b'd', 0x90,       //   "d": []
    ];
    assert_eq!(codec::to_msgpack(&document).unwrap(), expected);

    let mut labels = BTreeMap::new();
    labels.insert("z".to_string(), "1".to_string());
    labels.insert("a".to_string(), "2".to_string());
    let mut spec = TaskSpec::new("e", "d");
    spec.labels = labels;
    spec.input = document;
    let bytes = codec::to_msgpack(&spec).unwrap();
    let labels_at = bytes.windows(7).position(|w| w == b"\xa6labels").expect("labels are encoded");
    assert_eq!(&bytes[labels_at + 7..], b"\x82\xa1a\xa12\xa1z\xa11", "labels are written in key order");
}

/// Agents answer, and producers submit, as JSON text whose hash was computed over canonical
/// MessagePack: a float must parse back to exactly the value that was hashed, or a genuine
/// result fails its hash check. 0.9856906946328695 is one that serde_json's default parser reads
/// one ulp off (hence its `float_roundtrip` feature).
#[test]
fn signed_material_with_floats_verifies_after_json_text() {
    let score = 0.985_690_694_632_869_5_f64;
    let federation = KeyPair::from_seed([7; 32]);
    let agent_key = KeyPair::from_seed([9; 32]);
    let agent = AgentId::new("echo").unwrap();
    let passport = Passport {
        agent_id: agent.clone(),
        public_key: agent_key.public_key(),
        capabilities: vec!["echo".into()],
        not_before_ms: 0,
        not_after_ms: i64::MAX,
    };
    let sealed = SealedEnvelope::seal(
        TaskEnvelope {
            task_id: TaskId::new(),
            attempt: 1,
            agent_id: agent.clone(),
            capability: "echo".into(),
            description: "score it".into(),
            input: serde_json::json!({"threshold": score}),
            context: serde_json::json!({}),
            issued_at_ms: 0,
            expires_at_ms: i64::MAX,
        },
        &federation,
    )
    .unwrap();
    let sealed: SealedEnvelope = serde_json::from_str(&serde_json::to_string(&sealed).unwrap()).unwrap();
    sealed.verify(&federation.public_key(), 1).unwrap();

    let result = SignedResult::sign(
        AgentResult {
            task_id: sealed.envelope.task_id,
            attempt: 1,
            agent_id: agent,
            envelope_hash: sealed.hash,
            output: serde_json::json!({"score": score, "scores": [score, -score]}),
            completed_at_ms: 1,
        },
        &agent_key,
    )
    .unwrap();
    let received: SignedResult = serde_json::from_str(&serde_json::to_string(&result).unwrap()).unwrap();
    received.verify(&passport, &sealed).unwrap();

    let mut spec = TaskSpec::new("echo", "score it");
    spec.input = serde_json::json!({"threshold": score});
    let submission = SignedSubmission::sign(TaskId::new(), spec, &agent_key).unwrap();
    let received: SignedSubmission =
        serde_json::from_str(&serde_json::to_string(&submission).unwrap()).unwrap();
    received.verify(&[agent_key.public_key()]).unwrap();
}
