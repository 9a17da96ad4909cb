//! Bind every source of values to the agent's declared inputs, then check them all.
//!
//! Precedence, lowest first: files in the inputs directory, variables files, stdin JSON,
//! `--var` flags. Two sources at the same level binding one input is an error; a higher
//! level overriding a lower one is logged at debug level. Every source is held to the same
//! rules: no NUL byte in any value, no value given as text over the size limit of one file,
//! no pipe, socket or device read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::error::{InputProblem, InputsError};
use super::read;
use super::tree::{Omission, one_line, walk_tree};
use super::values::{InputValue, Inputs, Origin};
use super::vars_file;
use crate::prompt::{InputKind, InputSpec, Prompt};

/// Where values come from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `--inputs DIR`.
    pub dir: Option<PathBuf>,
    /// The text of a JSON object (`--inputs -` reads it from stdin).
    pub json: Option<String>,
    /// `--vars FILE`, each a variables file.
    pub vars_files: Vec<PathBuf>,
    /// `--var NAME=VALUE` and `--var NAME=@path`, in order.
    pub vars: Vec<(String, String)>,
    /// Values a program binds (a pipeline step's literals and upstream deliverables): taken
    /// as written, never read as `@path`, at the level of `--var`.
    pub values: Vec<(String, String)>,
    /// Files a program binds, read as `--var NAME=@path` reads them.
    pub files: Vec<(String, PathBuf)>,
}

/// Size limits on inputs.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest file one input may be read from.
    pub max_file_bytes: u64,
    /// A tree's content budget when the agent declares none.
    pub tree_budget_bytes: u64,
    /// The largest file a tree walk includes.
    pub tree_max_file_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: 1_000_000,
            tree_budget_bytes: 120_000,
            tree_max_file_bytes: 100_000,
        }
    }
}

/// The inputs, with what people should know about them.
#[derive(Debug, Clone)]
pub struct Gathered {
    /// The values.
    pub inputs: Inputs,
    /// Things worth a warning: unknown files, overridden values, trees cut to budget.
    pub warnings: Vec<String>,
    /// Files left out of each tree input.
    pub omitted: BTreeMap<String, Vec<Omission>>,
}

/// Gather and check the inputs of `prompt` from `sources`.
#[tracing::instrument(skip_all, fields(agent = %prompt.name))]
pub fn gather(
    prompt: &Prompt,
    sources: &Sources,
    limits: &Limits,
) -> Result<Gathered, InputsError> {
    let layer = sources
        .dir
        .as_deref()
        .map(|dir| read_dir_layer(prompt, dir, limits));
    gather_over(prompt, layer.as_ref(), sources, limits)
}

/// What an inputs directory binds for one agent, read once so that the cases sharing the
/// directory (the rows of a dataset) do not read and parse its files again.
#[derive(Clone)]
pub struct DirLayer {
    values: BTreeMap<String, Bound>,
    problems: Vec<InputProblem>,
    warnings: Vec<String>,
    omitted: BTreeMap<String, Vec<Omission>>,
    refused: BTreeSet<String>,
}

impl DirLayer {
    /// The inputs the directory binds.
    pub fn bound(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }
}

/// Read `dir` as an inputs directory of `prompt`.
pub fn read_dir_layer(prompt: &Prompt, dir: &Path, limits: &Limits) -> DirLayer {
    let mut state = State::new(prompt, limits);
    state.read_dir(dir);
    DirLayer {
        values: state.values,
        problems: state.problems,
        warnings: state.warnings,
        omitted: state.omitted,
        refused: state.refused,
    }
}

/// Gather as [`gather`] does, over an inputs directory already read (`sources.dir` is not
/// read again).
pub fn gather_over(
    prompt: &Prompt,
    layer: Option<&DirLayer>,
    sources: &Sources,
    limits: &Limits,
) -> Result<Gathered, InputsError> {
    let mut state = State::new(prompt, limits);
    if let Some(layer) = layer {
        let layer = layer.clone();
        state.values = layer.values;
        state.problems = layer.problems;
        state.warnings = layer.warnings;
        state.omitted = layer.omitted;
        state.refused = layer.refused;
    }
    for path in &sources.vars_files {
        state.read_vars_file(path, Level::VarsFile);
    }
    if let Some(json) = &sources.json {
        match vars_file::parse_json(json) {
            Ok(pairs) => {
                for (key, text) in pairs {
                    // One value is held to the limit of one input file.
                    if text.len() as u64 > limits.max_file_bytes {
                        state.problems.push(InputProblem::TooLarge {
                            path: format!("{key}` in `stdin JSON").into(),
                            size: text.len() as u64,
                            limit: limits.max_file_bytes,
                        });
                        if let Some(spec) = prompt.input(&key) {
                            state.refused.insert(spec.name.clone());
                        }
                        continue;
                    }
                    state.bind_key(&key, text, Origin::Stdin, Level::Stdin, "stdin JSON");
                }
            }
            Err(message) => state.problems.push(InputProblem::BadVariables {
                from: "stdin".into(),
                message,
            }),
        }
    }
    for (name, value) in &sources.vars {
        match value.strip_prefix('@') {
            Some(path) => state.read_flag_path(name, Path::new(path), &format!("--var {name}")),
            None => state.read_flag_text(name, value, &format!("--var {name}")),
        }
    }
    for (name, value) in &sources.values {
        state.read_flag_text(name, value, &format!("`{name}` as given"));
    }
    for (name, path) in &sources.files {
        state.read_flag_path(name, path, &format!("`{}`", path.display()));
    }
    state.finish()
}

/// How strongly a source binds; a higher level overrides a lower one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    DirFile,
    VarsFile,
    Stdin,
    Flag,
}

#[derive(Clone)]
struct Bound {
    value: InputValue,
    level: Level,
    described: String,
}

struct State<'a> {
    prompt: &'a Prompt,
    limits: &'a Limits,
    values: BTreeMap<String, Bound>,
    problems: Vec<InputProblem>,
    warnings: Vec<String>,
    omitted: BTreeMap<String, Vec<Omission>>,
    /// Inputs whose source was refused: already reported, so not reported again as missing.
    refused: BTreeSet<String>,
}

impl<'a> State<'a> {
    fn new(prompt: &'a Prompt, limits: &'a Limits) -> State<'a> {
        State {
            prompt,
            limits,
            values: BTreeMap::new(),
            problems: Vec::new(),
            warnings: Vec::new(),
            omitted: BTreeMap::new(),
            refused: BTreeSet::new(),
        }
    }

    fn read_dir(&mut self, dir: &Path) {
        if !dir.is_dir() {
            self.problems.push(InputProblem::NotADirectory {
                path: dir.to_owned(),
            });
            return;
        }
        let canonical = match std::fs::canonicalize(dir) {
            Ok(canonical) => canonical,
            Err(error) => {
                self.problems.push(InputProblem::Unreadable {
                    path: dir.to_owned(),
                    message: error.to_string(),
                });
                return;
            }
        };
        let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(error) => {
                self.problems.push(InputProblem::Unreadable {
                    path: dir.to_owned(),
                    message: error.to_string(),
                });
                return;
            }
        };
        entries.sort();
        let visible: Vec<PathBuf> = entries
            .into_iter()
            .filter(|path| !file_name(path).starts_with('.'))
            .collect();
        if visible.is_empty() {
            self.problems.push(InputProblem::EmptyDirectory {
                path: dir.to_owned(),
            });
            return;
        }
        for path in visible {
            self.read_entry(&path, &canonical);
        }
    }

    /// One entry of the inputs directory, whose canonical path is `root`.
    fn read_entry(&mut self, path: &Path, root: &Path) {
        let name = file_name(path);
        let is_vars_file = vars_file::is_vars_file(&name);
        // The name without its last extension: `notes.md` binds NOTES, `notes.old.md` does not.
        let stem = if path.is_dir() {
            name.clone()
        } else {
            name.rsplit_once('.')
                .filter(|(stem, _)| !stem.is_empty())
                .map_or(name.clone(), |(stem, _)| stem.to_owned())
        };
        if name.ends_with('~') || (name.starts_with('#') && name.ends_with('#')) {
            self.warnings.push(format!(
                "`{}` is an editor's backup file and is ignored",
                path.display()
            ));
            return;
        }
        let spec = self
            .prompt
            .inputs
            .iter()
            .find(|spec| spec.kind == InputKind::Context && spec.name.eq_ignore_ascii_case(&name))
            .or_else(|| {
                self.prompt
                    .inputs
                    .iter()
                    .find(|spec| spec.kind != InputKind::Context && spec.answers_to(&stem))
            })
            .filter(|_| !is_vars_file)
            .cloned();
        let escape = match read::link_escaping(path, root) {
            Ok(None) => None,
            Ok(Some(target)) => Some(InputProblem::LinkEscapes {
                path: path.to_owned(),
                target,
            }),
            Err(problem) => Some(problem),
        };
        if let Some(problem) = escape {
            self.problems.push(problem);
            self.refused.extend(spec.map(|spec| spec.name));
            return;
        }
        // A pipe would block the read until something writes to it; a device or socket is
        // no input either. Refused here even when it binds nothing, so that no stray pipe
        // passes unnoticed; `read_text` refuses it for every other source.
        if let Ok(meta) = std::fs::metadata(path)
            && !meta.is_file()
            && !meta.is_dir()
        {
            self.problems.push(read::not_a_file(path, &meta));
            self.refused.extend(spec.map(|spec| spec.name));
            return;
        }
        if is_vars_file && path.is_file() {
            self.read_vars_file(path, Level::DirFile);
            return;
        }
        let Some(spec) = spec else {
            self.warnings.push(format!(
                "`{}` binds no input of `{}` and is ignored (inputs: {})",
                path.display(),
                self.prompt.name,
                self.known_names().join(", ")
            ));
            return;
        };
        if path.is_dir() && spec.kind != InputKind::Tree {
            self.warnings.push(format!(
                "`{}` is a directory, but `{}` takes text; ignored",
                path.display(),
                spec.name
            ));
            return;
        }
        if let Some(value) = self.read_value(&spec, path) {
            self.bind(
                &spec,
                value,
                Level::DirFile,
                format!("`{}`", path.display()),
            );
        }
    }

    /// Read a file or, for a tree input, a directory.
    fn read_value(&mut self, spec: &InputSpec, path: &Path) -> Option<InputValue> {
        if path.is_dir() && spec.kind == InputKind::Tree {
            let budget = spec.budget_bytes.unwrap_or(self.limits.tree_budget_bytes);
            return match walk_tree(path, budget, self.limits.tree_max_file_bytes) {
                Ok(tree) => {
                    // Binaries, links and secret files are always left out; a file cut for
                    // size or encoding is content the model will miss, worth a warning.
                    let notable: Vec<String> = tree
                        .omitted
                        .iter()
                        .filter(|o| o.reason.is_notable())
                        .map(|o| format!("`{}` ({})", one_line(&o.path), o.reason.describe()))
                        .collect();
                    if !notable.is_empty() {
                        let shown = notable.len().min(5);
                        let more = if notable.len() > shown {
                            format!(" and {} more", notable.len() - shown)
                        } else {
                            String::new()
                        };
                        self.warnings.push(format!(
                            "`{}`: {} file(s) of `{}` left out of the prompt (budget {}): {}{more}; the prompt lists them all",
                            spec.name,
                            notable.len(),
                            path.display(),
                            crate::text::bytes(budget),
                            notable[..shown].join(", ")
                        ));
                    }
                    for omission in &tree.omitted {
                        tracing::debug!(input = %spec.name, path = %one_line(&omission.path), reason = ?omission.reason, "left out of the tree");
                    }
                    let origin = Origin::Tree {
                        path: path.to_owned(),
                        files: tree.files,
                        omitted: tree.omitted.len(),
                    };
                    self.omitted.insert(spec.name.clone(), tree.omitted);
                    Some(InputValue {
                        text: tree.text,
                        origin,
                    })
                }
                Err(problems) => {
                    self.problems.extend(problems);
                    self.refused.insert(spec.name.clone());
                    None
                }
            };
        }
        match read::read_text(path, self.limits.max_file_bytes) {
            // A file's last line break ends the file, not the value: `staging\n` is `staging`.
            Ok(text) => Some(InputValue {
                text: text.trim_end_matches(['\n', '\r']).to_owned(),
                origin: Origin::File {
                    path: path.to_owned(),
                },
            }),
            Err(problem) => {
                self.problems.push(problem);
                self.refused.insert(spec.name.clone());
                None
            }
        }
    }

    fn read_vars_file(&mut self, path: &Path, level: Level) {
        let text = match read::read_text(path, self.limits.max_file_bytes) {
            Ok(text) => text,
            Err(problem) => {
                self.problems.push(problem);
                return;
            }
        };
        match vars_file::parse_file(path, &text) {
            Ok(pairs) => {
                let from = format!("`{}`", path.display());
                for (key, value) in pairs {
                    let origin = Origin::VarsFile {
                        path: path.to_owned(),
                    };
                    self.bind_key(&key, value, origin, level, &from);
                }
            }
            Err(message) => self.problems.push(InputProblem::BadVariables {
                from: format!("`{}`", path.display()),
                message,
            }),
        }
    }

    /// A key from a variables file or stdin: unknown keys are warned about, since one
    /// file often serves several agents.
    fn bind_key(&mut self, key: &str, text: String, origin: Origin, level: Level, from: &str) {
        let Some(spec) = self.prompt.input(key).cloned() else {
            self.warnings.push(format!(
                "{from}: `{key}` is not an input of `{}`; ignored",
                self.prompt.name
            ));
            return;
        };
        self.bind(
            &spec,
            InputValue { text, origin },
            level,
            format!("{from} key `{key}`"),
        );
    }

    /// `--var NAME=VALUE` or `--var NAME=@path`: an unknown name is an error, as a typo
    /// on the command line must not pass silently.
    fn flag_spec(&mut self, name: &str) -> Option<InputSpec> {
        let spec = self.prompt.input(name).cloned();
        if spec.is_none() {
            self.problems.push(InputProblem::UnknownVariable {
                name: name.to_owned(),
                known: self.known_names(),
            });
        }
        spec
    }

    fn read_flag_text(&mut self, name: &str, text: &str, described: &str) {
        let Some(spec) = self.flag_spec(name) else {
            return;
        };
        // Text given in place is held to the limit of the file it could have been read from.
        if text.len() as u64 > self.limits.max_file_bytes {
            self.problems.push(InputProblem::ValueTooLarge {
                from: described.to_owned(),
                size: text.len() as u64,
                limit: self.limits.max_file_bytes,
            });
            self.refused.insert(spec.name.clone());
            return;
        }
        let value = InputValue {
            text: text.to_owned(),
            origin: Origin::Flag,
        };
        self.bind(&spec, value, Level::Flag, described.to_owned());
    }

    fn read_flag_path(&mut self, name: &str, path: &Path, described: &str) {
        let Some(spec) = self.flag_spec(name) else {
            return;
        };
        if !path.exists() {
            self.problems.push(InputProblem::Unreadable {
                path: path.to_owned(),
                message: "no such file or directory".into(),
            });
            self.refused.insert(spec.name.clone());
            return;
        }
        if let Some(value) = self.read_value(&spec, path) {
            self.bind(&spec, value, Level::Flag, described.to_owned());
        }
    }

    fn bind(&mut self, spec: &InputSpec, value: InputValue, level: Level, described: String) {
        tracing::debug!(input = %spec.name, from = %described, bytes = value.text.len(), "bound");
        // A NUL cuts the text wherever it meets C, and no prompt needs one; files are refused
        // for it as they are read, values from every other source here.
        if let Some(offset) = memchr::memchr(0, value.text.as_bytes()) {
            self.problems.push(InputProblem::Nul {
                from: described,
                offset,
            });
            self.refused.insert(spec.name.clone());
            return;
        }
        match self.values.get(&spec.name) {
            Some(existing) if existing.level == level && level != Level::Flag => {
                self.problems.push(InputProblem::Ambiguous {
                    input: spec.name.clone(),
                    sources: vec![existing.described.clone(), described],
                });
                return;
            }
            Some(existing) => {
                tracing::debug!(input = %spec.name, from = %described, over = %existing.described, "value overridden");
            }
            None => {}
        }
        self.values.insert(
            spec.name.clone(),
            Bound {
                value,
                level,
                described,
            },
        );
    }

    fn known_names(&self) -> Vec<String> {
        self.prompt
            .inputs
            .iter()
            .map(|spec| spec.name.clone())
            .collect()
    }

    fn finish(mut self) -> Result<Gathered, InputsError> {
        let mut inputs = Inputs::new();
        for spec in &self.prompt.inputs {
            match self.values.remove(&spec.name) {
                Some(bound) if !spec.required && bound.value.text.trim().is_empty() => {
                    // An empty cell or `--var FLAG=` means "not given", never a silent blank.
                    tracing::debug!(input = %spec.name, from = %bound.described, "empty value; the default applies");
                    if let Some(default) = &spec.default {
                        inputs.insert(
                            spec.name.clone(),
                            InputValue {
                                text: default.clone(),
                                origin: Origin::Default,
                            },
                        );
                    }
                }
                Some(bound) => {
                    if spec.required && bound.value.text.trim().is_empty() {
                        self.problems.push(InputProblem::Empty {
                            input: spec.name.clone(),
                            from: bound.described,
                        });
                        continue;
                    }
                    if !spec.allows(&bound.value.text) {
                        self.problems.push(InputProblem::NotAllowed {
                            input: spec.name.clone(),
                            value: bound.value.text,
                            allowed: spec.allowed.clone(),
                        });
                        continue;
                    }
                    let mut value = bound.value;
                    if !spec.allowed.is_empty() {
                        value.text = value.text.trim().to_owned();
                    }
                    inputs.insert(spec.name.clone(), value);
                }
                None if self.refused.contains(&spec.name) => {}
                None => match &spec.default {
                    Some(default) if !spec.required => inputs.insert(
                        spec.name.clone(),
                        InputValue {
                            text: default.clone(),
                            origin: Origin::Default,
                        },
                    ),
                    _ => self.problems.push(InputProblem::Missing {
                        input: spec.name.clone(),
                        expected: expected_sources(spec),
                    }),
                },
            }
        }
        if !self.problems.is_empty() {
            return Err(InputsError {
                agent: self.prompt.name.clone(),
                problems: self.problems,
            });
        }
        Ok(Gathered {
            inputs,
            warnings: self.warnings,
            omitted: self.omitted,
        })
    }
}

fn expected_sources(spec: &InputSpec) -> String {
    let file = spec.name.to_ascii_lowercase();
    match spec.kind {
        InputKind::Context => format!("a file `{}` in the inputs directory", spec.name),
        InputKind::Tree => format!(
            "a directory `{file}/` in the inputs directory, or --var {}=@DIR",
            spec.name
        ),
        InputKind::Text => format!(
            "a file `{file}.md` or `{file}.txt`, a `{}` key in vars.yaml, or --var {}=…",
            spec.name, spec.name
        ),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}
