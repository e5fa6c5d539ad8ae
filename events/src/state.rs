//! What folds share: the typed refusal of an illegal transition, and the [`Aggregate`] trait.

use crate::error::Result;
use crate::event::Version;

/// A state machine refused an event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{entity} in state {state} cannot take {event_type}: {reason}")]
pub struct TransitionError {
    /// `task`, `agent` or `workflow`.
    pub entity: &'static str,
    /// The state it was in.
    pub state: String,
    /// The event refused.
    pub event_type: String,
    /// Why.
    pub reason: String,
}

/// State rebuilt as a pure fold over a stream's events.
pub trait Aggregate: Default + Clone {
    /// The stream's event type.
    type Event;

    /// Applies one event, or refuses it with a [`TransitionError`]. Pure: no I/O.
    fn apply(&mut self, event: &Self::Event) -> Result<(), TransitionError>;

    /// The number of events applied so far (the stream version the state reflects).
    fn version(&self) -> Version;

    /// Folds events from the initial state.
    fn fold<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Result<Self>
    where
        Self::Event: 'a,
    {
        let mut state = Self::default();
        for event in events {
            state.apply(event)?;
        }
        Ok(state)
    }
}
