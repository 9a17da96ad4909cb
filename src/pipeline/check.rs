//! Checking a pipeline file whole before anything runs: every problem, with its line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::file::{PipelineFile, PipelineInput, StepFile, line_of};
use super::run::PipelineError;
use crate::inputs::{Limits, read_dir_layer};
use crate::project::{Agent, Project};
use crate::prompt::InputKind;

/// A checked pipeline, ready to run.
#[derive(Debug)]
pub struct Plan {
    /// Its name.
    pub name: String,
    /// The pipeline file.
    pub path: PathBuf,
    /// Its own inputs.
    pub inputs: BTreeMap<String, PipelineInput>,
    /// The steps, in the order written.
    pub steps: Vec<PlannedStep>,
    /// The step whose deliverable is the pipeline's output.
    pub output: usize,
}

/// A checked step.
#[derive(Debug)]
pub struct PlannedStep {
    /// Its name.
    pub name: String,
    /// Its agent.
    pub agent: Arc<Agent>,
    /// An inputs directory for it.
    pub inputs_dir: Option<PathBuf>,
    /// Its bindings, by the agent's input names.
    pub bindings: Vec<(String, Binding)>,
    /// The steps it needs, as indexes.
    pub needs: Vec<usize>,
    /// Attempts, when the step sets its own.
    pub attempts: Option<u32>,
    /// `response_format`, when the step sets its own.
    pub response_format: Option<crate::runner::ResponseFormat>,
}

/// Where one input's value comes from.
#[derive(Debug, Clone)]
pub enum Binding {
    /// One source.
    One(Part),
    /// Several, joined with a blank line between them.
    Joined(Vec<Part>),
}

/// One source of a value.
#[derive(Debug, Clone)]
pub enum Part {
    /// Text as written.
    Literal(String),
    /// A pipeline input.
    Input(String),
    /// A file, or a directory for a tree input.
    File(PathBuf),
    /// An earlier step's validated deliverable, or the value at a JSON pointer in it.
    Step {
        /// The step's index.
        step: usize,
        /// A JSON pointer.
        pointer: Option<String>,
    },
}

/// Problems gathered while checking, each with its line.
struct Problems<'a> {
    path: &'a Path,
    text: &'a str,
    list: Vec<String>,
}

impl Problems<'_> {
    fn add(&mut self, at: &[&str], message: String) {
        let line = (1..=at.len())
            .rev()
            .find_map(|depth| line_of(self.text, &at[..depth]));
        self.list.push(match line {
            Some(line) => format!("{}:{line}: {message}", self.path.display()),
            None => format!("{}: {message}", self.path.display()),
        });
    }
}

/// Check the pipeline file at `path` against the agents of `project`.
pub fn check(project: &Project, path: &Path) -> Result<Plan, PipelineError> {
    let text = std::fs::read_to_string(path).map_err(|source| PipelineError::Read {
        path: path.to_owned(),
        source,
    })?;
    let file: PipelineFile =
        serde_yaml_ng::from_str(&text).map_err(|error| PipelineError::Invalid {
            path: path.to_owned(),
            problems: vec![match error.location() {
                Some(at) => format!("{}:{}: {error}", path.display(), at.line()),
                None => format!("{}: {error}", path.display()),
            }],
        })?;
    let dir = path.parent().unwrap_or(Path::new(".")).to_owned();
    let mut problems = Problems {
        path,
        text: &text,
        list: Vec::new(),
    };
    for key in file.unknown.keys() {
        problems.add(
            &[key.as_str()],
            format!(
                "unknown key `{key}`; a pipeline has name, description, inputs, output and steps"
            ),
        );
    }
    let mut names: Vec<String> = Vec::new();
    let mut raw: Vec<Option<StepFile>> = Vec::new();
    for (key, value) in &file.steps {
        let name = key.as_str().unwrap_or_default().to_owned();
        match serde_yaml_ng::from_value::<StepFile>(value.clone()) {
            Ok(step) => raw.push(Some(step)),
            Err(error) => {
                problems.add(&["steps", &name], format!("step `{name}`: {error}"));
                raw.push(None);
            }
        }
        names.push(name);
    }
    if names.is_empty() {
        problems.add(&["steps"], "the pipeline has no steps".into());
    }
    let index_of = |name: &str| names.iter().position(|n| n == name);

    let mut steps = Vec::new();
    for (index, (name, step)) in names.iter().zip(&raw).enumerate() {
        let Some(step) = step else { continue };
        // An unknown agent still has its bindings checked, so one pass names every problem.
        let agent = match project.load(&step.agent) {
            Ok(agent) => Some(Arc::new(agent)),
            Err(error) => {
                problems.add(&["steps", name, "agent"], format!("step `{name}`: {error}"));
                None
            }
        };
        let inputs_dir = step.inputs_dir.as_ref().map(|d| dir.join(d));
        let mut dir_bound: Vec<String> = Vec::new();
        if let Some(inputs_dir) = &inputs_dir {
            if inputs_dir.is_dir() {
                if let Some(agent) = &agent {
                    let layer = read_dir_layer(&agent.prompt, inputs_dir, &Limits::default());
                    dir_bound = layer.bound().map(str::to_owned).collect();
                }
            } else {
                problems.add(
                    &["steps", name, "inputs_dir"],
                    format!("step `{name}`: no directory `{}`", inputs_dir.display()),
                );
            }
        }
        let mut bindings = Vec::new();
        let mut needs = Vec::new();
        // Inputs the step binds, well or badly: a bad binding is reported once, not also as missing.
        let mut attempted: Vec<String> = Vec::new();
        for (key, value) in &step.inputs {
            let input = key.as_str().unwrap_or_default();
            let at = ["steps", name.as_str(), "inputs", input];
            let spec = agent.as_ref().and_then(|agent| agent.prompt.input(input));
            if let Some(spec) = spec {
                attempted.push(spec.name.clone());
            }
            if let (Some(agent), None) = (&agent, spec) {
                let known: Vec<&str> = agent
                    .prompt
                    .inputs
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect();
                problems.add(
                    &at,
                    format!(
                        "step `{name}`: `{}` has no input `{input}`; its inputs are {}",
                        step.agent,
                        known.join(", ")
                    ),
                );
                continue;
            }
            let binding = match parse_binding(value) {
                Ok(binding) => binding,
                Err(message) => {
                    problems.add(&at, format!("step `{name}`, input `{input}`: {message}"));
                    continue;
                }
            };
            let parts: Vec<&RawPart> = match &binding {
                RawBinding::One(part) => vec![part],
                RawBinding::Joined(parts) => parts.iter().collect(),
            };
            let joined = matches!(binding, RawBinding::Joined(_));
            let mut resolved = Vec::new();
            for part in parts {
                match part {
                    RawPart::Literal(text) => resolved.push(Part::Literal(text.clone())),
                    RawPart::Input(pipeline_input) => {
                        if !file.inputs.contains_key(pipeline_input) {
                            problems.add(&at, format!("step `{name}`, input `{input}`: the pipeline has no input `{pipeline_input}`"));
                        }
                        resolved.push(Part::Input(pipeline_input.clone()));
                    }
                    RawPart::File(relative) => {
                        let path = dir.join(relative);
                        if !path.exists() {
                            problems.add(
                                &at,
                                format!(
                                    "step `{name}`, input `{input}`: no file `{}`",
                                    path.display()
                                ),
                            );
                        } else if path.is_dir()
                            && (joined || spec.is_some_and(|s| s.kind != InputKind::Tree))
                        {
                            problems.add(&at, format!("step `{name}`, input `{input}`: `{}` is a directory; only a tree input takes one, on its own", path.display()));
                        }
                        resolved.push(Part::File(path));
                    }
                    RawPart::Step {
                        step: upstream,
                        pointer,
                    } => {
                        let Some(upstream_index) = index_of(upstream) else {
                            problems.add(&at, format!("step `{name}`, input `{input}`: no step `{upstream}`; the steps are {}", names.join(", ")));
                            continue;
                        };
                        if upstream_index == index {
                            problems.add(&at, format!("step `{name}` takes its own deliverable"));
                            continue;
                        }
                        if let Some(pointer) = pointer {
                            check_pointer(
                                &mut problems,
                                &at,
                                name,
                                input,
                                upstream,
                                pointer,
                                raw[upstream_index].as_ref(),
                                project,
                            );
                        }
                        needs.push(upstream_index);
                        resolved.push(Part::Step {
                            step: upstream_index,
                            pointer: pointer.clone(),
                        });
                    }
                }
            }
            let Some(spec) = spec else { continue };
            if let (false, Some(Part::Literal(text))) = (joined, resolved.last())
                && !spec.allows(text)
            {
                problems.add(
                    &at,
                    format!(
                        "step `{name}`, input `{input}`: `{text}` is not allowed; allowed: {}",
                        spec.allowed.join(", ")
                    ),
                );
            }
            let binding = if joined {
                Binding::Joined(resolved)
            } else {
                match resolved.pop() {
                    Some(part) => Binding::One(part),
                    None => continue,
                }
            };
            bindings.push((spec.name.clone(), binding));
        }
        let Some(agent) = agent else { continue };
        let unbound: Vec<String> = agent
            .prompt
            .inputs
            .iter()
            .filter(|spec| spec.required)
            .filter(|spec| !attempted.contains(&spec.name) && !dir_bound.contains(&spec.name))
            .map(|spec| format!("`{}`", spec.name))
            .collect();
        if !unbound.is_empty() {
            problems.add(
                &["steps", name],
                format!(
                    "step `{name}`: `{}` needs {}, which nothing binds",
                    step.agent,
                    unbound.join(", ")
                ),
            );
        }
        needs.sort_unstable();
        needs.dedup();
        steps.push(PlannedStep {
            name: name.clone(),
            agent,
            inputs_dir,
            bindings,
            needs,
            attempts: step.attempts,
            response_format: step.response_format,
        });
    }
    if let Some(cycle) = find_cycle(&names, &raw, &index_of) {
        problems.add(
            &["steps", &cycle[0]],
            format!("steps form a cycle: {}", cycle.join(" → ")),
        );
    }
    let output = match &file.output {
        Some(output) => index_of(output).unwrap_or_else(|| {
            problems.add(
                &["output"],
                format!("no step `{output}` to take the output from"),
            );
            0
        }),
        None => names.len().saturating_sub(1),
    };
    if !problems.list.is_empty() {
        return Err(PipelineError::Invalid {
            path: path.to_owned(),
            problems: problems.list,
        });
    }
    let name = file.name.clone().unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    Ok(Plan {
        name,
        path: path.to_owned(),
        inputs: file.inputs,
        steps,
        output,
    })
}

enum RawBinding {
    One(RawPart),
    Joined(Vec<RawPart>),
}

enum RawPart {
    Literal(String),
    Input(String),
    File(String),
    Step {
        step: String,
        pointer: Option<String>,
    },
}

fn parse_binding(value: &serde_yaml_ng::Value) -> Result<RawBinding, String> {
    match value {
        serde_yaml_ng::Value::Sequence(items) => {
            if items.is_empty() {
                return Err("an empty list binds nothing".into());
            }
            Ok(RawBinding::Joined(
                items.iter().map(parse_part).collect::<Result<_, _>>()?,
            ))
        }
        other => Ok(RawBinding::One(parse_part(other)?)),
    }
}

fn parse_part(value: &serde_yaml_ng::Value) -> Result<RawPart, String> {
    use serde_yaml_ng::Value as Yaml;
    match value {
        Yaml::String(text) => Ok(RawPart::Literal(text.clone())),
        Yaml::Number(number) => Ok(RawPart::Literal(number.to_string())),
        Yaml::Bool(flag) => Ok(RawPart::Literal(flag.to_string())),
        Yaml::Mapping(map) => {
            let get = |key: &str| map.get(key).and_then(Yaml::as_str).map(str::to_owned);
            let keys: Vec<&str> = map.keys().filter_map(Yaml::as_str).collect();
            let allowed = ["file", "value", "input", "step", "pointer"];
            if let Some(unknown) = keys.iter().find(|k| !allowed.contains(k)) {
                return Err(format!(
                    "unknown key `{unknown}`; a source is one of `file`, `value`, `input`, `step` (with an optional `pointer`)"
                ));
            }
            let pointer = get("pointer");
            match (get("file"), get("value"), get("input"), get("step")) {
                (Some(file), None, None, None) if pointer.is_none() => Ok(RawPart::File(file)),
                (None, Some(text), None, None) if pointer.is_none() => Ok(RawPart::Literal(text)),
                (None, None, Some(input), None) if pointer.is_none() => Ok(RawPart::Input(input)),
                (None, None, None, Some(step)) => Ok(RawPart::Step { step, pointer }),
                _ => Err("a source is exactly one of `file`, `value`, `input` or `step` (`pointer` goes with `step`)".into()),
            }
        }
        _ => Err("a source is text, a list, or one of `file`, `value`, `input`, `step`".into()),
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "the place of a problem and what it concerns"
)]
fn check_pointer(
    problems: &mut Problems<'_>,
    at: &[&str],
    name: &str,
    input: &str,
    upstream: &str,
    pointer: &str,
    upstream_step: Option<&StepFile>,
    project: &Project,
) {
    if !pointer.starts_with('/') {
        problems.add(at, format!("step `{name}`, input `{input}`: `{pointer}` is not a JSON pointer (it starts with `/`)"));
        return;
    }
    let Some(upstream_step) = upstream_step else {
        return;
    };
    let Ok(agent) = project.load(&upstream_step.agent) else {
        return;
    };
    match agent.contract.json_schema() {
        None => problems.add(
            at,
            format!("step `{name}`, input `{input}`: `{upstream}` ({}) delivers markdown; a JSON pointer needs a JSON deliverable", upstream_step.agent),
        ),
        Some(schema) => {
            if !pointer_in_schema(schema, schema, &pointer_segments(pointer)) {
                problems.add(
                    at,
                    format!("step `{name}`, input `{input}`: `{pointer}` is not in the schema of `{}`", upstream_step.agent),
                );
            }
        }
    }
}

fn pointer_segments(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// Can a value at `segments` exist under `schema`? `$ref`s resolve against `root`; any branch
/// of `oneOf`, `anyOf` or `allOf` will do.
fn pointer_in_schema(root: &Value, schema: &Value, segments: &[String]) -> bool {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let target = reference.strip_prefix('#').and_then(|p| root.pointer(p));
        return target.is_some_and(|target| pointer_in_schema(root, target, segments));
    }
    let mut branches_decide = false;
    for combinator in ["oneOf", "anyOf", "allOf"] {
        if let Some(branches) = schema.get(combinator).and_then(Value::as_array) {
            branches_decide = true;
            if branches
                .iter()
                .any(|branch| pointer_in_schema(root, branch, segments))
            {
                return true;
            }
        }
    }
    let Some((first, rest)) = segments.split_first() else {
        return true;
    };
    if let Some(property) = schema.get("properties").and_then(|p| p.get(first.as_str())) {
        return pointer_in_schema(root, property, rest);
    }
    if let Some(patterns) = schema.get("patternProperties").and_then(Value::as_object) {
        for (pattern, property) in patterns {
            // A pattern the regex engine cannot read cannot rule the pointer out.
            if regex::Regex::new(pattern).map_or(true, |re| re.is_match(first)) {
                return pointer_in_schema(root, property, rest);
            }
        }
    }
    if first.parse::<usize>().is_ok()
        && let Some(items) = schema.get("items")
    {
        return pointer_in_schema(root, items, rest);
    }
    match schema.get("additionalProperties") {
        Some(Value::Object(_)) => pointer_in_schema(root, &schema["additionalProperties"], rest),
        Some(Value::Bool(allowed)) => *allowed,
        // An open schema allows what it does not declare, unless its branches decide or it
        // describes a value that has no members.
        _ => {
            let scalar = schema
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| matches!(t, "string" | "number" | "integer" | "boolean" | "null"));
            !branches_decide && !scalar
        }
    }
}

fn find_cycle(
    names: &[String],
    raw: &[Option<StepFile>],
    index_of: &dyn Fn(&str) -> Option<usize>,
) -> Option<Vec<String>> {
    let edges: Vec<Vec<usize>> = raw
        .iter()
        .map(|step| {
            let Some(step) = step else { return Vec::new() };
            let mut needs = Vec::new();
            for value in step.inputs.values() {
                let parts: Vec<&serde_yaml_ng::Value> = match value {
                    serde_yaml_ng::Value::Sequence(items) => items.iter().collect(),
                    other => vec![other],
                };
                for part in parts {
                    if let Some(upstream) = part.get("step").and_then(serde_yaml_ng::Value::as_str)
                        && let Some(index) = index_of(upstream)
                    {
                        needs.push(index);
                    }
                }
            }
            needs
        })
        .collect();
    // 0 unvisited, 1 on the current path, 2 done.
    let mut state = vec![0u8; names.len()];
    let mut path = Vec::new();
    fn visit(
        node: usize,
        edges: &[Vec<usize>],
        state: &mut [u8],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        state[node] = 1;
        path.push(node);
        for &next in &edges[node] {
            if state[next] == 1 {
                let start = path.iter().position(|&n| n == next).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(next);
                return Some(cycle);
            }
            if state[next] == 0
                && let Some(cycle) = visit(next, edges, state, path)
            {
                return Some(cycle);
            }
        }
        path.pop();
        state[node] = 2;
        None
    }
    (0..names.len())
        .find_map(|node| {
            if state[node] != 0 {
                return None;
            }
            visit(node, &edges, &mut state, &mut path)
        })
        .map(|cycle| cycle.into_iter().map(|i| names[i].clone()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointers_are_checked_against_the_schema() {
        let schema = json!({
            "oneOf": [{"$ref": "#/$defs/record"}, {"$ref": "#/$defs/refusal"}],
            "$defs": {
                "record": {"type": "object", "additionalProperties": false, "properties": {
                    "plan": {"type": "object", "additionalProperties": false, "properties": {
                        "stages": {"type": "array", "items": {"type": "object", "additionalProperties": false, "properties": {"name": {"type": "string"}}}},
                        "labels": {"type": "object"},
                        "owners": {"type": "object", "additionalProperties": false, "patternProperties": {"^[a-z]+$": {"type": "string"}}},
                        "limits": {"type": "object", "additionalProperties": {"type": "object", "additionalProperties": false, "properties": {"max": {}}}}
                    }}
                }},
                "refusal": {"type": "object", "additionalProperties": false, "properties": {"missing": {"type": "array"}}}
            }
        });
        let holds = |pointer: &str| pointer_in_schema(&schema, &schema, &pointer_segments(pointer));
        assert!(holds("/plan/stages/0/name"));
        assert!(holds("/missing"));
        assert!(holds(""));
        assert!(!holds("/plan/stage"), "a closed object names its members");
        assert!(!holds("/plan/stages/0/nom"));
        assert!(
            !holds("/plan/stages/0/name/first"),
            "a string has no members"
        );
        assert!(!holds("/nothing"), "no branch has it");
        assert!(
            holds("/plan/labels/team"),
            "an open object allows any member"
        );
        assert!(holds("/plan/owners/release"), "a member its pattern allows");
        assert!(!holds("/plan/owners/Release"), "a member no pattern allows");
        assert!(holds("/plan/limits/cpu/max"));
        assert!(!holds("/plan/limits/cpu/min"));
    }
}
