//! Eval reports: per-run results as they stream to `results.jsonl`, and the report built from
//! them, written as JSON (for `merge` and `--baseline`), JUnit XML (for CI) or Markdown, and
//! shown as a table.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::case::{Case, ExpectedOutcome};
use super::engine::Shard;
use super::error::EvalError;
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
            other => Err(EvalError::Report {
                path: path.to_owned(),
                message: format!(
                    "unknown report format `.{other}`; use .json, .xml (JUnit) or .md"
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
    /// Against `--baseline`.
    pub baseline: Option<BaselineDiff>,
    /// Wall time.
    pub elapsed_ms: u64,
}

impl EvalReport {
    /// Build the report of `cases` from `results` (which may miss some, if interrupted).
    pub fn build(
        cases: &[Case],
        results: &[RunResult],
        mode: &str,
        min_pass_rate: f64,
        repeat: u32,
    ) -> EvalReport {
        let mut by_case: BTreeMap<&str, Vec<RunResult>> = BTreeMap::new();
        for result in results {
            by_case
                .entry(result.case.as_str())
                .or_default()
                .push(result.clone());
        }
        let mut partial = false;
        let mut reports = Vec::new();
        for case in cases {
            let id = case.id();
            let mut runs = by_case.remove(id.as_str()).unwrap_or_default();
            runs.sort_by_key(|r| r.repeat);
            if runs.len() < repeat as usize {
                partial = true;
            }
            if runs.is_empty() {
                continue;
            }
            reports.push(case_report(
                id,
                &case.agent,
                &case.name,
                case.description.clone(),
                case.tags.clone(),
                case.expect.outcome,
                runs,
                min_pass_rate,
            ));
        }
        let mut report = EvalReport {
            version: 1,
            mode: mode.to_owned(),
            shard: None,
            partial,
            min_pass_rate,
            cases: reports,
            summary: Summary::default(),
            baseline: None,
            elapsed_ms: 0,
        };
        report.summarize();
        report
    }

    fn summarize(&mut self) {
        self.summary = Summary {
            cases: self.cases.len(),
            passed: self.cases.iter().filter(|c| c.passed).count(),
            failed: self.cases.iter().filter(|c| !c.passed).count(),
            runs: self.cases.iter().map(|c| c.runs.len()).sum(),
            tokens: self
                .cases
                .iter()
                .flat_map(|c| &c.runs)
                .map(|r| r.tokens)
                .sum(),
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
        let before: BTreeMap<&str, bool> = baseline
            .cases
            .iter()
            .map(|c| (c.id.as_str(), c.passed))
            .collect();
        let now: BTreeSet<&str> = self.cases.iter().map(|c| c.id.as_str()).collect();
        let mut diff = BaselineDiff::default();
        for case in &self.cases {
            match before.get(case.id.as_str()) {
                None => diff.new.push(case.id.clone()),
                Some(true) if !case.passed => diff.regressed.push(case.id.clone()),
                Some(false) if case.passed => diff.improved.push(case.id.clone()),
                Some(_) => {}
            }
        }
        diff.missing = before
            .keys()
            .filter(|id| !now.contains(*id))
            .map(|id| (*id).to_owned())
            .collect();
        self.baseline = Some(diff);
    }

    /// Read a JSON report.
    pub fn load(path: &Path) -> Result<EvalReport, EvalError> {
        let error = |message: String| EvalError::Report {
            path: path.to_owned(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| error(format!("not an eval JSON report: {e}")))
    }

    /// Write the report; the format follows the extension: `.json`, `.xml` (JUnit), `.md`.
    pub fn write(&self, path: &Path) -> Result<(), EvalError> {
        let text = match ReportFormat::of(path)? {
            ReportFormat::Json => serde_json::to_string_pretty(self).unwrap_or_default() + "\n",
            ReportFormat::Junit => self.junit(),
            ReportFormat::Markdown => self.markdown(),
        };
        crate::artifacts::write_atomic(path, text.as_bytes(), true).map_err(|source| {
            EvalError::Write {
                path: path.to_owned(),
                source,
            }
        })
    }

    /// JUnit XML: a suite per agent, a testcase per case, a failure per failed case.
    pub fn junit(&self) -> String {
        let mut by_agent: BTreeMap<&str, Vec<&CaseReport>> = BTreeMap::new();
        for case in &self.cases {
            by_agent.entry(case.agent.as_str()).or_default().push(case);
        }
        let seconds = |cases: &[&CaseReport]| -> f64 {
            cases
                .iter()
                .flat_map(|c| &c.runs)
                .map(|r| r.latency_ms as f64 / 1000.0)
                .sum()
        };
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let failed = self.cases.iter().filter(|c| !c.passed).count();
        // An interrupted eval is one error, so that no CI reads a partial report as complete.
        let errors = usize::from(self.partial);
        let _ = writeln!(
            xml,
            "<testsuites name=\"agent eval\" tests=\"{}\" failures=\"{failed}\" errors=\"{errors}\" time=\"{:.3}\">",
            self.cases.len() + errors,
            self.elapsed_ms as f64 / 1000.0
        );
        for (agent, cases) in by_agent {
            let failures = cases.iter().filter(|c| !c.passed).count();
            let _ = writeln!(
                xml,
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" time=\"{:.3}\">",
                escape(agent),
                cases.len(),
                seconds(&cases)
            );
            for case in cases {
                let _ = write!(
                    xml,
                    "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                    escape(agent),
                    escape(&case.name),
                    seconds(&[case])
                );
                if case.passed {
                    xml.push_str("/>\n");
                    continue;
                }
                let first = case
                    .runs
                    .iter()
                    .find(|r| !r.passed)
                    .map(first_reason)
                    .unwrap_or_default();
                let _ = writeln!(
                    xml,
                    ">\n      <failure message=\"{}\" type=\"assertion\">",
                    escape(&first)
                );
                for run in case.runs.iter().filter(|r| !r.passed) {
                    let _ = writeln!(xml, "{}", escape(&run_details(run, case.runs.len())));
                }
                xml.push_str("      </failure>\n    </testcase>\n");
            }
            xml.push_str("  </testsuite>\n");
        }
        if self.partial {
            xml.push_str(concat!(
                "  <testsuite name=\"agent eval\" tests=\"1\" failures=\"0\" errors=\"1\" time=\"0.000\">\n",
                "    <testcase classname=\"agent eval\" name=\"interrupted\">\n",
                "      <error type=\"interrupted\" message=\"the eval was interrupted: this report is partial, and the cases not run are missing from it\"/>\n",
                "    </testcase>\n",
                "  </testsuite>\n",
            ));
        }
        xml.push_str("</testsuites>\n");
        xml
    }

    /// A Markdown report.
    pub fn markdown(&self) -> String {
        let mut text = format!(
            "# agent eval\n\n{} of {} cases passed ({} runs, {} tokens, mode {}{}){}\n",
            self.summary.passed,
            self.summary.cases,
            self.summary.runs,
            self.summary.tokens,
            self.mode,
            self.shard
                .as_ref()
                .map(|s| format!(", shard {s}"))
                .unwrap_or_default(),
            if self.partial {
                " **partial: interrupted**"
            } else {
                ""
            }
        );
        if let Some(diff) = &self.baseline {
            let _ = writeln!(
                text,
                "\nAgainst the baseline: {} regressed, {} improved, {} new, {} missing.",
                diff.regressed.len(),
                diff.improved.len(),
                diff.new.len(),
                diff.missing.len()
            );
            for id in &diff.regressed {
                let _ = writeln!(text, "- regressed: `{id}`");
            }
        }
        let mut agent = "";
        for case in &self.cases {
            if case.agent != agent {
                agent = &case.agent;
                let _ = writeln!(
                    text,
                    "\n## {agent}\n\n| case | result | outcome | attempts | tokens | latency | failures |\n|---|---|---|---|---|---|---|"
                );
            }
            let run = case.runs.last();
            let failures: Vec<String> = case
                .runs
                .iter()
                .filter(|r| !r.passed)
                .map(first_reason)
                .collect();
            let _ = writeln!(
                text,
                "| {} | {} | {} | {} | {} | {} ms | {} |",
                case.name,
                result_word(case),
                run.map(|r| outcome_word(r.outcome)).unwrap_or("-"),
                run.map_or(0, |r| r.attempts),
                case.runs.iter().map(|r| r.tokens).sum::<u64>(),
                case.runs.iter().map(|r| r.latency_ms).sum::<u64>(),
                failures
                    .first()
                    .map(|f| f.replace('|', "\\|"))
                    .unwrap_or_default()
            );
        }
        text
    }

    /// The table for people (stdout).
    pub fn table(&self) -> String {
        let width = self
            .cases
            .iter()
            .map(|c| c.id.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let mut text = format!(
            "{:width$}  {:6}  {:9}  {:>8}  {:>8}  {:>9}\n",
            "case", "result", "outcome", "attempts", "tokens", "latency"
        );
        for case in &self.cases {
            let run = case.runs.last();
            let _ = writeln!(
                text,
                "{:width$}  {:6}  {:9}  {:>8}  {:>8}  {:>7}ms",
                case.id,
                result_word(case),
                run.map(|r| outcome_word(r.outcome)).unwrap_or("-"),
                run.map_or(0, |r| r.attempts),
                case.runs.iter().map(|r| r.tokens).sum::<u64>(),
                case.runs.iter().map(|r| r.latency_ms).sum::<u64>(),
            );
            for run in case.runs.iter().filter(|r| !r.passed) {
                for line in run_details(run, case.runs.len()).lines() {
                    let _ = writeln!(text, "{:width$}    {line}", "");
                }
            }
            if let Some(run) = case.runs.first() {
                for warning in &run.warnings {
                    let _ = writeln!(
                        text,
                        "{:width$}    warning: {}",
                        "",
                        crate::text::clip(warning, 160)
                    );
                }
            }
        }
        let _ = writeln!(
            text,
            "\n{} of {} cases passed, {} failed; {} runs, {} tokens{}{}",
            self.summary.passed,
            self.summary.cases,
            self.summary.failed,
            self.summary.runs,
            self.summary.tokens,
            self.shard
                .as_ref()
                .map(|s| format!("; shard {s}"))
                .unwrap_or_default(),
            if self.partial {
                "; PARTIAL (interrupted)"
            } else {
                ""
            }
        );
        if let Some(diff) = &self.baseline {
            let _ = writeln!(
                text,
                "against the baseline: {} regressed, {} improved, {} new, {} missing",
                diff.regressed.len(),
                diff.improved.len(),
                diff.new.len(),
                diff.missing.len()
            );
            for id in &diff.regressed {
                let _ = writeln!(text, "  regressed: {id}");
            }
            for id in &diff.improved {
                let _ = writeln!(text, "  improved:  {id}");
            }
        }
        text
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "a plain constructor of a report row"
)]
fn case_report(
    id: String,
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

fn result_word(case: &CaseReport) -> String {
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

fn outcome_word(outcome: RunOutcome) -> &'static str {
    match outcome {
        RunOutcome::Valid => "valid",
        RunOutcome::Declined => "declined",
        RunOutcome::Violated => "violated",
        RunOutcome::ModelError | RunOutcome::InputError => "error",
        RunOutcome::Interrupted => "stopped",
    }
}

fn first_reason(run: &RunResult) -> String {
    if let Some(error) = &run.error {
        return crate::text::clip(error.lines().next().unwrap_or(""), 200);
    }
    run.failures
        .first()
        .map(|f| format!("{}: {}", f.check, crate::text::clip(&f.reason, 200)))
        .unwrap_or_default()
}

/// Why a run failed, a line per reason; the repeat is named only when the case ran repeatedly.
fn run_details(run: &RunResult, repeats: usize) -> String {
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

fn escape(text: &str) -> String {
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
            case: case.into(),
            repeat: 0,
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
            error: None,
            warnings: Vec::new(),
        }
    }

    fn report(results: &[(&str, bool)]) -> EvalReport {
        let cases = results
            .iter()
            .map(|(id, passed)| {
                let (agent, name) = id.split_once('/').expect("agent/name");
                case_report(
                    (*id).into(),
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
}
