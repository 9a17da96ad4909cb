//! `agent show`: what an agent takes and what it must deliver.

use std::fmt::Write as _;
use std::io::Write as _;

use super::args::ShowArgs;
use crate::error::Error;
use crate::exit::Status;
use crate::project::{Agent, Project};
use crate::prompt::{InputKind, InputSpec};

pub(crate) fn run(project: &Project, args: &ShowArgs) -> Result<Status, Error> {
    let agent = project.load(&args.agent)?;
    let text = if args.json {
        let prompt = &agent.prompt;
        let value = serde_json::json!({
            "name": prompt.name,
            "path": prompt.path,
            "description": prompt.description,
            "origin": prompt.origin,
            "dialect": prompt.dialect,
            "inputs": prompt.inputs,
            "reasoning_tags": prompt.reasoning_tags,
            "contract": {
                "path": agent.contract.path,
                "summary": agent.contract.summary(),
            },
            "defaults": prompt.defaults,
            "declared": prompt.declared,
            "literal_placeholders": prompt.literal_placeholders(),
        });
        serde_json::to_string_pretty(&value).unwrap_or_default() + "\n"
    } else {
        describe(&agent)
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Ok(Status::Ok)
}

fn describe(agent: &Agent) -> String {
    let prompt = &agent.prompt;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{}: {}",
        prompt.name,
        prompt.description.as_deref().unwrap_or("")
    );
    let _ = writeln!(text, "  file:       {}", prompt.path.display());
    if let Some(origin) = &prompt.origin {
        let _ = writeln!(text, "  origin:     {origin}");
    }
    let _ = writeln!(text, "  dialect:    {}", prompt.dialect.describe());
    let tags: Vec<String> = prompt
        .reasoning_tags
        .iter()
        .map(|t| format!("<{t}>"))
        .collect();
    let _ = writeln!(text, "  reasoning:  {}", tags.join(", "));
    let _ = writeln!(
        text,
        "  contract:   {} ({})",
        agent.contract.path.display(),
        agent.contract.summary()
    );
    let defaults = &prompt.defaults;
    let mut parts = Vec::new();
    if let Some(model) = &defaults.model {
        parts.push(format!("model {model}"));
    }
    if let Some(t) = defaults.temperature {
        parts.push(format!("temperature {t}"));
    }
    if let Some(m) = defaults.max_tokens {
        parts.push(format!("max_tokens {m}"));
    }
    if !parts.is_empty() {
        let _ = writeln!(text, "  defaults:   {}", parts.join(", "));
    }
    if let Some(window) = prompt.declared.min_context_window {
        let _ = writeln!(
            text,
            "  needs:      a context window of at least {window} tokens"
        );
    }
    let _ = writeln!(text, "  inputs:");
    let width = prompt
        .inputs
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(0);
    for spec in &prompt.inputs {
        let _ = writeln!(text, "    {:width$}  {}", spec.name, describe_input(spec));
    }
    let literal = prompt.literal_placeholders();
    if !literal.is_empty() {
        let list: Vec<_> = literal.into_iter().collect();
        let _ = writeln!(
            text,
            "  braces kept as written (not inputs): {}",
            list.join(" ")
        );
    }
    text
}

fn describe_input(spec: &InputSpec) -> String {
    let file = spec.name.to_ascii_lowercase();
    let mut parts = vec![match spec.kind {
        InputKind::Text => format!("text: `{file}.md`, or key `{}` in vars.yaml", spec.name),
        InputKind::Tree => format!("source tree from `{file}/`"),
        InputKind::Context => format!("context document `{}`", spec.name),
    }];
    parts.push(if spec.required {
        "required".to_owned()
    } else {
        format!(
            "optional, default {:?}",
            spec.default.as_deref().unwrap_or("")
        )
    });
    if let (Some(section), Some(label)) = (&spec.section, &spec.label) {
        parts.push(format!("form field `- {label}:` in <{section}>"));
    } else if let Some(label) = &spec.label {
        parts.push(format!("labelled `{label}`"));
    }
    if !spec.allowed.is_empty() {
        parts.push(format!("one of: {}", spec.allowed.join(", ")));
    }
    if !spec.suggested.is_empty() {
        parts.push(format!("e.g. {}", spec.suggested.join(", ")));
    }
    if let Some(description) = &spec.description {
        parts.push(description.clone());
    }
    parts.join("; ")
}
