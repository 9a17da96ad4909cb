//! Writing reports one case at a time: JSON, JUnit XML, Markdown, HTML and the terminal
//! table are each written as the cases come, so a report of a million cases never holds more
//! than one case in memory. The totals a report opens with are gathered first, in a pass of
//! their own ([`ReportHead`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::error::EvalError;
use super::report::{
    BaselineDiff, CaseReport, ColumnSummary, ReportFormat, RunResult, Summary, escape,
    first_reason, outcome_word, result_word, run_details,
};

/// What a report says before its cases: totals per eval, per agent and per column.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReportHead {
    pub(crate) mode: String,
    pub(crate) shard: Option<String>,
    pub(crate) partial: bool,
    pub(crate) min_pass_rate: f64,
    pub(crate) summary: Summary,
    pub(crate) columns: Vec<ColumnSummary>,
    pub(crate) baseline: Option<BaselineDiff>,
    pub(crate) elapsed_ms: u64,
    /// Per agent: (cases, failed, seconds), for JUnit's suites.
    pub(crate) agents: BTreeMap<String, (usize, usize, f64)>,
    /// The widest case id, for the table.
    pub(crate) width: usize,
}

impl ReportHead {
    /// Count one case into the totals.
    pub(crate) fn add(&mut self, case: &CaseReport) {
        self.summary.cases += 1;
        if case.passed {
            self.summary.passed += 1;
        } else {
            self.summary.failed += 1;
        }
        self.summary.runs += case.runs.len();
        self.summary.tokens += case.runs.iter().map(|r| r.tokens).sum::<u64>();
        let cost: Option<f64> = case.runs.iter().filter_map(|r| r.cost).reduce(|a, b| a + b);
        if let Some(cost) = cost {
            *self.summary.cost.get_or_insert(0.0) += cost;
        }
        let agent = self.agents.entry(case.agent.clone()).or_default();
        agent.0 += 1;
        agent.1 += usize::from(!case.passed);
        agent.2 += seconds(case);
        self.width = self.width.max(shown_id(case).len());
        let column = match self.columns.iter_mut().find(|c| c.column == case.column) {
            Some(column) => column,
            None => {
                self.columns.push(ColumnSummary::named(&case.column));
                self.columns.last_mut().expect("just pushed")
            }
        };
        column.add(case);
    }

    /// Close the per-column figures (percentiles) once every case is counted.
    pub(crate) fn close(&mut self) {
        for column in &mut self.columns {
            column.close();
        }
    }

    fn matrix(&self) -> bool {
        self.columns.len() > 1 || self.columns.iter().any(|c| !c.column.is_empty())
    }
}

fn seconds(case: &CaseReport) -> f64 {
    case.runs.iter().map(|r| r.latency_ms as f64 / 1000.0).sum()
}

/// `agent/case`, and its column in a matrix.
fn shown_id(case: &CaseReport) -> String {
    if case.column.is_empty() {
        case.id.clone()
    } else {
        format!("{} [{}]", case.id, case.column)
    }
}

/// Where a report goes: a temporary file renamed into place when whole, or memory.
enum Sink {
    File {
        path: PathBuf,
        temporary: PathBuf,
        file: BufWriter<std::fs::File>,
    },
    Memory(Vec<u8>),
}

impl Sink {
    fn file(path: &Path, what: &str) -> std::io::Result<Sink> {
        let temporary = temporary(path, what);
        let file = std::fs::File::create(&temporary)?;
        Ok(Sink::File {
            path: path.to_owned(),
            temporary,
            file: BufWriter::new(file),
        })
    }

    /// Put the report in its place; a memory sink gives its text back.
    fn close(self, keep: bool) -> std::io::Result<Option<Vec<u8>>> {
        match self {
            Sink::File {
                path,
                temporary,
                file,
            } => {
                let file = file.into_inner().map_err(|e| e.into_error())?;
                if keep {
                    file.sync_all()?;
                    drop(file);
                    std::fs::rename(&temporary, &path)?;
                } else {
                    drop(file);
                    std::fs::remove_file(&temporary)?;
                }
                Ok(None)
            }
            Sink::Memory(bytes) => Ok(Some(bytes)),
        }
    }

    /// Everything written so far, read back (for Markdown's details, copied after the tables).
    fn read_back(&mut self, to: &mut Sink) -> std::io::Result<u64> {
        match self {
            Sink::File {
                temporary, file, ..
            } => {
                file.flush()?;
                let mut from = std::fs::File::open(&*temporary)?;
                std::io::copy(&mut from, to)
            }
            Sink::Memory(bytes) => {
                to.write_all(bytes)?;
                Ok(bytes.len() as u64)
            }
        }
    }

    fn is_empty(&mut self) -> std::io::Result<bool> {
        match self {
            Sink::File { file, .. } => {
                file.flush()?;
                Ok(file.get_ref().metadata()?.len() == 0)
            }
            Sink::Memory(bytes) => Ok(bytes.is_empty()),
        }
    }
}

impl Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::File { file, .. } => file.write(bytes),
            Sink::Memory(memory) => memory.write(bytes),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::File { file, .. } => file.flush(),
            Sink::Memory(_) => Ok(()),
        }
    }
}

/// One open report.
struct Output {
    path: PathBuf,
    format: ReportFormat,
    file: Sink,
    /// Markdown's details of failed cases, written after the tables.
    details: Option<Sink>,
    /// The agent whose cases are being written.
    agent: Option<String>,
    written: usize,
}

/// Every report of an eval, written case by case.
pub(crate) struct Outputs {
    head: ReportHead,
    outputs: Vec<Output>,
    html: Option<super::html::HtmlReport>,
}

impl Outputs {
    /// Open each of `paths` (their format by extension) and write what comes before the
    /// cases.
    pub(crate) fn open(head: ReportHead, paths: &[PathBuf]) -> Result<Outputs, EvalError> {
        let mut outputs = Outputs {
            head,
            outputs: Vec::new(),
            html: None,
        };
        for path in paths {
            let format = ReportFormat::of(path)?;
            if format == ReportFormat::Html {
                outputs.html = Some(super::html::HtmlReport::open(path, &outputs.head)?);
                continue;
            }
            let io = |e| write_error(path, e);
            let file = Sink::file(path, "tmp").map_err(io)?;
            let details = (format == ReportFormat::Markdown)
                .then(|| Sink::file(path, "details"))
                .transpose()
                .map_err(io)?;
            outputs.add(path, format, file, details)?;
        }
        Ok(outputs)
    }

    /// One report of `format` written to memory (for `merge` and the terminal table).
    pub(crate) fn in_memory(head: ReportHead, format: ReportFormat) -> Result<Outputs, EvalError> {
        let mut outputs = Outputs {
            head,
            outputs: Vec::new(),
            html: None,
        };
        let details = (format == ReportFormat::Markdown).then(|| Sink::Memory(Vec::new()));
        outputs.add(Path::new(""), format, Sink::Memory(Vec::new()), details)?;
        Ok(outputs)
    }

    fn add(
        &mut self,
        path: &Path,
        format: ReportFormat,
        file: Sink,
        details: Option<Sink>,
    ) -> Result<(), EvalError> {
        let mut output = Output {
            path: path.to_owned(),
            format,
            file,
            details,
            agent: None,
            written: 0,
        };
        output.start(&self.head).map_err(|e| write_error(path, e))?;
        self.outputs.push(output);
        Ok(())
    }

    /// Write one case (in one column) to every report; `source` is the case as run, for the
    /// inputs the HTML report shows.
    pub(crate) fn case(
        &mut self,
        case: &CaseReport,
        source: Option<&super::Case>,
    ) -> Result<(), EvalError> {
        for output in &mut self.outputs {
            output
                .case(&self.head, case)
                .map_err(|e| write_error(&output.path, e))?;
        }
        if let Some(html) = &mut self.html {
            html.case(case, source)?;
        }
        Ok(())
    }

    /// Write what comes after the cases and put every report in its place. Reports written
    /// to memory are given back, in order.
    pub(crate) fn finish(self) -> Result<Vec<String>, EvalError> {
        let mut texts = Vec::new();
        for output in self.outputs {
            let path = output.path.clone();
            if let Some(bytes) = output
                .finish(&self.head)
                .map_err(|e| write_error(&path, e))?
            {
                texts.push(String::from_utf8_lossy(&bytes).into_owned());
            }
        }
        if let Some(html) = self.html {
            html.finish(&self.head)?;
        }
        Ok(texts)
    }
}

fn temporary(path: &Path, what: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(
        ".{name}.{}-{:08x}.{what}",
        std::process::id(),
        fastrand::u32(..)
    ))
}

pub(crate) fn write_error(path: &Path, source: std::io::Error) -> EvalError {
    EvalError::Write {
        path: path.to_owned(),
        source,
    }
}

/// The head of the JSON report without its cases, which are streamed in between.
#[derive(Serialize)]
struct JsonHead<'a> {
    version: u32,
    mode: &'a str,
    shard: &'a Option<String>,
    partial: bool,
    min_pass_rate: f64,
}

impl Output {
    fn start(&mut self, head: &ReportHead) -> std::io::Result<()> {
        match self.format {
            ReportFormat::Json => {
                let opening = serde_json::to_string_pretty(&JsonHead {
                    version: 1,
                    mode: &head.mode,
                    shard: &head.shard,
                    partial: head.partial,
                    min_pass_rate: head.min_pass_rate,
                })
                .unwrap_or_default();
                // Reopen the object to append the cases and the totals.
                let opening = opening.trim_end().trim_end_matches('}').trim_end();
                write!(self.file, "{opening},\n  \"cases\": [")
            }
            ReportFormat::Junit => {
                let errors = usize::from(head.partial);
                writeln!(self.file, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>")?;
                writeln!(
                    self.file,
                    "<testsuites name=\"agent eval\" tests=\"{}\" failures=\"{}\" errors=\"{errors}\" time=\"{:.3}\">",
                    head.summary.cases + errors,
                    head.summary.failed,
                    head.elapsed_ms as f64 / 1000.0
                )
            }
            ReportFormat::Markdown => self.file.write_all(markdown_head(head).as_bytes()),
            ReportFormat::Table => self.file.write_all(table_heading(head).as_bytes()),
            ReportFormat::Html => Ok(()),
        }
    }

    fn case(&mut self, head: &ReportHead, case: &CaseReport) -> std::io::Result<()> {
        let new_agent = self.agent.as_deref() != Some(case.agent.as_str());
        match self.format {
            ReportFormat::Json => {
                if self.written > 0 {
                    self.file.write_all(b",")?;
                }
                self.file.write_all(b"\n    ")?;
                serde_json::to_writer(&mut self.file, case)?;
            }
            ReportFormat::Junit => {
                if new_agent {
                    if self.agent.is_some() {
                        self.file.write_all(b"  </testsuite>\n")?;
                    }
                    let (tests, failures, time) =
                        head.agents.get(&case.agent).copied().unwrap_or_default();
                    writeln!(
                        self.file,
                        "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" time=\"{time:.3}\">",
                        escape(&case.agent)
                    )?;
                }
                self.file.write_all(junit_case(case).as_bytes())?;
            }
            ReportFormat::Markdown => {
                if new_agent {
                    let columns = if head.matrix() { " column |" } else { "" };
                    let rule = if head.matrix() { "---|" } else { "" };
                    write!(
                        self.file,
                        "\n## {}\n\n| case |{columns} result | outcome | attempts | tokens | latency | cost | failures |\n|---|{rule}---|---|---|---|---|---|---|\n",
                        case.agent
                    )?;
                }
                self.file
                    .write_all(markdown_row(case, head.matrix()).as_bytes())?;
                if !case.passed
                    && let Some(details) = &mut self.details
                {
                    details.write_all(markdown_details(case).as_bytes())?;
                }
            }
            ReportFormat::Table => self.file.write_all(table_row(head, case).as_bytes())?,
            ReportFormat::Html => {}
        }
        self.agent = Some(case.agent.clone());
        self.written += 1;
        Ok(())
    }

    fn finish(mut self, head: &ReportHead) -> std::io::Result<Option<Vec<u8>>> {
        match self.format {
            ReportFormat::Json => {
                let rest = serde_json::json!({
                    "summary": head.summary,
                    "columns": head.columns,
                    "baseline": head.baseline,
                    "elapsed_ms": head.elapsed_ms,
                });
                let rest = serde_json::to_string_pretty(&rest).unwrap_or_default();
                let rest = rest.trim_start().trim_start_matches('{');
                write!(self.file, "\n  ],{rest}\n")?;
            }
            ReportFormat::Junit => {
                if self.agent.is_some() {
                    self.file.write_all(b"  </testsuite>\n")?;
                }
                if head.partial {
                    self.file.write_all(concat!(
                        "  <testsuite name=\"agent eval\" tests=\"1\" failures=\"0\" errors=\"1\" time=\"0.000\">\n",
                        "    <testcase classname=\"agent eval\" name=\"interrupted\">\n",
                        "      <error type=\"interrupted\" message=\"the eval was interrupted: this report is partial, and the cases not run are missing from it\"/>\n",
                        "    </testcase>\n",
                        "  </testsuite>\n",
                    ).as_bytes())?;
                }
                self.file.write_all(b"</testsuites>\n")?;
            }
            ReportFormat::Markdown => {
                if let Some(mut details) = self.details.take() {
                    if !details.is_empty()? {
                        self.file.write_all(b"\n## Failed cases\n\n")?;
                        details.read_back(&mut self.file)?;
                    }
                    details.close(false)?;
                }
            }
            ReportFormat::Table => self.file.write_all(table_tail(head).as_bytes())?,
            ReportFormat::Html => {}
        }
        self.file.flush()?;
        self.file.close(true)
    }
}

/// Markdown's opening: totals, the matrix's columns, the baseline.
fn markdown_head(head: &ReportHead) -> String {
    let mut text = format!(
        "# agent eval\n\n{} of {} cases passed ({} runs, {} tokens{}, mode {}{}){}\n",
        head.summary.passed,
        head.summary.cases,
        head.summary.runs,
        head.summary.tokens,
        head.summary
            .cost
            .map(|c| format!(", {}", money(c)))
            .unwrap_or_default(),
        head.mode,
        head.shard
            .as_ref()
            .map(|s| format!(", shard {s}"))
            .unwrap_or_default(),
        if head.partial {
            " **partial: interrupted**"
        } else {
            ""
        }
    );
    if head.matrix() {
        text.push_str("\n## Columns\n\n| column | pass rate | valid on first attempt | mean attempts | tokens | latency p50 | latency p95 | cost |\n|---|---|---|---|---|---|---|---|\n");
        for column in &head.columns {
            let _ = writeln!(
                text,
                "| {} | {:.0}% ({}/{}) | {:.0}% | {:.2} | {} | {} ms | {} ms | {} |",
                column.column,
                column.pass_rate * 100.0,
                column.passed,
                column.cases,
                column.first_attempt_valid * 100.0,
                column.mean_attempts,
                column.tokens,
                column.latency_p50_ms,
                column.latency_p95_ms,
                column.cost.map(money).unwrap_or_else(|| "-".into())
            );
        }
    }
    if let Some(diff) = &head.baseline {
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
    text
}

/// A cost in US dollars, to the precision small costs need.
pub(crate) fn money(cost: f64) -> String {
    if cost >= 1.0 {
        format!("${cost:.2}")
    } else {
        format!("${cost:.4}")
    }
}

fn case_cost(case: &CaseReport) -> Option<f64> {
    case.runs.iter().filter_map(|r| r.cost).reduce(|a, b| a + b)
}

fn markdown_row(case: &CaseReport, matrix: bool) -> String {
    let run = case.runs.last();
    let failure = case
        .runs
        .iter()
        .find(|r| !r.passed)
        .map(first_reason)
        .unwrap_or_default();
    let column = if matrix {
        format!(" {} |", case.column)
    } else {
        String::new()
    };
    format!(
        "| {} |{column} {} | {} | {} | {} | {} ms | {} | {} |\n",
        case.name,
        result_word(case),
        run.map(|r| outcome_word(r.outcome)).unwrap_or("-"),
        run.map_or(0, |r| r.attempts),
        case.runs.iter().map(|r| r.tokens).sum::<u64>(),
        case.runs.iter().map(|r| r.latency_ms).sum::<u64>(),
        case_cost(case).map(money).unwrap_or_else(|| "-".into()),
        markdown_cell(&failure)
    )
}

fn markdown_cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// The lines of a reply kept in a report: the first ones, and the count of the rest.
pub(crate) const EXCERPT_LINES: usize = 40;

fn excerpt(reply: &str) -> String {
    let lines: Vec<&str> = reply.lines().collect();
    let mut text = lines
        .iter()
        .take(EXCERPT_LINES)
        .copied()
        .collect::<Vec<_>>()
        .join("\n");
    if lines.len() > EXCERPT_LINES {
        let _ = write!(text, "\n… ({} more lines)", lines.len() - EXCERPT_LINES);
    }
    text
}

/// The longest detail line the terminal table shows.
const TABLE_LINE_MAX: usize = 2000;

/// What a failed case did, for people: every attempt's violations and warnings, the last
/// reply, the run folder. Markdown puts it in a collapsed section, JUnit in `<system-out>`.
pub(crate) fn answer_details(run: &RunResult) -> String {
    let mut text = String::new();
    if let Some(model) = &run.model {
        let _ = writeln!(text, "model: {model}");
    }
    if let Some(error) = &run.error {
        let _ = writeln!(text, "error: {error}");
    }
    for failure in &run.failures {
        let _ = writeln!(text, "failed: {}: {}", failure.check, failure.reason);
    }
    for attempt in &run.attempt_log {
        let _ = writeln!(text, "attempt {}: {}", attempt.number, attempt.outcome);
        for violation in &attempt.violations {
            let _ = writeln!(text, "  violation: {}", violation.text);
        }
        for warning in &attempt.warnings {
            let _ = writeln!(text, "  warning: {}", warning.text);
        }
    }
    for warning in &run.warnings {
        let _ = writeln!(text, "input warning: {warning}");
    }
    if let Some(folder) = &run.run_folder {
        let _ = writeln!(text, "run folder: {}", folder.display());
    }
    if let Some(last) = run.attempt_log.iter().rev().find(|a| !a.reply.is_empty()) {
        let _ = writeln!(
            text,
            "last reply (attempt {}):\n{}",
            last.number,
            excerpt(&last.reply)
        );
    }
    text
}

fn markdown_details(case: &CaseReport) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "<details><summary><code>{}</code>{}: {}</summary>\n",
        case.id,
        if case.column.is_empty() {
            String::new()
        } else {
            format!(" [{}]", case.column)
        },
        markdown_cell(
            &case
                .runs
                .iter()
                .find(|r| !r.passed)
                .map(first_reason)
                .unwrap_or_default()
        )
    );
    for run in case.runs.iter().filter(|r| !r.passed) {
        if case.runs.len() > 1 {
            let _ = writeln!(text, "Repeat {}:\n", run.repeat + 1);
        }
        // A fence longer than any backtick run inside, so a reply's own fences stay inside.
        let details = answer_details(run);
        let longest = details.split(|c| c != '`').map(str::len).max().unwrap_or(0);
        let fence = "`".repeat(longest.max(2) + 1);
        let _ = writeln!(text, "{fence}text\n{}{fence}\n", details);
    }
    text.push_str("</details>\n\n");
    text
}

fn junit_case(case: &CaseReport) -> String {
    let name = if case.column.is_empty() {
        case.name.clone()
    } else {
        format!("{} [{}]", case.name, case.column)
    };
    let mut xml = format!(
        "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
        escape(&case.agent),
        escape(&name),
        seconds(case)
    );
    if case.passed {
        xml.push_str("/>\n");
        return xml;
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
    xml.push_str("      </failure>\n      <system-out>");
    for run in case.runs.iter().filter(|r| !r.passed) {
        xml.push_str(&escape(&answer_details(run)));
    }
    xml.push_str("</system-out>\n    </testcase>\n");
    xml
}

fn table_heading(head: &ReportHead) -> String {
    let width = head.width.max(4);
    format!(
        "{:width$}  {:6}  {:9}  {:>8}  {:>8}  {:>9}{}\n",
        "case",
        "result",
        "outcome",
        "attempts",
        "tokens",
        "latency",
        if head.summary.cost.is_some() {
            "       cost"
        } else {
            ""
        }
    )
}

fn table_row(head: &ReportHead, case: &CaseReport) -> String {
    let width = head.width.max(4);
    let run = case.runs.last();
    let mut text = format!(
        "{:width$}  {:6}  {:9}  {:>8}  {:>8}  {:>7}ms",
        shown_id(case),
        result_word(case),
        run.map(|r| outcome_word(r.outcome)).unwrap_or("-"),
        run.map_or(0, |r| r.attempts),
        case.runs.iter().map(|r| r.tokens).sum::<u64>(),
        case.runs.iter().map(|r| r.latency_ms).sum::<u64>(),
    );
    if head.summary.cost.is_some() {
        let _ = write!(
            text,
            "  {:>9}",
            case_cost(case).map(money).unwrap_or_else(|| "-".into())
        );
    }
    text.push('\n');
    for run in case.runs.iter().filter(|r| !r.passed) {
        // The table is shown on a terminal: a server's or a model's control characters are
        // escaped, never sent to it.
        for line in run_details(run, case.runs.len()).lines() {
            let _ = writeln!(
                text,
                "{:width$}    {}",
                "",
                crate::text::quote(line, TABLE_LINE_MAX)
            );
        }
    }
    if let Some(run) = case.runs.first() {
        for warning in &run.warnings {
            let _ = writeln!(
                text,
                "{:width$}    warning: {}",
                "",
                crate::text::quote(warning, 160)
            );
        }
    }
    text
}

fn table_tail(head: &ReportHead) -> String {
    let mut text = String::new();
    if head.matrix() {
        let width = head
            .columns
            .iter()
            .map(|c| c.column.len())
            .max()
            .unwrap_or(6)
            .max(6);
        let _ = writeln!(
            text,
            "\n{:width$}  {:>9}  {:>11}  {:>8}  {:>9}  {:>8}  {:>8}  {:>9}",
            "column", "pass rate", "first valid", "attempts", "tokens", "p50", "p95", "cost"
        );
        for column in &head.columns {
            let _ = writeln!(
                text,
                "{:width$}  {:>8.0}%  {:>10.0}%  {:>8.2}  {:>9}  {:>6}ms  {:>6}ms  {:>9}",
                column.column,
                column.pass_rate * 100.0,
                column.first_attempt_valid * 100.0,
                column.mean_attempts,
                column.tokens,
                column.latency_p50_ms,
                column.latency_p95_ms,
                column.cost.map(money).unwrap_or_else(|| "-".into())
            );
        }
    }
    let _ = writeln!(
        text,
        "\n{} of {} cases passed, {} failed; {} runs, {} tokens{}{}{}",
        head.summary.passed,
        head.summary.cases,
        head.summary.failed,
        head.summary.runs,
        head.summary.tokens,
        head.summary
            .cost
            .map(|c| format!(", {}", money(c)))
            .unwrap_or_default(),
        head.shard
            .as_ref()
            .map(|s| format!("; shard {s}"))
            .unwrap_or_default(),
        if head.partial {
            "; PARTIAL (interrupted)"
        } else {
            ""
        }
    );
    if let Some(diff) = &head.baseline {
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
