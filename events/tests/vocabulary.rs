//! The vocabulary's behaviour: folds as given/when/then, canonical encoding round trips,
//! and upcasting.

use events::agent::{
    AgentRegistered, AgentReinstated, AgentRetired, AgentSuspended, AgentTransport, PassportRenewed,
};
use events::harness::TestHarness;
use events::task::*;
use events::workflow::{
    Definition, Step, StepCompleted, StepScheduled, StepSkipped, StepTaskEnded, WorkflowCompleted,
    WorkflowFailed, WorkflowStarted,
};
use events::*;
use proptest::prelude::*;
use serde_json::json;

struct World {
    federation: KeyPair,
    agent_key: KeyPair,
    agent: AgentId,
    task: TaskId,
}

impl World {
    fn new() -> Self {
        Self {
            federation: KeyPair::from_seed([7; 32]),
            agent_key: KeyPair::from_seed([9; 32]),
            agent: AgentId::new("echo").unwrap(),
            task: TaskId::new(),
        }
    }

    fn submitted(&self) -> TaskEvent {
        let signed =
            SignedSubmission::sign(self.task, TaskSpec::new("echo", "say hi"), &self.federation).unwrap();
        TaskEvent::Submitted(TaskSubmitted {
            task_id: self.task,
            spec: signed.spec,
            channel: Channel::Local,
            signed_by: signed.signed_by,
            signature: signed.signature,
        })
    }

    fn envelope(&self, attempt: u32) -> SealedEnvelope {
        SealedEnvelope::seal(
            TaskEnvelope {
                task_id: self.task,
                attempt,
                agent_id: self.agent.clone(),
                capability: "echo".into(),
                description: "say hi".into(),
                input: json!(null),
                context: json!({}),
                issued_at_ms: 0,
                expires_at_ms: i64::MAX,
            },
            &self.federation,
        )
        .unwrap()
    }

    fn result(&self, attempt: u32) -> SignedResult {
        SignedResult::sign(
            AgentResult {
                task_id: self.task,
                attempt,
                agent_id: self.agent.clone(),
                envelope_hash: self.envelope(attempt).hash,
                output: json!({"said": "hi"}),
                completed_at_ms: 1,
            },
            &self.agent_key,
        )
        .unwrap()
    }

    /// Every event of a successful task, in order.
    fn happy_path(&self) -> Vec<TaskEvent> {
        let result = self.result(1);
        vec![
            self.submitted(),
            TaskEvent::IngressScreened(IngressScreened { findings: vec![], redacted_description: None }),
            TaskEvent::ContextGathered(ContextGathered {
                similar_tasks: vec![],
                best_practices: vec![],
                pitfalls: vec![],
                complexity: 0.1,
                sources: vec![],
            }),
            TaskEvent::AgentSelected(AgentSelected {
                agent_id: self.agent.clone(),
                attempt: 1,
                candidates: vec![],
            }),
            TaskEvent::EnvelopeSealed(EnvelopeSealed { envelope: self.envelope(1) }),
            TaskEvent::ExecutionStarted(ExecutionStarted { agent_id: self.agent.clone(), attempt: 1 }),
            TaskEvent::ProgressReported(ProgressReported {
                agent_id: self.agent.clone(),
                attempt: 1,
                percent: Some(50),
                message: "half way".into(),
            }),
            TaskEvent::ResultReceived(ResultReceived { result: result.clone(), redaction: None }),
            TaskEvent::ResultVerified(ResultVerified {
                agent_id: self.agent.clone(),
                result_hash: result.hash,
            }),
            TaskEvent::ResultStored(ResultStored { result_hash: result.hash, output_bytes: 10 }),
            TaskEvent::EgressScreened(EgressScreened { findings: vec![], redacted_output: None }),
            TaskEvent::Completed(TaskCompleted {
                agent_id: self.agent.clone(),
                output: json!({"said": "hi"}),
            }),
        ]
    }
}

#[test]
fn a_task_folds_through_all_phases_to_completion() {
    let world = World::new();
    let events = world.happy_path();
    let (last, given) = events.split_last().unwrap();
    let state = TestHarness::<TaskState>::given(given.to_vec()).when(last.clone()).then_state(|s| {
        assert_eq!(s.status, TaskStatus::Completed);
        assert_eq!(s.output, Some(json!({"said": "hi"})));
        assert_eq!(s.progress.as_ref().and_then(|p| p.percent), Some(50));
    });
    assert_eq!(state.version, events.len() as u64);
}

#[test]
fn a_result_before_an_envelope_is_refused() {
    let world = World::new();
    let events = world.happy_path();
    // Given submission, screening, context and selection — but no sealed envelope.
    TestHarness::<TaskState>::given(events[..4].to_vec())
        .when(TaskEvent::ResultReceived(ResultReceived { result: world.result(1), redaction: None }))
        .then_refused_with("allowed only in sealed, running");
}

#[test]
fn nothing_but_webhooks_follows_completion() {
    let world = World::new();
    let events = world.happy_path();
    TestHarness::<TaskState>::given(events.clone())
        .when(TaskEvent::Cancelled(TaskCancelled { by: "a new user".into(), reason: String::new() }))
        .then_refused_with("the task has ended");
    TestHarness::<TaskState>::given(events)
        .when(TaskEvent::WebhookAttempted(WebhookAttempted {
            webhook_id: "msg_1".into(),
            attempt: 1,
            status: Some(200),
            delivered: true,
            error: None,
        }))
        .then_state(|s| assert!(s.webhook_delivered));
}

#[test]
fn a_cancelled_task_never_completes() {
    let world = World::new();
    let events = world.happy_path();
    let cancelled = TestHarness::<TaskState>::given(events[..6].to_vec())
        .when(TaskEvent::Cancelled(TaskCancelled {
            by: "a new user".into(),
            reason: "changed my mind".into(),
        }))
        .then_state(|s| assert_eq!(s.status, TaskStatus::Cancelled));
    let mut state = cancelled;
    for later in &events[6..] {
        assert!(state.apply(later).is_err(), "{later:?} must be refused after cancellation");
    }
}

#[test]
fn retries_move_to_the_next_attempt_and_exclude_the_failed_agent() {
    let world = World::new();
    let mut events = world.happy_path()[..6].to_vec();
    events.push(TaskEvent::ExecutionFailed(ExecutionFailed {
        agent_id: world.agent.clone(),
        attempt: 1,
        cause: FailureCause::Agent,
        reason: "crashed".into(),
    }));
    let retry = TaskEvent::RetryScheduled(RetryScheduled {
        attempt: 2,
        not_before_ms: 0,
        exclude_agents: vec![world.agent.clone()],
    });
    TestHarness::<TaskState>::given(events.clone()).when(retry.clone()).then_state(|s| {
        assert_eq!(s.status, TaskStatus::Retrying);
        assert_eq!(s.attempt, 2);
        assert_eq!(s.excluded_agents, vec![world.agent.clone()]);
    });
    events.push(retry);
    // The excluded agent cannot be selected again.
    TestHarness::<TaskState>::given(events.clone())
        .when(TaskEvent::AgentSelected(AgentSelected {
            agent_id: world.agent.clone(),
            attempt: 2,
            candidates: vec![],
        }))
        .then_refused_with("excluded");
    // A stale selection for attempt 1 is refused.
    TestHarness::<TaskState>::given(events)
        .when(TaskEvent::AgentSelected(AgentSelected {
            agent_id: AgentId::new("other").unwrap(),
            attempt: 1,
            candidates: vec![],
        }))
        .then_refused_with("attempt 2");
}

#[test]
fn retries_stop_at_the_attempt_budget() {
    let world = World::new();
    let mut events = world.happy_path()[..6].to_vec();
    for attempt in 1..=3u32 {
        if attempt > 1 {
            let agent = world.agent.clone();
            events.push(TaskEvent::AgentSelected(AgentSelected {
                agent_id: agent,
                attempt,
                candidates: vec![],
            }));
            events.push(TaskEvent::EnvelopeSealed(EnvelopeSealed { envelope: world.envelope(attempt) }));
        }
        events.push(TaskEvent::ExecutionTimedOut(ExecutionTimedOut {
            agent_id: world.agent.clone(),
            attempt,
            timeout_ms: 10,
        }));
        if attempt < 3 {
            events.push(TaskEvent::RetryScheduled(RetryScheduled {
                attempt: attempt + 1,
                not_before_ms: 0,
                exclude_agents: vec![],
            }));
        }
    }
    TestHarness::<TaskState>::given(events)
        .when(TaskEvent::RetryScheduled(RetryScheduled {
            attempt: 4,
            not_before_ms: 0,
            exclude_agents: vec![],
        }))
        .then_refused_with("allows 3 attempts");
}

#[test]
fn agents_register_suspend_reinstate_and_retire() {
    let federation = KeyPair::generate();
    let agent = AgentId::new("echo").unwrap();
    let passport = SignedPassport::issue(
        Passport {
            agent_id: agent,
            public_key: KeyPair::generate().public_key(),
            capabilities: vec!["echo".into()],
            not_before_ms: 0,
            not_after_ms: i64::MAX,
        },
        &federation,
    )
    .unwrap();
    let registered = AgentEvent::Registered(AgentRegistered {
        passport,
        max_concurrency: 4,
        transport: AgentTransport::InProcess { builtin: "echo".into() },
        slo: None,
    });
    let suspended = AgentEvent::Suspended(AgentSuspended { reason: "flaky".into(), by: "ops".into() });
    let reinstated = AgentEvent::Reinstated(AgentReinstated { reason: "fixed".into(), by: "ops".into() });
    let retired = AgentEvent::Retired(AgentRetired { reason: "replaced".into(), by: "ops".into() });

    TestHarness::<AgentState>::given([registered.clone()])
        .when(suspended.clone())
        .then_state(|s| assert_eq!(s.status, AgentStatus::Suspended));
    TestHarness::<AgentState>::given([registered.clone(), suspended.clone()])
        .when(reinstated)
        .then_state(|s| assert_eq!(s.status, AgentStatus::Active));
    TestHarness::<AgentState>::given([registered.clone()])
        .when(registered.clone())
        .then_refused_with("registered already");
    TestHarness::<AgentState>::given([registered, retired]).when(suspended).then_refused_with("retired");
}

#[test]
fn a_run_folds_its_steps_and_refuses_what_does_not_follow() {
    let step = |name: &str, needs: &[&str]| Step {
        name: name.into(),
        capability: "echo".into(),
        approval: None,
        workflow: None,
        compensate: None,
        description: name.into(),
        input: json!(null),
        needs: needs.iter().map(|d| d.to_string()).collect(),
        when: None,
        for_each: None,
        max_parallel: None,
        max_items: None,
        on_item_failure: Default::default(),
        on_skipped_needs: Default::default(),
        timeout: None,
        retry: None,
    };
    let started = WorkflowEvent::Started(WorkflowStarted {
        run_id: WorkflowId::new(),
        name: "two".into(),
        version: 1,
        definition_hash: String::new(),
        definition: Definition {
            name: "two".into(),
            description: String::new(),
            steps: vec![step("a", &[]), step("b", &["a"])],
            output: None,
            max_items: None,
            deadline: None,
        },
        input: json!(null),
        submitter: "a new user".into(),
        idempotency_key: None,
        started_at_ms: 0,
        parent: None,
        depth: 0,
        webhook_url: None,
    });
    let task_a = TaskId::new();
    let scheduled = |name: &str, task_id: TaskId| {
        WorkflowEvent::StepScheduled(StepScheduled {
            step: name.into(),
            item: None,
            attempt: 1,
            task_id,
            capability: "echo".into(),
            description: String::new(),
            input: json!(null),
            timeout_ms: None,
        })
    };
    TestHarness::<WorkflowState>::given([started.clone()])
        .when(scheduled("nope", task_a))
        .then_refused_with("no step");
    let ended = WorkflowEvent::StepTaskEnded(StepTaskEnded {
        step: "a".into(),
        item: None,
        attempt: 1,
        task_id: TaskId::new(),
        ok: true,
        output: json!(1),
        error: None,
    });
    TestHarness::<WorkflowState>::given([started.clone(), scheduled("a", task_a)])
        .when(ended)
        .then_refused_with("not running");
    TestHarness::<WorkflowState>::given([started.clone(), scheduled("a", task_a)])
        .when(WorkflowEvent::Completed(WorkflowCompleted { output: json!(null) }))
        .then_refused_with("has not completed");
    let done = vec![
        started.clone(),
        scheduled("a", task_a),
        WorkflowEvent::StepCompleted(StepCompleted { step: "a".into(), output: json!(1) }),
        WorkflowEvent::StepSkipped(StepSkipped { step: "b".into(), reason: "no".into() }),
    ];
    TestHarness::<WorkflowState>::given(done.clone())
        .when(WorkflowEvent::Completed(WorkflowCompleted { output: json!(1) }))
        .then_state(|s| assert_eq!(s.status, WorkflowStatus::Completed));
    let mut ended = done;
    ended.push(WorkflowEvent::Failed(WorkflowFailed { reason: "x".into() }));
    TestHarness::<WorkflowState>::given(ended)
        .when(WorkflowEvent::Completed(WorkflowCompleted { output: json!(1) }))
        .then_refused_with("ended");
    TestHarness::<WorkflowState>::given([])
        .when(WorkflowEvent::Failed(WorkflowFailed { reason: "x".into() }))
        .then_refused_with("not allowed in this state");
}

fn rejected(reason: &str) -> TaskEvent {
    TaskEvent::Rejected(TaskRejected {
        code: RejectionCode::Blocked,
        reason: reason.into(),
        findings: vec![ScreeningFinding {
            kind: "prompt_injection".into(),
            rule_id: "ignore-previous".into(),
            start: 0,
            end: 4,
            action: FindingAction::Block,
        }],
    })
}

#[test]
fn a_submitted_task_can_be_rejected() {
    let world = World::new();
    TestHarness::<TaskState>::given([world.submitted()]).when(rejected("blocked by policy")).then_state(
        |s| {
            assert_eq!(s.status, TaskStatus::Rejected);
            assert!(s.status.is_final());
            assert_eq!(s.end_reason.as_deref(), Some("blocked by policy"));
        },
    );
}

#[test]
fn a_rejection_comes_only_before_screening_passes() {
    let world = World::new();
    let events = world.happy_path();
    // Never submitted.
    TestHarness::<TaskState>::given([]).when(rejected("late")).then_refused_with("allowed only in submitted");
    // Screened already: the door is behind it.
    let refused = TestHarness::<TaskState>::given(events[..2].to_vec())
        .when(rejected("late"))
        .then_refused_with("allowed only in submitted");
    assert_eq!(
        (refused.entity, refused.state.as_str(), refused.event_type.as_str()),
        ("task", "screened", "task_rejected")
    );
}

#[test]
fn nothing_but_webhooks_follows_a_rejection() {
    let world = World::new();
    let given = [world.submitted(), rejected("blocked by policy")];
    let events = world.happy_path();
    for later in [
        events[1].clone(),
        rejected("again"),
        TaskEvent::Failed(TaskFailed { code: FailureCode::Internal, reason: "oops".into() }),
        TaskEvent::Cancelled(TaskCancelled { by: "a new user".into(), reason: String::new() }),
        TaskEvent::NoAgentAvailable(NoAgentAvailable { reason: "none".into(), retry_at_ms: 0 }),
    ] {
        let refused = TestHarness::<TaskState>::given(given.clone())
            .when(later)
            .then_refused_with("the task has ended");
        assert_eq!(refused.state, "rejected");
    }
    TestHarness::<TaskState>::given(given)
        .when(TaskEvent::WebhookAttempted(WebhookAttempted {
            webhook_id: "msg_1".into(),
            attempt: 1,
            status: Some(500),
            delivered: false,
            error: Some("server error".into()),
        }))
        .then_state(|s| {
            assert_eq!(s.status, TaskStatus::Rejected);
            assert_eq!(s.webhook_attempts, 1);
            assert!(!s.webhook_delivered);
        });
}

fn no_agent() -> TaskEvent {
    TaskEvent::NoAgentAvailable(NoAgentAvailable {
        reason: "every echo agent is busy".into(),
        retry_at_ms: 5_000,
    })
}

#[test]
fn no_agent_available_waits_and_matching_tries_again() {
    let world = World::new();
    let events = world.happy_path();
    let context_ready = events[..3].to_vec();
    TestHarness::<TaskState>::given(context_ready.clone()).when(no_agent()).then_state(|s| {
        assert_eq!(s.status, TaskStatus::Waiting);
        assert_eq!(s.no_agent_count, 1);
        assert_eq!(s.attempt, 1);
    });
    // Still nobody: it waits on, counting.
    let mut waiting = context_ready;
    waiting.push(no_agent());
    TestHarness::<TaskState>::given(waiting.clone())
        .when(no_agent())
        .then_state(|s| assert_eq!((s.status, s.no_agent_count), (TaskStatus::Waiting, 2)));
    // An agent frees up: the waiting task is matched.
    TestHarness::<TaskState>::given(waiting).when(events[3].clone()).then_state(|s| {
        assert_eq!(s.status, TaskStatus::AgentSelected);
        assert_eq!(s.agent_id.as_ref(), Some(&world.agent));
    });
}

#[test]
fn no_agent_available_after_a_failed_attempt_restarts_the_count() {
    let world = World::new();
    let mut events = world.happy_path()[..3].to_vec();
    events.push(no_agent());
    events.extend(world.happy_path()[3..6].iter().cloned());
    events.push(TaskEvent::ExecutionFailed(ExecutionFailed {
        agent_id: world.agent.clone(),
        attempt: 1,
        cause: FailureCause::Transport,
        reason: "connection refused".into(),
    }));
    events.push(TaskEvent::RetryScheduled(RetryScheduled {
        attempt: 2,
        not_before_ms: 0,
        exclude_agents: vec![],
    }));
    TestHarness::<TaskState>::given(events).when(no_agent()).then_state(|s| {
        assert_eq!(s.status, TaskStatus::Waiting);
        assert_eq!((s.attempt, s.no_agent_count), (2, 1));
    });
}

#[test]
fn no_agent_available_is_refused_outside_matching() {
    let world = World::new();
    let events = world.happy_path();
    // Before context is gathered, matching has not started.
    TestHarness::<TaskState>::given(events[..2].to_vec())
        .when(no_agent())
        .then_refused_with("allowed only in context_ready, waiting, retrying");
    // Once an agent is selected (or the task runs), there is no going back to waiting.
    for given in [&events[..4], &events[..6]] {
        TestHarness::<TaskState>::given(given.to_vec())
            .when(no_agent())
            .then_refused_with("allowed only in context_ready, waiting, retrying");
    }
    // After the end.
    TestHarness::<TaskState>::given(events).when(no_agent()).then_refused_with("the task has ended");
}

fn passport(federation: &KeyPair, agent: &AgentId, capabilities: &[&str]) -> SignedPassport {
    SignedPassport::issue(
        Passport {
            agent_id: agent.clone(),
            public_key: KeyPair::generate().public_key(),
            capabilities: capabilities.iter().map(|c| c.to_string()).collect(),
            not_before_ms: 0,
            not_after_ms: i64::MAX,
        },
        federation,
    )
    .unwrap()
}

fn registered(passport: SignedPassport) -> AgentEvent {
    AgentEvent::Registered(AgentRegistered {
        passport,
        max_concurrency: 4,
        transport: AgentTransport::InProcess { builtin: "echo".into() },
        slo: None,
    })
}

#[test]
fn an_agent_renews_its_passport_while_active_or_suspended() {
    let federation = KeyPair::generate();
    let agent = AgentId::new("echo").unwrap();
    let registered = registered(passport(&federation, &agent, &["echo"]));
    let renewed = passport(&federation, &agent, &["echo", "summarize"]);
    let renewal = AgentEvent::PassportRenewed(PassportRenewed { passport: renewed.clone() });
    TestHarness::<AgentState>::given([registered.clone()]).when(renewal.clone()).then_state(|s| {
        assert_eq!(s.status, AgentStatus::Active);
        let registration = s.registration.as_ref().unwrap();
        assert_eq!(registration.passport, renewed);
        assert_eq!(registration.max_concurrency, 4, "only the passport changes");
    });
    let suspended = AgentEvent::Suspended(AgentSuspended { reason: "flaky".into(), by: "ops".into() });
    TestHarness::<AgentState>::given([registered, suspended]).when(renewal).then_state(|s| {
        assert_eq!(s.status, AgentStatus::Suspended, "a renewal does not reinstate");
        assert_eq!(s.registration.as_ref().map(|r| &r.passport), Some(&renewed));
    });
}

#[test]
fn a_passport_renewal_is_refused_for_another_agent_an_unknown_one_or_a_retired_one() {
    let federation = KeyPair::generate();
    let agent = AgentId::new("echo").unwrap();
    let registered = registered(passport(&federation, &agent, &["echo"]));
    let renewal =
        AgentEvent::PassportRenewed(PassportRenewed { passport: passport(&federation, &agent, &["echo"]) });
    let stranger = AgentEvent::PassportRenewed(PassportRenewed {
        passport: passport(&federation, &AgentId::new("other").unwrap(), &["echo"]),
    });
    let refused = TestHarness::<AgentState>::given([registered.clone()])
        .when(stranger)
        .then_refused_with("the passport is for another agent");
    assert_eq!((refused.entity, refused.event_type.as_str()), ("agent", "passport_renewed"));
    TestHarness::<AgentState>::given([]).when(renewal.clone()).then_refused_with("not registered");
    let retired = AgentEvent::Retired(AgentRetired { reason: "replaced".into(), by: "ops".into() });
    TestHarness::<AgentState>::given([registered, retired])
        .when(renewal)
        .then_refused_with("the agent is retired");
}

#[test]
fn typed_events_round_trip_through_the_log_shape() {
    let world = World::new();
    for event in world.happy_path() {
        let new = event.to_new_event(EventId::new(), Metadata::now("test")).unwrap();
        let decoded = TaskEvent::from_payload(&new.event_type, new.schema_version, &new.payload).unwrap();
        assert_eq!(decoded, event);
        // JSON for humans decodes to the same event.
        let json = event.to_json().unwrap();
        assert_eq!(TaskEvent::from_json(&new.event_type, json).unwrap(), event);
    }
    let unknown = EventType::new("task_exploded").unwrap();
    assert!(matches!(TaskEvent::from_payload(&unknown, 1, &[]), Err(Error::UnknownEventType { .. })));
    let submitted = EventType::new("task_submitted").unwrap();
    assert!(matches!(
        TaskEvent::from_payload(&submitted, 9, &[]),
        Err(Error::UnsupportedSchemaVersion { .. })
    ));
    assert!(matches!(TaskEvent::from_payload(&submitted, 2, b"\xc1garbage"), Err(Error::Decode { .. })));
}

#[test]
fn task_submitted_v1_is_upcast_on_read() {
    let world = World::new();
    let TaskEvent::Submitted(current) = world.submitted() else { unreachable!() };
    // A v1 payload as an older build wrote it: timeout in whole seconds, no attempt budget.
    let v1 = json!({
        "task_id": current.task_id,
        "spec": {
            "capability": "echo",
            "description": "say hi",
            "input": null,
            "timeout_secs": 12,
            "submitter": "",
        },
        "channel": "local",
        "signed_by": current.signed_by,
        "signature": current.signature,
    });
    let payload = codec::to_msgpack(&v1).unwrap();
    let event_type = EventType::new("task_submitted").unwrap();
    let TaskEvent::Submitted(upcast) = TaskEvent::from_payload(&event_type, 1, &payload).unwrap() else {
        panic!("upcast to another type")
    };
    assert_eq!(upcast.spec.timeout_ms, 12_000);
    assert_eq!(upcast.spec.max_attempts, 1);
    assert_eq!(upcast.spec.description, "say hi");
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "[a-z0-9 ]{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn canonical_msgpack_round_trips_and_is_deterministic(input in json_value(), description in ".{0,40}") {
        let mut spec = TaskSpec::new("echo", description);
        spec.input = input;
        let bytes = codec::to_msgpack(&spec).unwrap();
        let back: TaskSpec = codec::from_msgpack(&bytes).unwrap();
        prop_assert_eq!(&back, &spec);
        // Equal values encode to equal bytes, whatever order their maps were built in.
        let rebuilt: TaskSpec = codec::from_json(&serde_json::to_string(&spec).unwrap()).unwrap();
        prop_assert_eq!(codec::to_msgpack(&rebuilt).unwrap(), bytes);
    }

    #[test]
    fn decoding_garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let event_type = EventType::new("task_submitted").unwrap();
        let _ = TaskEvent::from_payload(&event_type, 2, &bytes);
        let _ = TaskEvent::from_payload(&event_type, 1, &bytes);
    }
}

#[test]
fn the_final_event_types_are_exactly_the_events_that_end_a_task() {
    let enders = [
        TaskEvent::Completed(TaskCompleted { agent_id: AgentId::new("a").unwrap(), output: json!(1) }),
        TaskEvent::Failed(TaskFailed { code: FailureCode::Internal, reason: "x".into() }),
        TaskEvent::Rejected(TaskRejected {
            code: RejectionCode::InvalidSubmission,
            reason: "x".into(),
            findings: Vec::new(),
        }),
        TaskEvent::Cancelled(TaskCancelled { by: "a".into(), reason: String::new() }),
    ];
    let mut types: Vec<String> = enders.iter().map(|e| e.event_type().to_string()).collect();
    types.sort();
    let mut listed: Vec<String> = FINAL_EVENT_TYPES.iter().map(|t| t.to_string()).collect();
    listed.sort();
    assert_eq!(types, listed);
}

#[test]
fn event_kinds_name_every_type_once_and_list_the_final_ones() {
    use events::DomainEvent;
    let names: Vec<&str> = TaskEventKind::ALL.iter().map(|k| k.as_str()).collect();
    let types: Vec<&str> = TaskEvent::TYPES.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, types);
    for kind in TaskEventKind::ALL {
        assert_eq!(TaskEventKind::of(kind.as_str()), Some(*kind));
        assert_eq!(kind.is_final(), TaskEventKind::FINAL.contains(kind), "{kind}");
    }
    assert_eq!(TaskEventKind::of("agent_registered"), None);
    assert_eq!(events::AgentEventKind::of("agent_registered"), Some(events::AgentEventKind::Registered));
    assert_eq!(FINAL_EVENT_TYPES, ["task_completed", "task_failed", "task_rejected", "task_cancelled"]);
}

#[test]
fn a_spec_outside_the_shared_limits_says_which_field_and_why() {
    assert_eq!(TaskSpec::new("echo", "say hi").check(), Ok(()));
    let field = |edit: &dyn Fn(&mut TaskSpec)| {
        let mut spec = TaskSpec::new("echo", "say hi");
        edit(&mut spec);
        spec.check().map_err(|p| (p.field, p.message))
    };
    let (f, m) = field(&|s| s.capability = String::new()).unwrap_err();
    assert_eq!((f, m.contains("1 to 128 characters")), ("capability", true));
    assert_eq!(field(&|s| s.capability = "c".repeat(129)).unwrap_err().0, "capability");
    assert_eq!(field(&|s| s.capability = "c".repeat(128)), Ok(()));
    assert_eq!(field(&|s| s.description = " \n".into()).unwrap_err().0, "description");
    assert_eq!(field(&|s| s.timeout_ms = 0).unwrap_err().0, "timeout_ms");
    assert_eq!(field(&|s| s.timeout_ms = TASK_TIMEOUT_MS_MAX + 1).unwrap_err().0, "timeout_ms");
    assert_eq!(field(&|s| s.timeout_ms = TASK_TIMEOUT_MS_MAX), Ok(()));
    assert_eq!(field(&|s| s.max_attempts = TASK_ATTEMPTS_MAX + 1).unwrap_err().0, "max_attempts");
    let many = |s: &mut TaskSpec| {
        s.labels = (0..=LABEL_COUNT_MAX).map(|i| (format!("k{i}"), "v".to_string())).collect();
    };
    assert_eq!(field(&many).unwrap_err().0, "labels");
    assert_eq!(
        field(&|s| {
            s.labels.insert(String::new(), "v".into());
        })
        .unwrap_err()
        .0,
        "labels"
    );
    assert_eq!(
        field(&|s| {
            s.labels.insert("k".into(), "v".repeat(LABEL_BYTES_MAX + 1));
        })
        .unwrap_err()
        .0,
        "labels"
    );
}
