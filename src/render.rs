//! Stage 3, render: a [`Prompt`] and its [`Inputs`] become the exact text sent to the model.
//!
//! Rendering is strict: an input without a value is an error that names the input, the
//! agent file and the line of its placeholder, never a silent blank. Only declared
//! placeholders are filled; every other byte of the body is copied as written, so rendering
//! each input as its own placeholder text gives back the body byte for byte. Every value
//! passes the injection [`guard`](mod@crate::guard) on its way in.

use std::fmt::Write as _;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceSpan};
use minijinja::{Environment, UndefinedBehavior, Value};

use crate::guard::{self, Guarded};
use crate::inputs::Inputs;
use crate::model::{Message, Role};
use crate::prompt::{Dialect, InputKind, InputSpec, PartSource, Prompt, SlotStyle};

/// The tag that wraps each required-context document appended after the body.
pub const CONTEXT_TAG: &str = "context";

/// The rendered prompt.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The whole prompt as one text (`prompt.md`): a single user message's own text, or
    /// every message headed by its role.
    pub text: String,
    /// The messages sent to the model.
    pub messages: Vec<Message>,
    /// What the injection guard changed, per input.
    pub guarded: Vec<GuardReport>,
}

/// What the guard changed in one input.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GuardReport {
    /// The input.
    pub input: String,
    /// Tags escaped, as they appeared.
    pub escaped_tags: Vec<String>,
    /// Invisible characters removed.
    pub removed_invisible: usize,
}

/// A prompt that cannot be rendered.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum RenderError {
    /// Inputs with placeholders in the body have no value.
    #[error("agent `{agent}`: no value for {}", list_missing(missing))]
    #[diagnostic(
        code(agent::render::missing),
        help("give each a file in --inputs, a key in the variables file, or --var NAME=VALUE")
    )]
    Missing {
        /// The agent.
        agent: String,
        /// Each missing input with the file line of its first placeholder.
        missing: Vec<(String, usize)>,
        /// The agent file.
        #[source_code]
        src: NamedSource<String>,
        /// Each placeholder without a value.
        #[label(collection)]
        labels: Vec<LabeledSpan>,
    },

    /// The template engine failed; the line is in the agent file.
    #[error("agent `{agent}`: cannot render line {line}: {message}")]
    #[diagnostic(code(agent::render::template))]
    Template {
        /// The agent.
        agent: String,
        /// Line in the agent file.
        line: usize,
        /// What the engine said.
        message: String,
        /// The agent file.
        #[source_code]
        src: NamedSource<String>,
        /// Where.
        #[label("here")]
        span: Option<SourceSpan>,
    },
}

fn list_missing(missing: &[(String, usize)]) -> String {
    missing
        .iter()
        .map(|(name, line)| format!("`{name}` (line {line})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Render `prompt` with `inputs`.
#[tracing::instrument(skip_all, fields(agent = %prompt.name))]
pub fn render(prompt: &Prompt, inputs: &Inputs) -> Result<Rendered, RenderError> {
    check_complete(prompt, inputs)?;
    let mut guarded_reports = Vec::new();
    let mut context = std::collections::BTreeMap::new();
    let mut documents = Vec::new();
    let mut apart = Vec::new();
    for (index, spec) in prompt.inputs.iter().enumerate() {
        let Some(value) = inputs.text(&spec.name) else {
            continue;
        };
        let guarded = guard::guard(value, &prompt.structural_tags);
        if guarded.changed() {
            guarded_reports.push(report(&spec.name, &guarded));
        }
        if spec.kind == InputKind::Context {
            documents.push((spec.name.as_str(), guarded.text));
        } else if prompt.apart.contains(&index) {
            apart.push((spec.name.as_str(), guarded.text));
        } else {
            context.insert(
                spec.name.clone(),
                template_value(prompt, spec, guarded.text),
            );
        }
    }
    let compiled = prompt.compiled.get_or_init(|| Compiled::new(prompt));
    let mut messages = Vec::with_capacity(prompt.messages.len());
    for (index, part) in prompt.messages.iter().enumerate() {
        let content = match &part.source {
            PartSource::Body(_) => compiled.render(prompt, index, &context)?,
            PartSource::Inputs => inputs_message(&apart),
        };
        messages.push(Message {
            role: part.role,
            content,
        });
    }
    if let Some(last) = messages.iter_mut().rev().find(|m| m.role == Role::User) {
        append_documents(&mut last.content, &documents);
    } else if !documents.is_empty() {
        let mut content = String::new();
        append_documents(&mut content, &documents);
        messages.push(Message::user(content));
    }
    let text = transcript(&messages);
    tracing::trace!(rendered = %text, "rendered prompt");
    Ok(Rendered {
        text,
        messages,
        guarded: guarded_reports,
    })
}

/// The messages as one text, for `prompt.md` and `agent render`: a single user message is
/// its own text; several are each headed by their role.
pub fn transcript(messages: &[Message]) -> String {
    if let [only] = messages
        && only.role == Role::User
    {
        return only.content.clone();
    }
    let mut text = String::new();
    for message in messages {
        let role = match message.role {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        if !text.is_empty() {
            text.push_str(if text.ends_with('\n') { "\n" } else { "\n\n" });
        }
        let _ = writeln!(text, "<!-- {role} -->");
        text.push_str(&message.content);
    }
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// The inputs a prompt sends apart from its body (a fabric pattern's input): a single one
/// as it is; several each in a tag of its name, in declaration order.
fn inputs_message(apart: &[(&str, String)]) -> String {
    if let [(_, only)] = apart {
        return only.clone();
    }
    let mut text = String::new();
    for (name, value) in apart {
        let _ = write!(text, "<{name}>\n{value}");
        if !value.ends_with('\n') {
            text.push('\n');
        }
        let _ = writeln!(text, "</{name}>");
    }
    text
}

/// A value as a template sees it: text, or, for a template language, the structure a JSON
/// object or list stands for (`{% for item in documentation %}`).
fn template_value(prompt: &Prompt, spec: &InputSpec, text: String) -> Value {
    if prompt.dialect.is_template_language() {
        let looks_structured = spec.structured || text.trim_start().starts_with(['{', '[']);
        if looks_structured
            && let Ok(parsed) = serde_json::from_str::<serde_json::Value>(&text)
            && (parsed.is_object() || parsed.is_array())
        {
            return Value::from(minijinja::value::Serde(parsed));
        }
    }
    Value::from(text)
}

/// The body's message parts compiled once, by the engine of the prompt's dialect.
#[derive(Clone)]
pub(crate) enum Compiled {
    /// minijinja: slots made variables in literal text, or a Jinja template as written.
    Jinja(Box<Environment<'static>>),
    /// A Handlebars template as written.
    Handlebars(Box<handlebars::Handlebars<'static>>),
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Compiled::Jinja(_) => "Compiled::Jinja",
            Compiled::Handlebars(_) => "Compiled::Handlebars",
        })
    }
}

fn part_name(index: usize) -> String {
    format!("part-{index}")
}

impl Compiled {
    /// Compile every body part of `prompt`. A part that fails to compile is left out, so
    /// rendering it reports the error with its line.
    fn new(prompt: &Prompt) -> Compiled {
        if prompt.dialect == Dialect::Handlebars {
            let mut registry = handlebars::Handlebars::new();
            registry.set_strict_mode(true);
            registry.register_escape_fn(handlebars::no_escape);
            for (index, part) in prompt.messages.iter().enumerate() {
                if let PartSource::Body(range) = &part.source
                    && let Err(error) = registry
                        .register_template_string(&part_name(index), &prompt.body()[range.clone()])
                {
                    tracing::error!(agent = %prompt.name, %error, "the prompt body does not compile");
                }
            }
            return Compiled::Handlebars(Box::new(registry));
        }
        let mut env = Environment::new();
        env.set_undefined_behavior(if prompt.dialect == Dialect::Jinja {
            // `{% if x %}` may test an optional input that was not given; `{{ x }}` may not.
            UndefinedBehavior::SemiStrict
        } else {
            UndefinedBehavior::Strict
        });
        env.set_debug(true);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.add_filter("form_value", form_value);
        if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .build()
        {
            env.set_syntax(syntax);
        }
        for (index, part) in prompt.messages.iter().enumerate() {
            if let PartSource::Body(range) = &part.source {
                let source = if prompt.dialect == Dialect::Jinja {
                    prompt.body()[range.clone()].to_owned()
                } else {
                    template_source(prompt, range.clone())
                };
                if let Err(error) = env.add_template_owned(part_name(index), source) {
                    tracing::error!(agent = %prompt.name, %error, "the prompt body does not compile");
                }
            }
        }
        Compiled::Jinja(Box::new(env))
    }

    fn render(
        &self,
        prompt: &Prompt,
        index: usize,
        context: &std::collections::BTreeMap<String, Value>,
    ) -> Result<String, RenderError> {
        let PartSource::Body(range) = &prompt.messages[index].source else {
            return Ok(String::new());
        };
        let first_line = prompt.file_line(range.start);
        match self {
            Compiled::Jinja(env) => env
                .get_template(&part_name(index))
                .and_then(|template| template.render(Value::from(context.clone())))
                .map_err(|error| {
                    template_error(prompt, first_line, error.line(), &error_detail(&error))
                }),
            Compiled::Handlebars(registry) => {
                let data: serde_json::Map<String, serde_json::Value> = context
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or_default()))
                    .collect();
                registry.render(&part_name(index), &data).map_err(|error| {
                    template_error(prompt, first_line, error.line_no, &error.to_string())
                })
            }
        }
    }
}

fn error_detail(error: &minijinja::Error) -> String {
    error
        .detail()
        .map_or_else(|| error.kind().to_string(), str::to_owned)
}

impl std::fmt::Display for GuardReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "input `{}`:", self.input)?;
        if !self.escaped_tags.is_empty() {
            let tags: Vec<String> = self
                .escaped_tags
                .iter()
                .map(|t| format!("`{}`", crate::text::quote(t, 40)))
                .collect();
            write!(
                f,
                " escaped {} prompt tag(s) {}",
                tags.len(),
                tags.join(", ")
            )?;
        }
        if self.removed_invisible > 0 {
            if !self.escaped_tags.is_empty() {
                f.write_str(",")?;
            }
            write!(
                f,
                " removed {} invisible character(s)",
                self.removed_invisible
            )?;
        }
        Ok(())
    }
}

fn report(input: &str, guarded: &Guarded) -> GuardReport {
    GuardReport {
        input: input.to_owned(),
        escaped_tags: guarded.escaped_tags.clone(),
        removed_invisible: guarded.removed_invisible,
    }
}

/// Every input with a placeholder, and every required context document, has a value.
fn check_complete(prompt: &Prompt, inputs: &Inputs) -> Result<(), RenderError> {
    let mut missing = Vec::new();
    let mut labels = Vec::new();
    for (index, spec) in prompt.inputs.iter().enumerate() {
        if inputs.text(&spec.name).is_some() {
            continue;
        }
        // Context documents are appended only when given; gathering enforces `required-context`.
        let slots: Vec<_> = prompt
            .slots
            .iter()
            .filter(|slot| slot.input == index)
            .collect();
        let Some(first) = slots.first() else { continue };
        missing.push((spec.name.clone(), prompt.file_line(first.range.start)));
        for slot in slots {
            let start = prompt.body_offset + slot.range.start;
            labels.push(LabeledSpan::at(
                start..start + slot.range.len().max(1),
                format!("`{}` has no value", spec.name),
            ));
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(RenderError::Missing {
        agent: prompt.name.clone(),
        missing,
        src: NamedSource::new(prompt.path.display().to_string(), prompt.source.clone()),
        labels,
    })
}

/// One part of the body as a minijinja template: literal text in raw blocks, each slot a
/// variable. No newline is added or removed, so template lines are body lines.
fn template_source(prompt: &Prompt, part: std::ops::Range<usize>) -> String {
    let body = prompt.body();
    let python = prompt.dialect == Dialect::PythonFormat;
    let mut template = String::with_capacity(part.len() + prompt.slots.len() * 40);
    let mut at = part.start;
    for slot in prompt
        .slots
        .iter()
        .filter(|slot| part.start <= slot.range.start && slot.range.end <= part.end)
    {
        push_literal(&mut template, &body[at..slot.range.start], python);
        let name = &prompt.inputs[slot.input].name;
        match slot.style {
            SlotStyle::Plain => {
                let _ = write!(template, "{{{{ {name} }}}}");
            }
            SlotStyle::FormValue => {
                let _ = write!(template, "{{{{ {name}|form_value }}}}");
            }
        }
        at = slot.range.end;
    }
    push_literal(&mut template, &body[at..part.end], python);
    template
}

/// Copy `text` so the engine outputs it unchanged (in a Python format string, with `{{` and
/// `}}` read as the escaped braces they are). A raw block ends at the first `{%` that reads
/// `endraw`, so every `{%` is written as an expression outside the block.
fn push_literal(template: &mut String, text: &str, python_format: bool) {
    let unescaped;
    let text = if python_format {
        unescaped = text.replace("{{", "{").replace("}}", "}");
        unescaped.as_str()
    } else {
        text
    };
    for (index, piece) in text.split("{%").enumerate() {
        if index > 0 {
            template.push_str("{{ \"{%\" }}");
        }
        if !piece.is_empty() {
            template.push_str("{% raw %}");
            template.push_str(piece);
            template.push_str("{% endraw %}");
        }
    }
}

/// A form field's value: after one space, continuation lines indented under the item.
fn form_value(value: String) -> String {
    if value.is_empty() {
        return value;
    }
    let mut out = String::with_capacity(value.len() + 8);
    for (index, line) in value.lines().enumerate() {
        if index == 0 {
            out.push(' ');
        } else {
            out.push_str("\n  ");
        }
        out.push_str(line);
    }
    out
}

fn append_documents(text: &mut String, documents: &[(&str, String)]) {
    for (name, content) in documents {
        if !text.ends_with('\n') {
            text.push('\n');
        }
        let _ = write!(text, "\n<{CONTEXT_TAG} file=\"{name}\">\n{content}");
        if !content.ends_with('\n') {
            text.push('\n');
        }
        let _ = writeln!(text, "</{CONTEXT_TAG}>");
    }
}

/// A template error at `line` of the part starting at the file's `first_line`.
fn template_error(
    prompt: &Prompt,
    first_line: usize,
    line: Option<usize>,
    message: &str,
) -> RenderError {
    let line = first_line + line.unwrap_or(1).max(1) - 1;
    let span = line_span(&prompt.source, line);
    RenderError::Template {
        agent: prompt.name.clone(),
        line,
        message: message.to_owned(),
        src: NamedSource::new(prompt.path.display().to_string(), prompt.source.clone()),
        span,
    }
}

fn line_span(text: &str, line: usize) -> Option<SourceSpan> {
    let start: usize = text
        .split_inclusive('\n')
        .take(line - 1)
        .map(str::len)
        .sum();
    let len = text[start..].find('\n').unwrap_or(text.len() - start);
    (start <= text.len()).then(|| SourceSpan::from((start, len.max(1))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_stay_inside_their_list_item() {
        assert_eq!(form_value(String::new()), "");
        assert_eq!(form_value("2.4.0".into()), " 2.4.0");
        assert_eq!(form_value("a\nb".into()), " a\n  b");
    }

    #[test]
    fn literal_text_survives_jinja_syntax() {
        let mut template = String::new();
        push_literal(&mut template, "{% endraw %} {{ x }} {# c #}", false);
        let env = Environment::new();
        assert_eq!(
            env.render_str(&template, ()).expect("renders"),
            "{% endraw %} {{ x }} {# c #}"
        );
    }
}
