//! `agent show`: what an agent takes and what it must deliver.

use std::fmt::Write as _;

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
        describe(project, &agent)
    };
    super::output::print(text.as_bytes(), None)?;
    Ok(Status::Ok)
}

fn describe(project: &Project, agent: &Agent) -> String {
    let relative = |path: &std::path::Path| {
        path.strip_prefix(&project.root)
            .unwrap_or(path)
            .display()
            .to_string()
    };
    let prompt = &agent.prompt;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{}: {}",
        prompt.name,
        prompt.description.as_deref().unwrap_or("")
    );
    let _ = writeln!(text, "  file:       {}", relative(&prompt.path));
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
        relative(&agent.contract.path),
        agent.contract.summary()
    );
    if let Some(scaffold) = agent.contract.scaffold() {
        for line in scaffold_lines(scaffold) {
            let _ = writeln!(text, "              {line}");
        }
    }
    if let Some(tagged) = agent.contract.tagged() {
        for line in tagged_lines(tagged) {
            let _ = writeln!(text, "              {line}");
        }
    }
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

/// The scaffold's sections and which rules only warn.
fn scaffold_lines(scaffold: &crate::contract::Scaffold) -> Vec<String> {
    use crate::contract::scaffold::Strictness;
    let mut lines = Vec::new();
    for section in &scaffold.sections {
        let mut extras = Vec::new();
        if section.optional {
            extras.push("optional".to_owned());
        }
        for table in &section.tables {
            extras.push(format!("table [{}]", table.columns.join(" | ")));
        }
        for block in &section.code_blocks {
            extras.push(format!(
                "{} code block",
                block.language.as_deref().unwrap_or("a")
            ));
        }
        if section.checklist {
            extras.push("checklist".into());
        }
        if !section.subsections.is_empty() {
            let names: Vec<&str> = section
                .subsections
                .iter()
                .map(|s| s.heading.as_str())
                .collect();
            extras.push(format!("then {}", names.join(" · ")));
        }
        let extras = if extras.is_empty() {
            String::new()
        } else {
            format!(" ({})", extras.join("; "))
        };
        lines.push(format!("- {}{extras}", section.label()));
    }
    if !scaffold.required_lines.is_empty() {
        lines.push(format!(
            "closing lines: {}",
            scaffold.required_lines.join(" ")
        ));
    }
    if let Some(front_matter) = &scaffold.front_matter {
        lines.push(format!(
            "front matter{}{}",
            if front_matter.required {
                ""
            } else {
                " (optional)"
            },
            if front_matter.keys.is_empty() {
                String::new()
            } else {
                format!(": {}", front_matter.keys.join(", "))
            }
        ));
    }
    for rule in scaffold
        .lines
        .iter()
        .filter(|r| r.severity == crate::contract::Severity::Hard)
    {
        lines.push(rule.describe());
    }
    let mut soft = Vec::new();
    if let Some(range) = scaffold.soft.bullets_per_section {
        soft.push(format!("{}–{} bullets per section", range.min, range.max));
    }
    if scaffold.soft.title_case_headings {
        soft.push("Title Case headings".into());
    }
    for rule in scaffold
        .lines
        .iter()
        .filter(|r| r.severity == crate::contract::Severity::Soft)
    {
        soft.push(rule.describe());
    }
    if !scaffold.soft.unfilled_placeholders.is_empty() {
        soft.push(format!(
            "no {} left unfilled",
            scaffold.soft.unfilled_placeholders.join(" ")
        ));
    }
    for (what, strictness) in [
        ("extra sections", scaffold.extra_sections),
        ("text before the title", scaffold.preamble),
        ("text after a closing rule", scaffold.trailing_text),
    ] {
        match strictness {
            Strictness::Soft => soft.push(format!("{what} only warn")),
            Strictness::Allowed => soft.push(format!("{what} allowed")),
            Strictness::Hard => {}
        }
    }
    if !soft.is_empty() {
        lines.push(format!("warnings only: {}", soft.join("; ")));
    }
    lines
}

/// The tagged fields, each with what it takes.
fn tagged_lines(tagged: &crate::contract::TaggedContract) -> Vec<String> {
    tagged
        .fields
        .iter()
        .map(|field| format!("- <{}> {}", field.tag, field.describe()))
        .collect()
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
