//! The pipeline's own measurements, rendered as Prometheus text for `GET /metrics` (the
//! gateway shows them through its probes): per phase, the inputs handled by outcome, the
//! inputs in flight and the time a handler takes (a histogram, seconds); the log's appends by
//! result and their latency; the task fold cache's hits and misses; agent attempts by agent
//! and outcome and their duration. Counters only go up; a gauge is a value now.
//!
//! Everything here is atomics or a short lock around a small map: recording costs
//! nanoseconds on the pipeline's hot path.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, seconds: 100 µs to 30 s.
pub const LATENCY_BUCKETS_S: [f64; 14] =
    [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0];

/// A latency histogram with [`LATENCY_BUCKETS_S`] (cumulative when rendered).
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS_S.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS_S.iter().position(|bound| seconds <= *bound) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, bucket) in LATENCY_BUCKETS_S.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

/// Upper bounds of the batch-size buckets: events per append.
pub const BATCH_BUCKETS: [u64; 8] = [1, 2, 3, 4, 6, 8, 16, 64];

/// A histogram of event counts per append, with [`BATCH_BUCKETS`].
#[derive(Debug, Default)]
pub struct SizeHistogram {
    buckets: [AtomicU64; BATCH_BUCKETS.len()],
    count: AtomicU64,
    sum: AtomicU64,
}

impl SizeHistogram {
    /// Records one observation.
    pub fn observe(&self, size: u64) {
        if let Some(i) = BATCH_BUCKETS.iter().position(|bound| size <= *bound) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(size, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str) {
        let mut cumulative = 0;
        for (bound, bucket) in BATCH_BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.sum.load(Ordering::Relaxed));
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// How one phase is doing.
#[derive(Debug, Default)]
struct PhaseStats {
    done: AtomicU64,
    interrupted: AtomicU64,
    failed: AtomicU64,
    in_flight: AtomicI64,
    seconds: Histogram,
}

/// What an append of a phase's outputs did, for counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendResult {
    /// Written.
    Written,
    /// In the log already.
    Duplicate,
    /// The stream moved: decided again.
    Conflict,
    /// Refused by the fold (a bug).
    Illegal,
    /// The log failed.
    Error,
}

impl AppendResult {
    const ALL: [Self; 5] = [Self::Written, Self::Duplicate, Self::Conflict, Self::Illegal, Self::Error];

    fn name(self) -> &'static str {
        match self {
            Self::Written => "written",
            Self::Duplicate => "duplicate",
            Self::Conflict => "conflict",
            Self::Illegal => "illegal",
            Self::Error => "error",
        }
    }
}

/// The pipeline's measurements, shared by the phases of one process.
#[derive(Debug, Default)]
pub struct PipelineMetrics {
    phases: Mutex<BTreeMap<&'static str, std::sync::Arc<PhaseStats>>>,
    appends: [AtomicU64; AppendResult::ALL.len()],
    append_seconds: Histogram,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    /// (agent, outcome) → attempts.
    attempts: Mutex<BTreeMap<(String, &'static str), u64>>,
    attempt_seconds: Histogram,
    append_events: SizeHistogram,
    /// (where, verdict) → screenings.
    verdicts: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
}

impl PipelineMetrics {
    fn phase(&self, name: &'static str) -> std::sync::Arc<PhaseStats> {
        let Ok(mut phases) = self.phases.lock() else { return std::sync::Arc::default() };
        std::sync::Arc::clone(phases.entry(name).or_default())
    }

    /// The meter of `phase`, to keep: its handlers then record without a lock.
    pub(crate) fn phase_meter(&self, phase: &'static str) -> PhaseMeter {
        PhaseMeter(self.phase(phase))
    }

    /// Counts an append of `events` events, its result and its latency.
    pub(crate) fn appended(&self, result: AppendResult, events: usize, took: Duration) {
        let i = AppendResult::ALL.iter().position(|r| *r == result).unwrap_or(0);
        self.appends[i].fetch_add(1, Ordering::Relaxed);
        self.append_seconds.observe(took);
        self.append_events.observe(u64::try_from(events).unwrap_or(u64::MAX));
    }

    /// Counts a screening's verdict: `at` is `ingress`, `egress` or `context`; `verdict`
    /// `pass`, `redacted` or `refused`.
    pub(crate) fn screened(&self, at: &'static str, verdict: &crate::screening::Verdict) {
        let name = match verdict {
            crate::screening::Verdict::Pass { redacted: Some(_), .. } => "redacted",
            crate::screening::Verdict::Pass { .. } => "pass",
            crate::screening::Verdict::Refuse { .. } => "refused",
        };
        if let Ok(mut verdicts) = self.verdicts.lock() {
            *verdicts.entry((at, name)).or_default() += 1;
        }
    }

    /// Counts a look at the task fold cache.
    pub(crate) fn cache(&self, hit: bool) {
        let counter = if hit { &self.cache_hits } else { &self.cache_misses };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an attempt's end on `agent` (`result`, `failed`, `timed_out`) and its duration.
    pub(crate) fn attempt(&self, agent: &str, outcome: &'static str, took: Duration) {
        if let Ok(mut attempts) = self.attempts.lock() {
            *attempts.entry((agent.to_string(), outcome)).or_default() += 1;
        }
        self.attempt_seconds.observe(took);
    }

    /// Inputs `phase` has handled to the end.
    pub fn handled(&self, phase: &'static str) -> u64 {
        self.phase(phase).done.load(Ordering::Relaxed)
    }

    /// The Prometheus text of every series.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let phases: Vec<(&'static str, std::sync::Arc<PhaseStats>)> = self
            .phases
            .lock()
            .map(|p| p.iter().map(|(k, v)| (*k, std::sync::Arc::clone(v))).collect())
            .unwrap_or_default();
        let head = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        head(&mut out, "pantheon_phase_inputs_total", "counter", "Inputs a phase handled, by outcome.");
        for (phase, stats) in &phases {
            for (outcome, counter) in
                [("done", &stats.done), ("interrupted", &stats.interrupted), ("failed", &stats.failed)]
            {
                let value = counter.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "pantheon_phase_inputs_total{{phase=\"{phase}\",outcome=\"{outcome}\"}} {value}"
                );
            }
        }
        head(&mut out, "pantheon_phase_in_flight", "gauge", "Inputs a phase is handling now.");
        for (phase, stats) in &phases {
            let value = stats.in_flight.load(Ordering::Relaxed).max(0);
            let _ = writeln!(out, "pantheon_phase_in_flight{{phase=\"{phase}\"}} {value}");
        }
        head(
            &mut out,
            "pantheon_phase_handle_seconds",
            "histogram",
            "Time a phase takes to handle an input.",
        );
        for (phase, stats) in &phases {
            stats.seconds.render(&mut out, "pantheon_phase_handle_seconds", &format!("phase=\"{phase}\""));
        }
        head(&mut out, "pantheon_log_appends_total", "counter", "Appends of phases' outputs, by result.");
        for (result, counter) in AppendResult::ALL.iter().zip(&self.appends) {
            let value = counter.load(Ordering::Relaxed);
            let _ = writeln!(out, "pantheon_log_appends_total{{result=\"{}\"}} {value}", result.name());
        }
        head(&mut out, "pantheon_log_append_seconds", "histogram", "Latency of an append to the log.");
        self.append_seconds.render(&mut out, "pantheon_log_append_seconds", "");
        head(&mut out, "pantheon_log_append_events", "histogram", "Events per append of a phase's outputs.");
        self.append_events.render(&mut out, "pantheon_log_append_events");
        head(&mut out, "pantheon_screening_verdicts_total", "counter", "Screenings by where and verdict.");
        if let Ok(verdicts) = self.verdicts.lock() {
            for ((at, verdict), value) in verdicts.iter() {
                let _ = writeln!(
                    out,
                    "pantheon_screening_verdicts_total{{at=\"{at}\",verdict=\"{verdict}\"}} {value}"
                );
            }
        }
        head(
            &mut out,
            "pantheon_task_cache_lookups_total",
            "counter",
            "Looks at the task fold cache, by result.",
        );
        let (hits, misses) =
            (self.cache_hits.load(Ordering::Relaxed), self.cache_misses.load(Ordering::Relaxed));
        let _ = writeln!(out, "pantheon_task_cache_lookups_total{{result=\"hit\"}} {hits}");
        let _ = writeln!(out, "pantheon_task_cache_lookups_total{{result=\"miss\"}} {misses}");
        head(
            &mut out,
            "pantheon_agent_attempts_total",
            "counter",
            "Agent attempts ended in this process, by agent and outcome.",
        );
        if let Ok(attempts) = self.attempts.lock() {
            for ((agent, outcome), value) in attempts.iter() {
                let agent = agent.replace(['\\', '"', '\n'], "_");
                let _ = writeln!(
                    out,
                    "pantheon_agent_attempts_total{{agent=\"{agent}\",outcome=\"{outcome}\"}} {value}"
                );
            }
        }
        head(
            &mut out,
            "pantheon_agent_attempt_seconds",
            "histogram",
            "Time from an attempt's start to its outcome.",
        );
        self.attempt_seconds.render(&mut out, "pantheon_agent_attempt_seconds", "");
        out
    }
}

/// One phase's series, held by its pump.
#[derive(Clone, Debug)]
pub(crate) struct PhaseMeter(std::sync::Arc<PhaseStats>);

impl PhaseMeter {
    /// A handler starts; the guard records its end.
    pub(crate) fn handling(&self) -> Handling {
        self.0.in_flight.fetch_add(1, Ordering::Relaxed);
        Handling {
            stats: std::sync::Arc::clone(&self.0),
            started: std::time::Instant::now(),
            outcome: HandlingOutcome::Failed,
        }
    }
}

/// How a handler ended, for [`Handling`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HandlingOutcome {
    Done,
    Interrupted,
    Failed,
}

/// A handler running: recorded when dropped (as failed unless told otherwise).
pub(crate) struct Handling {
    stats: std::sync::Arc<PhaseStats>,
    started: std::time::Instant,
    outcome: HandlingOutcome,
}

impl Handling {
    /// Says how the handler ended.
    pub(crate) fn ended(mut self, outcome: HandlingOutcome) {
        self.outcome = outcome;
    }
}

impl Drop for Handling {
    fn drop(&mut self) {
        self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        let counter = match self.outcome {
            HandlingOutcome::Done => &self.stats.done,
            HandlingOutcome::Interrupted => &self.stats.interrupted,
            HandlingOutcome::Failed => &self.stats.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.stats.seconds.observe(self.started.elapsed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_series_are_named_by_convention() {
        let metrics = PipelineMetrics::default();
        metrics.phase_meter("matching").handling().ended(HandlingOutcome::Done);
        metrics.phase_meter("matching").handling().ended(HandlingOutcome::Interrupted);
        drop(metrics.phase_meter("matching").handling());
        let running = metrics.phase_meter("execution").handling();
        metrics.appended(AppendResult::Written, 2, Duration::from_micros(300));
        metrics.appended(AppendResult::Conflict, 1, Duration::from_millis(20));
        metrics.cache(true);
        metrics.attempt("echo", "result", Duration::from_millis(3));
        let text = metrics.render();
        for line in [
            "pantheon_phase_inputs_total{phase=\"matching\",outcome=\"done\"} 1",
            "pantheon_phase_inputs_total{phase=\"matching\",outcome=\"interrupted\"} 1",
            "pantheon_phase_inputs_total{phase=\"matching\",outcome=\"failed\"} 1",
            "pantheon_phase_in_flight{phase=\"execution\"} 1",
            "pantheon_phase_handle_seconds_count{phase=\"matching\"} 3",
            "pantheon_log_appends_total{result=\"written\"} 1",
            "pantheon_log_append_seconds_bucket{le=\"0.0005\"} 1",
            "pantheon_log_append_seconds_bucket{le=\"0.025\"} 2",
            "pantheon_log_append_seconds_bucket{le=\"+Inf\"} 2",
            "pantheon_task_cache_lookups_total{result=\"hit\"} 1",
            "pantheon_agent_attempts_total{agent=\"echo\",outcome=\"result\"} 1",
            "# TYPE pantheon_agent_attempt_seconds histogram",
        ] {
            assert!(text.contains(line), "{line:?} not in\n{text}");
        }
        drop(running);
        assert!(metrics.render().contains("pantheon_phase_in_flight{phase=\"execution\"} 0"));
    }
}
