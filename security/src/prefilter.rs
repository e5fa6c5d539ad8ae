//! Literal prefilters: words every match of a rule contains, found in one linear pass.
//!
//! Each top-level alternative of a rule is planned on its own. Its *triggers* are the prefix
//! literals that `regex-syntax` extracts from one mandatory part of it: every match of the
//! alternative has that part begin at an occurrence of one of them (the extraction is sound —
//! an inexact literal is a prefix of what the part matches, never a guess). An Aho-Corasick
//! automaton over the triggers of every alternative finds them all in one overlapping pass (a
//! second one holds the non-ASCII triggers, for text that is not ASCII); from each
//! occurrence, the parts before the triggering one are matched backwards to find where the
//! alternative starts, and the alternative is then tried forwards, anchored there. An
//! alternative whose parts all have triggers too short or too common to pay for themselves
//! (a match could begin with `a`, `is`, any punctuation…) is not gated.

use std::collections::BTreeMap;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use regex_syntax::hir::literal::{ExtractKind, Extractor};
use regex_syntax::hir::{Hir, HirKind};

/// The shortest trigger worth gating on: shorter literals occur every few bytes of ordinary
/// text, and the anchored attempts they cause would cost more than a full pass of the rule.
/// Common words of this length or more are refused too (see `COMMON_WORDS`).
pub(crate) const TRIGGER_BYTES_MIN: usize = 3;

/// Trigger literals are cut to this many bytes (a prefix of a trigger is a sound trigger
/// too): the automaton then has a state per byte of at most this many bytes per literal, a
/// table small enough to stay in cache, and few words of English share so long a prefix with
/// a trigger without being one.
const TRIGGER_BYTES_MAX: usize = 8;

/// Cap on the number of prefix literals extracted per rule; past it the extractor shortens
/// them (still sound), and a rule whose literals would shrink below [`TRIGGER_BYTES_MIN`] is
/// not gated.
const TRIGGERS_PER_RULE_MAX: usize = 512;

/// Words too common in ordinary text to gate on at all, though long enough.
const STOP_WORDS: &[&str] = &[
    "the", "and", "you", "for", "not", "all", "are", "can", "but", "was", "now", "has", "any", "his", "her",
    "one", "our", "out", "who", "get", "use", "see", "way", "may", "too", "its", "how", "set", "run", "add",
    "put", "let", "new", "two", "per", "via", "end", "top", "few", "your", "that", "this", "with", "what",
    "have", "will", "from", "they", "them", "then", "than", "when", "were", "been", "which", "would",
    "there", "their", "about", "into", "only", "also", "just", "like", "more", "some", "such", "each",
    "make", "write", "show", "list", "text", "data", "file", "code", "test", "user", "using", "should",
    "must", "does", "here",
];

/// Words common in the tasks this system receives (code, data, writing): allowed as
/// triggers, but a part with rarer literals is preferred.
const COMMON_WORDS: &[&str] = &[
    "api",
    "act",
    "old",
    "sys",
    "order",
    "keep",
    "function",
    "change",
    "access",
    "read",
    "mode",
    "return",
    "task",
    "line",
    "over",
    "root",
    "bound",
    "filter",
    "agent",
    "config",
    "focus",
    "post",
    "question",
    "request",
    "token",
    "translate",
    "document",
    "chat",
    "error",
    "message",
    "even",
    "input",
    "owner",
    "query",
    "content",
    "rules",
    "model",
    "output",
    "print",
    "value",
    "table",
    "report",
    "review",
    "explain",
    "version",
    "system",
    "create",
    "build",
    "server",
    "service",
    "summary",
    "summarise",
    "summarize",
    "answer",
    "include",
];

/// The cost of gating on `literal`: how often it is expected to fire, roughly.
fn literal_cost(literal: &[u8]) -> u32 {
    if STOP_WORDS.iter().any(|word| word.as_bytes() == literal) {
        return 400;
    }
    if COMMON_WORDS.iter().any(|word| word.as_bytes() == literal) {
        return 100;
    }
    match literal.len() {
        0..=3 => 25,
        4 => 8,
        5 => 4,
        6 => 2,
        _ => 1,
    }
}

/// The cost of gating on a part with these literals.
fn part_cost(literals: &[Vec<u8>]) -> u32 {
    literals.iter().map(|literal| literal_cost(literal)).sum()
}

/// How one alternative of a rule is searched.
pub(crate) struct Plan {
    /// The alternative.
    pub(crate) branch: Hir,
    /// Its triggers, if it is gated: literals one mandatory part of it begins with, and the
    /// parts before that one (to be matched backwards from a trigger to find the start).
    pub(crate) trigger: Option<(Vec<Vec<u8>>, Option<Hir>)>,
    /// Whether a trigger only counts at the start of a word (the part before it is a word
    /// boundary or a separator, and every trigger begins with a word character).
    pub(crate) word_start: bool,
}

/// The largest bounded repetition allowed before a trigger (the separator's `{1,4}` is fine).
/// The parts before a trigger are matched backwards by a lazy DFA; a free-text gap such as
/// `[^.]{0,40}` multiplies its states and makes each attempt slow, so such parts come after
/// the trigger or the alternative is not gated.
const GAP_REPEAT_MAX: u32 = 8;

/// An ASCII word character, as `(?-u:\b)` sees it.
pub(crate) fn is_word_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// Whether a part guarantees that what follows it begins a word: an ASCII word boundary, or
/// a separator of at least one character that holds no ASCII word character.
fn not_word_before(part: &Hir) -> bool {
    use regex_syntax::hir::{Class, Look};
    match part.kind() {
        HirKind::Look(Look::WordAscii | Look::WordStartAscii | Look::WordStartHalfAscii) => true,
        HirKind::Repetition(repetition) if repetition.min >= 1 => match repetition.sub.kind() {
            HirKind::Class(Class::Bytes(class)) => {
                class.ranges().iter().all(|range| (range.start()..=range.end()).all(|b| !is_word_byte(b)))
            }
            HirKind::Class(Class::Unicode(class)) => class
                .ranges()
                .iter()
                .all(|range| (range.start()..=range.end()).all(|c| !(c.is_ascii() && is_word_byte(c as u8)))),
            _ => false,
        },
        _ => false,
    }
}

/// Whether `hir` holds no bounded repetition longer than [`GAP_REPEAT_MAX`].
fn small_gaps(hir: &Hir) -> bool {
    match hir.kind() {
        HirKind::Repetition(repetition) => {
            repetition.max.is_none_or(|max| max <= GAP_REPEAT_MAX) && small_gaps(&repetition.sub)
        }
        HirKind::Capture(capture) => small_gaps(&capture.sub),
        HirKind::Concat(parts) | HirKind::Alternation(parts) => parts.iter().all(small_gaps),
        _ => true,
    }
}

/// How many alternatives one top-level alternative of a rule may be split into (see [`plan`]).
const SPLITS_PER_BRANCH_MAX: usize = 24;

/// How deep alternations are split.
const SPLIT_DEPTH_MAX: usize = 3;

/// Splits `pattern` into alternatives that each have triggers where possible.
///
/// Each top-level alternative is a concatenation of mandatory parts; the part whose prefix
/// literals make the cheapest triggers is chosen (fewest, longest, rarest: see
/// `literal_cost`), if any part has literals of at least `bytes_min` bytes, none a stop word. When none has,
/// an alternation among the parts is distributed: `x(?:a|b c)y` becomes `x(?:a)y` and
/// `x(?:b c)y`, so that `b c`'s own parts can serve (`c`, when `b` is too common). The
/// alternatives still match exactly what the rule matches.
pub(crate) fn plan(pattern: &str, bytes_min: usize) -> Result<Vec<Plan>, Box<regex_syntax::Error>> {
    let hir = regex_syntax::ParserBuilder::new().build().parse(pattern).map_err(Box::new)?;
    let branches: Vec<Hir> = match hir.kind() {
        HirKind::Alternation(branches) => branches.clone(),
        _ => vec![hir],
    };
    let mut plans = Vec::new();
    for branch in branches {
        let mut split = Vec::new();
        plan_branch(branch.clone(), bytes_min, false, SPLIT_DEPTH_MAX, &mut split);
        // What found no triggers among rare words may still find some among common ones:
        // one trigger every few dozen bytes still costs less than a pass of its own.
        let mut relaxed = Vec::new();
        for plan in split {
            if plan.trigger.is_some() {
                relaxed.push(plan);
            } else {
                plan_branch(plan.branch, bytes_min, true, SPLIT_DEPTH_MAX, &mut relaxed);
            }
        }
        let split = relaxed;
        let (gated, ungated): (Vec<Plan>, Vec<Plan>) =
            split.into_iter().partition(|plan| plan.trigger.is_some());
        if gated.is_empty() || gated.len() > SPLITS_PER_BRANCH_MAX {
            plans.push(Plan { branch, trigger: None, word_start: false });
            continue;
        }
        plans.extend(gated);
        if !ungated.is_empty() {
            // What found no triggers is searched as one alternative.
            let rest = Hir::alternation(ungated.into_iter().map(|plan| plan.branch).collect());
            plans.push(Plan { branch: rest, trigger: None, word_start: false });
        }
    }
    Ok(plans)
}

fn parts_of(branch: &Hir) -> Vec<Hir> {
    match branch.kind() {
        HirKind::Concat(parts) => parts.clone(),
        _ => vec![branch.clone()],
    }
}

/// Plans one alternative; `relaxed` admits stop words as triggers and long gaps before them.
fn plan_branch(branch: Hir, bytes_min: usize, relaxed: bool, depth: usize, out: &mut Vec<Plan>) {
    let parts = parts_of(&branch);
    let best = parts
        .iter()
        .enumerate()
        .filter(|(index, _)| {
            relaxed || parts.get(..*index).is_some_and(|before| before.iter().all(small_gaps))
        })
        .filter_map(|(index, part)| part_literals(part, bytes_min, relaxed).map(|literals| (index, literals)))
        .min_by_key(|(index, literals)| (part_cost(literals), *index));
    if let Some((index, literals)) = best {
        let word_start =
            index.checked_sub(1).and_then(|previous| parts.get(previous)).is_some_and(not_word_before)
                && literals.iter().all(|literal| literal.first().is_some_and(|b| is_word_byte(*b)));
        let before = parts.get(..index).filter(|before| !before.is_empty());
        let trigger = Some((literals, before.map(|before| Hir::concat(before.to_vec()))));
        out.push(Plan { branch, trigger, word_start });
        return;
    }
    // Distribute the alternation with the fewest alternatives that lack triggers of their own.
    let split = parts
        .iter()
        .enumerate()
        .filter_map(|(index, part)| match part.kind() {
            HirKind::Alternation(alternatives) => {
                let (good, bad): (Vec<Hir>, Vec<Hir>) = alternatives
                    .iter()
                    .cloned()
                    .partition(|alternative| part_literals(alternative, bytes_min, relaxed).is_some());
                Some((index, good, bad))
            }
            _ => None,
        })
        .min_by_key(|(_, _, bad)| bad.len());
    let Some((index, good, bad)) = split.filter(|_| depth > 0) else {
        out.push(Plan { branch, trigger: None, word_start: false });
        return;
    };
    let with = |middle: Hir| {
        let mut joined = parts.get(..index).map(<[Hir]>::to_vec).unwrap_or_default();
        joined.push(middle);
        joined.extend(parts.get(index + 1..).map(<[Hir]>::to_vec).unwrap_or_default());
        Hir::concat(joined)
    };
    if !good.is_empty() {
        plan_branch(with(Hir::alternation(good)), bytes_min, relaxed, 0, out);
    }
    for alternative in bad {
        plan_branch(with(alternative), bytes_min, relaxed, depth - 1, out);
    }
}

/// Punctuation rare in prose and code alike: a pair of it (the `<|` of chat-template markers)
/// is a trigger as selective as a word.
fn rare_punctuation(literal: &[u8]) -> bool {
    literal.len() == 2 && literal.iter().all(|byte| b"<|^~\\".contains(byte))
}

/// The prefix literals of one mandatory part, if usable as triggers.
fn part_literals(part: &Hir, bytes_min: usize, stop_words: bool) -> Option<Vec<Vec<u8>>> {
    let mut extractor = Extractor::new();
    extractor
        .kind(ExtractKind::Prefix)
        .limit_class(4)
        .limit_repeat(4)
        .limit_literal_len(24)
        .limit_total(TRIGGERS_PER_RULE_MAX);
    let seq = extractor.extract(part);
    let literals = seq.literals()?;
    let usable = !literals.is_empty()
        && literals.iter().all(|literal| {
            (literal.len() >= bytes_min || rare_punctuation(literal.as_bytes()))
                && (stop_words || !STOP_WORDS.iter().any(|word| word.as_bytes() == literal.as_bytes()))
        });
    usable.then(|| literals.iter().map(|literal| literal.as_bytes().to_vec()).collect())
}

/// The prefix literals every match of `pattern` begins with, ASCII-lowercased, if there are
/// finitely many and each has at least `bytes_min` bytes (for a case-insensitive gate).
pub(crate) fn prefix_literals(pattern: &str, bytes_min: usize) -> Option<Vec<Vec<u8>>> {
    let hir = regex_syntax::ParserBuilder::new().build().parse(pattern).ok()?;
    let mut extractor = Extractor::new();
    extractor
        .kind(ExtractKind::Prefix)
        .limit_class(4)
        .limit_repeat(4)
        .limit_literal_len(24)
        .limit_total(TRIGGERS_PER_RULE_MAX);
    let seq = extractor.extract(&hir);
    let literals = seq.literals()?;
    if literals.is_empty() || literals.iter().any(|literal| literal.len() < bytes_min) {
        return None;
    }
    let mut lowered: Vec<Vec<u8>> =
        literals.iter().map(|literal| literal.as_bytes().to_ascii_lowercase()).collect();
    lowered.sort();
    lowered.dedup();
    Some(lowered)
}

/// Triggers of many rules, in two automata: the ASCII literals, and the others.
///
/// Ordinary text is ASCII, and only the ASCII automaton can match in it. Kept apart, that
/// automaton's alphabet is a few dozen byte classes instead of most of the 256 (the literals of
/// the non-Latin rules bring many UTF-8 bytes), so its transition table is smaller and
/// stays in cache better; the other automaton runs only on text that is not ASCII.
pub(crate) struct Triggers {
    ascii: Automaton,
    other: Automaton,
}

/// One Aho-Corasick automaton over trigger literals.
struct Automaton {
    automaton: AhoCorasick,
    /// Per automaton pattern: the targets (indices given to [`Triggers::new`]) it triggers,
    /// and whether only at the start of a word.
    rules: Vec<Targets>,
}

/// What one literal triggers: targets (indices given to [`Triggers::new`]) and whether only at
/// the start of a word.
type Targets = Vec<(usize, bool)>;

impl Triggers {
    /// Builds the automata over `(rule, triggers)`. A literal that has another literal as a
    /// prefix is dropped in favour of the shorter one (which occurs wherever it does), so at
    /// most one literal matches at any position.
    pub(crate) fn new(
        rules: &[(usize, Vec<Vec<u8>>, bool)],
    ) -> Result<Triggers, Box<aho_corasick::BuildError>> {
        let mut by_literal: BTreeMap<Vec<u8>, Vec<(usize, bool)>> = BTreeMap::new();
        for (rule, literals, word_start) in rules {
            for literal in literals {
                let literal = literal.get(..TRIGGER_BYTES_MAX).unwrap_or(literal);
                by_literal.entry(literal.to_vec()).or_default().push((*rule, *word_start));
            }
        }
        // Sorted order puts a prefix right before the literals it prefixes.
        let mut literals: Vec<Vec<u8>> = Vec::new();
        let mut targets: Vec<Vec<(usize, bool)>> = Vec::new();
        for (literal, rules) in by_literal {
            match (literals.last(), targets.last_mut()) {
                (Some(shorter), Some(shorter_rules)) if literal.starts_with(shorter) => {
                    shorter_rules.extend(rules);
                }
                _ => {
                    literals.push(literal);
                    targets.push(rules);
                }
            }
        }
        for rules in &mut targets {
            rules.sort_unstable();
            rules.dedup();
        }
        let (ascii, other): (Vec<_>, Vec<_>) =
            literals.into_iter().zip(targets).partition(|(literal, _)| literal.is_ascii());
        Ok(Triggers { ascii: Automaton::new(ascii)?, other: Automaton::new(other)? })
    }

    /// Calls `found(start, rule)` for every position of `haystack` where a trigger of `rule`
    /// begins. Linear in `haystack`: one overlapping pass of each automaton.
    pub(crate) fn each(&self, haystack: &str, mut found: impl FnMut(usize, usize)) {
        self.ascii.each(haystack, &mut found);
        if !haystack.is_ascii() {
            self.other.each(haystack, &mut found);
        }
    }
}

impl Automaton {
    fn new(literals: Vec<(Vec<u8>, Targets)>) -> Result<Automaton, Box<aho_corasick::BuildError>> {
        let (literals, rules): (Vec<Vec<u8>>, Vec<_>) = literals.into_iter().unzip();
        let automaton = AhoCorasick::builder()
            .kind(Some(AhoCorasickKind::DFA))
            .match_kind(MatchKind::Standard)
            .build(&literals)
            .map_err(Box::new)?;
        Ok(Automaton { automaton, rules })
    }

    fn each(&self, haystack: &str, found: &mut impl FnMut(usize, usize)) {
        let bytes = haystack.as_bytes();
        // One overlapping pass: every occurrence of every literal, each byte read once
        // (restarting a leftmost search after each hit would reread the hit and pay a call).
        let mut state = aho_corasick::automaton::OverlappingState::start();
        let input = aho_corasick::Input::new(haystack);
        loop {
            // Fails only for a leftmost match kind or an anchored search, neither used here.
            if self.automaton.try_find_overlapping(input.clone(), &mut state).is_err() {
                break;
            }
            let Some(hit) = state.get_match() else { break };
            let Some(rules) = self.rules.get(hit.pattern().as_usize()) else { continue };
            let mid_word = hit
                .start()
                .checked_sub(1)
                .and_then(|before| bytes.get(before))
                .is_some_and(|b| is_word_byte(*b));
            for (rule, word_start) in rules {
                if !(mid_word && *word_start) {
                    found(hit.start(), *rule);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literals(pattern: &str) -> Vec<Option<Vec<Vec<u8>>>> {
        plan(pattern, 4).unwrap().into_iter().map(|plan| plan.trigger.map(|(literals, _)| literals)).collect()
    }

    #[test]
    fn plans_pick_rare_mandatory_parts() {
        let found = literals(r"(?:ignore|disregard)[ ,]{1,4}(?:all|any)");
        assert_eq!(found, [Some(vec![b"ignore".to_vec(), b"disregard".to_vec()])]);
        // A common first word: the rarer mandatory part is chosen, and the part before it is
        // kept to find the start.
        let plans = plan(r"(?:is|the) (?:amoral|unfiltered)", 4).unwrap();
        let (found, before) = plans[0].trigger.clone().unwrap();
        assert_eq!(found, [b"amoral".to_vec(), b"unfiltered".to_vec()]);
        assert!(before.is_some());
        assert_eq!(literals(r"(?:^|\n)system:|(?:a|b)[0-9]+"), [Some(vec![b"system:".to_vec()]), None]);
        let gate =
            Triggers::new(&[(0, vec![b"ign".to_vec()], false), (1, vec![b"ignore".to_vec()], true)]).unwrap();
        let mut hits = Vec::new();
        gate.each("xx ignore xignore", |start, rule| hits.push((start, rule)));
        assert_eq!(hits, vec![(3, 0), (3, 1), (11, 0)]);
        let plans = plan(r"(?-u:\b)(?:is|the)[ ,]{1,4}(?:amoral|unfiltered)", 4).unwrap();
        assert!(plans[0].word_start);
    }
}
