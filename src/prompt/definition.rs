//! [`Prompt`]: one agent file, loaded and checked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::argument_hint;
use super::dialect::{self, Dialect, Slot};
use super::error::PromptError;
use super::foreign::{self, Origin};
use super::front_matter::{self, AgentSection, InputDecl};
use super::input_spec::{InputKind, InputSpec, fold_name};
use super::layout::{self, MessagePart, PartSource};

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
    /// The messages the body becomes, and the parts of the body each holds.
    pub messages: Vec<MessagePart>,
    /// Inputs with no placeholder, sent in a message of their own (`from: inputs`).
    pub apart: Vec<usize>,
    /// Placeholder-looking texts the author means literally (`agent.literals`).
    pub literals: Vec<String>,
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
    pub(crate) compiled: std::sync::OnceLock<crate::render::Compiled>,
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
    /// The tool whose front matter the prompt brings (dotprompt, Prompty, VS Code, Claude Code).
    pub tool: Option<Origin>,
    /// A model the prompt's own front matter names for its tool: shown, not used.
    pub suggested_model: Option<String>,
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
        let foreign_inputs =
            foreign::inputs(&front.other).map_err(|message| declaration(message, None))?;
        let foreign_defaults = foreign::defaults(&front.other);
        let foreign_description = foreign::description(&front.other);
        let declared = PromptDeclared {
            variables: front.variables.unwrap_or_default(),
            required_context: front.required_context.unwrap_or_default(),
            min_context_window: front.min_context_window,
            argument_hint: front.argument_hint,
            tool: Origin::of(&front.other),
            suggested_model: foreign::suggested_model(&front.other),
            other: front
                .other
                .into_iter()
                .filter_map(|(key, value)| Some((key, serde_json::to_value(value).ok()?)))
                .collect(),
        };
        let messages = match &section.messages {
            Some(decl) => {
                layout::parse(decl, body).map_err(|message| declaration(message, None))?
            }
            None => layout::whole(body),
        };
        let regions: Vec<std::ops::Range<usize>> = messages
            .iter()
            .filter_map(|part| match &part.source {
                PartSource::Body(range) => Some(range.clone()),
                PartSource::Inputs => None,
            })
            .collect();
        let inputs_apart = messages.iter().any(|p| p.source == PartSource::Inputs);
        let inputs = merge_inputs(&declared, foreign_inputs, &section)
            .and_then(|inputs| check_inputs(section.dialect, inputs))
            .map_err(|message| declaration(message, None))?;
        let slots = dialect::find_slots(section.dialect, body, &inputs, &regions, inputs_apart)
            .map_err(|(index, hint)| PromptError::UnboundInput {
                agent: name.to_owned(),
                input: inputs[index].name.clone(),
                hint,
            })?;
        let mut inputs = inputs;
        if section.dialect.is_template_language() && !inputs_apart {
            for (index, spec) in inputs.iter_mut().enumerate() {
                if spec.kind != InputKind::Context && !slots.iter().any(|slot| slot.input == index)
                {
                    spec.required = false;
                }
            }
        }
        let apart: Vec<usize> = (0..inputs.len())
            .filter(|&index| {
                inputs_apart
                    && inputs[index].kind != InputKind::Context
                    && !slots.iter().any(|slot| slot.input == index)
            })
            .collect();
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
            description: description.or(foreign_description),
            origin,
            dialect,
            inputs,
            slots,
            messages,
            apart,
            literals: section.literals.clone(),
            reasoning_tags: reasoning.tags,
            contract,
            // Our block first, then what the prompt's own front matter suggests.
            defaults: ModelDefaults {
                model: defaults.model,
                temperature: defaults.temperature.or(foreign_defaults.temperature),
                max_tokens: defaults.max_tokens.or(foreign_defaults.max_tokens),
                top_p: defaults.top_p.or(foreign_defaults.top_p),
                seed: defaults.seed.or(foreign_defaults.seed),
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
            messages: Vec::new(),
            apart: Vec::new(),
            literals: Vec::new(),
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

/// Inputs the prompt declares itself (its `variables`, `argument_hint`, and its tool's own
/// keys), refined and extended by our `agent.inputs`.
fn merge_inputs(
    declared: &PromptDeclared,
    foreign: Vec<InputSpec>,
    section: &AgentSection,
) -> Result<Vec<InputSpec>, String> {
    let mut inputs: Vec<InputSpec> = declared.variables.iter().map(InputSpec::new).collect();
    for spec in foreign {
        if !inputs.iter().any(|known| known.name == spec.name) {
            inputs.push(spec);
        }
    }
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
    if let Some(structured) = decl.structured {
        spec.structured = structured;
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
            } else if dialect.is_template_language() {
                // The template says what an absent value means (`{{#if x}}`, `{% if x %}`).
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
