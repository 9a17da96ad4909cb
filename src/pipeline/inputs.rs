//! A pipeline's own inputs: from `--inputs DIR` (files by name, a variables file), `--vars`,
//! stdin JSON and `--var`, with their defaults; every problem named at once.

use std::collections::BTreeMap;
use std::path::Path;

use super::check::Plan;
use super::run::PipelineError;
use crate::inputs::{Limits, Sources, read, vars_file};

/// Values bound so far, and problems met.
struct Collector<'a> {
    plan: &'a Plan,
    limits: &'a Limits,
    values: BTreeMap<String, String>,
    problems: Vec<String>,
}

fn fold(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c == '-' {
                '_'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

impl Collector<'_> {
    /// Bind `key`; an unknown key is an error from a flag, a warning from a file.
    fn bind(&mut self, key: &str, text: String, from: &str, strict: bool) {
        match self.plan.inputs.keys().find(|name| fold(name) == fold(key)) {
            Some(name) => {
                self.values.insert(name.clone(), text);
            }
            None if strict => self.problems.push(format!(
                "{from}: the pipeline has no input `{key}`; its inputs are {}",
                self.plan
                    .inputs
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            None => tracing::warn!("{from}: `{key}` is not an input of the pipeline; ignored"),
        }
    }

    fn read_text(&mut self, path: &Path) -> Option<String> {
        match read::read_text(path, self.limits.max_file_bytes) {
            Ok(text) => Some(text.trim_end_matches(['\n', '\r']).to_owned()),
            Err(problem) => {
                self.problems.push(problem.to_string());
                None
            }
        }
    }

    fn read_vars(&mut self, path: &Path) {
        let Some(text) = self.read_text(path) else {
            return;
        };
        match vars_file::parse_file(path, &text) {
            Ok(pairs) => {
                for (key, value) in pairs {
                    self.bind(&key, value, &format!("`{}`", path.display()), false);
                }
            }
            Err(message) => self
                .problems
                .push(format!("`{}`: {message}", path.display())),
        }
    }

    fn read_dir(&mut self, dir: &Path) {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(error) => {
                self.problems
                    .push(format!("cannot read `{}`: {error}", dir.display()));
                return;
            }
        };
        let mut paths: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.starts_with('.') || !path.is_file() {
                continue;
            }
            if vars_file::is_vars_file(&name) {
                self.read_vars(&path);
                continue;
            }
            let stem = name
                .split_once('.')
                .map_or(name.clone(), |(stem, _)| stem.to_owned());
            if let Some(text) = self.read_text(&path) {
                self.bind(&stem, text, &format!("`{}`", path.display()), false);
            }
        }
    }
}

/// The value of every input of `plan`, from `sources`.
pub fn read_pipeline_inputs(
    plan: &Plan,
    sources: &Sources,
    limits: &Limits,
) -> Result<BTreeMap<String, String>, PipelineError> {
    let mut collector = Collector {
        plan,
        limits,
        values: BTreeMap::new(),
        problems: Vec::new(),
    };
    if let Some(dir) = &sources.dir {
        collector.read_dir(dir);
    }
    for path in &sources.vars_files {
        collector.read_vars(path);
    }
    if let Some(json) = &sources.json {
        match vars_file::parse_json(json) {
            Ok(pairs) => {
                for (key, value) in pairs {
                    collector.bind(&key, value, "stdin JSON", false);
                }
            }
            Err(message) => collector.problems.push(format!("stdin: {message}")),
        }
    }
    for (key, value) in &sources.vars {
        let text = match value.strip_prefix('@') {
            Some(path) => match collector.read_text(Path::new(path)) {
                Some(text) => text,
                None => continue,
            },
            None => value.clone(),
        };
        collector.bind(key, text, &format!("--var {key}"), true);
    }
    for (name, input) in &plan.inputs {
        if collector.values.contains_key(name) {
            continue;
        }
        match &input.default {
            Some(default) => {
                collector.values.insert(name.clone(), default.clone());
            }
            None => collector
                .problems
                .push(format!("missing pipeline input `{name}` (give --var {name}=… or a file `{name}.md` in --inputs)")),
        }
    }
    if collector.problems.is_empty() {
        Ok(collector.values)
    } else {
        Err(PipelineError::Inputs {
            problems: collector.problems,
        })
    }
}
