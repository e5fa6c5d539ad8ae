//! A given/when/then harness for folds: given past events, when one more arrives, then expect
//! a state or a refusal. Fast, no servers.
//!
//! ```
//! use events::harness::TestHarness;
//! use events::agent::{AgentEvent, AgentRetired, AgentState, AgentStatus};
//!
//! let retired = AgentEvent::Retired(AgentRetired { reason: "old".into(), by: "ops".into() });
//! // An agent that was never registered cannot retire.
//! TestHarness::<AgentState>::given([]).when(retired).then_refused_with("not registered");
//! ```

use crate::state::{Aggregate, TransitionError};

/// The state after the "given" events.
#[derive(Debug)]
pub struct TestHarness<A: Aggregate> {
    state: A,
}

impl<A: Aggregate + std::fmt::Debug> TestHarness<A> {
    /// Folds the given events; panics if any is refused, since the test's setup is wrong then.
    pub fn given(events: impl IntoIterator<Item = A::Event>) -> Self
    where
        A::Event: std::fmt::Debug,
    {
        let mut state = A::default();
        for (i, event) in events.into_iter().enumerate() {
            if let Err(e) = state.apply(&event) {
                panic!("given event #{i} ({event:?}) was refused: {e}");
            }
        }
        Self { state }
    }

    /// Applies one more event.
    pub fn when(self, event: A::Event) -> Outcome<A> {
        let mut next = self.state.clone();
        let result = next.apply(&event).map(|()| next);
        Outcome { before: self.state, result }
    }

    /// The state so far.
    pub fn state(&self) -> &A {
        &self.state
    }
}

/// What applying the "when" event did.
#[derive(Debug)]
pub struct Outcome<A: Aggregate> {
    before: A,
    result: Result<A, TransitionError>,
}

impl<A: Aggregate + std::fmt::Debug> Outcome<A> {
    /// Expects the event to be accepted, checks the new state, and returns it.
    pub fn then_state(self, check: impl FnOnce(&A)) -> A {
        match self.result {
            Ok(state) => {
                assert_eq!(state.version(), self.before.version() + 1, "an accepted event adds one version");
                check(&state);
                state
            }
            Err(e) => panic!("expected the event to be accepted, it was refused: {e}"),
        }
    }

    /// Expects a refusal whose reason contains `needle`.
    pub fn then_refused_with(self, needle: &str) -> TransitionError {
        match self.result {
            Ok(state) => {
                panic!("expected a refusal containing {needle:?}, the event was accepted: {state:?}")
            }
            Err(e) => {
                assert!(e.to_string().contains(needle), "refusal {e} does not mention {needle:?}");
                e
            }
        }
    }
}
