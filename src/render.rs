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
use crate::prompt::{InputKind, Prompt, SlotStyle};

/// The tag that wraps each required-context document appended after the body.
pub const CONTEXT_TAG: &str = "context";

/// The rendered prompt.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The text sent to the model.
    pub text: String,
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
    for spec in &prompt.inputs {
        let Some(value) = inputs.text(&spec.name) else {
            continue;
        };
        let guarded = guard::guard(value, &prompt.structural_tags);
        if guarded.changed() {
            guarded_reports.push(report(&spec.name, &guarded));
        }
        if spec.kind == InputKind::Context {
            documents.push((spec.name.as_str(), guarded.text));
        } else {
            context.insert(spec.name.clone(), Value::from(guarded.text));
        }
    }
    let env = prompt.compiled.get_or_init(|| environment(prompt));
    let mut text = env
        .get_template(BODY)
        .and_then(|template| template.render(Value::from(context)))
        .map_err(|error| template_error(prompt, &error))?;
    append_documents(&mut text, &documents);
    tracing::trace!(rendered = %text, "rendered prompt");
    Ok(Rendered {
        text,
        guarded: guarded_reports,
    })
}

/// The template's name in its environment.
const BODY: &str = "body";

/// The environment holding the body compiled once: strict undefined, no auto-escaping, the
/// trailing newline kept. A template that fails to compile is left out, so `get_template`
/// reports it at render time.
fn environment(prompt: &Prompt) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_debug(true);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.add_filter("form_value", form_value);
    if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
        .keep_trailing_newline(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    if let Err(error) = env.add_template_owned(BODY, template_source(prompt)) {
        tracing::error!(agent = %prompt.name, %error, "the prompt body does not compile");
    }
    env
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

/// The body as a minijinja template: literal text in raw blocks, each slot a variable.
/// No newline is added or removed, so template lines are body lines.
fn template_source(prompt: &Prompt) -> String {
    let body = prompt.body();
    let mut template = String::with_capacity(body.len() + prompt.slots.len() * 40);
    let mut at = 0;
    for slot in &prompt.slots {
        push_literal(&mut template, &body[at..slot.range.start]);
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
    push_literal(&mut template, &body[at..]);
    template
}

/// Copy `text` so the engine outputs it unchanged. A raw block ends at the first `{%`
/// that reads `endraw`, so every `{%` is written as an expression outside the block.
fn push_literal(template: &mut String, text: &str) {
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

fn template_error(prompt: &Prompt, error: &minijinja::Error) -> RenderError {
    let body_line = error.line().unwrap_or(1);
    let line = crate::text::line_of(&prompt.source, prompt.body_offset) + body_line - 1;
    let span = line_span(&prompt.source, line);
    RenderError::Template {
        agent: prompt.name.clone(),
        line,
        message: error
            .detail()
            .map_or_else(|| error.kind().to_string(), str::to_owned),
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
        push_literal(&mut template, "{% endraw %} {{ x }} {# c #}");
        let env = Environment::new();
        assert_eq!(
            env.render_str(&template, ()).expect("renders"),
            "{% endraw %} {{ x }} {# c #}"
        );
    }
}
