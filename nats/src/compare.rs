//! [`compare`]: checks the archive against JetStream, event for event, and reports every
//! divergence ([`ArchiveComparison`]); the library side of `pantheon archive check`.

use std::collections::BTreeMap;

use events::{EventId, EventLog, LogError, Position, RecordedEvent, StreamId, Version};

use crate::archive::Archive;
use crate::archiver::read_archiver_lag;
use crate::log::NatsLog;

/// The most divergences an [`ArchiveComparison`] lists (it counts all of them): bounds the
/// memory and the size of the report when the archive is far off.
pub const COMPARE_DIVERGENCE_COUNT_MAX: usize = 1_000;

/// The most events [`compare`] reads per page from JetStream or from the archive.
pub const COMPARE_PAGE_COUNT_MAX: usize = 1_000;

/// One way the archive differs from JetStream.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Divergence {
    /// JetStream holds this event and the archive does not, though the archiver has passed
    /// it (it was dead-lettered, or lost).
    Missing {
        /// Its JetStream sequence.
        sequence: Position,
        /// Its stream.
        stream_id: StreamId,
        /// Its version.
        version: Version,
        /// Its id.
        event_id: EventId,
    },
    /// The archive holds another event at this JetStream sequence: the JetStream stream was
    /// created again (see [`crate::retire_archived_sequences`]), or the archive was filled
    /// from another one.
    SequenceTaken {
        /// The sequence.
        sequence: Position,
        /// JetStream's event there.
        jetstream: EventId,
        /// The archive's event there.
        archived: EventId,
        /// The archive's event's stream.
        archived_stream_id: StreamId,
        /// The archive's event's version.
        archived_version: Version,
    },
    /// The archive holds another event at this event's stream and version.
    VersionTaken {
        /// JetStream's event's sequence.
        sequence: Position,
        /// The stream.
        stream_id: StreamId,
        /// The version.
        version: Version,
        /// JetStream's event.
        jetstream: EventId,
        /// The archive's event.
        archived: EventId,
    },
    /// The archive holds the event, but not under its JetStream sequence in the current
    /// generation (archived before sequences were kept, or under another sequence): reads by
    /// sequence will miss it once JetStream drops it.
    NotUnderSequence {
        /// Its JetStream sequence.
        sequence: Position,
        /// Its stream.
        stream_id: StreamId,
        /// Its version.
        version: Version,
        /// Its id.
        event_id: EventId,
    },
    /// The archive holds an event under a sequence at which JetStream, which still holds that
    /// sequence's range, has no event.
    NotInJetStream {
        /// The sequence.
        sequence: Position,
        /// The archived event's stream.
        stream_id: StreamId,
        /// The archived event's version.
        version: Version,
        /// The archived event's id.
        event_id: EventId,
    },
    /// The archive lacks these versions of a stream while holding a later one, and JetStream
    /// no longer holds them: events lost before they were archived.
    VersionGap {
        /// The stream.
        stream_id: StreamId,
        /// The first missing version.
        first: Version,
        /// The last missing version.
        last: Version,
    },
    /// JetStream's stream has no retention limit, yet events before its first sequence are
    /// archived: they were removed from JetStream some other way (a purge).
    RemovedWithoutRetention {
        /// JetStream's first sequence.
        jetstream_first: Position,
    },
}

/// What [`compare`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ArchiveComparison {
    /// JetStream's first sequence when the comparison began (0: empty).
    pub jetstream_first: Position,
    /// JetStream's last sequence when the comparison began: later events were not compared.
    pub jetstream_last: Position,
    /// The archiver's acknowledgement floor when the comparison began: every event up to it
    /// should be archived; an event after it the archive lacks is pending, not missing. 0 when
    /// the archiver's consumer does not exist (no archiver ran since it was reset): then
    /// every event the archive lacks is pending.
    pub archived_through: Position,
    /// JetStream events compared.
    pub compared_count: u64,
    /// JetStream events the archive holds as they are, under their sequence.
    pub matching_count: u64,
    /// JetStream events after `archived_through` the archive does not hold yet.
    pub pending_count: u64,
    /// Every divergence found.
    pub divergence_count: u64,
    /// The divergences, in the order found, at most [`COMPARE_DIVERGENCE_COUNT_MAX`].
    pub divergences: Vec<Divergence>,
}

impl ArchiveComparison {
    /// Whether the archive holds every event JetStream holds (but those still pending) as it
    /// is, and nothing JetStream contradicts.
    pub fn is_consistent(&self) -> bool {
        self.divergence_count == 0
    }

    fn diverges(&mut self, divergence: Divergence) {
        self.divergence_count += 1;
        if self.divergences.len() < COMPARE_DIVERGENCE_COUNT_MAX {
            self.divergences.push(divergence);
        }
    }
}

/// Compares the archive with JetStream, event for event, and reports every divergence: events
/// of JetStream the archive lacks (by sequence, then by stream and version) or holds
/// differently, archived events at sequences where JetStream has none (from its first
/// sequence on), gaps in the archived streams' versions that JetStream cannot fill, and
/// archived events before JetStream's first sequence when no retention explains it. Archived
/// events before JetStream's first sequence are otherwise what the archive is for.
///
/// JetStream is read up to its last sequence at the start; events the archiver has not
/// reached yet (after its consumer's acknowledgement floor) count as pending, not missing, so
/// the check can run while the system does. It reads all of JetStream, page by page: for an
/// operator's check, not for a hot path.
pub async fn compare(nats: &NatsLog, archive: &dyn Archive) -> Result<ArchiveComparison, LogError> {
    let lag = read_archiver_lag(nats).await?;
    let (first, last) = nats.bounds().await?;
    let mut comparison = ArchiveComparison {
        jetstream_first: first,
        jetstream_last: last,
        archived_through: lag.archived_through,
        ..ArchiveComparison::default()
    };
    if first != 0 {
        let mut from = first;
        while from <= last {
            let page: Vec<RecordedEvent> = nats
                .read_all(from, COMPARE_PAGE_COUNT_MAX)
                .await?
                .into_iter()
                .filter(|e| e.position <= last)
                .collect();
            let Some(page_last) = page.last().map(|e| e.position) else { break };
            let archived = read_imported_range(archive, from, page_last + 1).await?;
            compare_page(archive, &page, archived, &mut comparison).await?;
            from = page_last + 1;
        }
        // Between the last event read and JetStream's last sequence, no event: anything
        // archived there is not JetStream's.
        let archived = read_imported_range(archive, from, last.saturating_add(1)).await?;
        compare_page(archive, &[], archived, &mut comparison).await?;
        if nats.keeps_everything() && !archive.read_imported(0, first, 1).await?.is_empty() {
            comparison.diverges(Divergence::RemovedWithoutRetention { jetstream_first: first });
        }
    }
    // Archived after JetStream's last sequence: read the archive first, then JetStream's last
    // sequence again, since whatever was archived had been in JetStream before.
    let beyond = archive.read_imported(last.saturating_add(1), Position::MAX, COMPARE_PAGE_COUNT_MAX).await?;
    let (_, last_now) = nats.bounds().await?;
    for event in beyond.into_iter().filter(|e| e.position > last_now) {
        comparison.diverges(not_in_jetstream(event));
    }
    for gap in archive.version_gaps(COMPARE_DIVERGENCE_COUNT_MAX).await? {
        // Versions JetStream still holds are reported above, by event (or are pending).
        if nats.read_stream(&gap.stream_id, gap.first, 1).await?.iter().any(|e| e.version <= gap.last) {
            continue;
        }
        comparison.diverges(Divergence::VersionGap {
            stream_id: gap.stream_id,
            first: gap.first,
            last: gap.last,
        });
    }
    Ok(comparison)
}

/// The archived events (current generation) with sequences in `from..before`, by sequence.
async fn read_imported_range(
    archive: &dyn Archive,
    from: Position,
    before: Position,
) -> Result<BTreeMap<Position, RecordedEvent>, LogError> {
    let mut archived = BTreeMap::new();
    let mut next = from;
    while next < before {
        let page = archive.read_imported(next, before, COMPARE_PAGE_COUNT_MAX).await?;
        let Some(last) = page.last().map(|e| e.position) else { break };
        if last < next {
            return Err(LogError::Corrupt {
                position: last,
                reason: format!("the archive answered a read of sequences {next}..{before} out of range"),
            });
        }
        next = last + 1;
        archived.extend(page.into_iter().map(|e| (e.position, e)));
    }
    Ok(archived)
}

/// Compares a page of JetStream events with the archived events of the same sequences.
async fn compare_page(
    archive: &dyn Archive,
    page: &[RecordedEvent],
    mut archived: BTreeMap<Position, RecordedEvent>,
    comparison: &mut ArchiveComparison,
) -> Result<(), LogError> {
    for event in page {
        comparison.compared_count += 1;
        match archived.remove(&event.position) {
            Some(copy) if copy.id == event.id => comparison.matching_count += 1,
            Some(copy) => comparison.diverges(Divergence::SequenceTaken {
                sequence: event.position,
                jetstream: event.id,
                archived: copy.id,
                archived_stream_id: copy.stream_id,
                archived_version: copy.version,
            }),
            None => {
                let at_version = archive.read_stream(&event.stream_id, event.version, 1).await?;
                match at_version.into_iter().next().filter(|copy| copy.version == event.version) {
                    Some(copy) if copy.id == event.id => comparison.diverges(Divergence::NotUnderSequence {
                        sequence: event.position,
                        stream_id: event.stream_id.clone(),
                        version: event.version,
                        event_id: event.id,
                    }),
                    Some(copy) => comparison.diverges(Divergence::VersionTaken {
                        sequence: event.position,
                        stream_id: event.stream_id.clone(),
                        version: event.version,
                        jetstream: event.id,
                        archived: copy.id,
                    }),
                    None if event.position > comparison.archived_through => comparison.pending_count += 1,
                    None => comparison.diverges(Divergence::Missing {
                        sequence: event.position,
                        stream_id: event.stream_id.clone(),
                        version: event.version,
                        event_id: event.id,
                    }),
                }
            }
        }
    }
    for (_, event) in archived {
        comparison.diverges(not_in_jetstream(event));
    }
    Ok(())
}

fn not_in_jetstream(event: RecordedEvent) -> Divergence {
    Divergence::NotInJetStream {
        sequence: event.position,
        stream_id: event.stream_id,
        version: event.version,
        event_id: event.id,
    }
}
