//! A definition read from YAML or JSON and checked before anything is recorded: names, the
//! DAG (unknown `needs`, cycles), every expression and template, references only to steps
//! upstream, fan-out settings, timeouts and retries. Each refusal names the field.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use events::workflow::{
    DEFINITION_BYTES_MAX, Definition, FAN_OUT_ITEMS_MAX, STEP_ATTEMPTS_MAX, STEPS_MAX, Step,
    WORKFLOW_NAME_BYTES_MAX,
};

use crate::expr::{self, Expr};
use crate::template;

/// Why a definition is refused: the field (`steps[1].needs[0]`) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct DefinitionError {
    /// The field, as a path into the document (`""` for the document as a whole).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

fn refuse(field: impl Into<String>, message: impl Into<String>) -> DefinitionError {
    DefinitionError { field: field.into(), message: message.into() }
}

/// Reads a definition from `text`: JSON when it starts with `{`, YAML otherwise; then checks
/// it ([`check`]).
pub fn parse(text: &str) -> Result<Definition, DefinitionError> {
    if text.len() > DEFINITION_BYTES_MAX {
        return Err(refuse(
            "",
            format!("the definition is {} bytes; at most {DEFINITION_BYTES_MAX}", text.len()),
        ));
    }
    let definition: Definition = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| refuse("", format!("not a definition (JSON): {e}")))?
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| refuse("", format!("not a definition (YAML): {e}")))?
    };
    check(&definition)?;
    Ok(definition)
}

/// Checks a definition read from JSON (as the HTTP API receives it): its size, then [`check`].
pub fn from_value(value: serde_json::Value) -> Result<Definition, DefinitionError> {
    let size = serde_json::to_vec(&value).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > DEFINITION_BYTES_MAX {
        return Err(refuse("", format!("the definition is {size} bytes; at most {DEFINITION_BYTES_MAX}")));
    }
    let definition: Definition =
        serde_json::from_value(value).map_err(|e| refuse("", format!("not a definition: {e}")))?;
    check(&definition)?;
    Ok(definition)
}

/// blake3 of the definition's canonical encoding, hex: what a run is pinned to.
pub fn hash(definition: &Definition) -> String {
    let bytes = events::codec::to_msgpack(definition).unwrap_or_default();
    blake3::hash(&bytes).to_hex().to_string()
}

fn name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= WORKFLOW_NAME_BYTES_MAX
        && name.as_bytes()[0].is_ascii_lowercase()
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// A duration field (`30s`, `5m`) as milliseconds, within a task's limits (1 ms to 24 h).
pub fn duration_ms(field: &str, text: &str) -> Result<u64, DefinitionError> {
    duration_ms_at_most(field, text, events::task::TASK_TIMEOUT_MS_MAX)
}

/// The longest a run may wait for anything (an approval, its deadline): 30 days.
pub const WAIT_MS_MAX: u64 = 30 * 24 * 60 * 60 * 1000;

/// A duration field as milliseconds, 1 ms to `max_ms`.
pub fn duration_ms_at_most(field: &str, text: &str, max_ms: u64) -> Result<u64, DefinitionError> {
    let duration: Duration = humantime::parse_duration(text)
        .map_err(|e| refuse(field, format!("{text:?} is not a duration (30s, 5m): {e}")))?;
    let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 || ms > max_ms {
        return Err(refuse(
            field,
            format!("{text:?}: 1 ms to {}", humantime::format_duration(Duration::from_millis(max_ms))),
        ));
    }
    Ok(ms)
}

/// The steps `step` depends on, directly or not.
fn upstream<'a>(steps: &'a BTreeMap<&'a str, &'a Step>, step: &'a Step) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<&str> = step.needs.iter().map(String::as_str).collect();
    while let Some(name) = todo.pop() {
        if seen.insert(name)
            && let Some(s) = steps.get(name)
        {
            todo.extend(s.needs.iter().map(String::as_str));
        }
    }
    seen
}

/// Checks a definition: every refusal names its field.
pub fn check(definition: &Definition) -> Result<(), DefinitionError> {
    if !name_ok(&definition.name) {
        return Err(refuse("name", "1 to 64 of a-z, 0-9, '_' or '-', starting with a letter"));
    }
    if definition.steps.is_empty() {
        return Err(refuse("steps", "a workflow needs at least one step"));
    }
    if definition.steps.len() > STEPS_MAX {
        return Err(refuse("steps", format!("{} steps; at most {STEPS_MAX}", definition.steps.len())));
    }
    if let Some(limit) = definition.max_items
        && !(1..=FAN_OUT_ITEMS_MAX).contains(&limit)
    {
        return Err(refuse("max_items", format!("{limit}: 1 to {FAN_OUT_ITEMS_MAX}")));
    }
    if let Some(deadline) = &definition.deadline {
        duration_ms_at_most("deadline", deadline, WAIT_MS_MAX)?;
    }
    let mut by_name = BTreeMap::new();
    for (i, step) in definition.steps.iter().enumerate() {
        if !name_ok(&step.name) {
            return Err(refuse(
                format!("steps[{i}].name"),
                format!("{:?}: 1 to 64 of a-z, 0-9, '_' or '-', starting with a letter", step.name),
            ));
        }
        if by_name.insert(step.name.as_str(), step).is_some() {
            return Err(refuse(
                format!("steps[{i}].name"),
                format!("{:?} is used by an earlier step", step.name),
            ));
        }
    }
    for (i, step) in definition.steps.iter().enumerate() {
        for (j, need) in step.needs.iter().enumerate() {
            if !by_name.contains_key(need.as_str()) {
                return Err(refuse(format!("steps[{i}].needs[{j}]"), format!("no step is named {need:?}")));
            }
            if *need == step.name {
                return Err(refuse(format!("steps[{i}].needs[{j}]"), "a step cannot need itself"));
            }
        }
    }
    if let Some(cycle) = find_cycle(definition) {
        return Err(refuse("steps", format!("the needs form a cycle: {}", cycle.join(" → "))));
    }
    for (i, step) in definition.steps.iter().enumerate() {
        check_step(definition, &by_name, i, step)?;
    }
    if let Some(output) = &definition.output {
        let exprs = template::expressions(output).map_err(|e| refuse("output", e.0))?;
        for e in &exprs {
            refs_ok("output", e, |step| by_name.contains_key(step), false)?;
        }
    }
    Ok(())
}

fn check_step(
    definition: &Definition,
    by_name: &BTreeMap<&str, &Step>,
    i: usize,
    step: &Step,
) -> Result<(), DefinitionError> {
    let at = |field: &str| format!("steps[{i}].{field}");
    let kinds = usize::from(!step.capability.is_empty())
        + usize::from(step.approval.is_some())
        + usize::from(step.workflow.is_some());
    if kinds != 1 {
        return Err(refuse(
            at("capability"),
            "a step is one of: a task for a capability, an approval, or a child workflow",
        ));
    }
    if let Some(child) = &step.workflow {
        if !name_ok(&child.name) {
            return Err(refuse(
                at("workflow.name"),
                "1 to 64 of a-z, 0-9, '_' or '-', starting with a letter",
            ));
        }
        if step.for_each.is_some() || step.retry.is_some() || step.timeout.is_some() {
            return Err(refuse(at("workflow"), "a child workflow takes no for_each, retry or timeout"));
        }
    }
    if step.capability.len() > events::task::CAPABILITY_BYTES_MAX {
        return Err(refuse(at("capability"), format!("1 to {} bytes", events::task::CAPABILITY_BYTES_MAX)));
    }
    if let Some(approval) = &step.approval {
        if !name_ok(&approval.signal) {
            return Err(refuse(
                at("approval.signal"),
                "1 to 64 of a-z, 0-9, '_' or '-', starting with a letter",
            ));
        }
        if let Some(timeout) = &approval.timeout {
            duration_ms_at_most(&at("approval.timeout"), timeout, WAIT_MS_MAX)?;
        }
        if step.for_each.is_some() || step.retry.is_some() || step.timeout.is_some() {
            return Err(refuse(
                at("approval"),
                "an approval takes no for_each, retry or timeout (its wait is approval.timeout)",
            ));
        }
    }
    let above = upstream(by_name, step);
    let fan_out = step.for_each.is_some();
    let known = |name: &str| above.contains(name);
    if let Some(when) = &step.when {
        let e = expr::parse(strip(when)).map_err(|e| refuse(at("when"), e.0))?;
        // Decided once for the step, before any item: `item` is not known there.
        refs_ok(&at("when"), &e, known, false)?;
    }
    if let Some(list) = &step.for_each {
        let e = expr::parse(strip(list)).map_err(|e| refuse(at("for_each"), e.0))?;
        refs_ok(&at("for_each"), &e, known, false)?;
    }
    for (field, template) in
        [("description", &serde_json::Value::String(step.description.clone())), ("input", &step.input)]
    {
        for e in template::expressions(template).map_err(|e| refuse(at(field), e.0))? {
            refs_ok(&at(field), &e, known, fan_out)?;
        }
    }
    if let Some(compensation) = &step.compensate {
        if compensation.capability.is_empty()
            || compensation.capability.len() > events::task::CAPABILITY_BYTES_MAX
        {
            return Err(refuse(
                at("compensate.capability"),
                format!("1 to {} bytes", events::task::CAPABILITY_BYTES_MAX),
            ));
        }
        // A compensation runs after the step: it may read the step itself.
        let known = |name: &str| above.contains(name) || name == step.name;
        for (field, template) in [
            ("compensate.description", &serde_json::Value::String(compensation.description.clone())),
            ("compensate.input", &compensation.input),
        ] {
            for e in template::expressions(template).map_err(|e| refuse(at(field), e.0))? {
                refs_ok(&at(field), &e, known, false)?;
            }
        }
    }
    if !fan_out && (step.max_parallel.is_some() || step.max_items.is_some()) {
        return Err(refuse(at("max_parallel"), "max_parallel and max_items are for a step with for_each"));
    }
    if step.max_parallel == Some(0) {
        return Err(refuse(at("max_parallel"), "at least 1"));
    }
    if let Some(limit) = step.max_items {
        let workflow = definition.item_limit(&Step { max_items: None, ..step.clone() });
        if limit == 0 || limit > workflow {
            return Err(refuse(at("max_items"), format!("{limit}: 1 to the workflow's limit, {workflow}")));
        }
    }
    if let Some(timeout) = &step.timeout {
        duration_ms(&at("timeout"), timeout)?;
    }
    if let Some(retry) = &step.retry {
        if !(1..=STEP_ATTEMPTS_MAX).contains(&retry.attempts) {
            return Err(refuse(
                at("retry.attempts"),
                format!("{}: 1 to {STEP_ATTEMPTS_MAX}", retry.attempts),
            ));
        }
        if let Some(backoff) = &retry.backoff {
            duration_ms(&at("retry.backoff"), backoff)?;
        }
        if let Some(max) = &retry.backoff_max {
            duration_ms(&at("retry.backoff_max"), max)?;
        }
    }
    Ok(())
}

/// `when` and `for_each` may be written bare or as `${…}`.
pub fn strip(text: &str) -> &str {
    let trimmed = text.trim();
    trimmed.strip_prefix("${").and_then(|t| t.strip_suffix('}')).unwrap_or(trimmed)
}

/// Refuses references to steps `known` does not hold, and `item`/`index` outside a fan-out.
fn refs_ok(
    field: &str,
    e: &Expr,
    known: impl Fn(&str) -> bool,
    fan_out: bool,
) -> Result<(), DefinitionError> {
    let mut refs = Vec::new();
    e.references(&mut refs);
    for (root, step) in refs {
        match (root.as_str(), step) {
            ("steps", Some(step)) if !known(&step) => {
                return Err(refuse(
                    field,
                    format!("steps.{step} is not a step this one needs (directly or through others)"),
                ));
            }
            ("steps", None) => {
                return Err(refuse(field, "a reference to steps names one: steps.<name>.output"));
            }
            ("item" | "index", _) if !fan_out => {
                return Err(refuse(field, format!("{root} is only known in a step with for_each")));
            }
            _ => {}
        }
    }
    Ok(())
}

/// A cycle of needs, as step names, if any.
fn find_cycle(definition: &Definition) -> Option<Vec<String>> {
    let needs: BTreeMap<&str, &Vec<String>> =
        definition.steps.iter().map(|s| (s.name.as_str(), &s.needs)).collect();
    // 0 unvisited, 1 on the path, 2 done.
    let mut mark: BTreeMap<&str, u8> = BTreeMap::new();
    fn visit<'a>(
        name: &'a str,
        needs: &BTreeMap<&'a str, &'a Vec<String>>,
        mark: &mut BTreeMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match mark.get(name) {
            Some(2) => return None,
            Some(1) => {
                let from = path.iter().position(|n| *n == name).unwrap_or(0);
                let mut cycle: Vec<String> = path[from..].iter().map(|s| (*s).to_string()).collect();
                cycle.push(name.to_string());
                return Some(cycle);
            }
            _ => {}
        }
        mark.insert(name, 1);
        path.push(name);
        for next in needs.get(name).map(|v| v.as_slice()).unwrap_or_default() {
            if let Some(cycle) = visit(next, needs, mark, path) {
                return Some(cycle);
            }
        }
        path.pop();
        mark.insert(name, 2);
        None
    }
    for step in &definition.steps {
        if let Some(cycle) = visit(&step.name, &needs, &mut mark, &mut Vec::new()) {
            return Some(cycle);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAIN: &str = r#"
name: research
steps:
  - name: plan
    capability: plan
    input: "${input.topic}"
  - name: work
    capability: research
    needs: [plan]
    for_each: "${steps.plan.output.items}"
    max_parallel: 4
    input: {question: "${item}", n: "${index}"}
  - name: review
    capability: review
    needs: [work]
    when: "len(steps.work.output) > 0"
    input: "${steps.work.output}"
    timeout: 30s
    retry: {attempts: 2}
output: "${steps.review.output}"
"#;

    #[test]
    fn a_good_definition_reads_from_yaml_and_json_alike() {
        let yaml = parse(CHAIN).unwrap();
        let json = parse(&serde_json::to_string(&yaml).unwrap()).unwrap();
        assert_eq!(yaml, json);
        assert_eq!(hash(&yaml), hash(&json));
        assert_eq!(yaml.steps[1].max_parallel, Some(4));
    }

    fn refused(text: &str) -> DefinitionError {
        parse(text).expect_err(text)
    }

    #[test]
    fn bad_definitions_name_the_field() {
        let cases = [
            (
                CHAIN.replace("needs: [plan]", "needs: [plan, nowhere]"),
                "steps[1].needs[1]",
                "no step is named",
            ),
            (CHAIN.replace("needs: [plan]", "needs: [review]"), "steps", "cycle"),
            (CHAIN.replace("needs: [work]", "needs: [plan]"), "steps[2].when", "not a step this one needs"),
            (
                CHAIN.replace("input: \"${input.topic}\"", "input: \"${item}\""),
                "steps[0].input",
                "only known in a step with for_each",
            ),
            (
                CHAIN.replace("len(steps.work.output) > 0", "len(steps.work.output) >"),
                "steps[2].when",
                "ends too early",
            ),
            (CHAIN.replace("timeout: 30s", "timeout: soon"), "steps[2].timeout", "not a duration"),
            (CHAIN.replace("attempts: 2", "attempts: 99"), "steps[2].retry.attempts", "1 to 10"),
            (CHAIN.replace("max_parallel: 4", "max_parallel: 0"), "steps[1].max_parallel", "at least 1"),
            (CHAIN.replace("name: work", "name: plan"), "steps[1].name", "earlier step"),
            (CHAIN.replace("name: research", "name: Research"), "name", "a-z"),
            (CHAIN.replace("timeout: 30s", "timeout: 30s\n    colour: red"), "", "unknown field `colour`"),
            (
                CHAIN.replace("output: \"${steps.review.output}\"", "output: \"${steps.nope.output}\""),
                "output",
                "not a step",
            ),
        ];
        for (text, field, says) in cases {
            let error = refused(&text);
            assert_eq!(error.field, field, "{error}");
            assert!(error.message.contains(says), "{error}");
        }
        let huge = format!("{CHAIN}\ndescription: \"{}\"", "x".repeat(300_000));
        assert!(refused(&huge).message.contains("bytes"));
        assert!(refused("name: x\nsteps: []").message.contains("at least one step"));
    }
}
