//! [`ResultsIndex`]: which runs `results.jsonl` holds, so that every report is written from
//! that stream in the cases' stable order, one case in memory at a time.
//!
//! Runs finish in any order (they run concurrently). The index is a bit per run of the
//! matrix ([`RunSet`]); a walk in stable order reads the stream front to back and keeps the
//! offset of a line only while the runs before it are still to come. Runs finish close to
//! their order, so the walk holds about as many offsets as runs ran at once: a million
//! cases cost about 125 KB of bits. (A resumed eval whose first part left gaps far back holds
//! one offset per line written after a gap.)

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read as _, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::case::{Case, Cases};
use super::error::EvalError;
use super::matrix::Column;
use super::outputs::{Outputs, ReportHead};
use super::report::{Baseline, CaseReport, RunResult, case_report};
use crate::artifacts::FolderError;

/// A run's identity: the case's place, the column's index, the repeat.
pub type RunKey = (u64, u32, u32);

/// A set of runs of a matrix of cases × columns × repeats, a bit each. The default holds no
/// run and takes none.
#[derive(Debug, Clone, Default)]
pub struct RunSet {
    positions: u64,
    columns: u64,
    repeats: u64,
    words: Vec<u64>,
    len: u64,
}

impl RunSet {
    /// No run of `positions` cases × `columns` × `repeats`.
    pub fn new(positions: u64, columns: usize, repeats: u32) -> RunSet {
        let (columns, repeats) = (columns.max(1) as u64, u64::from(repeats.max(1)));
        let bits = positions * columns * repeats;
        RunSet {
            positions,
            columns,
            repeats,
            words: vec![0; bits.div_ceil(64) as usize],
            len: 0,
        }
    }

    fn slot(&self, (position, column, repeat): RunKey) -> Option<u64> {
        (position < self.positions
            && u64::from(column) < self.columns
            && u64::from(repeat) < self.repeats)
            .then(|| {
                (position * self.columns + u64::from(column)) * self.repeats + u64::from(repeat)
            })
    }

    fn key(&self, slot: u64) -> RunKey {
        let repeat = slot % self.repeats;
        let column = (slot / self.repeats) % self.columns;
        let position = slot / self.repeats / self.columns;
        (position, column as u32, repeat as u32)
    }

    /// Is the run in the set?
    pub fn contains(&self, key: RunKey) -> bool {
        self.slot(key)
            .is_some_and(|slot| self.words[(slot / 64) as usize] & (1 << (slot % 64)) != 0)
    }

    /// Add a run; false when it was in the set already or lies outside the matrix.
    pub fn insert(&mut self, key: RunKey) -> bool {
        let Some(slot) = self.slot(key) else {
            return false;
        };
        let (word, mask) = ((slot / 64) as usize, 1u64 << (slot % 64));
        let new = self.words[word] & mask == 0;
        self.words[word] |= mask;
        self.len += u64::from(new);
        new
    }

    /// Runs in the set.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// No run in the set.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Does the set hold any run of the case at `position`?
    pub fn any_at(&self, position: u64) -> bool {
        (0..self.columns as u32).any(|column| {
            (0..self.repeats as u32).any(|repeat| self.contains((position, column, repeat)))
        })
    }

    /// The runs in stable order: by case, then column, then repeat.
    pub fn iter(&self) -> impl Iterator<Item = RunKey> + '_ {
        self.words.iter().enumerate().flat_map(move |(at, &word)| {
            let mut rest = word;
            std::iter::from_fn(move || {
                (rest != 0).then(|| {
                    let bit = u64::from(rest.trailing_zeros());
                    rest &= rest - 1;
                    self.key(at as u64 * 64 + bit)
                })
            })
        })
    }
}

/// The fields of a result line that place it.
#[derive(Deserialize)]
struct Placed {
    case: String,
    #[serde(default)]
    column: String,
    #[serde(default)]
    position: u64,
    #[serde(default)]
    repeat: u32,
}

/// The finished runs of an eval.
#[derive(Debug)]
pub struct ResultsIndex {
    path: PathBuf,
    done: RunSet,
}

impl ResultsIndex {
    /// Index the whole results of `path` that belong to `cases` in `columns`, `repeats`
    /// times each. A line that is not a whole result (a kill in the middle of a write) is
    /// cut from the file, so its run is made again; a result whose case is no longer at its
    /// place (the fixtures changed) is left out, and runs again too.
    pub fn read(
        path: &Path,
        cases: &Cases,
        columns: &[Column],
        repeats: u32,
    ) -> Result<ResultsIndex, EvalError> {
        let io = |action, error| {
            EvalError::Folder(FolderError::Io {
                action,
                path: path.to_owned(),
                source: error,
            })
        };
        let mut claimed = RunSet::new(cases.len(), columns.len(), repeats);
        let file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ResultsIndex {
                    path: path.to_owned(),
                    done: claimed,
                });
            }
            Err(error) => return Err(io("read", error)),
        };
        let mut reader = BufReader::new(file);
        let mut line = String::new();
        let mut broken = false;
        loop {
            line.clear();
            if reader.read_line(&mut line).map_err(|e| io("read", e))? == 0 {
                break;
            }
            let Some(result) = whole_result(&line) else {
                if !line.trim().is_empty() {
                    broken = true;
                }
                continue;
            };
            if let Some(column) = columns.iter().position(|c| c.label == result.column) {
                claimed.insert((result.position, column as u32, result.repeat));
            }
        }
        if broken {
            tracing::warn!(
                "{}: dropped line(s) that were not whole results; their runs run again",
                path.display()
            );
            // Kept by the same test as above: the file holds whole results only, so the
            // second reading cuts nothing.
            cut_broken_lines(path).map_err(|e| io("write", e))?;
            return ResultsIndex::read(path, cases, columns, repeats);
        }
        // A run counts when a line of it names the case now at its place: a line written
        // before the fixtures changed does not, and the run is made again.
        let mut index = ResultsIndex {
            path: path.to_owned(),
            done: RunSet::new(cases.len(), columns.len(), repeats),
        };
        walk(
            path,
            &claimed,
            cases,
            columns,
            Missing::NotDone,
            |key, _, _| {
                index.done.insert(key);
                Ok(())
            },
        )?;
        Ok(index)
    }

    /// The runs finished.
    pub fn done(&self) -> &RunSet {
        &self.done
    }

    /// The runs finished, the index given up.
    pub fn into_done(self) -> RunSet {
        self.done
    }

    /// Runs indexed.
    pub fn len(&self) -> u64 {
        self.done.len()
    }

    /// No run finished yet.
    pub fn is_empty(&self) -> bool {
        self.done.is_empty()
    }

    /// Each case × column that has results, in stable order, with its runs read from the
    /// stream.
    fn for_each(
        &self,
        cases: &Cases,
        columns: &[Column],
        min_pass_rate: f64,
        mut visit: impl FnMut(CaseReport, &Case) -> Result<(), EvalError>,
    ) -> Result<(), EvalError> {
        let invalid = |error: serde_json::Error| {
            EvalError::Folder(FolderError::Io {
                action: "read",
                path: self.path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, error),
            })
        };
        let mut open: Option<((u64, u32), Case, Vec<RunResult>)> = None;
        let mut close = |open: Option<((u64, u32), Case, Vec<RunResult>)>| {
            let Some(((_, column), case, runs)) = open else {
                return Ok(());
            };
            visit(
                case_report(
                    case.id(),
                    columns[column as usize].label.clone(),
                    &case.agent,
                    &case.name,
                    case.description.clone(),
                    case.tags.clone(),
                    case.expect.outcome,
                    runs,
                    min_pass_rate,
                ),
                &case,
            )
        };
        walk(
            &self.path,
            &self.done,
            cases,
            columns,
            Missing::Changed,
            |(position, column, _), case, line| {
                let result: RunResult = serde_json::from_str(line).map_err(invalid)?;
                match &mut open {
                    Some((at, _, runs)) if *at == (position, column) => runs.push(result),
                    _ => close(open.replace(((position, column), case.clone(), vec![result])))?,
                }
                Ok(())
            },
        )?;
        close(open)
    }
}

/// A run of the walk that has no line naming the case at its place.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Missing {
    /// Not done (indexing: a line written before the fixtures changed).
    NotDone,
    /// The results changed since they were indexed: an error.
    Changed,
}

/// Visit, in stable order, the line of every run in `runs` that names the case now at its
/// place (the first such line, when a run was written twice). `results` is read front to
/// back once; a line met before its turn is remembered by its offset.
fn walk(
    results: &Path,
    runs: &RunSet,
    cases: &Cases,
    columns: &[Column],
    missing: Missing,
    mut visit: impl FnMut(RunKey, &Case, &str) -> Result<(), EvalError>,
) -> Result<(), EvalError> {
    if runs.is_empty() {
        return Ok(());
    }
    let io = |error| {
        EvalError::Folder(FolderError::Io {
            action: "read",
            path: results.to_owned(),
            source: error,
        })
    };
    let changed = || {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the results changed while being read",
        ))
    };
    let mut ahead = BufReader::new(std::fs::File::open(results).map_err(io)?);
    let mut back = std::fs::File::open(results).map_err(io)?;
    let mut offset = 0u64;
    let mut ended = false;
    // Lines met before their turn: (offset, length) of each, in the order written.
    let mut early: HashMap<RunKey, Vec<(u64, usize)>> = HashMap::new();
    let mut line = String::new();
    let mut case_walk = cases.iter();
    let mut case: Option<(u64, Case)> = None;
    let place = |placed: &Placed| -> Option<RunKey> {
        let column = columns.iter().position(|c| c.label == placed.column)?;
        Some((placed.position, column as u32, placed.repeat))
    };
    for key in runs.iter() {
        while case.as_ref().is_none_or(|(at, _)| *at < key.0) {
            let next = case_walk.next().ok_or_else(changed)??;
            let at = case.as_ref().map_or(0, |(at, _)| at + 1);
            case = Some((at, next));
        }
        let (_, case) = case.as_ref().expect("walked to its place");
        let id = case.id();
        let fits =
            |line: &str| serde_json::from_str::<Placed>(line).is_ok_and(|placed| placed.case == id);
        let mut found = false;
        for (at, length) in early.remove(&key).unwrap_or_default() {
            back.seek(SeekFrom::Start(at)).map_err(io)?;
            let mut bytes = vec![0; length];
            back.read_exact(&mut bytes).map_err(io)?;
            line = String::from_utf8(bytes).map_err(|_| changed())?;
            if fits(&line) {
                found = true;
                break;
            }
        }
        while !found && !ended {
            line.clear();
            let read = ahead.read_line(&mut line).map_err(io)?;
            if read == 0 {
                ended = true;
                break;
            }
            let at = offset;
            offset += read as u64;
            let Ok(placed) = serde_json::from_str::<Placed>(&line) else {
                continue;
            };
            let Some(met) = place(&placed) else {
                continue;
            };
            if met == key {
                found = placed.case == id;
            } else if met > key && runs.contains(met) {
                early.entry(met).or_default().push((at, read));
            }
        }
        if found {
            visit(key, case, &line)?;
        } else if missing == Missing::Changed {
            return Err(changed());
        }
    }
    Ok(())
}

/// The place of `line` when it is a whole result: a run's line ending in its line break.
fn whole_result(line: &str) -> Option<RunResult> {
    if !line.ends_with('\n') {
        return None;
    }
    serde_json::from_str::<RunResult>(line).ok()
}

/// Rewrite `path` with its whole results only.
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
        if whole_result(&line).is_some() {
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
    cases: &Cases,
    columns: &[Column],
    plan: ReportPlan<'_>,
) -> Result<Written, EvalError> {
    let partial = index.len() < cases.runs(columns, plan.repeat);
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
        let listed = vec![case("a"), case("b"), case("c")];
        let cases = Cases::of(listed.clone());
        let columns = Column::matrix(&["x".into(), "y".into()], &[], &[]);
        let path = dir.path().join("results.jsonl");
        let mut text = String::new();
        text += &line(&listed[2], 2, "y", true);
        text += &line(&listed[0], 0, "y", false);
        text += &line(&listed[0], 0, "x", true);
        // Written twice (a resume racing a kill): counted once.
        text += &line(&listed[0], 0, "x", true);
        // A case no longer at its place: left out, so it runs again.
        text += &line(&listed[1], 2, "x", true);
        text += &line(&listed[1], 1, "x", true);
        // A kill in the middle of a write.
        text += "{\"case\": \"release-plan/c\", \"repe";
        std::fs::write(&path, &text).expect("write");

        let index = ResultsIndex::read(&path, &cases, &columns, 1).expect("indexed");
        assert_eq!(index.len(), 4);
        let done = index.done();
        assert!(done.contains((0, 0, 0)) && done.contains((0, 1, 0)));
        assert!(!done.contains((2, 0, 0)), "c in column x still runs");
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

    #[test]
    fn a_run_set_holds_a_bit_per_run_and_gives_them_in_stable_order() {
        let mut set = RunSet::new(1_000_000, 2, 3);
        assert!(set.words.len() * 8 <= 750_000, "6 million runs in 750 KB");
        for key in [(999_999, 1, 2), (5, 0, 1), (5, 1, 0), (0, 0, 0)] {
            assert!(set.insert(key));
        }
        assert!(!set.insert((5, 0, 1)), "already in");
        assert!(!set.insert((1_000_000, 0, 0)) && !set.insert((0, 2, 0)) && !set.insert((0, 0, 3)));
        assert_eq!(set.len(), 4);
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            [(0, 0, 0), (5, 0, 1), (5, 1, 0), (999_999, 1, 2)]
        );
        assert!(set.any_at(5) && !set.any_at(6));
        assert!(!RunSet::default().contains((0, 0, 0)));
    }

    #[test]
    fn a_stale_line_does_not_hide_the_run_made_again_after_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        // `a` ran at place 0; then `z` was inserted before it, so `a` moved to place 1 and
        // a resume ran `z` at place 0 and `a` at 1.
        let (a, z) = (case("a"), case("z"));
        let cases = Cases::of(vec![z.clone(), a.clone()]);
        let columns = vec![Column::default()];
        let path = dir.path().join("results.jsonl");
        let text = line(&a, 0, "", true) + &line(&z, 0, "", false) + &line(&a, 1, "", true);
        std::fs::write(&path, text).expect("write");
        let index = ResultsIndex::read(&path, &cases, &columns, 1).expect("indexed");
        assert_eq!(
            index.done().iter().collect::<Vec<_>>(),
            [(0, 0, 0), (1, 0, 0)]
        );
        let mut seen = Vec::new();
        index
            .for_each(&cases, &columns, 1.0, |report, _| {
                seen.push(format!("{} {}", report.id, report.passed));
                Ok(())
            })
            .expect("reads");
        assert_eq!(seen, ["release-plan/z false", "release-plan/a true"]);
    }

    #[test]
    fn json_that_is_not_a_result_is_cut_like_a_torn_line() {
        let dir = tempfile::tempdir().expect("temp dir");
        let a = case("a");
        let cases = Cases::of(vec![a.clone()]);
        let columns = vec![Column::default()];
        let path = dir.path().join("results.jsonl");
        std::fs::write(
            &path,
            "{}\n[]\n{\"case\": 5}\n".to_owned() + &line(&a, 0, "", true),
        )
        .expect("write");
        let index = ResultsIndex::read(&path, &cases, &columns, 1).expect("indexed");
        assert_eq!(index.len(), 1);
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            line(&a, 0, "", true)
        );
    }
}
