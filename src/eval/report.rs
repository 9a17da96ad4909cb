//! Eval reports: per-run results as they stream to `results.jsonl`, and the report built from
//! them, written as JSON (for `merge` and `--baseline`), JUnit XML (for CI) or Markdown, and
//! shown as a table.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::case::ExpectedOutcome;
use super::engine::Shard;
use super::error::EvalError;
use super::outputs::{Outputs, ReportHead};
use crate::runner::RunOutcome;

/// One run of one case.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunResult {
    /// `agent/name`.
    pub case: String,
    /// 0-based repeat.
    pub repeat: u32,
    /// How the run ended.
    pub outcome: RunOutcome,
    /// Outcome as expected and every assertion held.
    pub passed: bool,
    /// Attempts made.
    pub attempts: u32,
    /// Tokens used.
    pub tokens: u64,
    /// Model time.
    pub latency_ms: u64,
    /// What failed, and why.
    pub failures: Vec<Failure>,
    /// An error that stopped the run (a stale recording, a model failure).
    pub error: Option<String>,
    /// Warnings about the case's inputs: unknown files, trees cut to budget, tags escaped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The case's place in the eval's stable order: reports are written in that order from
    /// the results stream, whatever order the runs finished in.
    #[serde(default)]
    pub position: u64,
    /// The matrix column (model and prompt variant) the run belongs to; empty when the eval
    /// has one column.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub column: String,
    /// The model that was asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Tokens by kind, as the server reported them.
    #[serde(default)]
    pub usage: TokenCounts,
    /// What the run cost by the prices in `agent.toml`; none when the model has no price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
    /// Each attempt: its reply (kept for failed runs, and for every run of a matrix or an
    /// HTML report), violations and warnings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempt_log: Vec<AttemptLog>,
    /// The final reasoning, kept with the replies.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reasoning: String,
    /// The run's folder, with `--artifacts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_folder: Option<std::path::PathBuf>,
}

impl RunResult {
    /// A run of `case` that has produced nothing yet (counted as a model error until it does).
    pub fn new(case: String, repeat: u32) -> RunResult {
        RunResult {
            case,
            repeat,
            outcome: RunOutcome::ModelError,
            passed: false,
            attempts: 0,
            tokens: 0,
            latency_ms: 0,
            failures: Vec::new(),
            error: None,
            warnings: Vec::new(),
            position: 0,
            column: String::new(),
            model: None,
            usage: TokenCounts::default(),
            cost: None,
            attempt_log: Vec::new(),
            reasoning: String::new(),
            run_folder: None,
        }
    }
}

/// Tokens of one run, by kind.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct TokenCounts {
    /// Prompt tokens, cached ones included.
    pub prompt: u64,
    /// Prompt tokens the server served from its cache.
    #[serde(default)]
    pub cached: u64,
    /// Reply tokens.
    pub completion: u64,
}

/// One attempt of a run, as the reports show it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AttemptLog {
    /// 1-based.
    pub number: u32,
    /// `valid`, `declined` or `invalid`.
    pub outcome: String,
    /// The reply text (empty when not kept).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reply: String,
    /// Hard violations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<Noted>,
    /// Soft violations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Noted>,
}

/// A violation or warning, with the reply line it points at when it points at one.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Noted {
    /// The 1-based reply line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// The violation as the re-ask states it.
    pub text: String,
}

/// A failed expectation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Failure {
    /// The assertion, or `outcome`, `attempts`.
    pub check: String,
    /// Why.
    pub reason: String,
}

/// One case over its repeats.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CaseReport {
    /// `agent/name`.
    pub id: String,
    /// The agent.
    pub agent: String,
    /// The case name.
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// Its tags.
    pub tags: Vec<String>,
    /// The outcome it expects.
    pub expected: ExpectedOutcome,
    /// The matrix column; empty when the eval has one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub column: String,
    /// Each repeat.
    pub runs: Vec<RunResult>,
    /// Passed repeats over repeats.
    pub pass_rate: f64,
    /// The pass rate reached the minimum.
    pub passed: bool,
}

/// Totals.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// Cases.
    pub cases: usize,
    /// Cases passed.
    pub passed: usize,
    /// Cases failed.
    pub failed: usize,
    /// Runs (cases × repeats).
    pub runs: usize,
    /// Tokens.
    pub tokens: u64,
    /// What the runs cost by the prices in `agent.toml`; none when no model has a price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
}

/// One column of a matrix (a model, a prompt variant, or both): how it did over the cases.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ColumnSummary {
    /// The column (`model`, `model · variant`); empty when the eval has one.
    pub column: String,
    /// Cases run in this column.
    pub cases: usize,
    /// Cases passed.
    pub passed: usize,
    /// Passed over cases.
    pub pass_rate: f64,
    /// Runs whose first attempt was valid (or a valid refusal), over runs.
    pub first_attempt_valid: f64,
    /// Attempts per run.
    pub mean_attempts: f64,
    /// Tokens.
    pub tokens: u64,
    /// Median model time of a run.
    pub latency_p50_ms: u64,
    /// 95th percentile model time of a run.
    pub latency_p95_ms: u64,
    /// Cost; none when the column's model has no price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
    #[serde(skip)]
    runs: usize,
    #[serde(skip)]
    first_valid: usize,
    #[serde(skip)]
    attempts: u64,
    #[serde(skip)]
    latencies: Latencies,
}

/// A column's model times, for its percentiles: exact up to [`Latencies::EXACT`] runs, then
/// counted in buckets 1% wide (exact below 100 ms), so that a million runs cost about 12 KB
/// and a percentile is off by at most 1%.
#[derive(Debug, Clone, Default, PartialEq)]
struct Latencies {
    exact: Vec<u64>,
    buckets: Vec<u64>,
    count: u64,
}

impl Latencies {
    const EXACT: usize = 4096;

    fn push(&mut self, ms: u64) {
        self.count += 1;
        if self.buckets.is_empty() && self.exact.len() < Latencies::EXACT {
            self.exact.push(ms);
            return;
        }
        for held in std::mem::take(&mut self.exact) {
            self.count_in_bucket(held);
        }
        self.count_in_bucket(ms);
    }

    fn count_in_bucket(&mut self, ms: u64) {
        let bucket = Latencies::bucket(ms);
        if self.buckets.len() <= bucket {
            self.buckets.resize(bucket + 1, 0);
        }
        self.buckets[bucket] += 1;
    }

    fn bucket(ms: u64) -> usize {
        if ms < 100 {
            ms as usize
        } else {
            100 + ((ms as f64 / 100.0).ln() / 0.01f64.ln_1p()) as usize
        }
    }

    /// The least time bucket `bucket` holds.
    fn floor(bucket: usize) -> u64 {
        if bucket < 100 {
            bucket as u64
        } else {
            (100.0 * 1.01f64.powi((bucket - 100) as i32)).ceil() as u64
        }
    }

    /// The `q` quantile (nearest rank); 0 with no runs.
    fn quantile(&mut self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        if self.buckets.is_empty() {
            self.exact.sort_unstable();
            return self.exact[rank as usize - 1];
        }
        let mut seen = 0;
        for (bucket, count) in self.buckets.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Latencies::floor(bucket);
            }
        }
        0
    }
}

impl ColumnSummary {
    pub(crate) fn named(column: &str) -> ColumnSummary {
        ColumnSummary {
            column: column.to_owned(),
            ..ColumnSummary::default()
        }
    }

    /// Count one case of this column.
    pub(crate) fn add(&mut self, case: &CaseReport) {
        self.cases += 1;
        self.passed += usize::from(case.passed);
        for run in &case.runs {
            self.runs += 1;
            self.attempts += u64::from(run.attempts);
            self.tokens += run.tokens;
            self.latencies.push(run.latency_ms);
            let first_valid = run
                .attempt_log
                .first()
                .is_some_and(|a| a.outcome == "valid" || a.outcome == "declined")
                || (run.attempt_log.is_empty()
                    && run.attempts == 1
                    && matches!(run.outcome, RunOutcome::Valid | RunOutcome::Declined));
            self.first_valid += usize::from(first_valid);
            if let Some(cost) = run.cost {
                *self.cost.get_or_insert(0.0) += cost;
            }
        }
    }

    /// Work out the rates and percentiles.
    pub(crate) fn close(&mut self) {
        let runs = self.runs.max(1) as f64;
        self.pass_rate = self.passed as f64 / self.cases.max(1) as f64;
        self.first_attempt_valid = self.first_valid as f64 / runs;
        self.mean_attempts = self.attempts as f64 / runs;
        self.latency_p50_ms = self.latencies.quantile(0.5);
        self.latency_p95_ms = self.latencies.quantile(0.95);
        self.latencies = Latencies::default();
    }
}

/// What changed against a baseline report.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct BaselineDiff {
    /// Passed before, fail now.
    pub regressed: Vec<String>,
    /// Failed before, pass now.
    pub improved: Vec<String>,
    /// Not in the baseline.
    pub new: Vec<String>,
    /// In the baseline, not run now.
    pub missing: Vec<String>,
}

/// The formats a report is written in, by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    /// `.json`: everything, for `merge` and `--baseline`.
    Json,
    /// `.xml`: JUnit, for CI.
    Junit,
    /// `.md`: for people and pull requests.
    Markdown,
    /// `.html`: one self-contained page to look at.
    Html,
    /// The terminal table.
    Table,
}

impl ReportFormat {
    /// The format of `path`, by its extension.
    pub fn of(path: &Path) -> Result<ReportFormat, EvalError> {
        let extension = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        match extension.as_str() {
            "json" => Ok(ReportFormat::Json),
            "xml" => Ok(ReportFormat::Junit),
            "md" | "markdown" => Ok(ReportFormat::Markdown),
            "html" | "htm" => Ok(ReportFormat::Html),
            "txt" => Ok(ReportFormat::Table),
            other => Err(EvalError::Report {
                path: path.to_owned(),
                message: format!(
                    "unknown report format `.{other}`; use .json, .xml (JUnit), .md or .html"
                ),
            }),
        }
    }

    /// Check, before an eval spends anything, that a report can be written to `path`: a
    /// known format, a folder for it, and no folder in its place.
    pub fn check_destination(path: &Path) -> Result<ReportFormat, EvalError> {
        let format = ReportFormat::of(path)?;
        let refused = |message: String| EvalError::Report {
            path: path.to_owned(),
            message,
        };
        if path.is_dir() {
            return Err(refused("is a folder".into()));
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| refused(format!("cannot create its folder: {e}")))?;
        }
        Ok(format)
    }
}

/// A whole eval.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EvalReport {
    /// Format version.
    pub version: u32,
    /// `replay`, `live` or `record`.
    pub mode: String,
    /// `i/n` when sharded.
    pub shard: Option<String>,
    /// Not every case ran (interrupted).
    pub partial: bool,
    /// The pass rate a case needs.
    pub min_pass_rate: f64,
    /// Cases in stable order.
    pub cases: Vec<CaseReport>,
    /// Totals.
    pub summary: Summary,
    /// Per matrix column.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<ColumnSummary>,
    /// Against `--baseline`.
    pub baseline: Option<BaselineDiff>,
    /// Wall time.
    pub elapsed_ms: u64,
}

impl EvalReport {
    /// The totals a report opens with, counted from its cases.
    pub(crate) fn head(&self) -> ReportHead {
        let mut head = ReportHead {
            mode: self.mode.clone(),
            shard: self.shard.clone(),
            partial: self.partial,
            min_pass_rate: self.min_pass_rate,
            baseline: self.baseline.clone(),
            elapsed_ms: self.elapsed_ms,
            ..ReportHead::default()
        };
        for case in &self.cases {
            head.add(case);
        }
        head.close();
        head
    }

    fn summarize(&mut self) {
        let head = self.head();
        self.summary = head.summary;
        self.columns = if head.columns.iter().any(|c| !c.column.is_empty()) {
            head.columns
        } else {
            Vec::new()
        };
    }

    /// Did every case pass (and no regression against the baseline)?
    pub fn passed(&self) -> bool {
        self.summary.failed == 0
            && self
                .baseline
                .as_ref()
                .is_none_or(|b| b.regressed.is_empty())
    }

    /// Compare with an earlier report.
    pub fn compare(&mut self, baseline: &EvalReport) {
        let mut comparison = Baseline::of(baseline).comparison();
        for case in &self.cases {
            comparison.add(case);
        }
        self.baseline = Some(comparison.finish());
    }

    /// Read a JSON report.
    pub fn load(path: &Path) -> Result<EvalReport, EvalError> {
        let error = |message: String| EvalError::Report {
            path: path.to_owned(),
            message,
        };
        let file = std::fs::File::open(path).map_err(|e| error(e.to_string()))?;
        serde_json::from_reader(std::io::BufReader::new(file))
            .map_err(|e| error(format!("not an eval JSON report: {e}")))
    }

    /// Write the report; the format follows the extension: `.json`, `.xml` (JUnit), `.md`,
    /// `.html`.
    pub fn write(&self, path: &Path) -> Result<(), EvalError> {
        let mut outputs = Outputs::open(self.head(), &[path.to_owned()])?;
        for case in &self.cases {
            outputs.case(case, None)?;
        }
        outputs.finish().map(drop)
    }

    fn render(&self, format: ReportFormat) -> String {
        let rendered = Outputs::in_memory(self.head(), format).and_then(|mut outputs| {
            for case in &self.cases {
                outputs.case(case, None)?;
            }
            outputs.finish()
        });
        rendered
            .ok()
            .and_then(|mut texts| texts.pop())
            .unwrap_or_default()
    }

    /// JUnit XML: a suite per agent, a testcase per case, a failure per failed case.
    pub fn junit(&self) -> String {
        self.render(ReportFormat::Junit)
    }

    /// A Markdown report.
    pub fn markdown(&self) -> String {
        self.render(ReportFormat::Markdown)
    }

    /// The table for people (stdout).
    pub fn table(&self) -> String {
        self.render(ReportFormat::Table)
    }
}

/// A baseline report, reduced to what a comparison needs: which case passed in which column.
pub struct Baseline {
    passed: std::collections::HashMap<String, bool>,
}

impl Baseline {
    /// The outcomes of `report`'s cases.
    pub fn of(report: &EvalReport) -> Baseline {
        Baseline {
            passed: report
                .cases
                .iter()
                .map(|c| (column_key(&c.id, &c.column), c.passed))
                .collect(),
        }
    }

    /// The outcomes of the eval JSON report at `path`, read without its replies, attempts
    /// and inputs: a case costs its id and a flag, however much the model wrote.
    pub fn load(path: &Path) -> Result<Baseline, EvalError> {
        let error = |message: String| EvalError::Report {
            path: path.to_owned(),
            message,
        };
        let file = std::fs::File::open(path).map_err(|e| error(e.to_string()))?;
        let outcomes: Outcomes = serde_json::from_reader(std::io::BufReader::new(file))
            .map_err(|e| error(format!("not an eval JSON report: {e}")))?;
        Ok(Baseline {
            passed: outcomes.cases,
        })
    }

    /// Start comparing cases against it.
    pub(crate) fn comparison(self) -> Comparison {
        Comparison {
            baseline: self
                .passed
                .into_iter()
                .map(|(key, passed)| (key, (passed, false)))
                .collect(),
            diff: BaselineDiff::default(),
        }
    }
}

/// A report's cases as a baseline needs them.
#[derive(Deserialize)]
struct Outcomes {
    #[serde(deserialize_with = "outcomes_by_key")]
    cases: std::collections::HashMap<String, bool>,
}

/// Each case's outcome under its [`column_key`], gathered as the report is read.
fn outcomes_by_key<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<std::collections::HashMap<String, bool>, D::Error> {
    #[derive(Deserialize)]
    struct Outcome {
        id: String,
        #[serde(default)]
        column: String,
        passed: bool,
    }
    struct Gather;
    impl<'de> serde::de::Visitor<'de> for Gather {
        type Value = std::collections::HashMap<String, bool>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list of cases")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut passed = std::collections::HashMap::new();
            while let Some(case) = seq.next_element::<Outcome>()? {
                passed.insert(column_key(&case.id, &case.column), case.passed);
            }
            Ok(passed)
        }
    }
    deserializer.deserialize_seq(Gather)
}

/// `id`, or `id [column]` in a matrix: a case's identity in a baseline.
pub(crate) fn column_key(id: &str, column: &str) -> String {
    if column.is_empty() {
        id.to_owned()
    } else {
        format!("{id} [{column}]")
    }
}

/// Cases compared with a baseline one at a time.
pub(crate) struct Comparison {
    /// Per case of the baseline: did it pass, and has a case now been compared with it.
    baseline: std::collections::HashMap<String, (bool, bool)>,
    diff: BaselineDiff,
}

impl Comparison {
    /// Compare one case: with the same case in the same column, or, against a baseline of one
    /// column, with the same case there (so each model and variant is held to it).
    pub(crate) fn add(&mut self, case: &CaseReport) {
        let key = column_key(&case.id, &case.column);
        let found = [key.as_str(), case.id.as_str()]
            .into_iter()
            .find(|k| self.baseline.contains_key(*k));
        let Some((before, seen)) = found.and_then(|k| self.baseline.get_mut(k)) else {
            self.diff.new.push(key);
            return;
        };
        *seen = true;
        if *before && !case.passed {
            self.diff.regressed.push(key);
        } else if !*before && case.passed {
            self.diff.improved.push(key);
        }
    }

    /// The differences, the baseline's cases not run now among them.
    pub(crate) fn finish(mut self) -> BaselineDiff {
        let mut missing: Vec<String> = self
            .baseline
            .into_iter()
            .filter(|(_, (_, seen))| !seen)
            .map(|(key, _)| key)
            .collect();
        missing.sort();
        self.diff.missing = missing;
        self.diff
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "a plain constructor of a report row"
)]
pub(crate) fn case_report(
    id: String,
    column: String,
    agent: &str,
    name: &str,
    description: Option<String>,
    tags: Vec<String>,
    expected: ExpectedOutcome,
    runs: Vec<RunResult>,
    min_pass_rate: f64,
) -> CaseReport {
    let passes = runs.iter().filter(|r| r.passed).count();
    let pass_rate = passes as f64 / runs.len().max(1) as f64;
    CaseReport {
        id,
        column,
        agent: agent.to_owned(),
        name: name.to_owned(),
        description,
        tags,
        expected,
        passed: pass_rate + 1e-9 >= min_pass_rate,
        pass_rate,
        runs,
    }
}

pub(crate) fn result_word(case: &CaseReport) -> String {
    match (case.passed, case.runs.len()) {
        (true, 1) => "pass".into(),
        (false, 1) => "FAIL".into(),
        (passed, n) => format!(
            "{}{}/{n}",
            if passed { "" } else { "FAIL " },
            case.runs.iter().filter(|r| r.passed).count()
        ),
    }
}

pub(crate) fn outcome_word(outcome: RunOutcome) -> &'static str {
    match outcome {
        RunOutcome::Valid => "valid",
        RunOutcome::Declined => "declined",
        RunOutcome::Violated => "violated",
        RunOutcome::ModelError | RunOutcome::InputError => "error",
        RunOutcome::Interrupted => "stopped",
    }
}

pub(crate) fn first_reason(run: &RunResult) -> String {
    if let Some(error) = &run.error {
        // A server's message, as it wrote it: its first line, control characters escaped.
        return crate::text::quote(error.lines().next().unwrap_or(""), 200);
    }
    run.failures
        .first()
        .map(|f| format!("{}: {}", f.check, crate::text::clip(&f.reason, 200)))
        .unwrap_or_default()
}

/// Why a run failed, a line per reason; the repeat is named only when the case ran repeatedly.
pub(crate) fn run_details(run: &RunResult, repeats: usize) -> String {
    let repeat = if repeats > 1 {
        format!("repeat {}: ", run.repeat + 1)
    } else {
        String::new()
    };
    let mut lines = Vec::new();
    if let Some(error) = &run.error {
        lines.push(format!("{repeat}error: {error}"));
    }
    for failure in &run.failures {
        lines.push(format!("{repeat}{}: {}", failure.check, failure.reason));
    }
    lines.join("\n")
}

pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 forbids most control characters, even escaped.
            c if c.is_control() && !matches!(c, '\n' | '\t' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Join shard reports into one. A case in two reports is an error.
///
/// Complete shards of one `--shard i/n` split are interleaved back into the unsharded order
/// (shard i ran positions i-1, i-1+n, ...); any other set of reports is ordered by case id.
pub fn merge(reports: Vec<(std::path::PathBuf, EvalReport)>) -> Result<EvalReport, EvalError> {
    let mut seen: BTreeMap<String, std::path::PathBuf> = BTreeMap::new();
    for (path, report) in &reports {
        for case in &report.cases {
            if let Some(other) = seen.get(&case.id) {
                return Err(EvalError::Report {
                    path: path.clone(),
                    message: format!(
                        "case `{}` is also in `{}`; shards must not overlap",
                        case.id,
                        other.display()
                    ),
                });
            }
            seen.insert(case.id.clone(), path.clone());
        }
    }
    let mut reports: Vec<EvalReport> = reports.into_iter().map(|(_, report)| report).collect();
    let cases = match shard_split(&reports) {
        Some(order) => {
            let mut columns: Vec<std::vec::IntoIter<CaseReport>> = order
                .iter()
                .map(|&at| std::mem::take(&mut reports[at].cases).into_iter())
                .collect();
            let mut cases = Vec::new();
            loop {
                let before = cases.len();
                cases.extend(columns.iter_mut().filter_map(Iterator::next));
                if cases.len() == before {
                    break cases;
                }
            }
        }
        None => {
            let mut cases: Vec<CaseReport> = reports
                .iter_mut()
                .flat_map(|report| std::mem::take(&mut report.cases))
                .collect();
            cases.sort_by(|a, b| a.id.cmp(&b.id));
            cases
        }
    };
    let mut reports = reports.into_iter();
    let mut merged = reports.next().ok_or_else(|| EvalError::Usage {
        message: "merge needs at least one report".into(),
    })?;
    for report in reports {
        merged.partial |= report.partial;
        merged.elapsed_ms = merged.elapsed_ms.max(report.elapsed_ms);
    }
    merged.shard = None;
    merged.baseline = None;
    merged.cases = cases;
    merged.summarize();
    Ok(merged)
}

/// When `reports` are distinct, complete shards of one split, their positions in shard order.
/// (A partial shard lacks cases at unknown positions, so interleaving would misplace the rest.)
fn shard_split(reports: &[EvalReport]) -> Option<Vec<usize>> {
    if reports.iter().any(|r| r.partial) {
        return None;
    }
    let shards: Vec<Shard> = reports
        .iter()
        .map(|r| r.shard.as_deref()?.parse().ok())
        .collect::<Option<_>>()?;
    let count = shards.first()?.count;
    if shards.iter().any(|s| s.count != count) {
        return None;
    }
    let mut order: Vec<usize> = (0..shards.len()).collect();
    order.sort_by_key(|&at| shards[at].index);
    let distinct = order
        .windows(2)
        .all(|pair| shards[pair[0]].index != shards[pair[1]].index);
    distinct.then_some(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(case: &str, passed: bool) -> RunResult {
        RunResult {
            outcome: RunOutcome::Valid,
            passed,
            attempts: 1,
            tokens: 10,
            latency_ms: 5,
            failures: if passed {
                Vec::new()
            } else {
                vec![Failure {
                    check: "contains \"<x>\"".into(),
                    reason: "does not contain \"<x>\" & more".into(),
                }]
            },
            ..RunResult::new(case.into(), 0)
        }
    }

    fn report(results: &[(&str, bool)]) -> EvalReport {
        let cases = results
            .iter()
            .map(|(id, passed)| {
                let (agent, name) = id.split_once('/').expect("agent/name");
                case_report(
                    (*id).into(),
                    String::new(),
                    agent,
                    name,
                    None,
                    Vec::new(),
                    ExpectedOutcome::Valid,
                    vec![result(id, *passed)],
                    1.0,
                )
            })
            .collect();
        let mut report = EvalReport {
            version: 1,
            mode: "replay".into(),
            shard: None,
            partial: false,
            min_pass_rate: 1.0,
            cases,
            summary: Summary::default(),
            columns: Vec::new(),
            baseline: None,
            elapsed_ms: 0,
        };
        report.summarize();
        report
    }

    #[test]
    fn junit_names_failed_cases_and_escapes_text() {
        let xml = report(&[("release-plan/a", true), ("release-plan/b", false)]).junit();
        assert!(xml.contains("<testsuite name=\"release-plan\" tests=\"2\" failures=\"1\""));
        assert!(xml.contains("<testcase classname=\"release-plan\" name=\"a\" time=\"0.005\"/>"));
        assert!(xml.contains("<testcase classname=\"release-plan\" name=\"b\""));
        assert!(xml.contains("message=\"contains &quot;&lt;x&gt;&quot;: does not contain &quot;&lt;x&gt;&quot; &amp; more\""));
        assert!(xml.contains("errors=\"0\"") && !xml.contains("<error "));

        let mut partial = report(&[("release-plan/a", true)]);
        partial.partial = true;
        let xml = partial.junit();
        assert!(
            xml.contains("<testsuites name=\"agent eval\" tests=\"2\" failures=\"0\" errors=\"1\"")
        );
        assert!(xml.contains("<error type=\"interrupted\""), "{xml}");
    }

    #[test]
    fn baselines_show_regressions_and_improvements() {
        let before = report(&[("a/x", true), ("a/y", false), ("a/gone", true)]);
        let mut now = report(&[("a/x", false), ("a/y", true), ("a/new", true)]);
        now.compare(&before);
        let diff = now.baseline.clone().expect("diff");
        assert_eq!(diff.regressed, ["a/x"]);
        assert_eq!(diff.improved, ["a/y"]);
        assert_eq!(diff.new, ["a/new"]);
        assert_eq!(diff.missing, ["a/gone"]);
        assert!(!now.passed());
    }

    #[test]
    fn merging_joins_shards_in_order_and_refuses_overlap() {
        let merged = merge(vec![
            ("2.json".into(), report(&[("b/1", true)])),
            ("1.json".into(), report(&[("a/1", false), ("c/1", true)])),
        ])
        .expect("merges");
        let ids: Vec<&str> = merged.cases.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["a/1", "b/1", "c/1"]);
        assert_eq!((merged.summary.passed, merged.summary.failed), (2, 1));
        assert!(
            merge(vec![
                ("1.json".into(), report(&[("a/1", true)])),
                ("2.json".into(), report(&[("a/1", true)]))
            ])
            .is_err()
        );
    }

    #[test]
    fn merging_shards_of_one_split_restores_the_unsharded_order() {
        // Unsharded order z/row#10, a/1, m/x, z/row#2, b/2 split in two: positions 0, 2, 4
        // and 1, 3. Sorting by id would lose it.
        let shard = |index: &str, cases: &[(&str, bool)]| {
            let mut report = report(cases);
            report.shard = Some(index.into());
            report
        };
        let merged = merge(vec![
            (
                "2.json".into(),
                shard("2/2", &[("a/1", true), ("z/row#2", true)]),
            ),
            (
                "1.json".into(),
                shard("1/2", &[("z/row#10", true), ("m/x", false), ("b/2", true)]),
            ),
        ])
        .expect("merges");
        let ids: Vec<&str> = merged.cases.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["z/row#10", "a/1", "m/x", "z/row#2", "b/2"]);
        assert_eq!(merged.shard, None);
    }

    #[test]
    fn latency_percentiles_stay_within_a_percent_past_the_exact_runs() {
        let mut exact = Latencies::default();
        for ms in [5, 1, 9, 3, 7] {
            exact.push(ms);
        }
        assert_eq!((exact.quantile(0.5), exact.quantile(0.95)), (5, 9));
        let mut many = Latencies::default();
        // 100,000 runs, 1 ms to 100 s: p50 is 50,000 ms, p95 95,000 ms.
        for n in 1..=100_000u64 {
            many.push(n);
        }
        assert!(many.exact.is_empty() && many.buckets.len() < 1_200);
        let p50 = many.quantile(0.5) as f64;
        let p95 = many.quantile(0.95) as f64;
        assert!((p50 / 50_000.0 - 1.0).abs() < 0.01, "p50 {p50}");
        assert!((p95 / 95_000.0 - 1.0).abs() < 0.01, "p95 {p95}");
    }
}
