//! The SQLite log's subscription group: members are durable subscriptions named as the
//! members, their acknowledgements are queued for the writer instead of awaited, and what a
//! member acknowledged is stored with the next commit.

use std::sync::Arc;
use std::time::Duration;

use events::{
    EventId, EventLog, EventType, ExpectedVersion, Filter, LogError, Metadata, NewEvent, Position, StartFrom,
    StreamId, SubscribeOptions, SubscriptionGroup,
};

fn event(kind: &str) -> NewEvent {
    NewEvent {
        id: EventId::new(),
        event_type: EventType::new(kind).unwrap(),
        schema_version: 1,
        payload: vec![1, 2, 3],
        metadata: Metadata::now("test"),
    }
}

fn member(types: &[&str]) -> SubscribeOptions {
    SubscribeOptions {
        filter: Filter::category("task").with_types(types.iter().map(|t| EventType::new(*t).unwrap())),
        start: StartFrom::Beginning,
    }
}

fn members() -> Vec<(String, SubscribeOptions)> {
    vec![("phase-a".into(), member(&["a"])), ("phase-b".into(), member(&["b"]))]
}

async fn open_log() -> (tempfile::TempDir, String, Arc<dyn EventLog>) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("log.db").display());
    let log = store::open(&url).await.unwrap();
    (dir, url, log)
}

async fn group(log: &Arc<dyn EventLog>) -> Arc<dyn SubscriptionGroup> {
    log.subscribe_group("phases", &members()).await.unwrap().expect("SQLite serves groups")
}

/// The checkpoint stored for `name`, read by a connection of its own.
async fn stored_checkpoint(url: &str, name: &str) -> Option<i64> {
    let pool = sqlx::SqlitePool::connect(url).await.unwrap();
    sqlx::query_scalar("SELECT checkpoint FROM subscriptions WHERE name = $1")
        .bind(name)
        .fetch_optional(&pool)
        .await
        .unwrap()
}

/// Waits (at most a few seconds) until `name`'s stored checkpoint is at least `at_least`.
async fn wait_for_checkpoint(url: &str, name: &str, at_least: Position) -> i64 {
    let mut last = None;
    for _ in 0..100 {
        last = stored_checkpoint(url, name).await;
        if last.is_some_and(|c| c >= i64::try_from(at_least).unwrap()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    last.unwrap_or(-1)
}

#[tokio::test]
async fn members_take_their_events_and_store_what_they_acknowledge() {
    let (_dir, url, log) = open_log().await;
    let stream = StreamId::new("task-one").unwrap();
    log.append(&stream, ExpectedVersion::NoStream, vec![event("a"), event("b"), event("a"), event("c")])
        .await
        .unwrap();
    let group = group(&log).await;
    let mut a = group.member("phase-a").await.unwrap();
    let mut b = group.member("phase-b").await.unwrap();
    let first = a.next().await.unwrap().event;
    let second = a.next().await.unwrap().event;
    assert_eq!((first.event_type.as_str(), second.event_type.as_str()), ("a", "a"));
    assert_eq!((first.version, second.version), (1, 3));
    let only_b = b.next().await.unwrap().event;
    assert_eq!((only_b.event_type.as_str(), only_b.version), ("b", 2));

    // Acknowledged without waiting for the commit; stored by the writer's next commit.
    a.ack(first.position).await.unwrap();
    a.ack(second.position).await.unwrap();
    b.ack(only_b.position).await.unwrap();
    let head = second.position.max(only_b.position);
    assert!(
        wait_for_checkpoint(&url, "phase-a", second.position).await >= 3,
        "member a's checkpoint is stored"
    );
    assert!(
        wait_for_checkpoint(&url, "phase-b", only_b.position).await >= 2,
        "member b's checkpoint is stored"
    );

    // A member dropped and opened again resumes after what it acknowledged.
    drop(a);
    let mut a = group.member("phase-a").await.unwrap();
    log.append(&stream, ExpectedVersion::Exact(4), vec![event("a")]).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), a.next()).await.expect("delivered").unwrap();
    assert_eq!(next.event.version, 5, "nothing acknowledged comes again");
    assert!(next.event.position > head);

    // The member is an ordinary durable subscription under its name.
    drop(a);
    let mut plain = log.subscribe("phase-a", member(&["a"])).await.unwrap();
    let again = tokio::time::timeout(Duration::from_secs(5), plain.next()).await.expect("delivered").unwrap();
    assert_eq!(again.event.version, 5, "the plain subscription resumes where the member stopped");
}

#[tokio::test]
async fn a_member_is_open_once_at_a_time() {
    let (_dir, _url, log) = open_log().await;
    let group = group(&log).await;
    let open = group.member("phase-a").await.unwrap();
    assert!(group.member("phase-a").await.is_err(), "a second handle on an open member is refused");
    drop(open);
    group.member("phase-a").await.expect("open again once dropped");
    assert!(matches!(group.member("phase-z").await, Err(LogError::InvalidSubscriptionName { .. })));
}

#[tokio::test]
async fn bad_groups_are_refused() {
    let (_dir, _url, log) = open_log().await;
    let refused = |result: Result<Option<Arc<dyn SubscriptionGroup>>, LogError>| {
        assert!(result.is_err(), "refused");
    };
    refused(log.subscribe_group("empty", &[]).await);
    refused(
        log.subscribe_group("twice", &[("a".into(), member(&["a"])), ("a".into(), member(&["b"]))]).await,
    );
    refused(log.subscribe_group("bad name", &members()).await);
    refused(log.subscribe_group("phases", &[("bad member".into(), member(&["a"]))]).await);
    let no_category = SubscribeOptions { filter: Filter::category("Task"), start: StartFrom::Beginning };
    refused(log.subscribe_group("phases", &[("a".into(), no_category)]).await);
}

#[tokio::test]
async fn a_queued_acknowledgement_does_not_bring_a_deleted_subscription_back() {
    let (_dir, url, log) = open_log().await;
    let stream = StreamId::new("task-two").unwrap();
    log.append(&stream, ExpectedVersion::NoStream, vec![event("a")]).await.unwrap();
    let group = group(&log).await;
    let mut a = group.member("phase-a").await.unwrap();
    let delivered = a.next().await.unwrap().event;
    drop(a);
    assert!(log.delete_subscription("phase-a").await.unwrap());
    // A member handle left over acknowledges after the deletion (its checkpoint is queued).
    let mut stale = group.member("phase-a").await.unwrap();
    let again = stale.next().await.unwrap().event;
    assert_eq!(again.position, delivered.position, "a fresh subscription starts over");
    assert!(log.delete_subscription("phase-a").await.unwrap());
    stale.ack(again.position).await.unwrap();
    // Let the writer commit something after the queued checkpoint.
    log.append(&stream, ExpectedVersion::Exact(1), vec![event("c")]).await.unwrap();
    assert_eq!(stored_checkpoint(&url, "phase-a").await, None, "the deleted subscription stays deleted");
}
