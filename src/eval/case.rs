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

use std::collections::BTreeMap;
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

/// Every case of `agents` (all agents when empty), in stable order: by agent, then case
/// directory, then dataset row.
pub fn discover(project: &Project, agents: &[String]) -> Result<Vec<Case>, EvalError> {
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
    let mut cases = Vec::new();
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
        cases_in(agent, entries, &mut cases, &mut problems);
    }
    // Pipeline cases live beside the agents', under `fixtures/pipelines/`.
    if include_pipelines && let Ok(entries) = std::fs::read_dir(fixtures.join(PIPELINES)) {
        cases_in(PIPELINES, entries, &mut cases, &mut problems);
    }
    if !problems.is_empty() {
        return Err(EvalError::Cases { problems });
    }
    // Directories were read in sorted order and a dataset's rows keep their file order, so
    // the order is stable without sorting by id (which would put row 10 before row 2).
    Ok(cases)
}

/// The cases an eval runs, in stable order, and how many cases each recording file serves
/// in all (to know which recordings a `--record` refreshes whole).
pub struct Selected {
    /// The cases.
    pub cases: Vec<Case>,
    cases_per_recording: std::collections::HashMap<PathBuf, usize>,
}

impl Selected {
    /// The recordings every one of whose cases runs now (none of them in `done`): with
    /// `--record` they start empty; any other keeps the exchanges of the cases not run.
    pub fn whole_recordings(
        &self,
        done: &std::collections::HashSet<super::stream::RunKey>,
    ) -> std::collections::HashSet<PathBuf> {
        let finished: std::collections::HashSet<u64> =
            done.iter().map(|(position, _, _)| *position).collect();
        let mut running: std::collections::HashMap<&Path, usize> = std::collections::HashMap::new();
        for (position, case) in self.cases.iter().enumerate() {
            if !finished.contains(&(position as u64)) {
                *running.entry(case.recording.as_path()).or_default() += 1;
            }
        }
        running
            .into_iter()
            .filter(|(path, count)| self.cases_per_recording.get(*path) == Some(count))
            .map(|(path, _)| path.to_owned())
            .collect()
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
    let mut cases = discover(project, agents)?;
    let mut cases_per_recording = std::collections::HashMap::new();
    for case in &cases {
        *cases_per_recording
            .entry(case.recording.clone())
            .or_default() += 1;
    }
    if !filters.is_empty() {
        cases.retain(|case| filters.iter().any(|f| case.matches(f)));
    }
    if let Some(shard) = shard {
        cases = shard.select(cases);
    }
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

/// The folder of pipeline cases, and their "agent" in case ids.
pub(crate) const PIPELINES: &str = "pipelines";

/// The cases of the case directories in `entries`, in directory order.
fn cases_in(
    agent: &str,
    entries: std::fs::ReadDir,
    cases: &mut Vec<Case>,
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
            Ok(mut found) => cases.append(&mut found),
            Err(problem) => problems.push(problem),
        }
    }
}

fn load_case(agent: &str, dir: &Path) -> Result<Vec<Case>, String> {
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
        name: name.clone(),
        dir: dir.to_owned(),
        description: file.description.clone(),
        tags: file.tags.clone(),
        sources: Sources {
            dir: inputs_dir,
            vars: vars.clone(),
            ..Sources::default()
        },
        attempts: file.attempts.unwrap_or(3).max(1),
        response_format: file.response_format,
        expect: file.expect.clone(),
        checks,
        recording: dir.join(
            file.recording
                .clone()
                .unwrap_or_else(|| PathBuf::from("recording.json")),
        ),
        pipeline: file.pipeline.as_ref().map(|p| dir.join(p)),
    };
    let Some(dataset) = &file.dataset else {
        return Ok(vec![base]);
    };
    let rows = read_dataset(&dir.join(dataset)).map_err(at)?;
    let mut cases = Vec::with_capacity(rows.len());
    // A row's id names its case everywhere (results, resume, baselines, artifact folders):
    // two rows with one id would pass for one case run twice.
    let mut rows_by_id: std::collections::HashMap<String, usize> =
        std::collections::HashMap::with_capacity(rows.len());
    let mut duplicates = Vec::new();
    for (index, row) in rows.into_iter().enumerate() {
        let mut case = base.clone();
        let mut row_vars = Vec::new();
        let mut id = (index + 1).to_string();
        for (key, value) in row {
            match key.as_str() {
                "id" | "name" => id = value,
                "expect" => {
                    case.expect.outcome = serde_yaml_ng::from_str(&value)
                        .map_err(|e| at(format!("row {}: `expect`: {e}", index + 1)))?
                }
                "tags" => case.tags.extend(
                    value
                        .split(',')
                        .map(|t| t.trim().to_owned())
                        .filter(|t| !t.is_empty()),
                ),
                _ => row_vars.push((key, value)),
            }
        }
        if let Some(first) = rows_by_id.get(&id) {
            duplicates.push(format!(
                "rows {first} and {} of `{}` have the same id `{id}`",
                index + 1,
                dataset.display()
            ));
            continue;
        }
        rows_by_id.insert(id.clone(), index + 1);
        case.name = format!("{name}#{id}");
        case.sources.vars.extend(row_vars);
        cases.push(case);
    }
    if !duplicates.is_empty() {
        return Err(at(format!(
            "{}; give each row its own `id`",
            duplicates.join("; ")
        )));
    }
    Ok(cases)
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

/// Rows of a JSON-lines or CSV file, each a list of (column, value).
fn read_dataset(path: &Path) -> Result<Vec<Vec<(String, String)>>, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("dataset `{}`: {e}", path.display()))?;
    // Spreadsheets write "CSV UTF-8" with a byte-order mark; it is not part of the first column.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if is_csv {
        return parse_csv(text).map_err(|e| format!("dataset `{}`: {e}", path.display()));
    }
    let mut rows = Vec::new();
    for (number, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let value: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| format!("dataset `{}` line {}: {e}", path.display(), number + 1))?;
        let serde_json::Value::Object(map) = value else {
            return Err(format!(
                "dataset `{}` line {}: not an object",
                path.display(),
                number + 1
            ));
        };
        rows.push(
            map.into_iter()
                .map(|(k, v)| {
                    let text = match v {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (k, text)
                })
                .collect(),
        );
    }
    Ok(rows)
}

/// A small RFC 4180 reader: a header row, quoted fields with `""` escapes and line breaks.
fn parse_csv(text: &str) -> Result<Vec<Vec<(String, String)>>, String> {
    let mut records: Vec<Vec<String>> = Vec::new();
    let mut field = String::new();
    let mut record = Vec::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
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
                    records.push(std::mem::take(&mut record));
                } else {
                    record.clear();
                }
            }
            (c, _) => field.push(c),
        }
    }
    if quoted {
        return Err("a quoted field is never closed".into());
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    let mut records = records.into_iter();
    let header = records.next().ok_or("no header row")?;
    records
        .enumerate()
        .map(|(index, row)| {
            if row.len() != header.len() {
                return Err(format!(
                    "row {} has {} fields, the header {}",
                    index + 2,
                    row.len(),
                    header.len()
                ));
            }
            Ok(header.iter().cloned().zip(row).collect())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_column() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("rows.csv");
        std::fs::write(&path, "\u{feff}id,VERSION\nr1,2.4.1\n").expect("write");
        let rows = read_dataset(&path).expect("reads");
        assert_eq!(rows[0][0], ("id".to_owned(), "r1".to_owned()));
    }

    #[test]
    fn csv_handles_quotes_commas_and_line_breaks() {
        let rows = parse_csv(
            "id,VERSION,NOTES\n1,2.4.0,\"a, b\"\n2,2.4.1,\"line one\nline \"\"two\"\"\"\n",
        )
        .expect("parses");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][2], ("NOTES".to_owned(), "a, b".to_owned()));
        assert_eq!(rows[1][2].1, "line one\nline \"two\"");
        assert!(parse_csv("a,b\n1\n").is_err());
        assert!(parse_csv("a\n\"open\n").is_err());
    }
}
