//! Prompt-injection rules and their matching over the normalised text.
//!
//! Each rule is a regex over the normalised view (see `normalize`): lowercase, one space per
//! whitespace run, no accents, look-alikes and leetspeak folded. In a rule, a space stands for a
//! separator of one to four spaces or punctuation marks, so `ignore previous` also matches
//! `ignore -- previous`; `\x20` stands for exactly one space, written where a phrase should be
//! one literal that the prefilter can gate on (`you\x20are\x20now` rather than the stop word
//! `you`). Each rule has a weight; the injection score of a text is
//! `1 - Π(1 - weight)` over the distinct rules that matched, so one strong or medium rule, or
//! two weak ones, or a weak one with a hint, reach the default threshold of 0.38 (calibrated on
//! the dev half: the highest benign score there is 0.32, one weak signal).
//!
//! # Layout
//! - `rules`: the rules as written — ids, hand-set weights, patterns (English and fourteen
//!   other languages).
//! - `engine`: [`InjectionRules`] — the rules compiled into anchored lazy DFAs, and the matching
//!   of a normalised text into signals.
//! - `model`: [`InjectionModel`] — the learned detector (hashed n-grams, logistic regression,
//!   scored per passage), trained offline; its signal joins the rules' in the score.
//! - `score`: the fitted weights, a rule's weight, and the combination of weights into a score.

mod engine;
mod lexicon;
mod model;
mod rules;
mod score;

pub(crate) use engine::InjectionRules;
pub use model::{
    CHUNK_BYTES, EVIDENCE_FEATURES_MIN, InjectionModel, MODEL_BUCKETS, PassageScore, evidence_scale,
    training_passages,
};
pub(crate) use rules::{rule_id, rule_ids};
pub(crate) use score::combine;

/// How many matches of one rule are reported as findings: enough to locate the attack, bounded
/// so that a text repeating a phrase a million times yields a small report.
pub const MATCHES_PER_RULE_MAX: usize = 8;

/// The longest match a rule may have. Every rule's phrases are far shorter (the longest
/// bounded gap is 120 bytes); the bound keeps an anchored attempt, forwards or backwards, from
/// running on over a long run of repeated characters, so that a scan stays linear in its input.
pub const MATCH_BYTES_MAX: usize = 1 << 10;
