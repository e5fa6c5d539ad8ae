//! Faults: nats-server killed and restarted in the middle of 10,000 appends while a subscriber
//! runs; then the same with the subscriber's side killed and reopened under the same durable
//! name. Publisher and subscriber reconnect by themselves, no acknowledged append is lost, and
//! after dedupe by event id the application sees every event once.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use events::{
    EventId, EventLog, EventType, ExpectedVersion, Filter, LogError, Metadata, NewEvent, StartFrom, StreamId,
    SubscribeOptions, Subscription,
};
use nats::{NatsLog, NatsLogConfig};
use testkit::nats_server::NatsServer;
use tokio::sync::Mutex;

const APPENDS: usize = 10_000;
const STREAMS: usize = 50;
const SUBSCRIPTION: &str = "faults";
const DEADLINE: Duration = Duration::from_secs(240);

/// How long the server stays down: longer than the request timeout (2 s), so an append in
/// flight when it dies fails rather than being carried over the reconnect by the client's
/// buffer and answered after it (a shorter outage sometimes went unnoticed by the publisher).
const OUTAGE: Duration = Duration::from_millis(2_500);

fn config(url: String) -> NatsLogConfig {
    NatsLogConfig {
        ack_wait: Duration::from_secs(2),
        redelivery_backoff: vec![Duration::from_secs(2)],
        request_timeout: Duration::from_secs(2),
        ..NatsLogConfig::new(url)
    }
}

fn new_event(i: usize) -> NewEvent {
    NewEvent {
        id: EventId::new(),
        event_type: EventType::new("load_applied").unwrap(),
        schema_version: 1,
        payload: rmp_serde::to_vec_named(&i).unwrap(),
        metadata: Metadata::now("faults"),
    }
}

/// Appends `APPENDS` events, retrying each (same event, same id) until acknowledged; returns
/// the acknowledged ids.
async fn publish(log: Arc<NatsLog>, appended: Arc<AtomicUsize>) -> (Vec<EventId>, usize) {
    let streams: Vec<StreamId> =
        (0..STREAMS).map(|_| StreamId::new(format!("load-{}", EventId::new().0.simple())).unwrap()).collect();
    let mut acknowledged = Vec::with_capacity(APPENDS);
    let mut failures = 0;
    for i in 0..APPENDS {
        let event = new_event(i);
        let mut retries = 0;
        loop {
            match log.append(&streams[i % STREAMS], ExpectedVersion::Any, vec![event.clone()]).await {
                Ok(_) => break,
                Err(LogError::Backend(error)) => {
                    retries += 1;
                    failures += 1;
                    assert!(retries < 600, "append {i} kept failing: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(other) => panic!("append {i}: {other}"),
            }
        }
        acknowledged.push(event.id);
        appended.fetch_add(1, Ordering::SeqCst);
    }
    (acknowledged, failures)
}

/// Delivers, records and acknowledges until `stop` says all expected ids were seen.
async fn consume(
    mut subscription: Box<dyn Subscription>,
    seen: Arc<Mutex<(HashSet<EventId>, usize)>>,
    limit: Option<usize>,
) -> Box<dyn Subscription> {
    let mut handled = 0;
    loop {
        if limit.is_some_and(|limit| handled >= limit) {
            return subscription;
        }
        let delivery = match tokio::time::timeout(Duration::from_secs(1), subscription.next()).await {
            Ok(Ok(delivery)) => delivery,
            Ok(Err(_)) | Err(_) => {
                if seen.lock().await.0.len() >= APPENDS {
                    return subscription;
                }
                continue;
            }
        };
        {
            let mut seen = seen.lock().await;
            if !seen.0.insert(delivery.event.id) {
                seen.1 += 1; // a redelivery, dropped by the application's dedupe
            }
        }
        // An ack lost to the restart only means a redelivery later.
        let _ = subscription.ack(delivery.event.position).await;
        handled += 1;
    }
}

async fn wait_until(what: &str, start: Instant, mut done: impl AsyncFnMut() -> bool) {
    while !done().await {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn check_log(log: &NatsLog, acknowledged: &[EventId]) {
    let mut recorded = Vec::new();
    let mut from = 0;
    loop {
        let page = log.read_all(from, 5_000).await.unwrap();
        let Some(last) = page.last() else { break };
        from = last.position + 1;
        recorded.extend(page.into_iter().map(|e| e.id));
    }
    let unique: HashSet<EventId> = recorded.iter().copied().collect();
    assert_eq!(unique.len(), recorded.len(), "the log holds no event twice");
    for id in acknowledged {
        assert!(unique.contains(id), "acknowledged event {id} was lost");
    }
    assert_eq!(recorded.len(), APPENDS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_restart_during_appends_loses_nothing() {
    let server = Arc::new(std::sync::Mutex::new(NatsServer::start().unwrap()));
    let url = server.lock().unwrap().url();
    let log = Arc::new(NatsLog::connect(config(url.clone())).await.unwrap());
    let options = SubscribeOptions { filter: Filter::category("load"), start: StartFrom::Beginning };
    let subscription = log.subscribe(SUBSCRIPTION, options).await.unwrap();
    let seen = Arc::new(Mutex::new((HashSet::new(), 0usize)));
    let consumer = tokio::spawn(consume(subscription, seen.clone(), None));
    let appended = Arc::new(AtomicUsize::new(0));
    let publisher = tokio::spawn(publish(log.clone(), appended.clone()));

    let start = Instant::now();
    wait_until("half the appends", start, async || appended.load(Ordering::SeqCst) >= APPENDS / 2).await;
    let restart = server.clone();
    tokio::task::spawn_blocking(move || {
        let mut server = restart.lock().unwrap();
        server.kill();
        std::thread::sleep(OUTAGE);
        server.resume().unwrap();
    })
    .await
    .unwrap();

    let (acknowledged, failures) = publisher.await.unwrap();
    assert!(failures > 0, "the restart happened while appending");
    wait_until("every event delivered", start, async || seen.lock().await.0.len() >= APPENDS).await;
    drop(consumer.await.unwrap());
    let (delivered, redelivered) = &*seen.lock().await;
    assert!(
        acknowledged.iter().all(|id| delivered.contains(id)),
        "the subscriber saw every acknowledged event"
    );
    eprintln!(
        "delivered {} events; {redelivered} redeliveries dropped by dedupe; {failures} failed appends retried",
        delivered.len()
    );
    check_log(&log, &acknowledged).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_killed_and_reopened_loses_nothing() {
    let server = Arc::new(std::sync::Mutex::new(NatsServer::start().unwrap()));
    let url = server.lock().unwrap().url();
    let log = Arc::new(NatsLog::connect(config(url.clone())).await.unwrap());
    let options = SubscribeOptions { filter: Filter::category("load"), start: StartFrom::Beginning };
    let seen = Arc::new(Mutex::new((HashSet::new(), 0usize)));
    // The subscriber's side has its own connection, as another process would.
    let subscriber_log = NatsLog::connect(config(url.clone())).await.unwrap();
    let subscription = subscriber_log.subscribe(SUBSCRIPTION, options.clone()).await.unwrap();
    let first_consumer = tokio::spawn(consume(subscription, seen.clone(), Some(APPENDS / 5)));
    let appended = Arc::new(AtomicUsize::new(0));
    let publisher = tokio::spawn(publish(log.clone(), appended.clone()));
    let start = Instant::now();
    let restart = server.clone();
    let counter = appended.clone();
    let chaos = tokio::spawn(async move {
        while counter.load(Ordering::SeqCst) < APPENDS / 2 {
            assert!(start.elapsed() < DEADLINE, "timed out waiting for half the appends");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::task::spawn_blocking(move || {
            let mut server = restart.lock().unwrap();
            server.kill();
            std::thread::sleep(OUTAGE);
            server.resume().unwrap();
        })
        .await
        .unwrap();
    });

    // The subscriber dies without acknowledging or giving back what it holds: whatever it had
    // fetched comes back after the ack wait.
    let killed = first_consumer.await.unwrap();
    std::mem::forget(killed);
    std::mem::forget(subscriber_log);
    let reopened_log = NatsLog::connect(config(url.clone())).await.unwrap();
    let subscription = reopened_log.subscribe(SUBSCRIPTION, options).await.unwrap();
    let second_consumer = tokio::spawn(consume(subscription, seen.clone(), None));

    let (acknowledged, failures) = publisher.await.unwrap();
    chaos.await.unwrap();
    assert!(failures > 0, "the restart happened while appending");
    wait_until("every event delivered", start, async || seen.lock().await.0.len() >= APPENDS).await;
    drop(second_consumer.await.unwrap());
    let (delivered, redelivered) = &*seen.lock().await;
    assert!(
        acknowledged.iter().all(|id| delivered.contains(id)),
        "the subscriber saw every acknowledged event"
    );
    eprintln!(
        "delivered {} events; {redelivered} redeliveries dropped by dedupe; {failures} failed appends retried",
        delivered.len()
    );
    check_log(&log, &acknowledged).await;
}
