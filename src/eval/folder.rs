//! [`EvalFolder`]: the life of an eval's folder, as [`RunFolder`](crate::artifacts::RunFolder)
//! is a run's: its lock, what it runs (`selection.json`), the results stream
//! (`results.jsonl`) and its resume.
//!
//! One process at a time holds a folder (a second is refused, naming the first's pid), a new
//! eval never writes into a folder that holds anything, and a resume continues exactly the
//! eval that was started: the same cases, repeats and mode, against the same models, endpoint
//! and sampling parameters, so results of two setups are never merged into one report.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::error::EvalError;
use super::matrix::Column;
use super::report::RunResult;
use super::stream::ResultsIndex;
use crate::artifacts::{FolderError, FolderLock, LOCK_FILE};

/// What an eval runs, and with what: saved in its folder, so that `--resume` finishes the
/// same eval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// The agents named (none: every agent).
    pub agents: Vec<String>,
    /// `--filter` values.
    pub filter: Vec<String>,
    /// `--shard i/n`.
    pub shard: Option<String>,
    /// `--repeat`.
    pub repeat: u32,
    /// `--min-pass-rate`.
    pub min_pass_rate: f64,
    /// `replay`, `live` or `record`.
    pub mode: String,
    /// `--artifacts`: every run's folder kept.
    #[serde(default)]
    pub artifacts: bool,
    /// For live and record evals: each agent's model, endpoint and sampling parameters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, ModelSetup>,
    /// The matrix: models, profiles and prompt variants (one unnamed column when none).
    #[serde(default = "one_column")]
    pub columns: Vec<Column>,
    /// The sampling flags given (`--temperature`, `--max-tokens`, `--seed`, `--top-p`,
    /// `--context-window`): a replay's requests, and so which recorded replies answer them,
    /// depend on them.
    #[serde(default)]
    pub sampling: super::SamplingFlags,
}

fn one_column() -> Vec<Column> {
    vec![Column::default()]
}

impl Default for Selection {
    fn default() -> Self {
        Selection {
            agents: Vec::new(),
            filter: Vec::new(),
            shard: None,
            repeat: 1,
            min_pass_rate: 1.0,
            mode: "replay".into(),
            artifacts: false,
            models: BTreeMap::new(),
            columns: one_column(),
            sampling: super::SamplingFlags::default(),
        }
    }
}

/// The model side of a run: what must not change between an eval and its resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSetup {
    /// The model.
    pub model: String,
    /// The endpoint, without credentials.
    pub endpoint: String,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Reply token limit.
    pub max_tokens: Option<u32>,
    /// Sampling seed.
    pub seed: Option<i64>,
    /// Nucleus sampling.
    pub top_p: Option<f32>,
}

impl ModelSetup {
    /// The setup `settings` resolve to.
    pub fn of(settings: &crate::settings::Settings) -> Result<ModelSetup, EvalError> {
        Ok(ModelSetup {
            model: settings
                .model()
                .map_err(|e| EvalError::Usage {
                    message: e.to_string(),
                })?
                .to_owned(),
            endpoint: without_credentials(&settings.base_url.value),
            temperature: settings.temperature.as_ref().map(|t| t.value),
            max_tokens: settings.max_tokens.as_ref().map(|t| t.value),
            seed: settings.seed.as_ref().map(|t| t.value),
            top_p: settings.top_p.as_ref().map(|t| t.value),
        })
    }

    fn describe(&self) -> String {
        let mut text = format!("{} at {}", self.model, self.endpoint);
        let mut parameter = |name: &str, value: Option<String>| {
            if let Some(value) = value {
                text.push_str(&format!(", {name} {value}"));
            }
        };
        parameter("temperature", self.temperature.map(|v| v.to_string()));
        parameter("max_tokens", self.max_tokens.map(|v| v.to_string()));
        parameter("seed", self.seed.map(|v| v.to_string()));
        parameter("top_p", self.top_p.map(|v| v.to_string()));
        text
    }
}

/// `url` with any user name and password taken out: selection.json is not a secret store.
fn without_credentials(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

const SELECTION_FILE: &str = "selection.json";
const RESULTS_FILE: &str = "results.jsonl";

/// An eval's folder, locked for as long as this value lives.
#[derive(Debug)]
pub struct EvalFolder {
    dir: PathBuf,
    selection: Option<Selection>,
    resumed: bool,
    results: Mutex<Option<std::fs::File>>,
    _lock: FolderLock,
}

impl EvalFolder {
    /// A new eval folder `<parent>/<time>-eval-<random>`.
    pub fn create_in(parent: &Path, selection: &Selection) -> Result<EvalFolder, EvalError> {
        let id = format!(
            "{}-eval-{:04x}",
            crate::artifacts::compact_time(std::time::SystemTime::now()),
            fastrand::u16(..)
        );
        EvalFolder::create(&parent.join(id), selection)
    }

    /// A new eval in `dir`, which must be new or empty: an earlier eval's folder is refused
    /// (its results would be mixed with these), as is one holding anything else.
    pub fn create(dir: &Path, selection: &Selection) -> Result<EvalFolder, EvalError> {
        let io = |action, path: &Path, source| {
            EvalError::Folder(FolderError::Io {
                action,
                path: path.to_owned(),
                source,
            })
        };
        std::fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
        let lock = FolderLock::acquire(dir)?;
        let held: Vec<String> = std::fs::read_dir(dir)
            .map_err(|e| io("read", dir, e))?
            .filter_map(Result::ok)
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name != LOCK_FILE)
            .collect();
        if held
            .iter()
            .any(|name| name == SELECTION_FILE || name == RESULTS_FILE)
        {
            return Err(FolderError::Occupied {
                path: dir.to_owned(),
                what: "an eval already".into(),
                hint: format!(
                    "continue it with `--resume {}`, or give --out a new folder",
                    dir.display()
                ),
            }
            .into());
        }
        if !held.is_empty() {
            return Err(FolderError::Foreign {
                path: dir.to_owned(),
                what: format!("it holds `{}`", held.join("`, `")),
            }
            .into());
        }
        let folder = EvalFolder {
            dir: dir.to_owned(),
            selection: Some(selection.clone()),
            resumed: false,
            results: Mutex::new(None),
            _lock: lock,
        };
        let mut text = serde_json::to_vec_pretty(selection).unwrap_or_default();
        text.push(b'\n');
        crate::artifacts::write_atomic(&dir.join(SELECTION_FILE), &text, true)
            .map_err(|e| io("write", &dir.join(SELECTION_FILE), e))?;
        Ok(folder)
    }

    /// The interrupted eval in `dir`, locked, to be continued.
    pub fn resume(dir: &Path) -> Result<EvalFolder, EvalError> {
        if !dir.join(RESULTS_FILE).is_file() && !dir.join(SELECTION_FILE).is_file() {
            return Err(EvalError::Usage {
                message: format!(
                    "`{}` holds no eval to resume (no `{RESULTS_FILE}`)",
                    dir.display()
                ),
            });
        }
        let lock = FolderLock::acquire(dir)?;
        let path = dir.join(SELECTION_FILE);
        let selection = match std::fs::read_to_string(&path) {
            Ok(text) => Some(serde_json::from_str(&text).map_err(|e| EvalError::Usage {
                message: format!("`{}`: {e}", path.display()),
            })?),
            Err(_) => {
                tracing::warn!(
                    "`{}` is missing; resuming with the flags given now",
                    path.display()
                );
                None
            }
        };
        Ok(EvalFolder {
            dir: dir.to_owned(),
            selection,
            resumed: true,
            results: Mutex::new(None),
            _lock: lock,
        })
    }

    /// The folder an eval runs in: `resume`'s (locked first, then its saved selection, which
    /// the flags `given` now must agree with), `out`, or a new one under `parent`. Gives the
    /// selection to run.
    pub fn open(
        resume: Option<&Path>,
        out: Option<&Path>,
        parent: &Path,
        given: &Selection,
    ) -> Result<(EvalFolder, Selection), EvalError> {
        match (resume, out) {
            (Some(dir), _) => {
                // Locked before anything is read from it: two resumes never both run.
                let folder = EvalFolder::resume(dir)?;
                let selection = folder.continued(given)?;
                Ok((folder, selection))
            }
            (None, Some(dir)) => Ok((EvalFolder::create(dir, given)?, given.clone())),
            (None, None) => Ok((EvalFolder::create_in(parent, given)?, given.clone())),
        }
    }

    /// Settle the models a new eval runs against, or check that a resumed one runs against
    /// the ones it started with; a new eval's `selection.json` records them.
    pub fn settle_models(
        &mut self,
        models: &BTreeMap<String, ModelSetup>,
    ) -> Result<(), EvalError> {
        if self.resumed {
            return self.check_models(models);
        }
        let mut selection = self.selection.clone().unwrap_or_default();
        selection.models = models.clone();
        let path = self.dir.join(SELECTION_FILE);
        let mut text = serde_json::to_vec_pretty(&selection).unwrap_or_default();
        text.push(b'\n');
        crate::artifacts::write_atomic(&path, &text, true).map_err(|e| {
            EvalError::Folder(FolderError::Io {
                action: "write",
                path: path.clone(),
                source: e,
            })
        })?;
        self.selection = Some(selection);
        Ok(())
    }

    /// Index the runs finished so far (none in a new folder), cutting any line a kill left
    /// half written.
    pub fn index(
        &self,
        cases: &super::Cases,
        columns: &[Column],
        repeats: u32,
    ) -> Result<ResultsIndex, EvalError> {
        // Appends go through one handle; flush nothing pending by reading a fresh one.
        ResultsIndex::read(&self.results_path(), cases, columns, repeats)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// What a resumed eval runs: the saved selection, which every flag `given` now must
    /// agree with (a flag left at its default takes the saved value).
    pub fn continued(&self, given: &Selection) -> Result<Selection, EvalError> {
        let Some(saved) = &self.selection else {
            return Ok(given.clone());
        };
        let default = Selection::default();
        let mut conflicts = Vec::new();
        let mut check = |name: &str, given: String, saved: String, default: String| {
            if given != default && given != saved {
                conflicts.push(format!("{name}: started with {saved}, now {given}"));
            }
        };
        let shown = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
        check(
            "agents",
            given.agents.join(" "),
            saved.agents.join(" "),
            String::new(),
        );
        check(
            "--filter",
            given.filter.join(", "),
            saved.filter.join(", "),
            String::new(),
        );
        check(
            "--shard",
            shown(&given.shard),
            shown(&saved.shard),
            shown(&default.shard),
        );
        check(
            "--repeat",
            given.repeat.to_string(),
            saved.repeat.to_string(),
            default.repeat.to_string(),
        );
        check(
            "--min-pass-rate",
            given.min_pass_rate.to_string(),
            saved.min_pass_rate.to_string(),
            default.min_pass_rate.to_string(),
        );
        check(
            "mode",
            given.mode.clone(),
            saved.mode.clone(),
            default.mode.clone(),
        );
        check(
            "--artifacts",
            given.artifacts.to_string(),
            saved.artifacts.to_string(),
            default.artifacts.to_string(),
        );
        let labels = |columns: &[Column]| {
            columns
                .iter()
                .map(|c| c.label.clone())
                .collect::<Vec<_>>()
                .join(", ")
        };
        check(
            "the matrix (--model, --profile, --variant)",
            labels(&given.columns),
            labels(&saved.columns),
            labels(&default.columns),
        );
        check(
            "the sampling flags (--temperature, --max-tokens, --seed, --top-p, --context-window)",
            given.sampling.to_string(),
            saved.sampling.to_string(),
            default.sampling.to_string(),
        );
        refuse_conflicts(conflicts)?;
        // The matrix has the shape it started with (checked above); the models given now
        // are the ones `check_models` compares with the saved ones, so `--model b` on an eval
        // started with `a` is refused rather than silently run as `a`.
        let columns = if given.columns != default.columns {
            given.columns.clone()
        } else {
            saved.columns.clone()
        };
        Ok(Selection {
            models: BTreeMap::new(),
            columns,
            ..saved.clone()
        })
    }

    /// Refuse to resume with models, an endpoint or sampling parameters other than the ones
    /// the eval started with.
    pub fn check_models(&self, now: &BTreeMap<String, ModelSetup>) -> Result<(), EvalError> {
        let Some(saved) = &self.selection else {
            return Ok(());
        };
        let mut conflicts = Vec::new();
        for (agent, was) in &saved.models {
            match now.get(agent) {
                Some(setup) if setup == was => {}
                Some(setup) => conflicts.push(format!(
                    "{agent}: started with {}, now {}",
                    was.describe(),
                    setup.describe()
                )),
                None => {}
            }
        }
        refuse_conflicts(conflicts)
    }

    /// `results.jsonl`.
    pub fn results_path(&self) -> PathBuf {
        self.dir.join(RESULTS_FILE)
    }

    /// Append one result as one line, in one write: a killed eval keeps every line written
    /// before it died, without an fsync per result ([`EvalFolder::sync`] makes them durable).
    pub fn append(&self, result: &RunResult) -> Result<(), EvalError> {
        let mut line = serde_json::to_vec(result).unwrap_or_default();
        line.push(b'\n');
        let mut file = self.results.lock().unwrap_or_else(|e| e.into_inner());
        if file.is_none() {
            *file = Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.results_path())
                    .map_err(|e| self.results_error(e))?,
            );
        }
        match file.as_mut() {
            Some(file) => file.write_all(&line).map_err(|e| self.results_error(e)),
            None => Ok(()),
        }
    }

    /// Make every appended result durable.
    pub fn sync(&self) -> Result<(), EvalError> {
        let file = self.results.lock().unwrap_or_else(|e| e.into_inner());
        match file.as_ref() {
            Some(file) => file.sync_all().map_err(|e| self.results_error(e)),
            None => Ok(()),
        }
    }

    fn results_error(&self, error: std::io::Error) -> EvalError {
        EvalError::Folder(FolderError::Io {
            action: "write",
            path: self.results_path(),
            source: error,
        })
    }
}

fn refuse_conflicts(conflicts: Vec<String>) -> Result<(), EvalError> {
    if conflicts.is_empty() {
        return Ok(());
    }
    Err(EvalError::Resume {
        conflicts: conflicts.join("\n  "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_reach_the_selection() {
        assert_eq!(
            without_credentials("http://user:secret@127.0.0.1:8080/v1"),
            "http://127.0.0.1:8080/v1"
        );
        assert_eq!(
            without_credentials("http://127.0.0.1:8080/v1"),
            "http://127.0.0.1:8080/v1"
        );
    }
}
