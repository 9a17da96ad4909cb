//! `agent import`: a prompt as found becomes an agent, without a word of its body changed.
//!
//! From a prompt file (a page of a prompt collection, a fabric pattern, a dotprompt or
//! Prompty file, a VS Code prompt file, a Claude Code command), [`draft`] writes the agent
//! file (its front matter drafted, the body byte for byte), a contract drafted from the
//! prompt's own words, and a starter eval case, and says what it found with its evidence
//! (file and line) and what a person should check. Deterministic; no model is called.

mod output;
mod pseudo_json;
mod slots;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::prompt::layout;
use crate::prompt::{Dialect, Origin, Prompt};

pub use slots::FoundInput;

/// A prompt that cannot be imported.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ImportError {
    /// The file cannot be read, or is not text.
    #[error("cannot read the prompt `{}`", path.display())]
    #[diagnostic(code(agent::import::read))]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is an agent already, or its front matter is not a map.
    #[error("`{}`: {message}", path.display())]
    #[diagnostic(code(agent::import::prompt))]
    Unusable {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// What import drafted does not load: a fault of import's, reported rather than written.
    #[error("the drafted agent does not load: {message}")]
    #[diagnostic(
        code(agent::import::draft),
        help("write the agent by hand from the report, or report this prompt as a bug")
    )]
    Draft {
        /// The loader's complaint.
        message: String,
    },
}

/// Where the message parts of the template are.
#[derive(Debug, Clone, PartialEq)]
enum Layout {
    /// The whole body, one user message.
    Whole,
    /// The fenced block under a heading (or the body's first).
    Fence(Option<String>),
    /// A system section and a user section, under headings.
    Sections { system: String, user: String },
    /// Role lines (`system:` / `user:`).
    Marked,
}

impl Layout {
    fn regions(&self, body: &str) -> Vec<Range<usize>> {
        match self {
            Layout::Whole | Layout::Marked => std::slice::from_ref(&(0..body.len())).to_vec(),
            Layout::Fence(heading) => layout::fence(body, heading.as_deref())
                .map(|r| vec![r])
                .unwrap_or_default(),
            Layout::Sections { system, user } => [system, user]
                .iter()
                .filter_map(|h| layout::section(body, h).ok())
                .collect(),
        }
    }

    /// The `messages:` value for the agent file; `inputs_apart` sends the inputs as the
    /// user message.
    fn messages(&self, inputs_apart: bool) -> Option<String> {
        let source = match self {
            Layout::Whole => "from: body".to_owned(),
            Layout::Fence(Some(heading)) => format!("fence: {}", output::yaml_string(heading)),
            Layout::Fence(None) => "fence: 1".to_owned(),
            Layout::Sections { system, user } => {
                return Some(format!(
                    "[{{ role: system, section: {} }}, {{ role: user, section: {} }}]",
                    output::yaml_string(system),
                    output::yaml_string(user)
                ));
            }
            Layout::Marked => return Some("marked".into()),
        };
        match (self, inputs_apart) {
            (_, true) => Some(format!(
                "[{{ role: system, {source} }}, {{ role: user, from: inputs }}]"
            )),
            (Layout::Whole, false) => None,
            (_, false) => Some(format!("[{{ role: user, {source} }}]")),
        }
    }

    fn describe(&self, inputs_apart: bool) -> String {
        let base = match self {
            Layout::Whole => "the whole body".to_owned(),
            Layout::Fence(Some(heading)) => format!("the fenced block under `{heading}`"),
            Layout::Fence(None) => "the fenced block the page is".to_owned(),
            Layout::Sections { system, user } => {
                format!("`{system}` as the system message, `{user}` as the user message")
            }
            Layout::Marked => "the role sections (`system:` / `user:` lines)".to_owned(),
        };
        if inputs_apart {
            format!("{base} as the system message; the input is sent as the user message")
        } else {
            base
        }
    }
}

/// A piece of evidence: what, and where in the prompt file.
#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    /// 1-based line in the prompt file.
    pub line: usize,
    /// What was found there.
    pub what: String,
}

/// Everything import drafted, not yet written.
#[derive(Debug, Clone, Serialize)]
pub struct Draft {
    /// The agent's name.
    pub name: String,
    /// The prompt file.
    pub source: PathBuf,
    /// The tool whose front matter it brings.
    pub tool: Option<Origin>,
    /// Which parts of the body are sent, as which messages.
    pub layout: String,
    /// The placeholder syntax.
    pub dialect: Dialect,
    /// Why that syntax.
    pub dialect_evidence: String,
    /// The inputs, with their placeholders.
    pub inputs: Vec<FoundInput>,
    /// Placeholder-looking text left literal (output fill-ins, links, code), with why.
    pub left_literal: Vec<Evidence>,
    /// Reasoning tags the prompt asks for, with where.
    pub reasoning: Vec<Evidence>,
    /// What the answer must be, and from where.
    pub output: String,
    /// The agent file's text.
    pub agent_text: String,
    /// The contract file's name (in `schemas/`) and text.
    pub contract: (String, String),
    /// The starter eval case: files relative to `fixtures/<name>/`.
    pub case: Vec<(String, String)>,
    /// What a person should check.
    pub checks: Vec<String>,
}

/// Split a prompt file into its own front matter (text and keys) and its body.
fn split(text: &str) -> (Option<&str>, &str, usize) {
    let opener = if text.starts_with("---\n") {
        4
    } else if text.starts_with("---\r\n") {
        5
    } else {
        return (None, text, 0);
    };
    let mut offset = opener;
    for line in text[opener..].split_inclusive('\n') {
        if line.trim_end() == "---" {
            return (
                Some(&text[opener..offset]),
                &text[offset + line.len()..],
                offset + line.len(),
            );
        }
        offset += line.len();
    }
    (None, text, 0)
}

fn tool_of(path: &Path, keys: &BTreeMap<String, serde_yaml_ng::Value>) -> Option<Origin> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if name.ends_with(".prompty") {
        Some(Origin::Prompty)
    } else if name.ends_with(".prompt") {
        Some(Origin::Dotprompt)
    } else if name.ends_with(".prompt.md") {
        Some(Origin::VscodePrompt)
    } else {
        Origin::of(keys)
    }
}

fn heading_lines(body: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut offset = 0;
    let mut fence: Option<String> = None;
    for line in body.split_inclusive('\n') {
        let trimmed = line.trim();
        if let Some(open) = &fence {
            if trimmed == open.as_str() {
                fence = None;
            }
        } else if trimmed.starts_with("```") {
            fence = Some("```".into());
        } else if trimmed.starts_with('#') {
            let level = trimmed.bytes().take_while(|&b| b == b'#').count();
            if level <= 6 && trimmed[level..].starts_with(' ') {
                found.push((offset, trimmed[level..].trim().to_owned()));
            }
        }
        offset += line.len();
    }
    found
}

fn detect_layout(body: &str, tool: Option<Origin>) -> Layout {
    let has_role_lines = body.lines().any(|line| {
        let word = line.trim().trim_end_matches(':');
        line.trim().ends_with(':')
            && matches!(word.to_ascii_lowercase().as_str(), "system" | "user")
    });
    if tool == Some(Origin::Prompty) && has_role_lines {
        return Layout::Marked;
    }
    let headings = heading_lines(body);
    let folded = |text: &str| crate::text::fold(text.trim_end_matches(':'));
    let system = headings.iter().find(|(_, h)| {
        matches!(
            folded(h).as_str(),
            "system instruction" | "system instructions" | "system prompt" | "system message"
        )
    });
    let user = headings.iter().find(|(_, h)| {
        matches!(
            folded(h).as_str(),
            "user prompt" | "user prompt template" | "user message" | "user template"
        )
    });
    if let (Some((_, system)), Some((_, user))) = (system, user) {
        return Layout::Sections {
            system: system.clone(),
            user: user.clone(),
        };
    }
    for (offset, heading) in &headings {
        let name = folded(heading);
        let prompt_like = matches!(
            name.as_str(),
            "prompt" | "prompt template" | "the prompt" | "template" | "system prompt"
        );
        if !prompt_like {
            continue;
        }
        // The fence must come first under the heading.
        let after = &body[*offset..];
        let next_content = after
            .lines()
            .skip(1)
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default();
        if next_content.trim_start().starts_with("```")
            && layout::fence(body, Some(heading)).is_ok()
        {
            return Layout::Fence(Some(heading.clone()));
        }
    }
    if body.trim_start().starts_with("```")
        && let Ok(range) = layout::fence(body, None)
    {
        // The closing fence line is the last thing on the page.
        let rest = &body[range.end..];
        let after_close = rest.split_once('\n').map_or("", |(_, tail)| tail);
        if after_close.trim().is_empty() {
            return Layout::Fence(None);
        }
    }
    Layout::Whole
}

/// Reasoning tags the prompt asks for: a tag named for thinking (`<thinking>`, `<analysis>`,
/// `<release_planning>`) or whose example text is thinking (`<S0>your chain of thoughts</S0>`),
/// that wraps no input.
fn reasoning_tags(body: &str, lines: &slots::Lines<'_>) -> Vec<Evidence> {
    const STEMS: [&str; 8] = [
        "think",
        "thought",
        "reason",
        "scratch",
        "analysis",
        "planning",
        "reflect",
        "deliberat",
    ];
    let mut found: Vec<(String, usize)> = Vec::new();
    for (at, _) in body.match_indices('<') {
        let rest = &body[at + 1..];
        let Some(close) = rest.find('>') else {
            continue;
        };
        let tag = &rest[..close];
        if tag.is_empty() || !tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            continue;
        }
        let lower = tag.to_ascii_lowercase();
        let closing = format!("</{tag}>");
        let inner = rest[close + 1..]
            .find(&closing)
            .map(|end| &rest[close + 1..close + 1 + end]);
        let wraps_input =
            inner.is_some_and(|inner| ["{", "[", "$"].iter().any(|m| inner.contains(m)));
        let named = STEMS.iter().any(|stem| lower.contains(stem));
        let described = inner.is_some_and(|inner| {
            inner.len() < 80
                && STEMS
                    .iter()
                    .any(|stem| inner.to_ascii_lowercase().contains(stem))
        });
        if (named || described)
            && !wraps_input
            && !found.iter().any(|(t, _)| t.eq_ignore_ascii_case(tag))
        {
            found.push((tag.to_owned(), at));
        }
    }
    found
        .into_iter()
        .map(|(tag, at)| Evidence {
            line: lines.of(at),
            what: format!("<{tag}>"),
        })
        .collect()
}

/// Descriptions and optional marks from the prompt's own documentation of its inputs: a
/// table whose first column names them, or `(optional)` beside a placeholder.
fn document_inputs(body: &str, inputs: &mut [FoundInput]) {
    let mut header: Option<Vec<String>> = None;
    for line in body.lines() {
        let trimmed = line.trim();
        if !trimmed.starts_with('|') {
            header = None;
            continue;
        }
        let cells: Vec<String> = trimmed
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_owned())
            .collect();
        if cells
            .iter()
            .all(|c| c.chars().all(|ch| matches!(ch, '-' | ':' | ' ')))
        {
            continue;
        }
        let Some(columns) = &header else {
            header = Some(cells.iter().map(|c| c.to_ascii_lowercase()).collect());
            continue;
        };
        let key = cells
            .first()
            .map(|c| {
                c.trim_matches(['`', '[', ']', '{', '}', '$', '*'])
                    .to_owned()
            })
            .unwrap_or_default();
        let Some(input) = inputs.iter_mut().find(|i| i.name == key) else {
            continue;
        };
        let column = |name: &str| {
            columns
                .iter()
                .position(|c| c.contains(name))
                .and_then(|i| cells.get(i))
        };
        if let Some(description) = column("description") {
            input.description = Some(description.clone());
        }
        if let Some(required) = column("required") {
            let required = required.to_ascii_lowercase();
            if required.starts_with("no") || required.contains("optional") {
                input.required = false;
            }
        }
        if input
            .description
            .as_deref()
            .is_some_and(|d| d.to_ascii_lowercase().contains("optional"))
        {
            input.required = false;
        }
    }
    for input in inputs.iter_mut() {
        for (slot, _) in &input.slots {
            if let Some(at) = body.find(slot.as_str()) {
                let line_start = body[..at].rfind('\n').map_or(0, |i| i + 1);
                let line_end = body[at..].find('\n').map_or(body.len(), |i| at + i);
                if body[line_start..line_end]
                    .to_ascii_lowercase()
                    .contains("(optional)")
                {
                    input.required = false;
                }
            }
        }
    }
}

/// Draft the agent `name` from the prompt file at `path`.
pub fn draft(path: &Path, name: &str) -> Result<Draft, ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ImportError::Read {
        path: path.to_owned(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|error| ImportError::Unusable {
        path: path.to_owned(),
        message: format!(
            "not UTF-8 text (at byte {})",
            error.utf8_error().valid_up_to()
        ),
    })?;
    let (front_text, body, body_offset) = split(&text);
    let keys: BTreeMap<String, serde_yaml_ng::Value> = match front_text {
        Some(yaml) if !yaml.trim().is_empty() => crate::prompt::front_matter::lenient_keys(yaml)
            .map_err(|error| ImportError::Unusable {
                path: path.to_owned(),
                message: format!("its front matter does not parse: {error}"),
            })?,
        _ => BTreeMap::new(),
    };
    if keys.contains_key("agent") {
        return Err(ImportError::Unusable {
            path: path.to_owned(),
            message: "it is an agent file already (its front matter has `agent:`)".into(),
        });
    }
    let lines = slots::Lines {
        file: &text,
        body_offset,
    };
    let tool = tool_of(path, &keys);
    let layout = detect_layout(body, tool);
    let regions = layout.regions(body);
    let mut checks = Vec::new();
    if let Layout::Fence(heading) = &layout
        && let Some(line) = layout::fence_hazard(body, heading.as_deref())
    {
        checks.push(format!(
            "the fenced template holds fences of its own: read as its author nested them it ends at line {}, while a strict markdown reader would end it at line {}",
            lines.of(regions.first().map_or(0, |r| r.end)),
            crate::text::line_of(&text, body_offset) + line - 1
        ));
    }
    let mut detected = slots::detect(body, &regions, &keys, tool, &lines);
    document_inputs(body, &mut detected.inputs);
    let inputs_apart = detected.inputs.is_empty() && layout != Layout::Marked;
    let given = if inputs_apart {
        given_tags(body)
    } else {
        Vec::new()
    };
    if inputs_apart {
        // "You are given a report within <synthesized_text> tags": the user message carries
        // each input in the tags the prompt names.
        if given.is_empty() {
            detected.inputs.push(FoundInput {
                name: "input".into(),
                label: None,
                section: None,
                required: true,
                description: Some("what the prompt works on, sent as the user message".into()),
                slots: Vec::new(),
            });
        }
        for tag in &given {
            detected.inputs.push(FoundInput {
                name: tag.clone(),
                label: None,
                section: None,
                required: true,
                description: Some(format!(
                    "sent in the user message within <{tag}> tags, as the prompt says"
                )),
                slots: Vec::new(),
            });
        }
    }
    let reasoning = reasoning_tags(body, &lines);
    let reasoning_names: Vec<String> = reasoning
        .iter()
        .map(|e| e.what.trim_matches(['<', '>']).to_owned())
        .collect();
    let not_answer_tags: Vec<String> = reasoning_names.iter().chain(&given).cloned().collect();
    let contract = output::draft(body, &regions, &keys, &not_answer_tags, &lines);
    let (contract_name, contract_text, output_words) = match contract {
        Some(drafted) => {
            checks.extend(drafted.checks);
            (
                format!("{name}.{}", drafted.suffix),
                drafted.text,
                drafted.evidence,
            )
        }
        None => {
            checks.push("the prompt shows no output format: the drafted contract accepts any markdown; write the shape you need".into());
            (
                format!("{name}.scaffold.yaml"),
                "# Drafted by `agent import`: the prompt shows no output format.\ndescription: Any answer\nsections: []\nextra_sections: allowed\npreamble: allowed\ntrailing_text: allowed\n".to_owned(),
                "no output format found".to_owned(),
            )
        }
    };
    let agent_text = agent_file(
        &text,
        front_text,
        body_offset,
        path,
        &detected,
        &layout,
        inputs_apart,
        &reasoning_names,
        &contract_name,
        &keys,
    );
    // What import writes must load as an agent; anything else is import's fault.
    let prompt = Prompt::parse(
        name,
        Path::new(&format!("prompts/{name}.md")),
        agent_text.clone(),
    )
    .map_err(|error| ImportError::Draft {
        message: crate::text::error_chain(&error),
    })?;
    for input in detected.inputs.iter().filter(|i| !i.required) {
        checks.push(format!(
            "`{}` is optional (the prompt says so); its default is \"not given\"",
            input.name
        ));
    }
    if detected.dialect.is_template_language() {
        checks.push(format!(
            "the body is a {} template: its blocks are evaluated, and an input given as a JSON object or list reaches it as data",
            if detected.dialect == Dialect::Jinja { "Jinja" } else { "Handlebars" }
        ));
    }
    if let Some(model) = &prompt.declared.suggested_model {
        checks.push(format!(
            "the prompt names the model `{model}` for its own tool; agent uses the model you configure"
        ));
    }
    let left_literal = crate::lint::unbound_slot_like(&prompt)
        .into_iter()
        .map(|found| Evidence {
            line: found.line,
            what: format!("`{}` {}", found.text, found.why),
        })
        .collect();
    let case = starter_case(&prompt, &detected, &mut checks);
    Ok(Draft {
        name: name.to_owned(),
        source: path.to_owned(),
        tool,
        layout: layout.describe(inputs_apart),
        dialect: detected.dialect,
        dialect_evidence: detected.evidence,
        inputs: detected.inputs,
        left_literal,
        reasoning,
        output: output_words,
        agent_text,
        contract: (contract_name, contract_text),
        case,
        checks,
    })
}

#[expect(
    clippy::too_many_arguments,
    reason = "one call site, every part of the file"
)]
fn agent_file(
    text: &str,
    front_text: Option<&str>,
    body_offset: usize,
    path: &Path,
    detected: &slots::Detected,
    layout: &Layout,
    inputs_apart: bool,
    reasoning: &[String],
    contract: &str,
    keys: &BTreeMap<String, serde_yaml_ng::Value>,
) -> String {
    let mut block = String::from("agent:\n");
    if !keys.contains_key("description") {
        let description = text[body_offset..]
            .lines()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.trim().trim_start_matches('#').trim())
            .unwrap_or("Imported prompt");
        let _ = writeln!(
            block,
            "  description: {}",
            output::yaml_string(&crate::text::clip(description, 120))
        );
    }
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let _ = writeln!(
        block,
        "  source: {}",
        output::yaml_string(&format!("imported by `agent import` from {file_name}"))
    );
    let dialect = serde_json::to_value(detected.dialect)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let _ = writeln!(block, "  dialect: {dialect}");
    if let Some(messages) = layout.messages(inputs_apart) {
        let _ = writeln!(block, "  messages: {messages}");
    }
    // Inputs the prompt's front matter declares are not written again, but an optional one
    // needs the default our rule asks for.
    let written: Vec<&FoundInput> = if detected.declared_by_front_matter {
        detected
            .inputs
            .iter()
            .filter(|input| !input.required && !detected.dialect.is_template_language())
            .collect()
    } else {
        detected.inputs.iter().collect()
    };
    if !written.is_empty() {
        let _ = writeln!(block, "  inputs:");
        for input in written {
            let mut fields = vec![format!("name: {}", input.name)];
            if let Some(label) = &input.label {
                fields.push(format!("label: {}", output::yaml_string(label)));
            }
            if let Some(section) = &input.section {
                fields.push(format!("section: {section}"));
            }
            if let Some(description) = input
                .description
                .as_ref()
                .filter(|_| !detected.declared_by_front_matter)
            {
                fields.push(format!(
                    "description: {}",
                    output::yaml_string(&crate::text::clip(description, 160))
                ));
            }
            if !input.required {
                fields.push("required: false".into());
                if !matches!(detected.dialect, Dialect::Form)
                    && !detected.dialect.is_template_language()
                {
                    fields.push("default: \"not given\"".into());
                }
            }
            if detected.dialect.is_template_language()
                && input
                    .slots
                    .iter()
                    .any(|(slot, _)| slot.contains('.') || slot.contains(" in "))
            {
                fields.push("structured: true".into());
            }
            let _ = writeln!(block, "    - {{ {} }}", fields.join(", "));
        }
    }
    if !reasoning.is_empty() {
        let mut tags = reasoning.to_vec();
        if !tags.iter().any(|t| t.eq_ignore_ascii_case("think")) {
            tags.push("think".into());
        }
        let _ = writeln!(block, "  reasoning: {{ tags: [{}] }}", tags.join(", "));
    }
    let _ = writeln!(block, "  contract: {contract}");
    match front_text {
        Some(front) => {
            let opener = if text.starts_with("---\r\n") {
                "---\r\n"
            } else {
                "---\n"
            };
            let mut front = front.to_owned();
            if !front.is_empty() && !front.ends_with('\n') {
                front.push('\n');
            }
            format!("{opener}{front}{block}---\n{}", &text[body_offset..])
        }
        None => format!("---\n{block}---\n{text}"),
    }
}

/// A first eval case: the prompt's own sample inputs where it has them, a placeholder to
/// replace elsewhere.
fn starter_case(
    prompt: &Prompt,
    detected: &slots::Detected,
    checks: &mut Vec<String>,
) -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut placeholders = Vec::new();
    for spec in &prompt.inputs {
        let sample = spec
            .sample
            .clone()
            .or_else(|| spec.default.clone().filter(|d| d != "not given"));
        let value = match sample {
            Some(value) => value,
            None if !spec.required => continue,
            None => {
                placeholders.push(spec.name.clone());
                format!("Replace this with a real {}.\n", spec.name)
            }
        };
        let extension = if spec.structured { "json" } else { "md" };
        files.push((format!("sample/inputs/{}.{extension}", spec.name), value));
    }
    let _ = detected;
    files.push((
        "sample/case.yaml".into(),
        "description: Drafted by `agent import`; record it with `agent record` or `agent eval --record`\nexpect: { outcome: valid }\n".into(),
    ));
    if placeholders.is_empty() {
        checks.push("the starter eval case uses the prompt's own sample inputs".into());
    } else {
        checks.push(format!(
            "the starter eval case needs real values for {} (fixtures/{}/sample/inputs/)",
            placeholders.join(", "),
            prompt.name
        ));
    }
    files
}

impl Draft {
    /// The report for people: what was found, with where, and what to check.
    pub fn report(&self) -> String {
        let mut text = String::new();
        let source = self.source.display();
        let _ = writeln!(text, "{}: imported from {source}", self.name);
        if let Some(tool) = self.tool {
            let _ = writeln!(
                text,
                "  front matter: {}",
                serde_json::to_value(tool)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            );
        }
        let _ = writeln!(text, "  template:     {}", self.layout);
        let _ = writeln!(
            text,
            "  dialect:      {} ({})",
            self.dialect.describe(),
            self.dialect_evidence
        );
        let _ = writeln!(text, "  inputs:");
        let width = self.inputs.iter().map(|i| i.name.len()).max().unwrap_or(0);
        for input in &self.inputs {
            let places: Vec<String> = input
                .slots
                .iter()
                .map(|(slot, line)| format!("{source}:{line} `{}`", crate::text::quote(slot, 60)))
                .collect();
            let places = if places.is_empty() {
                "sent as the user message".to_owned()
            } else {
                places.join(", ")
            };
            let optional = if input.required { "" } else { " (optional)" };
            let _ = writeln!(text, "    {:width$}  {places}{optional}", input.name);
        }
        if !self.left_literal.is_empty() {
            let _ = writeln!(text, "  left as written (not inputs):");
            for found in self.left_literal.iter().take(12) {
                let _ = writeln!(text, "    {source}:{}  {}", found.line, found.what);
            }
            if self.left_literal.len() > 12 {
                let _ = writeln!(text, "    … and {} more", self.left_literal.len() - 12);
            }
        }
        if self.reasoning.is_empty() {
            let _ = writeln!(
                text,
                "  reasoning:    none asked for (a `<think>` block is still taken out)"
            );
        } else {
            for found in &self.reasoning {
                let _ = writeln!(
                    text,
                    "  reasoning:    {} at {source}:{}",
                    found.what, found.line
                );
            }
        }
        let _ = writeln!(
            text,
            "  output:       {} → schemas/{}",
            self.output, self.contract.0
        );
        let _ = writeln!(
            text,
            "  wrote:        prompts/{}.md, schemas/{}, fixtures/{}/sample/",
            self.name, self.contract.0, self.name
        );
        if !self.checks.is_empty() {
            let _ = writeln!(text, "check:");
            for check in &self.checks {
                let _ = writeln!(text, "  - {check}");
            }
        }
        text
    }

    /// Write the agent, its contract and its case under `root`. Nothing is overwritten
    /// unless `force`; nothing is written if any target exists.
    pub fn write(&self, root: &Path, force: bool) -> Result<Vec<PathBuf>, crate::error::Error> {
        let agent = root.join("prompts").join(format!("{}.md", self.name));
        let contract = root.join("schemas").join(&self.contract.0);
        let case_dir = root.join("fixtures").join(&self.name);
        let mut targets: Vec<(PathBuf, &str)> =
            vec![(agent, &self.agent_text), (contract, &self.contract.1)];
        for (relative, content) in &self.case {
            targets.push((case_dir.join(relative), content));
        }
        if !force {
            let existing: Vec<String> = targets
                .iter()
                .filter(|(path, _)| path.exists())
                .map(|(path, _)| format!("`{}`", path.display()))
                .collect();
            if !existing.is_empty() {
                return Err(crate::error::Error::Usage {
                    message: format!(
                        "{} already exist{}",
                        existing.join(", "),
                        if existing.len() == 1 { "s" } else { "" }
                    ),
                    hint: Some("give another --name, or --force to replace them".into()),
                });
            }
        }
        let mut written = Vec::new();
        for (path, content) in targets {
            crate::artifacts::write_atomic(&path, content.as_bytes(), true).map_err(|source| {
                crate::error::Error::Io {
                    action: "write",
                    path: path.clone(),
                    source,
                }
            })?;
            written.push(path);
        }
        Ok(written)
    }
}

/// The tags a system prompt says its input comes in ("You are given a report within
/// <synthesized_text> tags"), in order of first mention.
fn given_tags(body: &str) -> Vec<String> {
    let Ok(given) = regex::Regex::new(
        r"(?i)\b(?:given|provided|receive|you will get|you will see)\b[^.\n]{0,80}?\b(?:within|in|inside|between|wrapped in)\s+(?:the\s+)?`?<([A-Za-z_][A-Za-z0-9_-]*)>`?\s+tags?\b",
    ) else {
        return Vec::new();
    };
    let mut tags: Vec<String> = Vec::new();
    for found in given.captures_iter(body) {
        let tag = found[1].to_owned();
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    tags
}
