//! Group commit on SQLite: appends queued together share one transaction, yet each is judged
//! on its own — a conflict, a duplicate or a repeated event id refuses that append only, and
//! later appends of a group see the earlier ones.

use std::sync::Arc;

use events::{EventId, EventLog, EventType, ExpectedVersion, LogError, Metadata, NewEvent, StreamId};

fn event() -> NewEvent {
    NewEvent {
        id: EventId::new(),
        event_type: EventType::new("happened").unwrap(),
        schema_version: 1,
        payload: vec![1, 2, 3],
        metadata: Metadata::now("test"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_of_one_group_are_judged_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("log.db").display());
    let log: Arc<dyn EventLog> = store::open(&url).await.unwrap();
    let taken = event();
    let racing = StreamId::new("race-1").unwrap();

    // Many appends at once, so that they queue while a group commits: fresh streams (all
    // written), racers for one stream's first version (one wins), and re-appends of one batch
    // (one writes, the others are duplicates).
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..64 {
        let log = Arc::clone(&log);
        let taken = taken.clone();
        let racing = racing.clone();
        calls.spawn(async move {
            match i % 3 {
                0 => {
                    let stream = StreamId::new(format!("fresh-{i}")).unwrap();
                    ("fresh", log.append(&stream, ExpectedVersion::NoStream, vec![event(), event()]).await)
                }
                1 => ("race", log.append(&racing, ExpectedVersion::NoStream, vec![event()]).await),
                _ => {
                    let stream = StreamId::new("again-1").unwrap();
                    ("again", log.append(&stream, ExpectedVersion::Any, vec![taken]).await)
                }
            }
        });
    }
    let (mut race_won, mut race_lost, mut written_again, mut duplicates) = (0, 0, 0, 0);
    while let Some(done) = calls.join_next().await {
        match done.unwrap() {
            ("fresh", outcome) => {
                let outcome = outcome.unwrap();
                assert_eq!((outcome.first_version, outcome.last_version, outcome.duplicate), (1, 2, false));
            }
            ("race", Ok(outcome)) => {
                assert!(!outcome.duplicate);
                race_won += 1;
            }
            ("race", Err(LogError::Conflict { actual: 1, .. })) => race_lost += 1,
            ("again", Ok(outcome)) if outcome.duplicate => duplicates += 1,
            ("again", Ok(_)) => written_again += 1,
            (kind, other) => panic!("unexpected answer to a {kind} append: {other:?}"),
        }
    }
    assert_eq!((race_won, race_lost), (1, 20), "exactly one racer gets version 1");
    assert_eq!((written_again, duplicates), (1, 20), "one batch is written once");
    assert_eq!(log.stream_version(&racing).await.unwrap(), 1);
    assert_eq!(log.stream_version(&StreamId::new("again-1").unwrap()).await.unwrap(), 1);

    // A later event id already recorded refuses only its own append.
    let stream = StreamId::new("mixed-1").unwrap();
    let other = StreamId::new("mixed-2").unwrap();
    let (a, b) = tokio::join!(
        log.append(&stream, ExpectedVersion::NoStream, vec![event(), taken.clone()]),
        log.append(&other, ExpectedVersion::NoStream, vec![event()]),
    );
    assert!(matches!(a, Err(LogError::DuplicateEventId { event_id }) if event_id == taken.id), "{a:?}");
    assert_eq!(b.unwrap().last_version, 1);
    assert_eq!(log.stream_version(&stream).await.unwrap(), 0, "the refused batch wrote nothing");

    // Everything acknowledged survives a reopen.
    drop(log);
    let log = store::open(&url).await.unwrap();
    for i in (0..64).step_by(3) {
        let stream = StreamId::new(format!("fresh-{i}")).unwrap();
        assert_eq!(log.stream_version(&stream).await.unwrap(), 2);
    }
}
