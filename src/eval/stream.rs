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

#[cfg(test)]
mod tests {
    use super::*;

    fn case(name: &str) -> Case {
        Case {
            agent: "release-plan".into(),
            name: name.into(),
            dir: PathBuf::from("fixtures/release-plan").join(name),
            description: None,
            tags: Vec::new(),
            sources: crate::inputs::Sources::default(),
            attempts: 3,
            expect: super::super::Expect::default(),
            checks: Vec::new(),
            recording: PathBuf::from("recording.json"),
            pipeline: None,
            response_format: None,
        }
    }

    fn line(case: &Case, position: u64, column: &str, passed: bool) -> String {
        let result = RunResult {
            position,
            column: column.into(),
            passed,
            outcome: crate::runner::RunOutcome::Valid,
            attempts: 1,
            ..RunResult::new(case.id(), 0)
        };
        serde_json::to_string(&result).expect("json") + "\n"
    }

    #[test]
    fn reports_come_in_case_order_from_a_stream_in_finishing_order_and_a_cut_line_is_dropped() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cases = vec![case("a"), case("b"), case("c")];
        let columns = Column::matrix(&["x".into(), "y".into()], &[], &[]);
        let path = dir.path().join("results.jsonl");
        let mut text = String::new();
        text += &line(&cases[2], 2, "y", true);
        text += &line(&cases[0], 0, "y", false);
        text += &line(&cases[0], 0, "x", true);
        // Written twice (a resume racing a kill): counted once.
        text += &line(&cases[0], 0, "x", true);
        // A case no longer at its place: left out, so it runs again.
        text += &line(&cases[1], 2, "x", true);
        text += &line(&cases[1], 1, "x", true);
        // A kill in the middle of a write.
        text += "{\"case\": \"release-plan/c\", \"repe";
        std::fs::write(&path, &text).expect("write");

        let index = ResultsIndex::read(&path, &cases, &columns).expect("indexed");
        assert_eq!(index.len(), 4);
        let done = index.done();
        assert!(done.contains(&(0, 0, 0)) && done.contains(&(0, 1, 0)));
        assert!(!done.contains(&(2, 0, 0)), "c in column x still runs");
        let kept = std::fs::read_to_string(&path).expect("read");
        assert!(kept.ends_with("}\n"), "the cut line is gone: {kept}");

        let mut order = Vec::new();
        index
            .for_each(&cases, &columns, 1.0, |report, _| {
                order.push(format!(
                    "{} [{}] {}",
                    report.id, report.column, report.passed
                ));
                Ok(())
            })
            .expect("reads");
        assert_eq!(
            order,
            [
                "release-plan/a [x] true",
                "release-plan/a [y] false",
                "release-plan/b [x] true",
                "release-plan/c [y] true"
            ]
        );

        let table = dir.path().join("table.txt");
        let written = write_reports(
            &index,
            &cases,
            &columns,
            ReportPlan {
                mode: "replay",
                shard: None,
                min_pass_rate: 1.0,
                repeat: 1,
                elapsed_ms: 0,
                baseline: None,
                paths: vec![table.clone()],
            },
        )
        .expect("written");
        assert!(written.partial, "b [y] and c [x] never ran");
        assert!(!written.passed);
        let table = std::fs::read_to_string(&table).expect("table");
        assert!(table.contains("3 of 4 cases passed, 1 failed"), "{table}");
        assert!(table.contains("PARTIAL"), "{table}");
    }
}
