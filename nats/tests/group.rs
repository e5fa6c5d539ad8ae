//! Subscription groups on a real nats-server: one consumer serves several members, each event
//! goes to the member whose filter it passes (or is settled when none wants it), a dropped
//! member gets back what it held when opened again, and a group opened again after a restart
//! delivers what was not acknowledged.

use std::sync::Arc;
use std::time::Duration;

use events::{
    Delivery, EventId, EventLog, EventType, ExpectedVersion, Filter, LogError, Metadata, NewEvent, StartFrom,
    StreamId, SubscribeOptions, Subscription, SubscriptionGroup,
};
use nats::{NatsLog, NatsLogConfig};
use testkit::nats_server::NatsServer;

async fn log(server: &NatsServer) -> Arc<NatsLog> {
    let config = NatsLogConfig {
        ack_wait: Duration::from_secs(2),
        redelivery_backoff: vec![Duration::from_secs(2)],
        require_msgpack_payload: false,
        ..NatsLogConfig::new(server.url())
    };
    Arc::new(NatsLog::connect(config).await.expect("connect"))
}

fn event(kind: &str) -> NewEvent {
    NewEvent {
        id: EventId::new(),
        event_type: EventType::new(kind).expect("type"),
        schema_version: 1,
        payload: kind.as_bytes().to_vec(),
        metadata: Metadata::now("group-test"),
    }
}

fn member(types: &[&str]) -> SubscribeOptions {
    SubscribeOptions {
        filter: Filter::category("job").with_types(types.iter().map(|t| EventType::new(*t).expect("type"))),
        start: StartFrom::Beginning,
    }
}

fn members() -> Vec<(String, SubscribeOptions)> {
    vec![("first".into(), member(&["a"])), ("second".into(), member(&["b", "c"]))]
}

async fn group(log: &NatsLog) -> Arc<dyn SubscriptionGroup> {
    log.subscribe_group("workers", &members()).await.expect("group").expect("JetStream has groups")
}

async fn next(subscription: &mut Box<dyn Subscription>) -> Delivery {
    tokio::time::timeout(Duration::from_secs(10), subscription.next())
        .await
        .expect("a delivery in time")
        .expect("a delivery")
}

/// Nothing more arrives within a short wait.
async fn nothing_more(subscription: &mut Box<dyn Subscription>) {
    let more = tokio::time::timeout(Duration::from_millis(300), subscription.next()).await;
    assert!(more.is_err(), "nothing else is delivered: {more:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_event_goes_to_its_member_once() {
    let server = NatsServer::start().expect("nats-server");
    let log = log(&server).await;
    let stream = StreamId::new("job-1").expect("stream");
    let sent = vec![event("a"), event("b"), event("x"), event("c"), event("a")];
    log.append(&stream, ExpectedVersion::NoStream, sent.clone()).await.expect("append");
    let other = StreamId::new("other-1").expect("stream");
    log.append(&other, ExpectedVersion::NoStream, vec![event("a")]).await.expect("append elsewhere");

    let group = group(&log).await;
    let mut first = group.member("first").await.expect("first");
    let mut second = group.member("second").await.expect("second");
    let mut got_first = Vec::new();
    for _ in 0..2 {
        let delivery = next(&mut first).await;
        got_first.push(delivery.event.id);
        first.ack(delivery.event.position).await.expect("ack");
    }
    let mut got_second = Vec::new();
    for _ in 0..2 {
        let delivery = next(&mut second).await;
        got_second.push(delivery.event.id);
        second.ack(delivery.event.position).await.expect("ack");
    }
    assert_eq!(got_first, vec![sent[0].id, sent[4].id], "the a events, in order");
    assert_eq!(got_second, vec![sent[1].id, sent[3].id], "the b and c events, in order");
    nothing_more(&mut first).await;
    nothing_more(&mut second).await;

    // A member is open once at a time; an unknown one is refused.
    assert!(group.member("first").await.is_err(), "open already");
    assert!(matches!(group.member("third").await, Err(LogError::InvalidSubscriptionName { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_member_gets_back_what_it_held() {
    let server = NatsServer::start().expect("nats-server");
    let log = log(&server).await;
    let stream = StreamId::new("job-2").expect("stream");
    let sent = vec![event("a"), event("a"), event("a")];
    log.append(&stream, ExpectedVersion::NoStream, sent.clone()).await.expect("append");
    let group = group(&log).await;

    let mut first = group.member("first").await.expect("first");
    let one = next(&mut first).await;
    first.ack(one.event.position).await.expect("ack");
    let held = next(&mut first).await; // delivered, never acknowledged
    assert_eq!(held.event.id, sent[1].id);
    drop(first);

    // Reopened (a restarted phase): the held event comes back, then the rest; the
    // acknowledged one does not.
    let mut first = group.member("first").await.expect("first again");
    let mut ids = Vec::new();
    for _ in 0..2 {
        let delivery = next(&mut first).await;
        ids.push(delivery.event.id);
        first.ack(delivery.event.position).await.expect("ack");
    }
    ids.sort();
    let mut want = vec![sent[1].id, sent[2].id];
    want.sort();
    assert_eq!(ids, want);
    nothing_more(&mut first).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_opened_again_resumes_and_redelivers() {
    let server = NatsServer::start().expect("nats-server");
    let stream = StreamId::new("job-3").expect("stream");
    let sent = vec![event("a"), event("b"), event("a")];
    {
        let log = log(&server).await;
        log.append(&stream, ExpectedVersion::NoStream, sent.clone()).await.expect("append");
        let group = group(&log).await;
        let mut first = group.member("first").await.expect("first");
        let acked = next(&mut first).await;
        first.ack(acked.event.position).await.expect("ack");
        let nacked = next(&mut first).await;
        first.nack(nacked.event.position).await.expect("nack");
        let again = next(&mut first).await;
        assert_eq!(again.event.id, sent[2].id, "a refused event comes back");
        assert_eq!(again.attempt, 2);
        // `b` was routed to `second`, which nobody opened: it stays unacknowledged.
    }
    // A new process: the acknowledged event is gone, the rest is delivered.
    let log = log(&server).await;
    let group = group(&log).await;
    let mut first = group.member("first").await.expect("first");
    let mut second = group.member("second").await.expect("second");
    let redelivered = next(&mut first).await;
    assert_eq!(redelivered.event.id, sent[2].id);
    first.ack(redelivered.event.position).await.expect("ack");
    let b = next(&mut second).await;
    assert_eq!(b.event.id, sent[1].id);
    second.ack(b.event.position).await.expect("ack");
    nothing_more(&mut first).await;
    nothing_more(&mut second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_that_cannot_work_are_refused() {
    let server = NatsServer::start().expect("nats-server");
    let log = log(&server).await;
    let refused = |result: Result<Option<Arc<dyn SubscriptionGroup>>, LogError>| match result {
        Err(error) => assert!(error.is_bad_input(), "{error}"),
        Ok(_) => panic!("accepted"),
    };
    refused(log.subscribe_group("empty", &[]).await);
    refused(
        log.subscribe_group("twice", &[("a".into(), member(&["a"])), ("a".into(), member(&["b"]))]).await,
    );
    refused(log.subscribe_group("bad name", &members()).await);
    let mut late = member(&["b"]);
    late.start = StartFrom::End;
    refused(log.subscribe_group("starts", &[("a".into(), member(&["a"])), ("b".into(), late)]).await);
}

/// An event a process holds longer than the ack wait (an agent working for minutes) is not
/// delivered to another process of the group meanwhile: the holder reports it in progress.
/// Once the holder is gone, it comes back to the other one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_held_past_the_ack_wait_is_not_delivered_elsewhere() {
    let server = NatsServer::start().expect("nats-server");
    let (one, two) = (log(&server).await, log(&server).await);
    let stream = StreamId::new("job-held").expect("stream");
    one.append(&stream, ExpectedVersion::NoStream, vec![event("a")]).await.expect("append");
    let first_group = group(&one).await;
    let mut holder = first_group.member("first").await.expect("first");
    let held = next(&mut holder).await;
    let second_group = group(&two).await;
    let mut other = second_group.member("first").await.expect("first, elsewhere");
    // Three ack waits (2 s each) pass while the first process holds it.
    let elsewhere = tokio::time::timeout(Duration::from_secs(6), other.next()).await;
    assert!(elsewhere.is_err(), "delivered elsewhere while held: {elsewhere:?}");
    drop(holder);
    drop(first_group);
    let again = next(&mut other).await;
    assert_eq!(again.event.id, held.event.id);
    assert!(again.attempt >= 2, "a redelivery: {}", again.attempt);
}
