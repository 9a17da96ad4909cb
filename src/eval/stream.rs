//! [`ResultsIndex`]: where each finished run sits in `results.jsonl`, so that every report is
//! written from that stream in the cases' stable order, one case in memory at a time.
//!
//! Runs finish in any order (they run concurrently); the index holds, per run, its case's
//! place, its column, its repeat and the byte offset of its line: 24 bytes a run, where the
//! results themselves (replies included) stay on disk.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::case::Case;
use super::error::EvalError;
use super::matrix::Column;
use super::outputs::{Outputs, ReportHead};
use super::report::{Baseline, CaseReport, RunResult, case_report};
use crate::artifacts::FolderError;

/// One run's line in the results stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    position: u64,
    column: u32,
    repeat: u32,
    offset: u64,
}

/// The finished runs of an eval, by place.
#[derive(Debug)]
pub struct ResultsIndex {
    path: PathBuf,
    entries: Vec<Entry>,
}

/// A run's identity: the case's place, the column's index, the repeat.
pub type RunKey = (u64, u32, u32);

impl ResultsIndex {
    /// Index the whole results of `path` that belong to `cases` in `columns`. A line that is
    /// not a whole result (a kill in the middle of a write) is cut from the file, so its run
    /// is made again; a result whose case is no longer at its place (the fixtures changed)
    /// is left out, and runs again too.
    pub fn read(
        path: &Path,
        cases: &[Case],
        columns: &[Column],
    ) -> Result<ResultsIndex, EvalError> {
        let io = |action, error| {
            EvalError::Folder(FolderError::Io {
                action,
                path: path.to_owned(),
                source: error,
            })
        };
        let file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ResultsIndex {
                    path: path.to_owned(),
                    entries: Vec::new(),
                });
            }
            Err(error) => return Err(io("read", error)),
        };
        let mut reader = BufReader::new(file);
        let mut entries = Vec::new();
        let mut line = String::new();
        let mut offset = 0u64;
        let mut broken = false;
        loop {
            line.clear();
            let read = reader.read_line(&mut line).map_err(|e| io("read", e))?;
            if read == 0 {
                break;
            }
            let at = offset;
            offset += read as u64;
            let result = line
                .ends_with('\n')
                .then(|| serde_json::from_str::<RunResult>(&line).ok())
                .flatten();
            let Some(result) = result else {
                if !line.trim().is_empty() {
                    broken = true;
                }
                continue;
            };
            let Some(column) = columns.iter().position(|c| c.label == result.column) else {
                continue;
            };
            let fits = cases
                .get(result.position as usize)
                .is_some_and(|case| case.id() == result.case);
            if fits {
                entries.push(Entry {
                    position: result.position,
                    column: column as u32,
                    repeat: result.repeat,
                    offset: at,
                });
            }
        }
        if broken {
            tracing::warn!(
                "{}: dropped line(s) that were not whole results; their runs run again",
                path.display()
            );
            cut_broken_lines(path).map_err(|e| io("write", e))?;
            // Offsets moved: index the file again, now whole.
            return ResultsIndex::read(path, cases, columns);
        }
        // A run written twice (a resume racing a kill) counts once: the first line written.
        entries.sort_unstable();
        entries.dedup_by_key(|e| (e.position, e.column, e.repeat));
        Ok(ResultsIndex {
            path: path.to_owned(),
            entries,
        })
    }

    /// The runs finished.
    pub fn done(&self) -> HashSet<RunKey> {
        self.entries
            .iter()
            .map(|e| (e.position, e.column, e.repeat))
            .collect()
    }

    /// Runs indexed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No run finished yet.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Each case × column that has results, in stable order, with its runs read from the
    /// stream.
    fn for_each(
        &self,
        cases: &[Case],
        columns: &[Column],
        min_pass_rate: f64,
        mut visit: impl FnMut(CaseReport, &Case) -> Result<(), EvalError>,
    ) -> Result<(), EvalError> {
        let io = |error| {
            EvalError::Folder(FolderError::Io {
                action: "read",
                path: self.path.clone(),
                source: error,
            })
        };
        let file = std::fs::File::open(&self.path).map_err(io)?;
        let mut reader = BufReader::new(file);
        let mut line = String::new();
        let mut at = 0;
        while at < self.entries.len() {
            let first = self.entries[at];
            let mut runs = Vec::new();
            while at < self.entries.len()
                && (self.entries[at].position, self.entries[at].column)
                    == (first.position, first.column)
            {
                reader
                    .seek(SeekFrom::Start(self.entries[at].offset))
                    .map_err(io)?;
                line.clear();
                reader.read_line(&mut line).map_err(io)?;
                let result: RunResult = serde_json::from_str(&line)
                    .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
                runs.push(result);
                at += 1;
            }
            let case = &cases[first.position as usize];
            visit(
                case_report(
                    case.id(),
                    columns[first.column as usize].label.clone(),
                    &case.agent,
                    &case.name,
                    case.description.clone(),
                    case.tags.clone(),
                    case.expect.outcome,
                    runs,
                    min_pass_rate,
                ),
                case,
            )?;
        }
        Ok(())
    }
}

/// Rewrite `path` with its whole lines only.
fn cut_broken_lines(path: &Path) -> std::io::Result<()> {
    use std::io::Write as _;
    let reader = BufReader::new(std::fs::File::open(path)?);
    let temporary = path.with_extension("jsonl.whole");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&temporary)?);
    let mut reader = reader;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let whole =
            line.ends_with('\n') && serde_json::from_str::<serde_json::Value>(&line).is_ok();
        if whole {
            out.write_all(line.as_bytes())?;
        }
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)
}

/// What the reports of an eval say besides its cases.
pub struct ReportPlan<'a> {
    /// `replay`, `live`, `record`.
    pub mode: &'a str,
    /// `i/n`.
    pub shard: Option<String>,
    /// The pass rate a case needs.
    pub min_pass_rate: f64,
    /// Runs per case.
    pub repeat: u32,
    /// Wall time.
    pub elapsed_ms: u64,
    /// The baseline to compare with.
    pub baseline: Option<Baseline>,
    /// The reports to write (by extension), the terminal table among them.
    pub paths: Vec<PathBuf>,
}

/// The totals, written once the reports are.
#[derive(Debug, Clone, Default)]
pub struct Written {
    /// Every case passed and nothing regressed.
    pub passed: bool,
    /// Not every run finished.
    pub partial: bool,
}

/// Write every report of `plan` from the results stream: a first pass counts the totals
/// (and compares with the baseline), a second writes the cases.
pub fn write_reports(
    index: &ResultsIndex,
    cases: &[Case],
    columns: &[Column],
    plan: ReportPlan<'_>,
) -> Result<Written, EvalError> {
    let expected: u64 = cases
        .iter()
        .map(|case| columns.iter().filter(|c| c.runs(case)).count() as u64)
        .sum::<u64>()
        * u64::from(plan.repeat);
    let partial = (index.len() as u64) < expected;
    let mut head = ReportHead {
        mode: plan.mode.to_owned(),
        shard: plan.shard.clone(),
        partial,
        min_pass_rate: plan.min_pass_rate,
        elapsed_ms: plan.elapsed_ms,
        ..ReportHead::default()
    };
    let mut comparison = plan.baseline.map(Baseline::comparison);
    index.for_each(cases, columns, plan.min_pass_rate, |case, _| {
        head.add(&case);
        if let Some(comparison) = &mut comparison {
            comparison.add(&case);
        }
        Ok(())
    })?;
    head.close();
    if columns.len() == 1 && columns[0].label.is_empty() {
        // One column is no matrix: no per-column lines.
        head.columns.retain(|c| !c.column.is_empty());
    }
    head.baseline = comparison.map(|c| c.finish());
    let written = Written {
        passed: head.summary.failed == 0
            && head
                .baseline
                .as_ref()
                .is_none_or(|b| b.regressed.is_empty()),
        partial,
    };
    let mut outputs = Outputs::open(head, &plan.paths)?;
    index.for_each(cases, columns, plan.min_pass_rate, |case, source| {
        outputs.case(&case, Some(source))
    })?;
    outputs.finish()?;
    Ok(written)
}
