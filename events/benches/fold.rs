//! Fold speed: rebuilding a 10,000-event task from its MessagePack payloads.
//! Run with `cargo bench -p events --bench fold`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use events::task::*;
use events::*;
use serde_json::json;

const TASK_EVENTS: usize = 10_000;

/// A task's stream: submission through a running attempt, then progress reports.
fn stream() -> Vec<(EventType, u32, Vec<u8>)> {
    let federation = KeyPair::from_seed([1; 32]);
    let task = TaskId::new();
    let agent = AgentId::new("echo").unwrap();
    let signed = SignedSubmission::sign(task, TaskSpec::new("echo", "benchmark"), &federation).unwrap();
    let envelope = SealedEnvelope::seal(
        TaskEnvelope {
            task_id: task,
            attempt: 1,
            agent_id: agent.clone(),
            capability: "echo".into(),
            description: "benchmark".into(),
            input: json!({"n": 1}),
            context: json!({}),
            issued_at_ms: 0,
            expires_at_ms: i64::MAX,
        },
        &federation,
    )
    .unwrap();
    let mut events = vec![
        TaskEvent::Submitted(TaskSubmitted {
            task_id: task,
            spec: signed.spec,
            channel: Channel::Local,
            signed_by: signed.signed_by,
            signature: signed.signature,
        }),
        TaskEvent::IngressScreened(IngressScreened { findings: vec![], redacted_description: None }),
        TaskEvent::ContextGathered(ContextGathered {
            similar_tasks: vec![],
            best_practices: vec![],
            pitfalls: vec![],
            complexity: 0.5,
            sources: vec![],
        }),
        TaskEvent::AgentSelected(AgentSelected { agent_id: agent.clone(), attempt: 1, candidates: vec![] }),
        TaskEvent::EnvelopeSealed(EnvelopeSealed { envelope }),
        TaskEvent::ExecutionStarted(ExecutionStarted { agent_id: agent.clone(), attempt: 1 }),
    ];
    while events.len() < TASK_EVENTS {
        let percent = (events.len() * 100 / TASK_EVENTS) as u8;
        events.push(TaskEvent::ProgressReported(ProgressReported {
            agent_id: agent.clone(),
            attempt: 1,
            percent: Some(percent),
            message: "working".into(),
        }));
    }
    events
        .iter()
        .map(|e| (EventType::new(e.event_type()).unwrap(), e.schema_version(), e.to_payload().unwrap()))
        .collect()
}

fn fold(c: &mut Criterion) {
    let stream = stream();
    let mut group = c.benchmark_group("fold");
    group.throughput(Throughput::Elements(TASK_EVENTS as u64));
    group.bench_function("task_10k_events_from_msgpack", |b| {
        b.iter(|| {
            let mut state = TaskState::default();
            for (event_type, version, payload) in &stream {
                let event = TaskEvent::from_payload(event_type, *version, payload).unwrap();
                state.apply(&event).unwrap();
            }
            assert_eq!(state.version as usize, TASK_EVENTS);
            state
        })
    });
    group.finish();
}

criterion_group!(benches, fold);
criterion_main!(benches);
