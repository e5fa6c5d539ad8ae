//! Scoring: the weights fitted on the dev corpora, the weight a matched rule adds, and the
//! combination of the weights of the distinct rules that matched into one score.

use super::rules::Rule;

/// Weights fitted on the dev half of the corpora (never the test half), for the rules whose
/// fitted weight differs from the hand-set one: `examples/dev_features.rs` lists the rules that
/// match each dev sample, and `tools/fit_weights.py` fits the weights (logistic loss on the
/// noisy-OR score, weights kept non-negative and pulled toward the hand-set ones, benign
/// samples weighted four times). The net effect: some pairs of weak signals now reach the
/// threshold together.
pub(super) const FITTED_WEIGHTS: &[(&str, f32)] = &[
    ("injection.delimiter.role_marker", 0.61),
    ("injection.extraction.given_before", 0.61),
    ("injection.override.from_now_on", 0.30),
    ("injection.override.include_in_response", 0.28),
    ("injection.override.instead", 0.67),
    ("injection.override.no_matter_what", 0.28),
    ("injection.payload.script", 0.28),
    ("injection.persona.act_as", 0.33),
    ("injection.persona.answer_as", 0.27),
    ("injection.persona.fictional_character_ai", 0.26),
    ("injection.persona.greeting", 0.28),
    ("injection.persona.now_acts", 0.26),
    ("injection.persona.persona_marker", 0.28),
    ("injection.persona.simulate_response", 0.26),
    ("injection.persona.stay_in_character", 0.30),
    ("injection.persona.story_wrapper", 0.30),
    ("injection.persona.terminal", 0.27),
    ("injection.persona.unfiltered", 0.32),
    ("injection.persona.vendor_mention", 0.20), // fitted 0.32, capped: a vendor name alone is no attack
    ("injection.persona.you_are_now", 0.36),
    ("injection.wrapper.pretext", 0.62),
    ("injection.wrapper.test_pretext", 0.32),
];

/// The weight a rule's signal adds to the score: fitted (see [`FITTED_WEIGHTS`]) or hand-set.
pub(super) fn weight(rule: &Rule) -> f32 {
    FITTED_WEIGHTS.iter().find(|(id, _)| *id == rule.id).map_or(rule.weight, |(_, weight)| *weight)
}

/// The injection score of a set of distinct rules: `1 - Π(1 - weight)`.
pub(crate) fn combine(weights: impl IntoIterator<Item = f32>) -> f32 {
    1.0 - weights.into_iter().fold(1.0, |rest, weight| rest * (1.0 - weight.clamp(0.0, 1.0)))
}
