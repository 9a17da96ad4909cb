//! `agent lint`: what makes an agent do other than its author meant, found before a run.
//!
//! - text that looks like a placeholder but binds to no input (it is sent as written);
//! - declared inputs the body never uses; a reasoning tag the prompt never mentions;
//! - mojibake, invisible and bidi-control characters in the body;
//! - an example output in the prompt that its own contract rejects;
//! - tags wrapping an input, which the guard escapes in every value;
//! - front-matter keys of other tools that `agent` does not act on, with what they mean there;
//! - an agent file that does not load, every problem named.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::prompt::{Dialect, InputKind, PartSource, Prompt};

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// For information.
    Note,
    /// Likely wrong; `--strict` makes it an error.
    Warning,
    /// Wrong: lint exits 1.
    Error,
}

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// How much it matters.
    pub severity: Severity,
    /// A stable rule name (`slot.unbound`, `text.mojibake`).
    pub rule: &'static str,
    /// 1-based line in the agent file, when it has one.
    pub line: Option<usize>,
    /// What is wrong, and what to do.
    pub message: String,
}

/// Placeholder-looking text that binds to no input.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlotLike {
    /// 1-based line in the agent file.
    pub line: usize,
    /// The text, as written.
    pub text: String,
    /// Why it is there, as far as can be told.
    pub why: String,
    /// It is written in the agent's own placeholder syntax: most likely an input someone
    /// forgot to declare, which the model would receive verbatim.
    pub likely_input: bool,
}

fn in_code(body: &str, at: usize) -> bool {
    // Inside a fence: an odd number of fence lines before it. Inside an inline span: an odd
    // number of backticks before it on its line.
    let before = &body[..at];
    let fences = before
        .lines()
        .filter(|l| l.trim_start().starts_with("```"))
        .count();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let ticks = before[line_start..].matches('`').count();
    fences % 2 == 1 || ticks % 2 == 1
}

/// Every placeholder-looking text in the parts of the body that are sent, that binds to
/// no input: `{{X}}`, `{X}`, `${X}`, `$X`, `[X_Y]`.
pub fn unbound_slot_like(prompt: &Prompt) -> Vec<SlotLike> {
    let body = prompt.body();
    let mut found = Vec::new();
    let acknowledged = |text: &str| prompt.literals.iter().any(|l| l == text);
    for part in &prompt.messages {
        let PartSource::Body(range) = &part.source else {
            continue;
        };
        let text = &body[range.clone()];
        let bytes = text.as_bytes();
        let mut at = 0;
        while at < bytes.len() {
            let (candidate, kind) = match bytes[at] {
                b'{' if text[at..].starts_with("{{") => {
                    (braced(text, at, "{{", "}}"), Dialect::DoubleBrace)
                }
                b'{' if at == 0 || bytes[at - 1] != b'$' => {
                    (braced(text, at, "{", "}"), Dialect::SingleBrace)
                }
                b'$' if text[at..].starts_with("${") => {
                    (braced(text, at, "${", "}"), Dialect::Dollar)
                }
                b'$' => (dollar(text, at), Dialect::Dollar),
                b'[' => (bracket(text, at), Dialect::Bracket),
                _ => (None, Dialect::DoubleBrace),
            };
            let Some(length) = candidate else {
                at += 1;
                continue;
            };
            let absolute = range.start + at;
            let written = &text[at..at + length];
            let bound = prompt.slots.iter().any(|slot| {
                slot.range.start <= absolute && absolute < slot.range.end.max(slot.range.start + 1)
            });
            if !bound && !acknowledged(written) && !prompt.dialect.is_template_language() {
                let code = in_code(body, absolute);
                let same_syntax = kind == prompt.dialect
                    || (kind == Dialect::Dollar && prompt.dialect == Dialect::Vscode)
                    || (kind == Dialect::SingleBrace && prompt.dialect == Dialect::PythonFormat);
                let why = if code {
                    "in code: left for the reader of the code"
                } else if same_syntax {
                    "looks like an input in this agent's own syntax but no input binds it: it is sent to the model as written"
                } else {
                    "left for the model to fill (a fill-in of the answer's format), or literal text"
                };
                found.push(SlotLike {
                    line: prompt.file_line(absolute),
                    text: written.to_owned(),
                    why: why.to_owned(),
                    likely_input: same_syntax && !code,
                });
            }
            at += length;
        }
    }
    found
}

fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == ':')
}

fn braced(text: &str, at: usize, open: &str, close: &str) -> Option<usize> {
    let inner = at + open.len();
    let end = text[inner..].find(close)? + inner;
    let name = text[inner..end].trim();
    (is_name(name) && !text[inner..end].contains('\n')).then_some(end + close.len() - at)
}

fn dollar(text: &str, at: usize) -> Option<usize> {
    let rest = &text.as_bytes()[at + 1..];
    let length = rest
        .iter()
        .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || **b == b'_')
        .count();
    (length >= 2
        && rest[0].is_ascii_uppercase()
        && !rest.get(length).is_some_and(u8::is_ascii_lowercase))
    .then_some(length + 1)
}

fn bracket(text: &str, at: usize) -> Option<usize> {
    let end = text[at + 1..].find(']')? + at + 1;
    let name = &text[at + 1..end];
    let upper_snake = name.len() >= 3
        && name.contains('_')
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        && name.as_bytes()[0].is_ascii_uppercase();
    let link = matches!(text.as_bytes().get(end + 1), Some(b'(' | b'['));
    (upper_snake && !link).then_some(end + 1 - at)
}

/// Warn once about placeholder-looking text in the agent's own syntax that binds to no input
/// (for `render`, `run` and `eval`); with `strict`, refuse the agent instead.
pub fn check_unbound(prompt: &Prompt, strict: bool) -> Result<(), crate::error::Error> {
    let likely: Vec<SlotLike> = unbound_slot_like(prompt)
        .into_iter()
        .filter(|s| s.likely_input)
        .collect();
    if likely.is_empty() {
        return Ok(());
    }
    let listed: Vec<String> = likely
        .iter()
        .take(5)
        .map(|s| format!("`{}` (line {})", s.text, s.line))
        .collect();
    let message = format!(
        "agent `{}`: {} placeholder-looking text(s) bind to no input and are sent as written: {}",
        prompt.name,
        likely.len(),
        listed.join(", ")
    );
    if strict {
        return Err(crate::error::Error::Usage {
            message,
            hint: Some("declare them as inputs, or list them under `agent.literals` if they are meant literally".into()),
        });
    }
    tracing::warn!("{message}");
    Ok(())
}

/// Lint the agent file at `path` (and its contract in `schemas`).
pub fn lint(path: &Path, schemas: &Path) -> Vec<Finding> {
    let prompt = match Prompt::load(path) {
        Ok(prompt) => prompt,
        Err(error) => return load_problems(&error),
    };
    let mut findings = Vec::new();
    for slot in unbound_slot_like(&prompt) {
        if slot.likely_input {
            findings.push(Finding {
                severity: Severity::Warning,
                rule: "slot.unbound",
                line: Some(slot.line),
                message: format!(
                    "`{}` {}; declare it as an input, or list it under `agent.literals`",
                    slot.text, slot.why
                ),
            });
        }
    }
    unused_inputs(&prompt, &mut findings);
    reasoning_unmentioned(&prompt, &mut findings);
    characters(&prompt, &mut findings);
    guarded_tags(&prompt, &mut findings);
    foreign_keys(&prompt, &mut findings);
    match crate::contract::Contract::load(&schemas.join(&prompt.contract)) {
        Ok(contract) => examples_against(&prompt, &contract, &mut findings),
        Err(error) => findings.push(Finding {
            severity: Severity::Error,
            rule: "contract.load",
            line: None,
            message: crate::text::error_chain(&error),
        }),
    }
    findings.sort_by_key(|f| (f.line.unwrap_or(0), std::cmp::Reverse(f.severity)));
    findings
}

fn load_problems(error: &crate::prompt::PromptError) -> Vec<Finding> {
    use miette::Diagnostic as _;
    let mut findings = Vec::new();
    let source = error.source_code();
    let labels: Vec<miette::LabeledSpan> =
        error.labels().map(Iterator::collect).unwrap_or_default();
    if labels.is_empty() {
        findings.push(Finding {
            severity: Severity::Error,
            rule: "agent.load",
            line: None,
            message: crate::text::error_chain(error),
        });
    }
    for label in labels {
        let line = source
            .and_then(|s| s.read_span(label.inner(), 0, 0).ok())
            .map(|contents| contents.line() + 1);
        findings.push(Finding {
            severity: Severity::Error,
            rule: "agent.load",
            line,
            message: label
                .label()
                .map_or_else(|| error.to_string(), str::to_owned),
        });
    }
    findings
}

fn unused_inputs(prompt: &Prompt, findings: &mut Vec<Finding>) {
    for (index, spec) in prompt.inputs.iter().enumerate() {
        if spec.kind == InputKind::Context || prompt.apart.contains(&index) {
            continue;
        }
        if !prompt.slots.iter().any(|slot| slot.input == index) {
            findings.push(Finding {
                severity: Severity::Warning,
                rule: "input.unused",
                line: None,
                message: format!(
                    "input `{}` is declared but the template never uses it",
                    spec.name
                ),
            });
        }
    }
}

fn reasoning_unmentioned(prompt: &Prompt, findings: &mut Vec<Finding>) {
    let body = prompt.body().to_ascii_lowercase();
    for tag in &prompt.reasoning_tags {
        if tag == "think" {
            continue;
        }
        if !body.contains(&format!("<{}>", tag.to_ascii_lowercase()))
            && !body.contains(&tag.to_ascii_lowercase())
        {
            findings.push(Finding {
                severity: Severity::Warning,
                rule: "reasoning.unmentioned",
                line: None,
                message: format!(
                    "reasoning tag `<{tag}>` is never mentioned in the prompt: the model has no reason to use it"
                ),
            });
        }
    }
}

/// Mojibake: UTF-8 read as Windows-1252 and written back (`â€"`, `Ã©`).
fn is_mojibake(pair: [char; 2]) -> bool {
    matches!(pair[0], 'Â' | 'Ã' | 'â')
        && matches!(
            pair[1],
            '\u{80}'
                ..='\u{bf}'
                    | '€'
                    | '‚'
                    | 'ƒ'
                    | '„'
                    | '…'
                    | '†'
                    | '‡'
                    | 'ˆ'
                    | '‰'
                    | 'Š'
                    | '‹'
                    | 'Œ'
                    | 'Ž'
                    | '‘'
                    | '’'
                    | '“'
                    | '”'
                    | '•'
                    | '–'
                    | '—'
                    | '˜'
                    | '™'
                    | 'š'
                    | '›'
                    | 'œ'
                    | 'ž'
                    | 'Ÿ'
        )
}

fn characters(prompt: &Prompt, findings: &mut Vec<Finding>) {
    let body = prompt.body();
    let mut mojibake_lines = Vec::new();
    let chars: Vec<(usize, char)> = body.char_indices().collect();
    for (index, &(at, ch)) in chars.iter().enumerate() {
        let line = prompt.file_line(at);
        if let Some(&(_, next)) = chars.get(index + 1)
            && is_mojibake([ch, next])
            && mojibake_lines.last() != Some(&line)
        {
            mojibake_lines.push(line);
        }
        let bidi = matches!(ch, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}');
        let invisible = matches!(ch, '\u{200b}' | '\u{2060}'..='\u{2064}' | '\u{feff}' | '\u{00ad}' | '\u{e0000}'..='\u{e007f}');
        if bidi {
            findings.push(Finding {
                severity: Severity::Error,
                rule: "text.bidi",
                line: Some(line),
                message: format!("a bidi control character U+{:04X} reorders what people see against what the model reads", ch as u32),
            });
        } else if invisible {
            findings.push(Finding {
                severity: Severity::Warning,
                rule: "text.invisible",
                line: Some(line),
                message: format!(
                    "an invisible character U+{:04X}: people do not see it, the model reads it",
                    ch as u32
                ),
            });
        }
    }
    for line in mojibake_lines {
        findings.push(Finding {
            severity: Severity::Warning,
            rule: "text.mojibake",
            line: Some(line),
            message: "mojibake (UTF-8 read as Windows-1252, such as `â€\"`): the model reads it as written".into(),
        });
    }
}

fn guarded_tags(prompt: &Prompt, findings: &mut Vec<Finding>) {
    let body = prompt.body();
    for slot in &prompt.slots {
        let before = &body[..slot.range.start];
        let Some(open) = before.rfind('<') else {
            continue;
        };
        let tag: String = before[open + 1..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        let closes = format!("</{tag}>");
        let wraps = !tag.is_empty()
            && before[open..].contains('>')
            && !before[open..].contains("</")
            && body[slot.range.end..].trim_start().starts_with(&closes);
        if wraps {
            findings.push(Finding {
                severity: Severity::Note,
                rule: "tag.guarded",
                line: Some(prompt.file_line(slot.range.start)),
                message: format!(
                    "input `{}` sits inside `<{tag}>`: a value holding `</{tag}>` could close it, so the guard escapes it",
                    prompt.inputs[slot.input].name
                ),
            });
        }
    }
}

fn foreign_keys(prompt: &Prompt, findings: &mut Vec<Finding>) {
    for key in prompt.declared.other.keys() {
        if let Some(meaning) = crate::prompt::meaning_of_ignored(key) {
            findings.push(Finding {
                severity: Severity::Note,
                rule: "front-matter.ignored",
                line: None,
                message: format!("`{key}` is not acted on: {meaning}"),
            });
        }
    }
    if let Some(model) = &prompt.declared.suggested_model {
        findings.push(Finding {
            severity: Severity::Note,
            rule: "front-matter.model",
            line: None,
            message: format!("the prompt names the model `{model}` for its own tool; agent uses the model you configure"),
        });
    }
}

/// Example outputs the prompt shows, judged by its own contract: a ```json block that is
/// real JSON, or a ```markdown block of headings.
fn examples_against(
    prompt: &Prompt,
    contract: &crate::contract::Contract,
    findings: &mut Vec<Finding>,
) {
    let body = prompt.body();
    let json_contract = contract.json_schema().is_some();
    let mut offset = 0;
    let lines: Vec<(usize, &str)> = body
        .split_inclusive('\n')
        .map(|line| {
            let at = offset;
            offset += line.len();
            (at, line)
        })
        .collect();
    for &(at, line) in &lines {
        let info = line.trim().strip_prefix("```").map(str::trim);
        let wanted = match info {
            Some("json") => json_contract,
            Some("markdown" | "md") => !json_contract,
            _ => false,
        };
        if !wanted {
            continue;
        }
        let Ok((range, _)) = crate::prompt::layout::fence_at(body, at) else {
            continue;
        };
        // A fence holding an input's placeholder is the prompt itself (seed 000 wraps its whole
        // template in ```md) or an output template to fill in, not an answer to judge.
        if prompt
            .slots
            .iter()
            .any(|slot| range.start <= slot.range.start && slot.range.end <= range.end)
        {
            continue;
        }
        let example = &body[range];
        if json_contract && serde_json::from_str::<serde_json::Value>(example).is_err() {
            // A pseudo-schema (`"status": "pass|fail"`), not an example.
            continue;
        }
        if !json_contract && !example.lines().any(|l| l.trim_start().starts_with('#')) {
            continue;
        }
        let extracted =
            crate::extract::extract_with(example, None, &prompt.reasoning_tags, contract.syntax());
        let verdict = crate::contract::judge(contract, example, &extracted, &prompt.reasoning_tags);
        if let Some(first) = verdict.violations.first() {
            findings.push(Finding {
                severity: Severity::Error,
                rule: "contract.example",
                line: Some(prompt.file_line(at)),
                message: format!(
                    "the prompt's own example output breaks its contract ({} violation(s); first: {first})",
                    verdict.violations.len()
                ),
            });
        }
    }
}

/// The agent files to lint: the named agents, or every agent of the project.
pub fn targets(prompts: &Path, agents: &[String]) -> std::io::Result<Vec<PathBuf>> {
    if !agents.is_empty() {
        return Ok(agents
            .iter()
            .map(|a| prompts.join(format!("{a}.md")))
            .collect());
    }
    let mut paths: Vec<PathBuf> = std::fs::read_dir(prompts)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    paths.sort();
    Ok(paths)
}
