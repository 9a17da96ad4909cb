//! Cases: `fixtures/<agent>/<case>/case.yaml`, and the rows of a dataset a case file names.
//!
//! ```yaml
//! description: Typical web service, 2.4.0 to production
//! tags: [web-service, typical]
//! inputs: inputs            # default: the case's inputs/ directory
//! vars: { ENVIRONMENT: production }
//! dataset: rows.jsonl       # optional: one case per row (JSON lines or CSV), columns are variables
//! attempts: 3
//! expect: { outcome: valid, attempts: 2 }
//! assert:
//!   - { type: heading, value: "5. Rollback & DR" }
//!   - { type: not-contains, value: "<release_planning>" }
//! recording: recording.json # default
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::assertion::{AssertionSpec, Check};
use super::engine::Shard;
use super::error::EvalError;
use crate::inputs::Sources;
use crate::project::Project;

/// The outcome a case expects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExpectedOutcome {
    /// A valid deliverable.
    #[default]
    Valid,
    /// A valid refusal.
    Declined,
    /// The contract still broken after the last attempt.
    Violated,
}

/// What a case expects besides its assertions.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The run's outcome.
    #[serde(default)]
    pub outcome: ExpectedOutcome,
    /// The exact number of attempts, if it matters.
    pub attempts: Option<u32>,
    /// For a pipeline case: how each step ends.
    #[serde(default)]
    pub steps: std::collections::BTreeMap<String, crate::pipeline::StepStatus>,
}

/// A case file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    description: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    inputs: Option<PathBuf>,
    #[serde(default)]
    vars: BTreeMap<String, serde_yaml_ng::Value>,
    dataset: Option<PathBuf>,
    attempts: Option<u32>,
    /// `response_format` for this case (every row of its dataset).
    response_format: Option<crate::runner::ResponseFormat>,
    #[serde(default)]
    expect: Expect,
    #[serde(default, rename = "assert")]
    assertions: Vec<AssertionSpec>,
    recording: Option<PathBuf>,
    /// A pipeline file to run instead of one agent (cases under `fixtures/pipelines/`).
    pipeline: Option<PathBuf>,
    /// The hand-written replies its recording was made from, for `agent record`;
    /// `agent eval` does not read them.
    #[serde(default)]
    #[expect(
        dead_code,
        reason = "read by `agent record`, kept here so case files validate"
    )]
    scripted_replies: Vec<PathBuf>,
}

/// One case, ready to run.
#[derive(Debug, Clone)]
pub struct Case {
    /// The agent.
    pub agent: String,
    /// The case name (`parcelpoint`, or `form-variants#3` for a dataset row).
    pub name: String,
    /// The case directory.
    pub dir: PathBuf,
    /// What the case is about.
    pub description: Option<String>,
    /// Tags for `--filter`.
    pub tags: Vec<String>,
    /// Where its inputs come from.
    pub sources: Sources,
    /// Attempts allowed.
    pub attempts: u32,
    /// Its own `response_format`, over `--response-format`.
    pub response_format: Option<crate::runner::ResponseFormat>,
    /// What it expects.
    pub expect: Expect,
    /// Its assertions.
    pub checks: Vec<Check>,
    /// Its recording.
    pub recording: PathBuf,
    /// The pipeline it runs, for a pipeline case.
    pub pipeline: Option<PathBuf>,
}

impl Case {
    /// `agent/case`: the stable identity used for order, sharding, resume and baselines.
    pub fn id(&self) -> String {
        format!("{}/{}", self.agent, self.name)
    }

    /// Does `filter` select this case? It may be `agent/name`, `name`, the case of a dataset
    /// (`agent/name` or `name` selects all its rows), an agent, or `tag:X`.
    pub fn matches(&self, filter: &str) -> bool {
        if let Some(tag) = filter.strip_prefix("tag:") {
            return self.tags.iter().any(|t| t == tag);
        }
        let id = self.id();
        let parent = |text: &str| {
            text.split_once('#')
                .map_or(text.to_owned(), |(base, _)| base.to_owned())
        };
        filter == id
            || filter == self.name
            || filter == parent(&id)
            || filter == parent(&self.name)
            || filter == self.agent
    }
}

/// The cases an eval runs, in stable order: by agent, then case directory, then dataset row.
///
/// A dataset's rows are read from its file each time the cases are walked and never held
/// all at once, so a million-row dataset costs the memory of the rows in flight (and, while
/// its ids are checked, a filter of at most a megabyte). Walking the cases is
/// [`Cases::iter`]; every walk gives the same cases at the same positions.
#[derive(Debug, Clone)]
pub struct Cases {
    groups: Vec<Group>,
    filters: Vec<String>,
    shard: Option<Shard>,
    len: u64,
}

/// A case file and what it selects: its own case, or one case per row of its dataset.
#[derive(Debug, Clone)]
struct Group {
    /// The case file's case; each dataset row's case is made from it.
    base: Case,
    /// The dataset, as the case file names it and where it is.
    dataset: Option<(PathBuf, PathBuf)>,
    /// Its cases before any filter.
    rows: u64,
    /// The filters' picks before this group's (a shard counts places among the picks).
    picked_before: u64,
    /// The position of its first selected case, and how many it has.
    first: u64,
    selected: u64,
}

impl Cases {
    /// Cases given whole (no dataset files behind them), in the order given.
    pub fn of(cases: Vec<Case>) -> Cases {
        let groups: Vec<Group> = cases
            .into_iter()
            .enumerate()
            .map(|(position, base)| Group {
                base,
                dataset: None,
                rows: 1,
                picked_before: position as u64,
                first: position as u64,
                selected: 1,
            })
            .collect();
        Cases {
            len: groups.len() as u64,
            groups,
            filters: Vec::new(),
            shard: None,
        }
    }

    /// How many cases.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// No case selected.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Each case file's case (a dataset's rows share all but their variables, tags and
    /// expected outcome with it) that has a selected case: what agents, pipelines and
    /// recordings the cases use.
    pub fn files(&self) -> impl Iterator<Item = &Case> {
        self.groups
            .iter()
            .filter(|g| g.selected > 0)
            .map(|g| &g.base)
    }

    /// How many runs the matrix makes of these cases, `repeat` times each.
    pub fn runs(&self, columns: &[super::matrix::Column], repeat: u32) -> u64 {
        self.groups
            .iter()
            .map(|g| g.selected * columns.iter().filter(|c| c.runs(&g.base)).count() as u64)
            .sum::<u64>()
            * u64::from(repeat)
    }

    /// Run every case from the start, in stable order; an item is an error only when a
    /// dataset no longer reads as it did when the cases were selected.
    pub fn iter(&self) -> CaseIter<'_> {
        CaseIter {
            cases: self,
            group: 0,
            rows: None,
            yielded: 0,
            failed: false,
        }
    }

    /// Every case of a recording file this selection runs all of: with `--record` they
    /// start empty; any other keeps the exchanges of the cases not run. A case counts as run
    /// now unless one of its runs is in `done`.
    pub fn whole_recordings(
        &self,
        all: &HashMap<PathBuf, u64>,
        done: &super::stream::RunSet,
    ) -> HashSet<PathBuf> {
        let mut running: HashMap<&Path, u64> = HashMap::new();
        for group in &self.groups {
            let finished = (group.first..group.first + group.selected)
                .filter(|&position| done.any_at(position))
                .count() as u64;
            *running.entry(group.base.recording.as_path()).or_default() +=
                group.selected - finished;
        }
        running
            .into_iter()
            .filter(|(path, count)| all.get(*path) == Some(count))
            .map(|(path, _)| path.to_owned())
            .collect()
    }

    /// Make every case read and write the recording `path`.
    pub fn record_into(&mut self, path: &Path) {
        for group in &mut self.groups {
            group.base.recording = path.to_owned();
        }
    }
}

/// A walk over [`Cases`]; see [`Cases::iter`].
pub struct CaseIter<'a> {
    cases: &'a Cases,
    group: usize,
    /// The open dataset of the current group, and the picks made in it so far.
    rows: Option<(Rows, u64)>,
    /// Cases of the current group given so far.
    yielded: u64,
    failed: bool,
}

impl Iterator for CaseIter<'_> {
    type Item = Result<Case, EvalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let item = self.advance();
        if matches!(item, Some(Err(_))) {
            self.failed = true;
        }
        item
    }
}

impl CaseIter<'_> {
    fn advance(&mut self) -> Option<Result<Case, EvalError>> {
        loop {
            let group = self.cases.groups.get(self.group)?;
            if self.yielded == group.selected {
                self.group += 1;
                self.rows = None;
                self.yielded = 0;
                continue;
            }
            let Some((dataset_named, dataset)) = &group.dataset else {
                self.yielded += 1;
                return Some(Ok(group.base.clone()));
            };
            let changed = |problem: String| {
                Err(EvalError::Cases {
                    problems: vec![format!(
                        "{}: {problem} (the dataset changed while the eval ran)",
                        group.base.dir.join("case.yaml").display()
                    )],
                })
            };
            if self.rows.is_none() {
                match Rows::open(dataset) {
                    Ok(rows) => self.rows = Some((rows, 0)),
                    Err(problem) => return Some(changed(problem)),
                }
            }
            let (rows, picked) = self.rows.as_mut().expect("opened above");
            let (index, row) = match rows.next() {
                Some(Ok(row)) => row,
                Some(Err(problem)) => return Some(changed(problem)),
                None => {
                    return Some(changed(format!(
                        "`{}` has fewer rows than it had",
                        dataset_named.display()
                    )));
                }
            };
            let case = match group.row_case(index, row) {
                Ok(case) => case,
                Err(problem) => return Some(changed(problem)),
            };
            if !self.cases.picks(&case) {
                continue;
            }
            let place = group.picked_before + *picked;
            *picked += 1;
            if self.cases.shard.is_none_or(|shard| shard.keeps(place)) {
                self.yielded += 1;
                return Some(Ok(case));
            }
        }
    }
}

impl Cases {
    /// Do the filters pick `case`? (No filter picks every case.)
    fn picks(&self, case: &Case) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| case.matches(f))
    }
}

impl Group {
    /// The case of a dataset row (`index` counts from 0).
    fn row_case(&self, index: usize, row: Vec<(String, String)>) -> Result<Case, String> {
        let mut case = self.base.clone();
        let mut id = (index + 1).to_string();
        for (key, value) in row {
            match key.as_str() {
                "id" | "name" => id = value,
                "expect" => {
                    case.expect.outcome = serde_yaml_ng::from_str(&value)
                        .map_err(|e| format!("row {}: `expect`: {e}", index + 1))?
                }
                // A row's own response format, over its case file's (blank: the case file's).
                "response_format" if !value.trim().is_empty() => {
                    case.response_format = Some(
                        serde_yaml_ng::from_str(&value)
                            .map_err(|e| format!("row {}: `response_format`: {e}", index + 1))?,
                    )
                }
                "response_format" => {}
                "tags" => case.tags.extend(
                    value
                        .split(',')
                        .map(|t| t.trim().to_owned())
                        .filter(|t| !t.is_empty()),
                ),
                _ => case.sources.vars.push((key, value)),
            }
        }
        case.name = format!("{}#{id}", self.base.name);
        Ok(case)
    }
}

/// The id a dataset row goes by: its `id` or `name` column (the later one when it has
/// both), or its number.
fn row_id(index: usize, row: &[(String, String)]) -> String {
    row.iter()
        .rev()
        .find(|(key, _)| key == "id" || key == "name")
        .map_or_else(|| (index + 1).to_string(), |(_, value)| value.clone())
}

/// The case files of `agents` (all agents when empty), in stable order.
fn discover(project: &Project, agents: &[String]) -> Result<Vec<Group>, EvalError> {
    let fixtures = project.root.join("fixtures");
    // `pipelines` selects the pipeline cases; no agents selects every agent and the pipelines.
    let include_pipelines = agents.is_empty() || agents.iter().any(|a| a == PIPELINES);
    let agents: Vec<String> = if agents.is_empty() {
        project.agent_names().map_err(|e| EvalError::Cases {
            problems: vec![e.to_string()],
        })?
    } else {
        agents.iter().filter(|a| *a != PIPELINES).cloned().collect()
    };
    let mut groups = Vec::new();
    let mut problems = Vec::new();
    let mut agents = agents;
    agents.sort();
    for agent in &agents {
        if !project.prompts_dir().join(format!("{agent}.md")).is_file() {
            problems.push(format!("no agent `{agent}`"));
            continue;
        }
        let Ok(entries) = std::fs::read_dir(fixtures.join(agent)) else {
            continue;
        };
        groups_in(agent, entries, &mut groups, &mut problems);
    }
    // Pipeline cases live beside the agents', under `fixtures/pipelines/`.
    if include_pipelines && let Ok(entries) = std::fs::read_dir(fixtures.join(PIPELINES)) {
        groups_in(PIPELINES, entries, &mut groups, &mut problems);
    }
    if !problems.is_empty() {
        return Err(EvalError::Cases { problems });
    }
    // Directories were read in sorted order and a dataset's rows keep their file order, so
    // the order is stable without sorting by id (which would put row 10 before row 2).
    Ok(groups)
}

/// The cases an eval runs, and how many cases each recording file serves in all (to know
/// which recordings a `--record` refreshes whole).
pub struct Selected {
    /// The cases.
    pub cases: Cases,
    /// Per recording file, its cases before any filter or shard.
    pub cases_per_recording: HashMap<PathBuf, u64>,
}

impl Selected {
    /// The recordings every one of whose cases runs now; see [`Cases::whole_recordings`].
    pub fn whole_recordings(&self, done: &super::stream::RunSet) -> HashSet<PathBuf> {
        self.cases.whole_recordings(&self.cases_per_recording, done)
    }
}

/// The cases of `agents` (all when empty) that `filters` select (all when empty), then the
/// shard's share of them.
pub fn select(
    project: &Project,
    agents: &[String],
    filters: &[String],
    shard: Option<Shard>,
) -> Result<Selected, EvalError> {
    let mut groups = discover(project, agents)?;
    let mut cases_per_recording = HashMap::new();
    for group in &groups {
        *cases_per_recording
            .entry(group.base.recording.clone())
            .or_default() += group.rows;
    }
    let mut cases = Cases {
        groups: Vec::new(),
        filters: filters.to_vec(),
        shard,
        len: 0,
    };
    // Count each group's picks (reading its rows again only when a filter may pick some of
    // them and not others), then place the shard's share of them.
    let mut picked_before = 0;
    for group in &mut groups {
        let picked = match &group.dataset {
            _ if filters.is_empty() => group.rows,
            None => u64::from(cases.picks(&group.base)),
            Some((_, path)) => {
                let mut picked = 0;
                let mut rows = Rows::open(path).map_err(|problem| group.problem(problem))?;
                for row in &mut rows {
                    let (index, row) = row.map_err(|problem| group.problem(problem))?;
                    let case = group
                        .row_case(index, row)
                        .map_err(|problem| group.problem(problem))?;
                    picked += u64::from(cases.picks(&case));
                }
                picked
            }
        };
        group.picked_before = picked_before;
        group.first = cases.len;
        group.selected = match shard {
            Some(shard) => {
                shard.kept_below(picked_before + picked) - shard.kept_below(picked_before)
            }
            None => picked,
        };
        picked_before += picked;
        cases.len += group.selected;
    }
    cases.groups = groups;
    if cases.is_empty() {
        let mut parts = Vec::new();
        if !agents.is_empty() {
            parts.push(format!("agents {}", agents.join(", ")));
        }
        if !filters.is_empty() {
            parts.push(format!("filters {}", filters.join(", ")));
        }
        if let Some(shard) = shard {
            parts.push(format!("shard {shard}"));
        }
        let what = if parts.is_empty() {
            "the project (no fixtures/<agent>/<case>/case.yaml found)".into()
        } else {
            parts.join(" and ")
        };
        return Err(EvalError::NoCases { what });
    }
    Ok(Selected {
        cases,
        cases_per_recording,
    })
}

impl Group {
    fn problem(&self, problem: String) -> EvalError {
        EvalError::Cases {
            problems: vec![format!(
                "{}: {problem}",
                self.base.dir.join("case.yaml").display()
            )],
        }
    }
}

/// The folder of pipeline cases, and their "agent" in case ids.
pub(crate) const PIPELINES: &str = "pipelines";

/// The case files of the case directories in `entries`, in directory order.
fn groups_in(
    agent: &str,
    entries: std::fs::ReadDir,
    groups: &mut Vec<Group>,
    problems: &mut Vec<String>,
) {
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("case.yaml").is_file())
        .collect();
    dirs.sort();
    for dir in dirs {
        match load_case(agent, &dir) {
            Ok(group) => groups.push(group),
            Err(problem) => problems.push(problem),
        }
    }
}

fn load_case(agent: &str, dir: &Path) -> Result<Group, String> {
    let path = dir.join("case.yaml");
    let at = |message: String| format!("{}: {message}", path.display());
    let text = std::fs::read_to_string(&path).map_err(|e| at(e.to_string()))?;
    let file: CaseFile = serde_yaml_ng::from_str(&text).map_err(|e| at(e.to_string()))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let checks = file
        .assertions
        .iter()
        .enumerate()
        .map(|(index, spec)| {
            Check::parse(spec).map_err(|e| at(format!("assertion {}: {e}", index + 1)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let inputs_dir = match &file.inputs {
        Some(relative) => Some(dir.join(relative)),
        None => Some(dir.join("inputs")).filter(|p| p.is_dir()),
    };
    let vars = scalars(&file.vars).map_err(at)?;
    let base = Case {
        agent: agent.to_owned(),
        name,
        dir: dir.to_owned(),
        description: file.description,
        tags: file.tags,
        sources: Sources {
            dir: inputs_dir,
            vars,
            ..Sources::default()
        },
        attempts: file.attempts.unwrap_or(3).max(1),
        response_format: file.response_format,
        expect: file.expect,
        checks,
        recording: dir.join(
            file.recording
                .unwrap_or_else(|| PathBuf::from("recording.json")),
        ),
        pipeline: file.pipeline.as_ref().map(|p| dir.join(p)),
    };
    let Some(named) = file.dataset else {
        return Ok(Group {
            base,
            dataset: None,
            rows: 1,
            picked_before: 0,
            first: 0,
            selected: 0,
        });
    };
    let dataset = dir.join(&named);
    let mut group = Group {
        base,
        dataset: Some((named.clone(), dataset.clone())),
        rows: 0,
        picked_before: 0,
        first: 0,
        selected: 0,
    };
    // Every row must make a case, and a row's id names its case everywhere (results,
    // resume, baselines, artifact folders): two rows with one id would pass for one case run
    // twice. The ids are checked against a filter of fixed size; the few it cannot tell
    // apart are settled by a second read.
    let mut seen = SeenIds::sized_for(&dataset);
    for row in Rows::open(&dataset).map_err(at)? {
        let (index, row) = row.map_err(at)?;
        seen.note(&row_id(index, &row));
        group.row_case(index, row).map_err(at)?;
        group.rows += 1;
    }
    if !seen.maybe.is_empty() {
        let mut first_row: HashMap<String, usize> = HashMap::new();
        let mut duplicates = Vec::new();
        for row in Rows::open(&dataset).map_err(at)? {
            let (index, row) = row.map_err(at)?;
            let id = row_id(index, &row);
            if !seen.maybe.contains(&id) {
                continue;
            }
            match first_row.get(&id) {
                Some(first) => duplicates.push(format!(
                    "rows {first} and {} of `{}` have the same id `{id}`",
                    index + 1,
                    named.display()
                )),
                None => {
                    first_row.insert(id, index + 1);
                }
            }
        }
        if !duplicates.is_empty() {
            return Err(at(format!(
                "{}; give each row its own `id`",
                duplicates.join("; ")
            )));
        }
    }
    Ok(group)
}

/// The ids of a dataset seen so far, in a Bloom filter of at most a megabyte: `maybe` holds
/// every id that may repeat an earlier one (all repeats, and a few false alarms).
struct SeenIds {
    bits: Vec<u64>,
    maybe: HashSet<String>,
}

impl SeenIds {
    /// Largest filter: 2^23 bits (1 MiB), a 2% false-alarm rate at a million ids.
    const MAX_BITS: u64 = 1 << 23;

    /// A filter for the ids of the file at `path`: about two bits per byte of a small file
    /// (rows are longer than four bytes), at most [`SeenIds::MAX_BITS`].
    fn sized_for(path: &Path) -> SeenIds {
        let bytes = std::fs::metadata(path).map_or(0, |m| m.len());
        let bits = (bytes * 2)
            .next_power_of_two()
            .clamp(1 << 12, SeenIds::MAX_BITS);
        SeenIds {
            bits: vec![0; (bits / 64) as usize],
            maybe: HashSet::new(),
        }
    }

    fn note(&mut self, id: &str) {
        use std::hash::{Hash as _, Hasher as _};
        let mut hasher = std::hash::DefaultHasher::new();
        id.hash(&mut hasher);
        let hash = hasher.finish();
        let (first, step) = (hash & 0xffff_ffff, (hash >> 32) | 1);
        let size = self.bits.len() as u64 * 64;
        let mut all_set = true;
        for k in 0..4 {
            let bit = first.wrapping_add(k * step) % size;
            let (word, mask) = ((bit / 64) as usize, 1u64 << (bit % 64));
            all_set &= self.bits[word] & mask != 0;
            self.bits[word] |= mask;
        }
        if all_set {
            self.maybe.insert(id.to_owned());
        }
    }
}

fn scalars(vars: &BTreeMap<String, serde_yaml_ng::Value>) -> Result<Vec<(String, String)>, String> {
    vars.iter()
        .map(|(key, value)| {
            let text = match value {
                serde_yaml_ng::Value::String(s) => s.clone(),
                serde_yaml_ng::Value::Number(n) => n.to_string(),
                serde_yaml_ng::Value::Bool(b) => b.to_string(),
                _ => return Err(format!("`vars.{key}` must be text, a number or a boolean")),
            };
            Ok((key.clone(), text))
        })
        .collect()
}

/// The rows of a JSON-lines or CSV dataset, read one at a time, each with its index (from 0)
/// and its (column, value) pairs.
struct Rows {
    path: PathBuf,
    reader: std::io::BufReader<std::fs::File>,
    /// A CSV file's header, once read; `None` for JSON lines.
    csv: Option<Vec<String>>,
    /// Lines read, for JSON lines' error messages.
    lines: usize,
    /// Rows given.
    given: usize,
    line: String,
    ended: bool,
}

type Row = (usize, Vec<(String, String)>);

impl Rows {
    fn open(path: &Path) -> Result<Rows, String> {
        let file =
            std::fs::File::open(path).map_err(|e| format!("dataset `{}`: {e}", path.display()))?;
        let is_csv = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        Ok(Rows {
            path: path.to_owned(),
            reader: std::io::BufReader::new(file),
            csv: is_csv.then(Vec::new),
            lines: 0,
            given: 0,
            line: String::new(),
            ended: false,
        })
    }

    /// Read the next line into `self.line` (line break kept); false at the end. A
    /// byte-order mark opening the file is not part of it (spreadsheets write "CSV UTF-8"
    /// with one).
    fn read_line(&mut self) -> Result<bool, String> {
        use std::io::BufRead as _;
        self.line.clear();
        if self
            .reader
            .read_line(&mut self.line)
            .map_err(|e| e.to_string())?
            == 0
        {
            return Ok(false);
        }
        if self.lines == 0 && self.line.starts_with('\u{feff}') {
            self.line.drain(..'\u{feff}'.len_utf8());
        }
        self.lines += 1;
        Ok(true)
    }

    fn next_json(&mut self) -> Result<Option<Vec<(String, String)>>, String> {
        loop {
            if !self.read_line()? {
                return Ok(None);
            }
            let line = self.line.trim_end_matches(['\n', '\r']);
            if line.trim().is_empty() {
                continue;
            }
            let number = self.lines;
            let value: serde_json::Value =
                serde_json::from_str(line).map_err(|e| format!("line {number}: {e}"))?;
            let serde_json::Value::Object(map) = value else {
                return Err(format!("line {number}: not an object"));
            };
            return Ok(Some(
                map.into_iter()
                    .map(|(k, v)| {
                        let text = match v {
                            serde_json::Value::String(s) => s,
                            other => other.to_string(),
                        };
                        (k, text)
                    })
                    .collect(),
            ));
        }
    }

    /// The next CSV record that is not blank (RFC 4180: quoted fields with `""` escapes,
    /// commas and line breaks).
    fn next_record(&mut self) -> Result<Option<Vec<String>>, String> {
        let mut record = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        loop {
            if !self.read_line()? {
                if quoted {
                    return Err("a quoted field is never closed".into());
                }
                if !field.is_empty() || !record.is_empty() {
                    record.push(field);
                    return Ok(Some(record));
                }
                return Ok(None);
            }
            let mut chars = self.line.chars().peekable();
            while let Some(ch) = chars.next() {
                match (ch, quoted) {
                    ('"', true) if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    ('"', true) => quoted = false,
                    ('"', false) if field.is_empty() => quoted = true,
                    (',', false) => record.push(std::mem::take(&mut field)),
                    ('\r', false) => {}
                    ('\n', false) => {
                        record.push(std::mem::take(&mut field));
                        if record.iter().any(|f| !f.is_empty()) {
                            return Ok(Some(record));
                        }
                        record.clear();
                    }
                    (c, _) => field.push(c),
                }
            }
        }
    }

    fn next_csv(&mut self) -> Result<Option<Vec<(String, String)>>, String> {
        if self.csv.as_ref().is_some_and(Vec::is_empty) {
            let header = self.next_record()?.ok_or("no header row")?;
            self.csv = Some(header);
        }
        let Some(record) = self.next_record()? else {
            return Ok(None);
        };
        let header = self.csv.as_ref().expect("a CSV dataset");
        if record.len() != header.len() {
            return Err(format!(
                "row {} has {} fields, the header {}",
                self.given + 2,
                record.len(),
                header.len()
            ));
        }
        Ok(Some(header.iter().cloned().zip(record).collect()))
    }
}

impl Iterator for Rows {
    type Item = Result<Row, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.ended {
            return None;
        }
        let row = if self.csv.is_some() {
            self.next_csv()
        } else {
            self.next_json()
        };
        match row {
            Ok(Some(row)) => {
                self.given += 1;
                Some(Ok((self.given - 1, row)))
            }
            Ok(None) => {
                self.ended = true;
                None
            }
            Err(problem) => {
                self.ended = true;
                Some(Err(format!("dataset `{}`: {problem}", self.path.display())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows_of(name: &str, text: &str) -> Result<Vec<Vec<(String, String)>>, String> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        Rows::open(&path)?
            .map(|row| row.map(|(_, row)| row))
            .collect()
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_column() {
        let rows = rows_of("rows.csv", "\u{feff}id,VERSION\nr1,2.4.1\n").expect("reads");
        assert_eq!(rows[0][0], ("id".to_owned(), "r1".to_owned()));
        let rows = rows_of("rows.jsonl", "\u{feff}{\"id\": \"r1\"}\n").expect("reads");
        assert_eq!(rows[0][0], ("id".to_owned(), "r1".to_owned()));
    }

    #[test]
    fn csv_handles_quotes_commas_and_line_breaks() {
        let rows = rows_of(
            "rows.csv",
            "id,VERSION,NOTES\n1,2.4.0,\"a, b\"\n\n2,2.4.1,\"line one\nline \"\"two\"\"\"\r\n",
        )
        .expect("parses");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][2], ("NOTES".to_owned(), "a, b".to_owned()));
        assert_eq!(rows[1][2].1, "line one\nline \"two\"");
        let short = rows_of("rows.csv", "a,b\n1\n").expect_err("short row");
        assert!(
            short.contains("row 2 has 1 fields, the header 2"),
            "{short}"
        );
        let open = rows_of("rows.csv", "a\n\"open\n").expect_err("open quote");
        assert!(open.contains("never closed"), "{open}");
        let last = rows_of("rows.csv", "a,b\n1,2").expect("a last row without its line break");
        assert_eq!(last[0][1].1, "2");
    }

    #[test]
    fn json_lines_errors_name_the_physical_line() {
        let problem = rows_of("rows.jsonl", "{\"a\": 1}\n\n[1]\n").expect_err("not an object");
        assert!(problem.ends_with("line 3: not an object"), "{problem}");
    }

    #[test]
    fn the_id_filter_finds_every_repeat_and_few_false_alarms() {
        let mut seen = SeenIds {
            bits: vec![0; (SeenIds::MAX_BITS / 64) as usize],
            maybe: HashSet::new(),
        };
        for n in 0..200_000 {
            seen.note(&format!("row-{n}"));
        }
        seen.note("row-17");
        seen.note("row-199999");
        assert!(seen.maybe.contains("row-17") && seen.maybe.contains("row-199999"));
        // 4 hashes over 2^23 bits at 200,000 ids: a false alarm about once in 10^5.
        assert!(seen.maybe.len() < 100, "{} ids held", seen.maybe.len());
    }

    #[test]
    fn a_dataset_is_read_as_it_is_walked_and_a_shrunk_one_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let case_dir = dir.path().join("rows");
        std::fs::create_dir_all(&case_dir).expect("mkdir");
        std::fs::write(case_dir.join("case.yaml"), "dataset: rows.jsonl\n").expect("case");
        let rows: String = (1..=5)
            .map(|n| {
                format!(
                    "{{\"id\": \"r{n}\", \"tags\": \"{}\", \"V\": {n}}}\n",
                    if n % 2 == 0 { "even" } else { "odd" }
                )
            })
            .collect();
        std::fs::write(case_dir.join("rows.jsonl"), &rows).expect("rows");
        let mut group = load_case("agent", &case_dir).expect("loads");
        assert_eq!(group.rows, 5);
        group.selected = 2;
        let cases = Cases {
            groups: vec![group],
            filters: vec!["tag:even".into()],
            shard: None,
            len: 2,
        };
        let names: Vec<String> = cases.iter().map(|c| c.expect("reads").name).collect();
        assert_eq!(names, ["rows#r2", "rows#r4"]);
        // The walk reads the file again: a dataset cut short since is said, not run short.
        std::fs::write(
            case_dir.join("rows.jsonl"),
            rows.lines().next().expect("a row"),
        )
        .expect("shrink");
        let walked: Vec<_> = cases.iter().collect();
        assert_eq!(walked.len(), 1, "the walk stops at the problem");
        let problem = walked[0].as_ref().expect_err("changed").to_string();
        assert!(problem.contains("changed while the eval ran"), "{problem}");
    }

    #[test]
    fn a_row_may_set_its_own_response_format() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("case.yaml"),
            "dataset: rows.csv\nresponse_format: json-object\n",
        )
        .expect("case");
        std::fs::write(
            dir.path().join("rows.csv"),
            "id,response_format,V\nr1,json-schema,1\nr2,,2\n",
        )
        .expect("rows");
        let mut group = load_case("agent", dir.path()).expect("loads");
        group.selected = 2;
        let cases = Cases {
            groups: vec![group],
            filters: Vec::new(),
            shard: None,
            len: 2,
        };
        let formats: Vec<_> = cases
            .iter()
            .map(|c| c.expect("reads").response_format)
            .collect();
        assert_eq!(
            formats,
            [
                Some(crate::runner::ResponseFormat::JsonSchema),
                Some(crate::runner::ResponseFormat::JsonObject)
            ]
        );
        std::fs::write(dir.path().join("rows.csv"), "id,response_format\nr1,xml\n").expect("rows");
        let problem = load_case("agent", dir.path()).expect_err("not a format");
        assert!(problem.contains("row 1: `response_format`"), "{problem}");
    }
}
