//! The bench's figures and what is derived from them, with no I/O: percentiles, Python ÷ Rust
//! ratios, the target checks, the JSON document and the Markdown table.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The functions measured, as named in the JSON document.
pub const FENCE: &str = "fence";
pub const ROUTE53: &str = "route53";
pub const VPC: &str = "vpc";

/// The targets of the bench (issue 10).
pub const WARM_P50_SPEEDUP_TARGET: f64 = 10.0;
pub const COLD_START_SPEEDUP_TARGET: f64 = 10.0;
pub const RSS_RATIO_TARGET: f64 = 4.0;
/// How far above its floor (its round trips in sequence × the added latency) a Rust function's
/// cold start and warm p50 may be (issues 16 and 19).
pub const FLOOR_SLACK_MS: f64 = 10.0;
/// The fence's cold start against the seed's, at 0 ms (issue 19).
pub const FENCE_COLD_START_SPEEDUP_TARGET: f64 = 30.0;
/// The warm fence at 0 ms and its peak RSS, no worse than before issue 19.
pub const FENCE_WARM_P50_MAX_MS: f64 = 4.5;
pub const FENCE_PEAK_RSS_MAX_MIB: f64 = 10.1;
/// A warm Route 53 pin when nothing changed since the function last read the health check.
pub const ROUTE53_WARM_ROUND_TRIPS: u64 = 1;

/// One remote call of one invocation, on the invocation's timeline: milliseconds from the
/// moment the bench sent the invocation, as the emulator that answered saw the call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimedCall {
    pub operation: String,
    pub start_ms: f64,
    pub end_ms: f64,
    /// Part of the longest chain of calls one after the other (see [`round_trips`]).
    pub in_chain: bool,
    /// Made after the function had answered (its runtime still at work before asking for the
    /// next event): the caller did not wait for it, and it is in no chain.
    #[serde(default)]
    pub after_answer: bool,
}

/// The round trips in sequence: the longest chain of calls none of which overlaps the next,
/// each starting after the one before it ended (`(start, end)` pairs on one clock). Taking the
/// call that ends first, then the first to end of those that start after it, and so on, gives
/// the longest such chain (interval scheduling); the indices of its calls.
pub fn round_trips(spans: &[(u64, u64)]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_by_key(|&index| (spans[index].1, spans[index].0));
    let mut chain = Vec::new();
    let mut free_from = 0;
    for index in order {
        let (start, end) = spans[index];
        if chain.is_empty() || start >= free_from {
            chain.push(index);
            free_from = end;
        }
    }
    chain
}

/// `spans` (`(operation, start µs, end µs)`) as a timeline from `origin_us`, the chain marked.
/// Calls that started at or after `answered_us` (when the caller had the whole answer) are
/// marked as after the answer and left out of the chain.
pub fn timeline(spans: &[(String, u64, u64)], origin_us: u64, answered_us: u64) -> Vec<TimedCall> {
    let before: Vec<usize> = (0..spans.len())
        .filter(|&index| spans[index].1 < answered_us)
        .collect();
    let pairs: Vec<(u64, u64)> = before
        .iter()
        .map(|&index| (spans[index].1, spans[index].2))
        .collect();
    let chain: Vec<usize> = round_trips(&pairs)
        .into_iter()
        .map(|position| before[position])
        .collect();
    let ms = |us: u64| round(us.saturating_sub(origin_us) as f64 / 1000.0, 1);
    let mut calls: Vec<TimedCall> = spans
        .iter()
        .enumerate()
        .map(|(index, (operation, start, end))| TimedCall {
            operation: operation.clone(),
            start_ms: ms(*start),
            end_ms: ms(*end),
            in_chain: chain.contains(&index),
            after_answer: *start >= answered_us,
        })
        .collect();
    calls.sort_by(|a, b| a.start_ms.total_cmp(&b.start_ms));
    calls
}
/// The warm fence's remote calls: `ListListeners`, `ListEndpointGroups` and the probe at once,
/// then `PutItem`, `RemoveEndpoints` and the take-offline.
pub const FENCE_WARM_CALLS_TARGET: u64 = 6;

/// Nearest-rank percentile (`p` in 0–100) of `samples`; `None` when there are none.
pub fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    let mut sorted: Vec<f64> = samples.iter().copied().filter(|s| s.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let rank = (p.clamp(0.0, 100.0) / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The median of whole numbers (nearest rank, so always one of the samples).
pub fn median_count(samples: &[u64]) -> Option<u64> {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = sorted.len().div_ceil(2);
    rank.checked_sub(1).map(|index| sorted[index])
}

/// `numerator / denominator`, or `None` when that is not a number worth printing.
pub fn ratio(numerator: f64, denominator: f64) -> Option<f64> {
    let value = numerator / denominator;
    (denominator > 0.0 && value.is_finite()).then(|| round(value, 2))
}

/// Rounds to `decimals` places, for a JSON document a person reads.
pub fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// What was measured of one function, at one latency, before it is summarised.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Samples {
    /// Process start → first response, per cold start, as the Lambda host measured it.
    pub cold_start_ms: Vec<f64>,
    /// Remote calls counted by the emulators during each cold invocation.
    pub cold_calls: Vec<u64>,
    /// Request → whole response, per warm invocation, as the caller saw it.
    pub warm_ms: Vec<f64>,
    /// Remote calls counted by the emulators during each warm invocation, by operation.
    pub warm_calls: Vec<BTreeMap<String, u64>>,
    /// The largest `VmHWM` of the function's processes, in KiB.
    pub peak_rss_kb: u64,
    /// Each cold, warm and resent invocation's calls on its timeline.
    pub cold_timelines: Vec<Vec<TimedCall>>,
    pub warm_timelines: Vec<Vec<TimedCall>>,
    /// The same report again, as a resend finds it: the fence's decision recorded (and the
    /// traffic back), the Route 53 health check still pinned. Request → whole response.
    pub resend_ms: Vec<f64>,
    pub resend_timelines: Vec<Vec<TimedCall>>,
}

/// The emulators' own time on the path the answer waited for: from the last call before the
/// answer, back through the call that ended last before each one started. Where calls ran at
/// once, the one that ended last is the one the function waited for; each counts its span less
/// the added latency.
pub fn emulators_on_critical_path(timeline: &[TimedCall], latency_ms: u64) -> f64 {
    let mut calls: Vec<&TimedCall> = timeline.iter().filter(|c| !c.after_answer).collect();
    calls.sort_by(|a, b| a.end_ms.total_cmp(&b.end_ms));
    let mut total = 0.0;
    let mut until = f64::INFINITY;
    while let Some(position) = calls.iter().rposition(|call| call.end_ms <= until) {
        let call = calls[position];
        total += (call.end_ms - call.start_ms - latency_ms as f64).max(0.0);
        until = call.start_ms;
        calls.truncate(position);
    }
    round(total, 1)
}

/// Moves a timeline's origin `ms` later (a cold start's from the request to its process start).
pub fn shift(timeline: &mut [TimedCall], ms: f64) {
    for call in timeline {
        call.start_ms = round(call.start_ms - ms, 1);
        call.end_ms = round(call.end_ms - ms, 1);
    }
}

/// The round trips in sequence of a timeline.
fn chain_length(timeline: &[TimedCall]) -> u64 {
    timeline.iter().filter(|call| call.in_chain).count() as u64
}

/// The critical path of one kind of invocation (cold, warm or resent) at one latency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CriticalPath {
    /// The median invocation's round trips in sequence.
    pub round_trips: u64,
    /// `round_trips` × the added latency: no function can answer sooner.
    pub floor_ms: f64,
    /// The figure (cold start, warm p50, resend p50) minus the floor.
    pub over_floor_ms: f64,
    /// Of that, the time the emulators themselves took on the critical path (each of its
    /// calls' span less the added latency; see [`emulators_on_critical_path`]): moto's Python,
    /// mostly. The rest is the function's own.
    #[serde(default)]
    pub emulators_ms: f64,
    /// The calls of the invocation whose time is nearest the figure.
    pub timeline: Vec<TimedCall>,
}

impl CriticalPath {
    fn of(
        latency_ms: u64,
        figure_ms: f64,
        times: &[f64],
        timelines: &[Vec<TimedCall>],
    ) -> Option<Self> {
        let chains: Vec<u64> = timelines.iter().map(|t| chain_length(t)).collect();
        let round_trips = median_count(&chains)?;
        let floor_ms = (round_trips * latency_ms) as f64;
        let typical = times
            .iter()
            .zip(timelines)
            .min_by(|(a, _), (b, _)| (*a - figure_ms).abs().total_cmp(&(*b - figure_ms).abs()))
            .map(|(_, timeline)| timeline.clone())
            .unwrap_or_default();
        let emulators_ms = emulators_on_critical_path(&typical, latency_ms);
        Some(CriticalPath {
            round_trips,
            floor_ms,
            over_floor_ms: round(figure_ms - floor_ms, 2),
            emulators_ms: round(emulators_ms, 1),
            timeline: typical,
        })
    }
}

/// One function's figures at one latency: the JSON document's `rust.fence`, `python.route53`, ….
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// The latency the emulators added to every remote call during this run.
    pub latency_ms: u64,
    pub cold_start_ms: f64,
    pub warm_p50_ms: f64,
    pub warm_p99_ms: f64,
    /// The median warm invocation's remote calls, counted by the emulators.
    pub remote_calls_warm: u64,
    /// Of those, the calls made after the answer (the median warm invocation's).
    #[serde(default)]
    pub remote_calls_after_answer_warm: u64,
    pub peak_rss_mib: f64,
    /// The deployment ZIP (`bootstrap`, or the handler's `.py`).
    pub zip_bytes: u64,
    /// The median cold invocation's remote calls.
    pub remote_calls_cold: u64,
    /// The median warm invocation's calls by `service.Operation`.
    pub remote_calls_by_operation: BTreeMap<String, u64>,
    pub warm_invocations: usize,
    pub cold_starts: usize,
    /// Request → whole response of a resent report, p50.
    #[serde(default)]
    pub resend_p50_ms: Option<f64>,
    #[serde(default)]
    pub critical_path_cold: Option<CriticalPath>,
    #[serde(default)]
    pub critical_path_warm: Option<CriticalPath>,
    #[serde(default)]
    pub critical_path_resend: Option<CriticalPath>,
}

impl Figures {
    /// `None` when a sample set is empty (nothing to summarise).
    pub fn summarise(latency_ms: u64, samples: &Samples, zip_bytes: u64) -> Option<Figures> {
        let totals: Vec<u64> = samples
            .warm_calls
            .iter()
            .map(|calls| calls.values().sum())
            .collect();
        let remote_calls_warm = median_count(&totals)?;
        let after_answer: Vec<u64> = samples
            .warm_timelines
            .iter()
            .map(|timeline| timeline.iter().filter(|call| call.after_answer).count() as u64)
            .collect();
        let remote_calls_after_answer_warm = median_count(&after_answer).unwrap_or(0);
        let typical = samples
            .warm_calls
            .iter()
            .zip(&totals)
            .rev()
            .find(|(_, total)| **total == remote_calls_warm)
            .map(|(calls, _)| calls.clone())
            .unwrap_or_default();
        let cold_start_ms = round(percentile(&samples.cold_start_ms, 50.0)?, 3);
        let warm_p50_ms = round(percentile(&samples.warm_ms, 50.0)?, 3);
        let resend_p50_ms = percentile(&samples.resend_ms, 50.0).map(|p50| round(p50, 3));
        Some(Figures {
            latency_ms,
            cold_start_ms,
            warm_p50_ms,
            resend_p50_ms,
            critical_path_cold: CriticalPath::of(
                latency_ms,
                cold_start_ms,
                &samples.cold_start_ms,
                &samples.cold_timelines,
            ),
            critical_path_warm: CriticalPath::of(
                latency_ms,
                warm_p50_ms,
                &samples.warm_ms,
                &samples.warm_timelines,
            ),
            critical_path_resend: resend_p50_ms.and_then(|p50| {
                CriticalPath::of(
                    latency_ms,
                    p50,
                    &samples.resend_ms,
                    &samples.resend_timelines,
                )
            }),
            warm_p99_ms: round(percentile(&samples.warm_ms, 99.0)?, 3),
            remote_calls_warm,
            remote_calls_after_answer_warm,
            peak_rss_mib: round(samples.peak_rss_kb as f64 / 1024.0, 2),
            zip_bytes,
            remote_calls_cold: median_count(&samples.cold_calls).unwrap_or(0),
            remote_calls_by_operation: typical,
            warm_invocations: samples.warm_ms.len(),
            cold_starts: samples.cold_start_ms.len(),
        })
    }
}

/// Python ÷ Rust: how many times faster (or smaller) the Rust function is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ratios {
    pub warm_p50_speedup: Option<f64>,
    pub warm_p99_speedup: Option<f64>,
    pub cold_start_speedup: Option<f64>,
    pub rss_ratio: Option<f64>,
    /// Rust ÷ Python: the Rust ZIP carries its whole runtime, the Python one only the handler.
    pub zip_size_rust_over_python: Option<f64>,
}

impl Ratios {
    pub fn between(rust: &Figures, python: &Figures) -> Ratios {
        Ratios {
            warm_p50_speedup: ratio(python.warm_p50_ms, rust.warm_p50_ms),
            warm_p99_speedup: ratio(python.warm_p99_ms, rust.warm_p99_ms),
            cold_start_speedup: ratio(python.cold_start_ms, rust.cold_start_ms),
            rss_ratio: ratio(python.peak_rss_mib, rust.peak_rss_mib),
            zip_size_rust_over_python: ratio(rust.zip_bytes as f64, python.zip_bytes as f64),
        }
    }
}

/// Everything measured at one latency.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub rust: BTreeMap<String, Figures>,
    pub python: BTreeMap<String, Figures>,
    pub ratios: BTreeMap<String, Ratios>,
}

impl Comparison {
    /// Ratios for every function measured on both sides.
    pub fn new(rust: BTreeMap<String, Figures>, python: BTreeMap<String, Figures>) -> Comparison {
        let ratios = rust
            .iter()
            .filter_map(|(function, ours)| {
                let seed = python.get(function)?;
                Some((function.clone(), Ratios::between(ours, seed)))
            })
            .collect();
        Comparison {
            rust,
            python,
            ratios,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub arch: String,
    pub os: String,
    /// The build of the emulators and the Runtime API host that measure the functions:
    /// `release` unless the bench could not hand itself to a release `xtask`. A debug build
    /// adds about 2.5 ms to every warm invocation, which the functions would be charged with.
    #[serde(default)]
    pub instruments: String,
}

/// One target of the issue, as this run measured it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetCheck {
    pub target: String,
    pub latency_ms: u64,
    pub wanted: String,
    pub measured: String,
    pub met: bool,
}

/// The `--json` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub machine: Machine,
    /// When the run ended, UTC, RFC 3339.
    pub date: String,
    /// The run without added latency.
    #[serde(flatten)]
    pub headline: Comparison,
    /// Every latency run, by latency in milliseconds; present when `--latency-ms` was given.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_latency: BTreeMap<String, Comparison>,
    pub targets: Vec<TargetCheck>,
    /// `[profile.release]` of the workspace the Rust functions were built with.
    pub release_profile: serde_json::Value,
    /// How many warm invocations and cold starts each figure summarises.
    pub invocations: usize,
}

/// Checks the issue's targets against the runs (by latency). A target whose run is absent (no
/// seed to compare with, no latency run) is left out rather than reported as met.
pub fn check_targets(runs: &BTreeMap<u64, Comparison>) -> Vec<TargetCheck> {
    let mut checks = Vec::new();
    if let Some(run) = runs.get(&0) {
        if let Some(speedup) = run.ratios.get(FENCE).map(|r| r.warm_p50_speedup) {
            checks.push(at_least(
                "warm fence p50, Python ÷ Rust",
                0,
                speedup,
                WARM_P50_SPEEDUP_TARGET,
            ));
        }
        for (function, ratios) in &run.ratios {
            checks.push(at_least(
                &format!("{function} cold start, Python ÷ Rust"),
                0,
                ratios.cold_start_speedup,
                COLD_START_SPEEDUP_TARGET,
            ));
            checks.push(at_least(
                &format!("{function} peak RSS, Python ÷ Rust"),
                0,
                ratios.rss_ratio,
                RSS_RATIO_TARGET,
            ));
        }
    }
    if let Some(run) = runs.get(&0) {
        if let Some(speedup) = run.ratios.get(FENCE).map(|r| r.cold_start_speedup) {
            checks.push(at_least(
                "fence cold start, Python ÷ Rust (issue 19)",
                0,
                speedup,
                FENCE_COLD_START_SPEEDUP_TARGET,
            ));
        }
        if let Some(fence) = run.rust.get(FENCE) {
            checks.push(at_most(
                "warm Rust fence p50",
                0,
                fence.warm_p50_ms,
                FENCE_WARM_P50_MAX_MS,
                "ms",
            ));
            checks.push(at_most(
                "Rust fence peak RSS",
                0,
                fence.peak_rss_mib,
                FENCE_PEAK_RSS_MAX_MIB,
                "MiB",
            ));
        }
    }
    for (latency, run) in runs {
        if let Some(fence) = run.rust.get(FENCE) {
            let before_answer = fence
                .remote_calls_warm
                .saturating_sub(fence.remote_calls_after_answer_warm);
            checks.push(TargetCheck {
                target: "remote calls of a warm Rust fence before its answer".to_owned(),
                latency_ms: *latency,
                wanted: format!("≤ {FENCE_WARM_CALLS_TARGET}"),
                measured: before_answer.to_string(),
                met: before_answer <= FENCE_WARM_CALLS_TARGET,
            });
        }
        if *latency == 0 {
            continue;
        }
        if let Some(route53) = run.rust.get(ROUTE53) {
            if let Some(path) = &route53.critical_path_warm {
                checks.push(TargetCheck {
                    target: "round trips in sequence of a warm Rust Route 53 pin".to_owned(),
                    latency_ms: *latency,
                    wanted: format!("{ROUTE53_WARM_ROUND_TRIPS}"),
                    measured: path.round_trips.to_string(),
                    met: path.round_trips == ROUTE53_WARM_ROUND_TRIPS,
                });
            }
            if let Some(seed) = run.python.get(ROUTE53) {
                checks.push(at_most(
                    "warm Rust Route 53 p50, at most the seed's",
                    *latency,
                    route53.warm_p50_ms,
                    seed.warm_p50_ms,
                    "ms",
                ));
            }
        }
        for (function, figures) in &run.rust {
            let kinds = [
                (
                    "cold start",
                    figures.cold_start_ms,
                    &figures.critical_path_cold,
                ),
                ("warm p50", figures.warm_p50_ms, &figures.critical_path_warm),
            ];
            for (kind, measured, path) in kinds {
                let Some(path) = path else { continue };
                checks.push(TargetCheck {
                    target: format!(
                        "Rust {function} {kind} within {FLOOR_SLACK_MS} ms of its floor \
                         ({} round trips in sequence × {latency} ms)",
                        path.round_trips
                    ),
                    latency_ms: *latency,
                    wanted: format!("≤ {:.1} ms", path.floor_ms + FLOOR_SLACK_MS),
                    measured: format!(
                        "{measured:.1} ms ({:+.1} ms over the floor, {:.1} of them the \
                         emulators' own)",
                        path.over_floor_ms, path.emulators_ms
                    ),
                    met: path.over_floor_ms <= FLOOR_SLACK_MS,
                });
            }
        }
    }
    checks
}

fn at_most(target: &str, latency_ms: u64, measured: f64, wanted: f64, unit: &str) -> TargetCheck {
    TargetCheck {
        target: target.to_owned(),
        latency_ms,
        wanted: format!("≤ {wanted} {unit}"),
        measured: format!("{measured:.2} {unit}"),
        met: measured <= wanted,
    }
}

fn at_least(target: &str, latency_ms: u64, measured: Option<f64>, wanted: f64) -> TargetCheck {
    TargetCheck {
        target: target.to_owned(),
        latency_ms,
        wanted: format!("≥ {wanted}×"),
        measured: measured.map_or_else(|| "not measurable".to_owned(), |m| format!("{m:.1}×")),
        met: measured.is_some_and(|m| m >= wanted),
    }
}

/// The Markdown tables of BENCHMARKS.md: one per latency, both functions side by side.
pub fn markdown(report: &Report) -> String {
    let mut runs: Vec<(u64, &Comparison)> = report
        .by_latency
        .iter()
        .filter_map(|(latency, run)| Some((latency.parse().ok()?, run)))
        .collect();
    if runs.is_empty() {
        runs.push((0, &report.headline));
    }
    runs.sort_by_key(|(latency, _)| *latency);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Machine: {} ({} cores, {} {}); date {}; {} warm invocations per function; \
         emulators: {} build.\n",
        report.machine.cpu,
        report.machine.cores,
        report.machine.os,
        report.machine.arch,
        report.date,
        report.invocations,
        report.machine.instruments
    );
    for &(latency, run) in &runs {
        let _ = writeln!(out, "Added latency per remote call: {latency} ms\n");
        let functions: Vec<&String> = run.rust.keys().collect();
        let mut header = String::from("| figure |");
        let mut rule = String::from("|---|");
        for function in &functions {
            let _ = write!(
                header,
                " {function} Rust | {function} Python | {function} Python ÷ Rust |"
            );
            rule.push_str("---:|---:|---:|");
        }
        let _ = writeln!(out, "{header}\n{rule}");
        let rows: [(&str, Row); 14] = [
            ("cold start (ms)", |f| format!("{:.1}", f.cold_start_ms)),
            ("warm p50 (ms)", |f| format!("{:.2}", f.warm_p50_ms)),
            ("warm p99 (ms)", |f| format!("{:.2}", f.warm_p99_ms)),
            ("remote calls, warm", |f| f.remote_calls_warm.to_string()),
            ("of which after the answer, warm", |f| {
                f.remote_calls_after_answer_warm.to_string()
            }),
            ("peak RSS (MiB)", |f| format!("{:.1}", f.peak_rss_mib)),
            ("ZIP (bytes)", |f| f.zip_bytes.to_string()),
            ("resend p50 (ms)", |f| {
                f.resend_p50_ms
                    .map_or_else(|| "–".to_owned(), |ms| format!("{ms:.2}"))
            }),
            ("round trips in sequence, cold", |f| {
                path(&f.critical_path_cold, |p| p.round_trips.to_string())
            }),
            ("round trips in sequence, warm", |f| {
                path(&f.critical_path_warm, |p| p.round_trips.to_string())
            }),
            ("round trips in sequence, resend", |f| {
                path(&f.critical_path_resend, |p| p.round_trips.to_string())
            }),
            ("cold start over its floor (ms)", |f| {
                path(&f.critical_path_cold, |p| {
                    format!("{:+.1}", p.over_floor_ms)
                })
            }),
            ("warm p50 over its floor (ms)", |f| {
                path(&f.critical_path_warm, |p| {
                    format!("{:+.1}", p.over_floor_ms)
                })
            }),
            ("resend p50 over its floor (ms)", |f| {
                path(&f.critical_path_resend, |p| {
                    format!("{:+.1}", p.over_floor_ms)
                })
            }),
        ];
        for (label, cell) in &rows {
            let mut line = format!("| {label} |");
            for function in &functions {
                let ours = run.rust.get(*function);
                let seed = run.python.get(*function);
                let ratios = run.ratios.get(*function);
                let ratio = ratios.and_then(|r| match *label {
                    "cold start (ms)" => r.cold_start_speedup,
                    "warm p50 (ms)" => r.warm_p50_speedup,
                    "warm p99 (ms)" => r.warm_p99_speedup,
                    "peak RSS (MiB)" => r.rss_ratio,
                    _ => None,
                });
                let _ = write!(
                    line,
                    " {} | {} | {} |",
                    ours.map_or_else(|| "–".to_owned(), cell),
                    seed.map_or_else(|| "–".to_owned(), cell),
                    ratio.map_or_else(|| "".to_owned(), |r| format!("{r:.1}×"))
                );
            }
            let _ = writeln!(out, "{line}");
        }
        out.push('\n');
    }
    if let Some((latency, run)) = runs.last() {
        let _ = writeln!(
            out,
            "Timelines at {latency} ms (Rust; ms from the request, a cold start's from its \
             process start as the cold start is measured; `*` marks the round trips in \
             sequence, `+` a call made after the answer, which the caller does not wait for):\n"
        );
        for (function, figures) in &run.rust {
            for (kind, path) in [
                ("cold", &figures.critical_path_cold),
                ("warm", &figures.critical_path_warm),
                ("resend", &figures.critical_path_resend),
            ] {
                let Some(path) = path else { continue };
                let _ = writeln!(
                    out,
                    "{function}, {kind}: {} round trips in sequence, floor {:.0} ms, {:+.1} ms over it \
                     ({:.1} of them the emulators' own time on the critical path)",
                    path.round_trips, path.floor_ms, path.over_floor_ms, path.emulators_ms
                );
                let _ = writeln!(out, "```");
                for call in &path.timeline {
                    let _ = writeln!(
                        out,
                        "{} {:>7.1} → {:>7.1}  {}",
                        if call.in_chain {
                            "*"
                        } else if call.after_answer {
                            "+"
                        } else {
                            " "
                        },
                        call.start_ms,
                        call.end_ms,
                        call.operation
                    );
                }
                let _ = writeln!(out, "```\n");
            }
        }
    }
    if !report.targets.is_empty() {
        let _ = writeln!(out, "| target | latency | wanted | measured | met |");
        let _ = writeln!(out, "|---|---:|---|---|---|");
        for check in &report.targets {
            let _ = writeln!(
                out,
                "| {} | {} ms | {} | {} | {} |",
                check.target,
                check.latency_ms,
                check.wanted,
                check.measured,
                if check.met { "yes" } else { "**no**" }
            );
        }
    }
    out
}

type Row = fn(&Figures) -> String;

fn path(critical_path: &Option<CriticalPath>, cell: fn(&CriticalPath) -> String) -> String {
    critical_path.as_ref().map_or_else(|| "–".to_owned(), cell)
}

/// `seconds` since the Unix epoch as RFC 3339 UTC (`2026-11-25T10:00:00Z`).
pub fn utc_date(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let second_of_day = seconds % 86_400;
    // Days → civil date, proleptic Gregorian (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(latency_ms: u64, cold: f64, p50: f64, p99: f64, calls: u64, rss: f64) -> Figures {
        Figures {
            latency_ms,
            cold_start_ms: cold,
            warm_p50_ms: p50,
            warm_p99_ms: p99,
            remote_calls_warm: calls,
            remote_calls_after_answer_warm: 0,
            peak_rss_mib: rss,
            zip_bytes: 4_000_000,
            remote_calls_cold: calls + 4,
            remote_calls_by_operation: BTreeMap::new(),
            warm_invocations: 100,
            cold_starts: 5,
            resend_p50_ms: None,
            critical_path_cold: None,
            // Four round trips in sequence, the warm fence's.
            critical_path_warm: (latency_ms > 0).then(|| CriticalPath {
                round_trips: 4,
                floor_ms: (4 * latency_ms) as f64,
                over_floor_ms: p50 - (4 * latency_ms) as f64,
                emulators_ms: 0.0,
                timeline: Vec::new(),
            }),
            critical_path_resend: None,
        }
    }

    fn comparison(rust: Figures, python: Figures) -> Comparison {
        Comparison::new(
            BTreeMap::from([(FENCE.to_owned(), rust)]),
            BTreeMap::from([(FENCE.to_owned(), python)]),
        )
    }

    #[test]
    fn p50_and_p99_are_nearest_rank_samples() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&samples, 50.0), Some(50.0));
        assert_eq!(percentile(&samples, 99.0), Some(99.0));
        assert_eq!(percentile(&samples, 100.0), Some(100.0));
        assert_eq!(percentile(&samples, 0.0), Some(1.0));
    }

    #[test]
    fn p99_of_few_samples_is_the_slowest() {
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 99.0), Some(3.0));
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 50.0), Some(2.0));
        assert_eq!(percentile(&[7.5], 50.0), Some(7.5));
    }

    #[test]
    fn no_samples_have_no_percentile() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[f64::NAN], 50.0), None);
        assert_eq!(median_count(&[]), None);
    }

    #[test]
    fn call_count_median_is_one_of_the_counts() {
        assert_eq!(median_count(&[3, 3, 9, 3]), Some(3));
        assert_eq!(median_count(&[11, 3]), Some(3));
    }

    #[test]
    fn speedups_are_python_over_rust() {
        let rust = figures(0, 40.0, 2.0, 5.0, 3, 12.0);
        let python = figures(0, 1600.0, 300.0, 450.0, 11, 96.0);
        let ratios = Ratios::between(&rust, &python);
        assert_eq!(ratios.warm_p50_speedup, Some(150.0));
        assert_eq!(ratios.warm_p99_speedup, Some(90.0));
        assert_eq!(ratios.cold_start_speedup, Some(40.0));
        assert_eq!(ratios.rss_ratio, Some(8.0));
    }

    #[test]
    fn a_zero_rust_figure_gives_no_ratio_rather_than_infinity() {
        assert_eq!(ratio(5.0, 0.0), None);
        let json = serde_json::to_value(Ratios::between(
            &figures(0, 0.0, 0.0, 0.0, 3, 0.0),
            &figures(0, 1.0, 1.0, 1.0, 11, 1.0),
        ))
        .unwrap_or_default();
        assert_eq!(json["warm_p50_speedup"], serde_json::Value::Null);
    }

    #[test]
    fn summary_takes_the_median_invocations_calls() {
        let warm_call = |n: u64| BTreeMap::from([("globalaccelerator.X".to_owned(), n)]);
        let samples = Samples {
            cold_start_ms: vec![50.0, 40.0, 60.0],
            cold_calls: vec![9, 9, 9],
            warm_ms: vec![2.0, 3.0, 100.0],
            warm_calls: vec![warm_call(3), warm_call(8), warm_call(3)],
            peak_rss_kb: 12_800,
            ..Samples::default()
        };
        let summary = Figures::summarise(20, &samples, 1234);
        let summary = summary.unwrap_or_else(|| figures(0, 0.0, 0.0, 0.0, 0, 0.0));
        assert_eq!(summary.remote_calls_warm, 3);
        assert_eq!(summary.cold_start_ms, 50.0);
        assert_eq!(summary.warm_p50_ms, 3.0);
        assert_eq!(summary.warm_p99_ms, 100.0);
        assert_eq!(summary.peak_rss_mib, 12.5);
        assert_eq!(summary.latency_ms, 20);
        assert_eq!(summary.remote_calls_cold, 9);
        assert_eq!(summary.remote_calls_by_operation, warm_call(3));
    }

    #[test]
    fn json_has_the_shape_of_the_issue() {
        let zero = comparison(
            figures(0, 40.0, 2.0, 5.0, 3, 12.0),
            figures(0, 1600.0, 300.0, 450.0, 11, 96.0),
        );
        let twenty = comparison(
            figures(20, 120.0, 64.0, 70.0, 3, 12.0),
            figures(20, 1900.0, 560.0, 600.0, 11, 96.0),
        );
        let runs = BTreeMap::from([(0, zero.clone()), (20, twenty.clone())]);
        let report = Report {
            machine: Machine {
                cpu: "AMD EPYC".to_owned(),
                cores: 2,
                arch: "x86_64".to_owned(),
                os: "linux".to_owned(),
                instruments: "release".to_owned(),
            },
            date: utc_date(0),
            headline: zero.clone(),
            by_latency: runs
                .iter()
                .map(|(latency, run)| (latency.to_string(), run.clone()))
                .collect(),
            targets: check_targets(&runs),
            release_profile: serde_json::json!({"lto": "fat"}),
            invocations: 100,
        };
        let json = serde_json::to_value(&report).unwrap_or_default();
        for key in ["machine", "date", "rust", "python", "ratios", "by_latency"] {
            assert!(json.get(key).is_some(), "{key} missing from {json}");
        }
        let fence = &json["rust"]["fence"];
        assert!(fence["remote_calls_warm"].is_u64(), "{fence}");
        for key in [
            "warm_p50_ms",
            "warm_p99_ms",
            "cold_start_ms",
            "peak_rss_mib",
            "latency_ms",
        ] {
            assert!(fence[key].is_number(), "{key} missing from {fence}");
        }
        for key in [
            "warm_p50_speedup",
            "warm_p99_speedup",
            "cold_start_speedup",
            "rss_ratio",
        ] {
            assert!(json["ratios"]["fence"][key].is_number(), "{key}");
        }
        assert_eq!(
            json["by_latency"]["20"]["python"]["fence"]["latency_ms"],
            20
        );
        assert_eq!(json["by_latency"]["0"]["rust"]["fence"]["latency_ms"], 0);
        let back: Result<Report, _> = serde_json::from_value(json);
        assert_eq!(back.ok(), Some(report));
    }

    #[test]
    fn without_a_latency_run_there_is_no_by_latency() {
        let json = serde_json::to_value(Report {
            machine: Machine {
                cpu: "x".to_owned(),
                cores: 1,
                arch: "x".to_owned(),
                os: "x".to_owned(),
                instruments: "release".to_owned(),
            },
            date: utc_date(0),
            headline: Comparison::default(),
            by_latency: BTreeMap::new(),
            targets: Vec::new(),
            release_profile: serde_json::Value::Null,
            invocations: 1,
        })
        .unwrap_or_default();
        assert!(json.get("by_latency").is_none());
        assert!(json.get("rust").is_some());
    }

    #[test]
    fn targets_met_by_a_fast_fence_with_three_calls() {
        let runs = BTreeMap::from([
            (
                0,
                comparison(
                    figures(0, 40.0, 2.0, 5.0, 3, 10.0),
                    figures(0, 1600.0, 300.0, 450.0, 11, 96.0),
                ),
            ),
            (
                20,
                comparison(
                    figures(20, 120.0, 70.0, 80.0, 3, 12.0),
                    figures(20, 1900.0, 560.0, 600.0, 11, 96.0),
                ),
            ),
        ]);
        let checks = check_targets(&runs);
        assert!(checks.iter().all(|c| c.met), "{checks:#?}");
        // 10× warm, 10× cold, 4× RSS, 30× cold, 4.5 ms warm, 10.1 MiB, ≤ 6 calls at 0 and
        // 20, the warm floor at 20.
        assert_eq!(checks.len(), 9);
    }

    #[test]
    fn sequential_calls_over_the_floor_miss_the_latency_target() {
        // Five calls one after the other at 20 ms: 101 ms, 21 over an 80 ms floor; and seven
        // calls where six do.
        let runs = BTreeMap::from([(
            20,
            comparison(
                figures(20, 120.0, 101.0, 110.0, 7, 12.0),
                figures(20, 1900.0, 560.0, 600.0, 11, 96.0),
            ),
        )]);
        let checks = check_targets(&runs);
        let floor = checks.iter().find(|c| c.target.contains("floor"));
        assert_eq!(floor.map(|c| c.met), Some(false), "{checks:#?}");
        let calls = checks.iter().find(|c| c.target.contains("remote calls"));
        assert_eq!(calls.map(|c| c.met), Some(false));
    }

    #[test]
    fn a_slow_rust_fence_misses_the_speedup_target() {
        let runs = BTreeMap::from([(
            0,
            comparison(
                figures(0, 40.0, 50.0, 60.0, 3, 30.0),
                figures(0, 1600.0, 300.0, 450.0, 11, 96.0),
            ),
        )]);
        let checks = check_targets(&runs);
        let warm = checks
            .iter()
            .find(|c| c.target.starts_with("warm fence p50"));
        assert_eq!(warm.map(|c| c.met), Some(false));
        let rss = checks.iter().find(|c| c.target.contains("peak RSS"));
        assert_eq!(rss.map(|c| c.met), Some(false));
    }

    #[test]
    fn without_the_seed_no_ratio_target_is_claimed() {
        let rust_only = Comparison::new(
            BTreeMap::from([(FENCE.to_owned(), figures(0, 40.0, 2.0, 5.0, 3, 12.0))]),
            BTreeMap::new(),
        );
        assert!(rust_only.ratios.is_empty());
        let checks = check_targets(&BTreeMap::from([(0, rust_only)]));
        // The calls, the warm p50 and the RSS are the Rust side's own; no ratio.
        assert_eq!(checks.len(), 3, "{checks:#?}");
        assert!(
            checks.iter().all(|c| !c.target.contains('÷')),
            "{checks:#?}"
        );
    }

    #[test]
    fn table_shows_each_figure_and_ratio() {
        let run = comparison(
            figures(0, 40.0, 2.0, 5.0, 3, 10.0),
            figures(0, 1600.0, 300.0, 450.0, 11, 96.0),
        );
        let report = Report {
            machine: Machine {
                cpu: "AMD EPYC".to_owned(),
                cores: 2,
                arch: "x86_64".to_owned(),
                os: "linux".to_owned(),
                instruments: "release".to_owned(),
            },
            date: utc_date(0),
            headline: run.clone(),
            by_latency: BTreeMap::new(),
            targets: check_targets(&BTreeMap::from([(0, run)])),
            release_profile: serde_json::Value::Null,
            invocations: 100,
        };
        let table = markdown(&report);
        assert!(
            table.contains("| warm p50 (ms) | 2.00 | 300.00 | 150.0× |"),
            "{table}"
        );
        assert!(
            table.contains("| remote calls, warm | 3 | 11 |  |"),
            "{table}"
        );
        assert!(
            table.contains("| cold start (ms) | 40.0 | 1600.0 | 40.0× |"),
            "{table}"
        );
        assert!(!table.contains("**no**"), "{table}");
    }

    #[test]
    fn round_trips_in_sequence_are_the_longest_chain_of_calls_that_do_not_overlap() {
        type Row = (&'static str, Vec<(u64, u64)>, usize);
        let rows: [Row; 6] = [
            ("none", vec![], 0),
            ("one", vec![(0, 20)], 1),
            ("three_at_once", vec![(0, 20), (1, 21), (2, 22)], 1),
            ("one_after_the_other", vec![(0, 20), (21, 41), (42, 62)], 3),
            (
                // The fence: three reads at once, then the record, the removal, the take-offline.
                "the_fence",
                vec![(0, 21), (1, 21), (1, 22), (23, 44), (45, 66), (67, 88)],
                4,
            ),
            (
                // A long call beside a chain of two short ones: the chain counts.
                "long_beside_short",
                vec![(0, 50), (0, 20), (21, 41)],
                2,
            ),
        ];
        for (name, spans, expected) in rows {
            assert_eq!(round_trips(&spans).len(), expected, "{name}");
        }
    }

    #[test]
    fn a_timeline_is_from_the_request_and_marks_its_chain() {
        let spans = vec![
            ("b".to_owned(), 1_022_000, 1_043_000),
            ("a".to_owned(), 1_001_000, 1_021_500),
            ("c".to_owned(), 1_002_000, 1_021_000),
        ];
        let calls = timeline(&spans, 1_000_000, u64::MAX);
        let names: Vec<(&str, f64, bool)> = calls
            .iter()
            .map(|c| (c.operation.as_str(), c.start_ms, c.in_chain))
            .collect();
        assert_eq!(
            names,
            [("a", 1.0, false), ("c", 2.0, true), ("b", 22.0, true)]
        );
    }

    #[test]
    fn a_cold_timeline_is_moved_to_its_process_start() {
        let spans = [("a".to_owned(), 1_010_000, 1_030_000)];
        let mut calls = timeline(&spans, 1_000_000, u64::MAX);
        shift(&mut calls, 3.7);
        assert_eq!((calls[0].start_ms, calls[0].end_ms), (6.3, 26.3));
        assert!(calls[0].in_chain, "the chain is the same");
    }

    #[test]
    fn the_emulators_time_follows_the_call_that_ended_last() {
        let call = |operation: &str, start_ms: f64, end_ms: f64, after_answer: bool| TimedCall {
            operation: operation.to_owned(),
            start_ms,
            end_ms,
            in_chain: false,
            after_answer,
        };
        // Two reads at once (the slower one, 25 ms, is waited for), then a write of 22 ms;
        // a call after the answer counts for nothing.
        let timeline = vec![
            call("fast read", 1.0, 21.0, false),
            call("slow read", 1.0, 26.0, false),
            call("write", 27.0, 49.0, false),
            call("completion", 50.0, 80.0, true),
        ];
        assert_eq!(emulators_on_critical_path(&timeline, 20), 7.0);
        assert_eq!(emulators_on_critical_path(&[], 20), 0.0);
    }

    #[test]
    fn a_call_after_the_answer_is_marked_and_in_no_chain() {
        let spans = vec![
            ("read".to_owned(), 1_001_000, 1_021_000),
            ("write".to_owned(), 1_022_000, 1_043_000),
            ("completion".to_owned(), 1_045_000, 1_066_000),
        ];
        let calls = timeline(&spans, 1_000_000, 1_044_000);
        let marks: Vec<(&str, bool, bool)> = calls
            .iter()
            .map(|c| (c.operation.as_str(), c.in_chain, c.after_answer))
            .collect();
        assert_eq!(
            marks,
            [
                ("read", true, false),
                ("write", true, false),
                ("completion", false, true)
            ]
        );
    }

    #[test]
    fn dates_are_utc_rfc3339() {
        assert_eq!(utc_date(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_date(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_date(1_764_078_191), "2025-11-25T13:43:11Z");
        assert_eq!(utc_date(4_102_444_799), "2099-12-31T23:59:59Z");
    }
}
