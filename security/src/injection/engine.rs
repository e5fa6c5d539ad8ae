//! The matching engine: the rules compiled into anchored lazy DFAs (with the prefilter's
//! trigger words and grouped start-finding regexes), and the signals they find in a normalised
//! text.

use regex_automata::nfa::thompson;
use regex_automata::util::pool::Pool;
use regex_automata::{Anchored, Input, hybrid, meta};
use regex_syntax::hir::Hir;

use crate::error::{Error, Result};
use crate::normalize::fold_pattern;
use crate::prefilter::{Plan, TRIGGER_BYTES_MIN, Triggers, plan};
use crate::sensitive::floor_boundary;

use super::rules::{RULES, Rule};
use super::{MATCH_BYTES_MAX, MATCHES_PER_RULE_MAX, score};

/// The separator a space in a rule stands for.
const SEPARATOR: &str = r#"[ \n,.;:!?"'`*_/()<>{}|~#=+\-\[\]]{1,4}"#;

/// What ` ?` (an optional space) in a rule stands for: up to four separators. (Replaced
/// before plain spaces, so it does not become a lazy `{1,4}?`.)
const OPTIONAL_SEPARATOR: &str = r#"[\t\n,.;:!?"'`*_/()<>{}|~#=+\-\[\] ]{0,4}"#;

/// A match of one rule in the normalised text.
pub(crate) struct Signal {
    /// Index into [`RULES`].
    pub(crate) rule: usize,
    /// Byte range in the normalised text.
    pub(crate) range: std::ops::Range<usize>,
}

/// How many ungated alternatives share one compiled start-finding regex. One regex for all of
/// them would be a single pass, but on attack-dense text its lazy DFA outgrows any cache and
/// the engine falls back to its NFA simulation; groups of this size keep each DFA small and hot.
const BRANCHES_PER_GROUP: usize = 16;

/// How far into a run of one repeated byte a match may still start to matter: a rule's
/// separators absorb at most four, and a delimiter such as `###` or `---` is matched from
/// where the run begins or from just before where it ends.
const RUN_EDGE_BYTES: usize = 8;

/// The longest period of the runs [`Runs`] recognises.
const RUN_PERIOD_MAX: usize = 4;

/// The runs of one repeated byte (or a short repeated pattern) in a text, found as the scan meets them. Starts inside a long
/// run (more than [`RUN_EDGE_BYTES`] from both of its ends) are not tried: every one of them
/// matches what the run's edges match, and trying each (a reverse and a forward attempt of up
/// to [`MATCH_BYTES_MAX`] bytes) made a line of a million dashes cost a billion steps.
/// A short pattern repeated over and over (`-=-=-=`) is a run too.
struct Runs<'t> {
    text: &'t [u8],
    /// The run last found: `start..end`.
    current: std::ops::Range<usize>,
}

impl<'t> Runs<'t> {
    fn new(text: &'t [u8]) -> Self {
        Runs { text, current: 0..0 }
    }

    /// The periodic run holding `at` (cached while positions stay inside it): the longest
    /// stretch around it that repeats with a period of one to [`RUN_PERIOD_MAX`] bytes
    /// (`------`, `-=-=-=`, `*_*_*_`).
    fn run(&mut self, at: usize) -> std::ops::Range<usize> {
        if self.current.contains(&at) {
            return self.current.clone();
        }
        let text = self.text;
        let mut best = at..(at + 1).min(text.len());
        for period in 1..=RUN_PERIOD_MAX {
            if at + period >= text.len() || text[at] != text[at + period] {
                continue;
            }
            let mut start = at;
            while start > 0 && start + period <= text.len() && text[start - 1] == text[start - 1 + period] {
                start -= 1;
            }
            let mut end = at + period + 1;
            while end < text.len() && text[end] == text[end - period] {
                end += 1;
            }
            if end - start > best.end - best.start {
                best = start..end;
            }
        }
        self.current = best.clone();
        best
    }

    /// Whether `at` lies deep inside a run (not worth a match attempt).
    fn inside(&mut self, at: usize) -> bool {
        let run = self.run(at);
        at >= run.start + RUN_EDGE_BYTES && at + RUN_EDGE_BYTES < run.end
    }

    /// Where a search that found a start at `at` resumes: past the middle of its run.
    fn resume_at(&mut self, at: usize) -> usize {
        let run = self.run(at);
        if run.end - run.start > 2 * RUN_EDGE_BYTES && at < run.end - RUN_EDGE_BYTES {
            (run.end - RUN_EDGE_BYTES).max(at)
        } else {
            at
        }
    }
}

/// The compiled injection rules.
///
/// Each top-level alternative ("branch") of each rule is compiled on its own and tried
/// *anchored* at the positions where it may start, so each rule is judged on its own at each
/// position (two rules that match at the same start are both counted). The positions come
/// from two linear-time sources:
/// - gated branches (most of them): one Aho-Corasick pass finds their trigger words (see
///   `prefilter`); from each, the branch's parts before the trigger are matched backwards by
///   a reverse lazy DFA to find the start;
/// - ungated branches (every part may begin with a very common word or any character): a few
///   grouped regexes, each of which finds where one of its branches starts; every branch of
///   the group is then tried there.
///
/// Ordinary text costs one Aho-Corasick pass, a short anchored attempt per trigger, and the
/// ungated groups' passes.
pub(crate) struct InjectionRules {
    /// Every branch of every rule.
    branches: Vec<Branch>,
    /// Trigger words of the gated branches (targets are indices into `branches`).
    triggers: Triggers,
    /// Ungated branches: a regex matching any of them, and their indices.
    groups: Vec<(meta::Regex, Vec<usize>)>,
    /// The branches' DFA caches (forward and reverse per branch, made on first use), one set
    /// per thread that scans.
    caches: Pool<Caches, fn() -> Caches>,
}

/// One top-level alternative of a rule.
struct Branch {
    /// Index into [`RULES`].
    rule: usize,
    /// The branch, searched anchored (leftmost-first: the end of the preferred match).
    forward: hybrid::dfa::DFA,
    /// The parts before the trigger, compiled in reverse (matched backwards from a trigger);
    /// `None` when the trigger starts the branch.
    reverse: Option<hybrid::dfa::DFA>,
}

/// The lazy DFA caches of one scanning thread.
#[derive(Default)]
struct Caches {
    branches: Vec<BranchCaches>,
}

/// The lazy DFA caches of one branch.
#[derive(Default)]
struct BranchCaches {
    forward: Option<hybrid::dfa::Cache>,
    reverse: Option<hybrid::dfa::Cache>,
}

/// Turns a rule as written into the regex that runs: folded like the text, spaces become
/// separators, and word classes and boundaries are ASCII (the normalised text is lowercase, and
/// ASCII boundaries keep the lazy DFA on non-ASCII input, where Unicode `\b` would send the
/// regex engine to its slower NFA simulation).
fn expand(pattern: &str) -> String {
    fold_pattern(pattern)
        .replace(" ?", OPTIONAL_SEPARATOR)
        .replace(' ', SEPARATOR)
        .replace(r"\b", r"(?-u:\b)")
        .replace(r"\w", "[a-z0-9_]")
        .replace(r"\d", "[0-9]")
}

/// Regex size limit for a compiled rule set: generous for the Unicode classes of the
/// multilingual rules, bounded so that a bad edit fails at start-up rather than eating memory.
const RULE_SET_SIZE_BYTES_MAX: usize = 64 << 20;

fn meta_config() -> meta::Config {
    meta::Config::new()
        .nfa_size_limit(Some(RULE_SET_SIZE_BYTES_MAX))
        .hybrid_cache_capacity(RULE_SET_SIZE_BYTES_MAX)
}

/// A lazy DFA for anchored attempts at one branch: forwards (leftmost-first, the preferred
/// match's end) or, for the parts before a trigger, backwards (the longest match: the start
/// furthest back, from which the forward attempt finds any match there is). It never gives up
/// (no minimum cache clear count), and quits on no byte, so its searches cannot fail.
fn branch_dfa(id: &'static str, hir: &Hir, reverse: bool) -> Result<hybrid::dfa::DFA> {
    let fail = |source: String| Error::Config { field: "injection rules", reason: format!("{id}: {source}") };
    let nfa = thompson::Compiler::new()
        .configure(
            thompson::Config::new()
                .reverse(reverse)
                .which_captures(thompson::WhichCaptures::None)
                .nfa_size_limit(Some(RULE_SET_SIZE_BYTES_MAX)),
        )
        .build_from_hir(hir)
        .map_err(|error| fail(error.to_string()))?;
    let kind =
        if reverse { regex_automata::MatchKind::All } else { regex_automata::MatchKind::LeftmostFirst };
    hybrid::dfa::Builder::new()
        .configure(
            hybrid::dfa::Config::new()
                .match_kind(kind)
                .minimum_cache_clear_count(None)
                .cache_capacity(BRANCH_CACHE_BYTES_MAX)
                .skip_cache_capacity_check(true),
        )
        .build_from_nfa(nfa)
        .map_err(|error| fail(error.to_string()))
}

/// Cache capacity of each branch's lazy DFAs: an attempt explores a few words of text (a
/// branch with large Unicode classes gets the minimum it needs instead, if that is more).
const BRANCH_CACHE_BYTES_MAX: usize = 1 << 20;

fn no_caches() -> Caches {
    Caches::default()
}

/// Runs an anchored search over `input`: the end (forwards) or start (backwards) of a match.
fn anchored(
    dfa: &hybrid::dfa::DFA,
    cache: &mut Option<hybrid::dfa::Cache>,
    input: &Input<'_>,
    reverse: bool,
) -> Option<usize> {
    let cache = cache.get_or_insert_with(|| dfa.create_cache());
    let found = if reverse { dfa.try_search_rev(cache, input) } else { dfa.try_search_fwd(cache, input) };
    // Cannot fail (see `branch_dfa`); were it to, the attempt counts as no match.
    found.ok().flatten().map(|half| half.offset())
}

impl InjectionRules {
    pub(crate) fn new() -> Result<InjectionRules> {
        let mut branches = Vec::new();
        let mut gated = Vec::new();
        let mut ungated = Vec::new();
        for (index, rule) in RULES.iter().enumerate() {
            let pattern = expand(rule.pattern);
            let plans = plan(&pattern, TRIGGER_BYTES_MIN).map_err(|source| Error::Config {
                field: "injection rules",
                reason: format!("{}: {source}", rule.id),
            })?;
            for Plan { branch, trigger, word_start } in plans {
                let forward = branch_dfa(rule.id, &branch, false)?;
                let reverse = match &trigger {
                    Some((_, Some(before))) => Some(branch_dfa(rule.id, before, true)?),
                    _ => None,
                };
                match trigger {
                    Some((literals, _)) => gated.push((branches.len(), literals, word_start)),
                    None => ungated.push((branches.len(), branch)),
                }
                branches.push(Branch { rule: index, forward, reverse });
            }
        }
        let triggers = Triggers::new(&gated).map_err(|error| Error::Config {
            field: "injection rules",
            reason: format!("trigger automaton: {error}"),
        })?;
        let mut groups = Vec::new();
        for chunk in ungated.chunks(BRANCHES_PER_GROUP) {
            let alternatives: Vec<Hir> = chunk.iter().map(|(_, branch)| branch.clone()).collect();
            let starts = meta::Builder::new()
                .configure(meta_config())
                .build_from_hir(&Hir::alternation(alternatives))
                .map_err(|source| Error::RuleAutomaton {
                    rule_id: "injection.*",
                    source: Box::new(source),
                })?;
            groups.push((starts, chunk.iter().map(|(index, _)| *index).collect()));
        }
        Ok(InjectionRules { branches, triggers, groups, caches: Pool::new(no_caches as fn() -> _) })
    }

    /// Every match: at most one per start position and rule, [`MATCHES_PER_RULE_MAX`] per rule.
    pub(crate) fn signals(&self, normalized: &str) -> Vec<Signal> {
        // (start, branch) pairs to try.
        let mut attempts: Vec<(usize, usize)> = Vec::new();
        let mut guard = self.caches.get();
        let caches = &mut guard.branches;
        if caches.len() < self.branches.len() {
            caches.resize_with(self.branches.len(), BranchCaches::default);
        }
        let mut runs = Runs::new(normalized.as_bytes());
        self.triggers.each(normalized, |at, index| {
            if runs.inside(at) {
                return;
            }
            let (Some(branch), Some(cache)) = (self.branches.get(index), caches.get_mut(index)) else {
                return;
            };
            let start = match &branch.reverse {
                None => Some(at),
                Some(dfa) => {
                    let from = floor_boundary(normalized, at.saturating_sub(MATCH_BYTES_MAX));
                    let input = Input::new(normalized).span(from..at).anchored(Anchored::Yes);
                    anchored(dfa, &mut cache.reverse, &input, true)
                }
            };
            if let Some(start) = start {
                attempts.push((start, index));
            }
        });
        for (regex, members) in &self.groups {
            let mut at = 0;
            while at < normalized.len() {
                let Some(found) = regex.search(&Input::new(normalized).span(at..normalized.len())) else {
                    break;
                };
                if !runs.inside(found.start()) {
                    attempts.extend(members.iter().map(|index| (found.start(), *index)));
                }
                // Resume one character after the start: other rules may start inside this match
                // (but not inside a long run of one byte: see `Runs`).
                at = found.start() + normalized[found.start()..].chars().next().map_or(1, char::len_utf8);
                at = at.max(runs.resume_at(found.start()));
            }
        }
        attempts.sort_unstable();
        attempts.dedup();
        let mut signals: Vec<Signal> = Vec::new();
        let mut per_rule = [0usize; RULES.len()];
        for (start, index) in attempts {
            let (Some(branch), Some(cache)) = (self.branches.get(index), caches.get_mut(index)) else {
                continue;
            };
            let Some(count) = per_rule.get_mut(branch.rule) else { continue };
            let seen = |signal: &Signal| signal.rule == branch.rule;
            if *count >= MATCHES_PER_RULE_MAX
                || signals.iter().rev().take_while(|signal| signal.range.start == start).any(seen)
            {
                continue;
            }
            let end = floor_boundary(normalized, start.saturating_add(MATCH_BYTES_MAX));
            let input = Input::new(normalized).span(start..end).anchored(Anchored::Yes);
            if let Some(end) = anchored(&branch.forward, &mut cache.forward, &input, false) {
                *count += 1;
                signals.push(Signal { rule: branch.rule, range: start..end });
            }
        }
        signals
    }

    /// The rule behind a signal.
    pub(crate) fn rule(&self, index: usize) -> Option<&'static Rule> {
        RULES.get(index)
    }

    /// The weight a rule's signal adds to the score: fitted (see
    /// [`FITTED_WEIGHTS`](score::FITTED_WEIGHTS)) or hand-set.
    pub(crate) fn weight(&self, rule: &Rule) -> f32 {
        score::weight(rule)
    }
}
