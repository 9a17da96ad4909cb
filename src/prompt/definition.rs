//! [`Prompt`]: one agent file, loaded and checked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::argument_hint;
use super::dialect::{self, Dialect, Slot};
use super::error::PromptError;
use super::front_matter::{self, AgentSection, InputDecl};
use super::input_spec::{InputKind, InputSpec, fold_name};

/// An agent file: its settings, its inputs and the places they go in the body.
#[derive(Debug, Clone)]
pub struct Prompt {
    /// The agent's name: the file stem (`release-plan`).
    pub name: String,
    /// The agent file.
    pub path: PathBuf,
    /// The whole file, for diagnostics that point into it.
    pub source: String,
    /// Where the body starts in `source`.
    pub body_offset: usize,
    /// One line on what the agent produces.
    pub description: Option<String>,
    /// Where the prompt comes from.
    pub origin: Option<String>,
    /// The placeholder syntax of the body.
    pub dialect: Dialect,
    /// Every input, in declaration order.
    pub inputs: Vec<InputSpec>,
    /// Every placeholder occurrence, in body order.
    pub slots: Vec<Slot>,
    /// Tags whose blocks are private reasoning (`release_planning`, `think`).
    pub reasoning_tags: Vec<String>,
    /// The contract file, relative to `schemas/`.
    pub contract: String,
    /// Model parameters the agent suggests.
    pub defaults: ModelDefaults,
    /// What the prompt declares in its own front matter keys.
    pub declared: PromptDeclared,
    /// Tag names the body uses as structure; inputs may not open or close them.
    pub structural_tags: BTreeSet<String>,
    /// The body compiled as a template, once (see [`crate::render`]).
    pub(crate) compiled: std::sync::OnceLock<minijinja::Environment<'static>>,
}

/// Model parameters an agent suggests.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ModelDefaults {
    /// Model name.
    pub model: Option<String>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Reply token limit.
    pub max_tokens: Option<u32>,
    /// Nucleus sampling.
    pub top_p: Option<f32>,
    /// Sampling seed, for servers that honour it.
    pub seed: Option<i64>,
}

/// What a prompt from a collection declares about itself, kept as written.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PromptDeclared {
    /// `variables`.
    pub variables: Vec<String>,
    /// `required-context`.
    pub required_context: Vec<String>,
    /// `min-context-window`.
    pub min_context_window: Option<u64>,
    /// `argument_hint`.
    pub argument_hint: Option<String>,
    /// Every other key (title, tags, author…), as YAML.
    pub other: BTreeMap<String, serde_json::Value>,
}

impl Prompt {
    /// Read and check the agent file at `path`.
    pub fn load(path: &Path) -> Result<Prompt, PromptError> {
        let text = std::fs::read_to_string(path).map_err(|source| PromptError::Read {
            path: path.to_owned(),
            source,
        })?;
        let name = path
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_default();
        Prompt::parse(&name, path, text)
    }

    /// Check an agent file's text; `path` is used in messages only.
    pub fn parse(name: &str, path: &Path, text: String) -> Result<Prompt, PromptError> {
        let split = front_matter::split(path, &text)?;
        let front = front_matter::parse(path, &text, &split)?;
        let body_offset = split.body_offset;
        let body = &text[body_offset..];
        let declaration = |message: String, hint: Option<String>| PromptError::Declaration {
            agent: name.to_owned(),
            message,
            hint,
        };
        let Some(section) = front.agent else {
            return Err(declaration(
                "the front matter has no `agent:` block".into(),
                Some("add `agent:` with at least `dialect:` and `contract:`".into()),
            ));
        };
        let declared = PromptDeclared {
            variables: front.variables.unwrap_or_default(),
            required_context: front.required_context.unwrap_or_default(),
            min_context_window: front.min_context_window,
            argument_hint: front.argument_hint,
            other: front
                .other
                .into_iter()
                .filter_map(|(key, value)| Some((key, serde_json::to_value(value).ok()?)))
                .collect(),
        };
        let inputs = merge_inputs(&declared, &section)
            .and_then(|inputs| check_inputs(section.dialect, inputs))
            .map_err(|message| declaration(message, None))?;
        let slots =
            dialect::find_slots(section.dialect, body, &inputs).map_err(|(index, hint)| {
                PromptError::UnboundInput {
                    agent: name.to_owned(),
                    input: inputs[index].name.clone(),
                    hint,
                }
            })?;
        let mut structural_tags = dialect::tag_names(body);
        structural_tags.extend(
            section
                .reasoning
                .tags
                .iter()
                .map(|t| t.to_ascii_lowercase()),
        );
        if inputs.iter().any(|spec| spec.kind == InputKind::Context) {
            structural_tags.insert(crate::render::CONTEXT_TAG.to_owned());
        }
        let AgentSection {
            description,
            source: origin,
            dialect,
            reasoning,
            contract,
            defaults,
            ..
        } = section;
        Ok(Prompt {
            name: name.to_owned(),
            path: path.to_owned(),
            body_offset,
            description,
            origin,
            dialect,
            inputs,
            slots,
            reasoning_tags: reasoning.tags,
            contract,
            defaults: ModelDefaults {
                model: defaults.model,
                temperature: defaults.temperature,
                max_tokens: defaults.max_tokens,
                top_p: defaults.top_p,
                seed: defaults.seed,
            },
            declared,
            structural_tags,
            source: text,
            compiled: std::sync::OnceLock::new(),
        })
    }

    /// A prompt with no body that only declares `inputs`: what a pipeline's own inputs are
    /// gathered against, so that they pass the same checks as an agent's.
    pub fn inputs_only(name: &str, path: &Path, inputs: Vec<InputSpec>) -> Prompt {
        Prompt {
            name: name.to_owned(),
            path: path.to_owned(),
            source: String::new(),
            body_offset: 0,
            description: None,
            origin: None,
            dialect: Dialect::DoubleBrace,
            inputs,
            slots: Vec::new(),
            reasoning_tags: Vec::new(),
            contract: String::new(),
            defaults: ModelDefaults::default(),
            declared: PromptDeclared::default(),
            structural_tags: BTreeSet::new(),
            compiled: std::sync::OnceLock::new(),
        }
    }

    /// The prompt body, exactly as its author wrote it.
    pub fn body(&self) -> &str {
        &self.source[self.body_offset..]
    }

    /// The 1-based line in the agent file of a byte offset in the body.
    pub fn file_line(&self, body_offset: usize) -> usize {
        crate::text::line_of(&self.source, self.body_offset + body_offset)
    }

    /// The input called `name` (case and `-`/`_` folded).
    pub fn input(&self, name: &str) -> Option<&InputSpec> {
        self.inputs.iter().find(|spec| spec.answers_to(name))
    }

    /// Does the body ask for a reasoning block in the reply text (`<release_planning>`)? Such
    /// an agent cannot have its output constrained to JSON by the server.
    pub fn expects_reasoning_block(&self) -> bool {
        self.reasoning_tag_in_body().is_some()
    }

    /// The reasoning tag the body asks for, if it names one.
    pub fn reasoning_tag_in_body(&self) -> Option<&str> {
        let body = self.body().to_ascii_lowercase();
        self.reasoning_tags
            .iter()
            .find(|tag| body.contains(&format!("<{}>", tag.to_ascii_lowercase())))
            .map(String::as_str)
    }

    /// Placeholder-looking text left for the model to fill, such as `{DATE}`.
    pub fn literal_placeholders(&self) -> BTreeSet<String> {
        dialect::literal_placeholders(self.body(), &self.slots)
    }
}

/// Inputs the prompt declares itself, refined and extended by our `agent.inputs`.
fn merge_inputs(
    declared: &PromptDeclared,
    section: &AgentSection,
) -> Result<Vec<InputSpec>, String> {
    let mut inputs: Vec<InputSpec> = declared.variables.iter().map(InputSpec::new).collect();
    if let Some(hint) = &declared.argument_hint {
        for spec in
            argument_hint::parse(hint).map_err(|e| format!("cannot read `argument_hint`: {e}"))?
        {
            match inputs.iter_mut().find(|known| known.name == spec.name) {
                Some(known) => *known = spec,
                None => inputs.push(spec),
            }
        }
    }
    for decl in &section.inputs {
        match inputs.iter_mut().find(|known| known.name == decl.name) {
            Some(known) => refine(known, decl),
            None => {
                let mut spec = InputSpec::new(&decl.name);
                refine(&mut spec, decl);
                inputs.push(spec);
            }
        }
    }
    for file in &declared.required_context {
        let mut spec = InputSpec::new(file);
        spec.kind = InputKind::Context;
        spec.description = Some("required context document".into());
        inputs.push(spec);
    }
    Ok(inputs)
}

fn refine(spec: &mut InputSpec, decl: &InputDecl) {
    if decl.description.is_some() {
        spec.description.clone_from(&decl.description);
    }
    if let Some(kind) = decl.kind {
        spec.kind = kind;
    }
    if decl.default.is_some() {
        spec.default.clone_from(&decl.default);
        spec.required = false;
    }
    if let Some(required) = decl.required {
        spec.required = required;
    }
    if !decl.allowed.is_empty() {
        spec.allowed.clone_from(&decl.allowed);
    }
    if !decl.suggested.is_empty() {
        spec.suggested.clone_from(&decl.suggested);
    }
    for (field, value) in [
        (&mut spec.label, &decl.label),
        (&mut spec.section, &decl.section),
        (&mut spec.placeholder, &decl.placeholder),
    ] {
        if value.is_some() {
            field.clone_from(value);
        }
    }
    if decl.budget_bytes.is_some() {
        spec.budget_bytes = decl.budget_bytes;
    }
}

fn check_inputs(dialect: Dialect, mut inputs: Vec<InputSpec>) -> Result<Vec<InputSpec>, String> {
    let mut seen = BTreeSet::new();
    for spec in &mut inputs {
        let is_identifier = spec
            .name
            .chars()
            .next()
            .is_some_and(|ch| ch.is_ascii_alphabetic() || ch == '_')
            && spec
                .name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
        if spec.kind != InputKind::Context && !is_identifier {
            return Err(format!(
                "input name `{}` must be letters, digits and `_`, starting with a letter",
                spec.name
            ));
        }
        if !seen.insert(fold_name(&spec.name)) {
            return Err(format!("input `{}` is declared twice", spec.name));
        }
        if !spec.required && spec.default.is_none() {
            if dialect == Dialect::Form {
                // An optional form field left out stays the blank line the form has.
                spec.default = Some(String::new());
            } else {
                return Err(format!(
                    "optional input `{}` needs a `default`, so that leaving it out never renders a silent blank",
                    spec.name
                ));
            }
        }
        if let Some(default) = &spec.default
            && !spec.allowed.is_empty()
            && !spec.allowed.contains(default)
        {
            return Err(format!(
                "the default of `{}`, `{default}`, is not one of its allowed values",
                spec.name
            ));
        }
    }
    Ok(inputs)
}
