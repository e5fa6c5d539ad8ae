//! Reading a stream back along the `Pantheon-Previous-Sequence` links: streams whose events lie
//! far apart in JetStream read whole from any version, and a stream with events written
//! without links (another producer's, or garbage) is still read whole, forward.

use bytes::Bytes;
use events::{EventId, EventLog, EventType, ExpectedVersion, Metadata, NewEvent, StreamId};
use nats::layout::{HEADER_PREVIOUS_SEQUENCE, event_headers};
use nats::{NatsLog, NatsLogConfig};
use testkit::nats_server::NatsServer;

fn event(body: &str) -> NewEvent {
    NewEvent {
        id: EventId::new(),
        event_type: EventType::new("note").unwrap(),
        schema_version: 1,
        payload: rmp_serde::to_vec_named(&body).unwrap(),
        metadata: Metadata::now("read-back-test"),
    }
}

fn versions(events: &[events::RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.version).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interleaved_streams_read_whole_from_any_version() {
    let server = NatsServer::start().unwrap();
    let log = NatsLog::connect(NatsLogConfig::new(server.url())).await.unwrap();
    let streams: Vec<StreamId> = (0..40).map(|i| StreamId::new(format!("task-s{i}")).unwrap()).collect();
    let mut written: Vec<Vec<EventId>> = vec![Vec::new(); streams.len()];
    // Round after round, one event per stream: each stream's events lie 40 sequences apart.
    for round in 0..12 {
        for (stream, ids) in streams.iter().zip(written.iter_mut()) {
            let event = event(&format!("{stream} {round}"));
            ids.push(event.id);
            log.append(stream, ExpectedVersion::Exact(round), vec![event]).await.unwrap();
        }
    }
    // The link names the previous event of the same stream.
    let first = log.read_stream(&streams[7], 1, 2).await.unwrap();
    let raw =
        log.jetstream().get_stream("PANTHEON").await.unwrap().direct_get(first[1].position).await.unwrap();
    let link = raw.headers.get(HEADER_PREVIOUS_SEQUENCE).map(|v| v.as_str().to_string());
    assert_eq!(link, Some(first[0].position.to_string()));
    assert!(first[0].position + 39 < first[1].position);

    for (stream, ids) in streams.iter().zip(&written) {
        for from in [1, 2, 6, 12] {
            let read = log.read_stream(stream, from, 100).await.unwrap();
            assert_eq!(versions(&read), (from..=12).collect::<Vec<_>>(), "{stream} from {from}");
            let read_ids: Vec<EventId> = read.iter().map(|e| e.id).collect();
            assert_eq!(read_ids, ids[from as usize - 1..].to_vec(), "{stream} from {from}");
            assert!(read.iter().all(|e| e.stream_id == *stream));
        }
        let limited = log.read_stream(stream, 3, 4).await.unwrap();
        assert_eq!(versions(&limited), vec![3, 4, 5, 6]);
        assert!(log.read_stream(stream, 13, 10).await.unwrap().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_without_links_and_foreign_messages_are_read_forward() {
    let server = NatsServer::start().unwrap();
    let log = NatsLog::connect(NatsLogConfig::new(server.url())).await.unwrap();
    let stream = StreamId::new("task-mixed").unwrap();
    let subject = "pantheon.task.mixed";
    let js = log.jetstream();
    // Versions 1 and 2 from a producer that writes no links.
    let older = [event("one"), event("two")];
    for (version, event) in (1..).zip(&older) {
        let headers = event_headers(event, version);
        js.publish_with_headers(subject.to_string(), headers, Bytes::from(event.payload.clone()))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    // Versions 3 and 4 from Pantheon, then garbage on the subject, then version 5.
    let newer = [event("three"), event("four"), event("five")];
    log.append(&stream, ExpectedVersion::Exact(2), newer[..2].to_vec()).await.unwrap();
    js.publish(subject.to_string(), Bytes::from_static(b"garbage")).await.unwrap().await.unwrap();
    log.append(&stream, ExpectedVersion::Exact(4), vec![newer[2].clone()]).await.unwrap();

    let all: Vec<EventId> = older.iter().chain(&newer).map(|e| e.id).collect();
    for from in 1..=5u64 {
        let read = log.read_stream(&stream, from, 100).await.unwrap();
        assert_eq!(versions(&read), (from..=5).collect::<Vec<_>>(), "from {from}");
        let read_ids: Vec<EventId> = read.iter().map(|e| e.id).collect();
        assert_eq!(read_ids, all[from as usize - 1..].to_vec(), "from {from}");
    }
}
