//! Finding a prompt's inputs as found: which placeholder syntax it uses, and which of its
//! placeholder-looking texts are inputs (never a markdown link, a checkbox, an output fill-in
//! or a code snippet).

use std::collections::BTreeMap;
use std::ops::Range;

use crate::prompt::{Dialect, Origin};

/// Placeholders found: each name with its bytes in the body.
type Placeholders = Vec<(String, Range<usize>)>;

/// One input found, with where.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FoundInput {
    /// The input's name.
    pub name: String,
    /// The label that binds it (form lines, option lists).
    pub label: Option<String>,
    /// The `<section>` of a form line.
    pub section: Option<String>,
    /// Must be given.
    pub required: bool,
    /// What it is, from a table or list that documents the inputs.
    pub description: Option<String>,
    /// Each placeholder: its text and its 1-based line in the file.
    pub slots: Vec<(String, usize)>,
}

/// The syntax and the inputs found.
#[derive(Debug, Clone)]
pub(crate) struct Detected {
    pub(crate) dialect: Dialect,
    pub(crate) inputs: Vec<FoundInput>,
    /// The inputs are declared by the prompt's own front matter, which the agent file keeps:
    /// they need not be written again.
    pub(crate) declared_by_front_matter: bool,
    /// How the dialect was recognised, for the report.
    pub(crate) evidence: String,
}

/// Where a body offset is, for the report: the file's 1-based line.
pub(crate) struct Lines<'a> {
    pub(crate) file: &'a str,
    pub(crate) body_offset: usize,
}

impl Lines<'_> {
    pub(crate) fn of(&self, body_offset: usize) -> usize {
        crate::text::line_of(self.file, self.body_offset + body_offset)
    }
}

fn is_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn in_any(regions: &[Range<usize>], at: usize) -> bool {
    regions.iter().any(|r| r.contains(&at))
}

/// Byte ranges of code: fenced blocks and inline code spans, where `{x}` and `$X` are code.
fn code_ranges(body: &str) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let mut offset = 0;
    let mut open: Option<(usize, u8, usize)> = None;
    for line in body.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let marker = trimmed.as_bytes().first().copied();
        let run = |m: u8| trimmed.bytes().take_while(|&b| b == m).count();
        match (open, marker) {
            (None, Some(m @ (b'`' | b'~'))) if run(m) >= 3 => open = Some((offset, m, run(m))),
            (Some((start, m, length)), Some(b))
                if b == m && run(m) >= length && trimmed[run(m)..].trim().is_empty() =>
            {
                ranges.push(start..offset + line.len());
                open = None;
            }
            (None, _) => {
                // Inline code spans on this line.
                let mut at = 0;
                let bytes = line.as_bytes();
                while let Some(tick) = line[at..].find('`') {
                    let start = at + tick;
                    let ticks = bytes[start..].iter().take_while(|&&b| b == b'`').count();
                    let closing = "`".repeat(ticks);
                    match line[start + ticks..].find(&closing) {
                        Some(end) => {
                            let end = start + ticks + end + ticks;
                            ranges.push(offset + start..offset + end);
                            at = end;
                        }
                        None => break,
                    }
                }
            }
            _ => {}
        }
        offset += line.len();
    }
    if let Some((start, _, _)) = open {
        ranges.push(start..body.len());
    }
    ranges
}

/// Every `open NAME close` placeholder in the regions: (name, range).
fn braced(body: &str, regions: &[Range<usize>], depth: usize) -> Vec<(String, Range<usize>)> {
    let open = "{".repeat(depth);
    let close = "}".repeat(depth);
    let bytes = body.as_bytes();
    let mut found = Vec::new();
    for (start, _) in body.match_indices(&open) {
        if !in_any(regions, start) || (start > 0 && bytes[start - 1] == b'{') {
            continue;
        }
        if start > 0 && bytes[start - 1] == b'$' {
            continue;
        }
        let inner = start + depth;
        if bytes.get(inner) == Some(&b'{') {
            continue;
        }
        let Some(end) = body[inner..].find(&close).map(|i| inner + i) else {
            continue;
        };
        if bytes.get(end + depth) == Some(&b'}') {
            continue;
        }
        let name = body[inner..end].trim();
        if is_identifier(name) {
            found.push((name.to_owned(), start..end + depth));
        }
    }
    found
}

/// `{name}` of a Python format string (skipping `{{` and `}}` escapes), outside code.
fn python_fields(
    body: &str,
    regions: &[Range<usize>],
    code: &[Range<usize>],
) -> Vec<(String, Range<usize>)> {
    let bytes = body.as_bytes();
    let mut found = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'{' if bytes.get(at + 1) == Some(&b'{') => at += 2,
            b'}' if bytes.get(at + 1) == Some(&b'}') => at += 2,
            b'{' => {
                let Some(end) = body[at + 1..].find(['}', '\n', '{']).map(|i| at + 1 + i) else {
                    break;
                };
                if bytes[end] == b'}' {
                    let name = body[at + 1..end]
                        .split([':', '!'])
                        .next()
                        .unwrap_or_default();
                    let dollar = at > 0 && bytes[at - 1] == b'$';
                    if is_identifier(name) && !dollar && in_any(regions, at) && !in_any(code, at) {
                        found.push((name.to_owned(), at..end + 1));
                    }
                }
                at = end.max(at + 1);
            }
            _ => at += 1,
        }
    }
    found
}

/// `$NAME` (capitals) and `${name}` outside code.
fn dollars(
    body: &str,
    regions: &[Range<usize>],
    code: &[Range<usize>],
) -> Vec<(String, Range<usize>)> {
    let bytes = body.as_bytes();
    let mut found = Vec::new();
    for (start, _) in body.match_indices('$') {
        if !in_any(regions, start) || in_any(code, start) {
            continue;
        }
        if body[start + 1..].starts_with('{') {
            let inner = start + 2;
            if let Some(end) = body[inner..].find('}').map(|i| inner + i) {
                let name = &body[inner..end];
                if is_identifier(name) {
                    found.push((name.to_owned(), start..end + 1));
                }
            }
            continue;
        }
        let mut end = start + 1;
        while bytes
            .get(end)
            .is_some_and(|&b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            end += 1;
        }
        if end > start + 1
            && bytes[start + 1].is_ascii_uppercase()
            && !bytes.get(end).is_some_and(u8::is_ascii_lowercase)
        {
            found.push((body[start + 1..end].to_owned(), start..end));
        }
    }
    found
}

/// `${input:name}` and `${input:name:hint}`, and the editor's `${selection}` / `${file}`.
fn vscode_inputs(body: &str, regions: &[Range<usize>]) -> Vec<(String, Range<usize>)> {
    const EDITOR: [&str; 3] = ["selection", "selectedText", "file"];
    let mut found = Vec::new();
    for (start, _) in body.match_indices("${") {
        if !in_any(regions, start) {
            continue;
        }
        let inner = start + 2;
        let Some(end) = body[inner..].find('}').map(|i| inner + i) else {
            continue;
        };
        let field = &body[inner..end];
        let name = match field.strip_prefix("input:") {
            Some(rest) => rest.split(':').next().unwrap_or_default(),
            None if EDITOR.contains(&field) => field,
            None => continue,
        };
        if is_identifier(name) {
            found.push((name.to_owned(), start..end + 1));
        }
    }
    found
}

/// `[UPPER_SNAKE]` that is no link, checkbox or reference: what authors mean as an input.
fn brackets(body: &str, regions: &[Range<usize>]) -> Vec<(String, Range<usize>)> {
    let bytes = body.as_bytes();
    let mut found = Vec::new();
    for (start, _) in body.match_indices('[') {
        if !in_any(regions, start) || (start > 0 && matches!(bytes[start - 1], b'!' | b'[')) {
            continue;
        }
        let Some(end) = body[start + 1..].find(']').map(|i| start + 1 + i) else {
            continue;
        };
        let name = &body[start + 1..end];
        let upper_snake = name.len() >= 3
            && name.bytes().any(|b| b == b'_')
            && name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            && name.as_bytes()[0].is_ascii_uppercase();
        let link = matches!(bytes.get(end + 1), Some(b'(' | b'['));
        if upper_snake && !link {
            found.push((name.to_owned(), start..end + 1));
        }
    }
    found
}

/// Blank form lines `- Label:` inside `<section>` tags, as seed 001 has them.
fn form_lines(body: &str, regions: &[Range<usize>]) -> Vec<(String, String, String, Range<usize>)> {
    let mut found = Vec::new();
    let mut section: Option<String> = None;
    let mut offset = 0;
    for line in body.split_inclusive('\n') {
        let trimmed = line.trim();
        if let Some(tag) = trimmed.strip_prefix('<').and_then(|t| t.strip_suffix('>')) {
            if let Some(closing) = tag.strip_prefix('/') {
                if section.as_deref() == Some(closing) {
                    section = None;
                }
            } else if is_identifier(tag) {
                section = Some(tag.to_owned());
            }
        } else if let (Some(section), Some(label)) = (
            &section,
            trimmed.strip_prefix("- ").and_then(|l| l.strip_suffix(':')),
        ) && !label.is_empty()
            && !label.contains(':')
            && in_any(regions, offset)
        {
            found.push((
                snake_upper(label),
                label.to_owned(),
                section.clone(),
                offset..offset + line.len(),
            ));
        }
        offset += line.len();
    }
    found
}

fn snake_upper(label: &str) -> String {
    snake(label).to_ascii_uppercase()
}

fn snake(label: &str) -> String {
    let mut name = String::new();
    for word in label
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if !name.is_empty() {
            name.push('_');
        }
        name.push_str(&word.to_ascii_lowercase());
    }
    name
}

/// The label before an option list on its line (`- **Software Type**: {{…}}`), or the line
/// before it when that ends with a colon (`RELEASE OBJECTIVES:`).
fn option_label(body: &str, at: usize) -> Option<String> {
    let line_start = body[..at].rfind('\n').map_or(0, |i| i + 1);
    let before = &body[line_start..at];
    if let Some(bold_end) = before.rfind("**:").or_else(|| before.rfind(":**")) {
        let bold_start = before[..bold_end].rfind("**")?;
        let label = before[bold_start + 2..bold_end].trim_end_matches(':');
        return (!label.is_empty()).then(|| label.to_owned());
    }
    if before.trim().is_empty() && line_start > 0 {
        let previous_start = body[..line_start - 1].rfind('\n').map_or(0, |i| i + 1);
        let previous = body[previous_start..line_start - 1].trim();
        if previous.ends_with(':') && previous.len() > 1 && previous.len() < 80 {
            return Some(previous.to_owned());
        }
    }
    None
}

/// Group `(name, range)` placeholders into inputs in order of first use.
fn group(found: Vec<(String, Range<usize>)>, body: &str, lines: &Lines<'_>) -> Vec<FoundInput> {
    let mut inputs: Vec<FoundInput> = Vec::new();
    for (name, range) in found {
        let slot = (body[range.clone()].to_owned(), lines.of(range.start));
        match inputs.iter_mut().find(|input| input.name == name) {
            Some(input) => input.slots.push(slot),
            None => inputs.push(FoundInput {
                name,
                label: None,
                section: None,
                required: true,
                description: None,
                slots: vec![slot],
            }),
        }
    }
    inputs
}

/// Find the dialect and inputs of `body` within `regions`, given the prompt's own front
/// matter `keys` and the tool it comes from.
pub(crate) fn detect(
    body: &str,
    regions: &[Range<usize>],
    keys: &BTreeMap<String, serde_yaml_ng::Value>,
    tool: Option<Origin>,
    lines: &Lines<'_>,
) -> Detected {
    let code = code_ranges(body);
    let declared_names = declared_variables(keys);
    match tool {
        Some(Origin::Dotprompt) => {
            return Detected {
                dialect: Dialect::Handlebars,
                inputs: template_inputs(body, regions, lines, keys),
                declared_by_front_matter: true,
                evidence: "a dotprompt file: its body is a Handlebars template, its inputs are `input.schema`".into(),
            };
        }
        Some(Origin::Prompty) => {
            let declared =
                keys.get("inputs").is_some_and(|v| v.is_mapping()) || keys.contains_key("sample");
            return Detected {
                dialect: Dialect::Jinja,
                inputs: template_inputs(body, regions, lines, keys),
                declared_by_front_matter: declared,
                evidence: "a Prompty file: its body is a Jinja template with role lines".into(),
            };
        }
        _ => {}
    }
    let vscode = vscode_inputs(body, regions);
    if !vscode.is_empty() {
        return Detected {
            dialect: Dialect::Vscode,
            inputs: group(vscode, body, lines),
            declared_by_front_matter: false,
            evidence: "`${input:…}` placeholders of a VS Code prompt file".into(),
        };
    }
    // Names the prompt declares itself (`variables:`, `argument_hint`): find which syntax
    // writes them.
    if !declared_names.is_empty() {
        let candidates: [(Dialect, Placeholders); 4] = [
            (Dialect::DoubleBrace, braced(body, regions, 2)),
            (Dialect::SingleBrace, braced(body, regions, 1)),
            (Dialect::Dollar, dollars(body, regions, &[])),
            (Dialect::Bracket, brackets(body, regions)),
        ];
        for (dialect, found) in candidates {
            let bound: Vec<(String, Range<usize>)> = found
                .into_iter()
                .filter(|(name, _)| declared_names.iter().any(|d| d == name))
                .collect();
            if !bound.is_empty() {
                let optional = optional_in_hint(keys);
                let mut inputs = group(bound, body, lines);
                for input in &mut inputs {
                    input.required = !optional.contains(&input.name);
                }
                return Detected {
                    dialect,
                    inputs,
                    declared_by_front_matter: true,
                    evidence: format!(
                        "the names the front matter declares ({}) written as {}",
                        declared_names.join(", "),
                        dialect.describe()
                    ),
                };
            }
        }
    }
    let forms = form_lines(body, regions);
    if forms.len() >= 2 {
        let inputs = forms
            .into_iter()
            .map(|(name, label, section, range)| FoundInput {
                name,
                slots: vec![(
                    body[range.clone()].trim_end().to_owned(),
                    lines.of(range.start),
                )],
                label: Some(label),
                section: Some(section),
                required: true,
                description: None,
            })
            .collect();
        return Detected {
            dialect: Dialect::Form,
            inputs,
            declared_by_front_matter: false,
            evidence: "blank form lines (`- Label:`) inside `<section>` tags".into(),
        };
    }
    let doubles = braced(body, regions, 2);
    if !doubles.is_empty() {
        let labelled: Vec<(String, String, Range<usize>)> = doubles
            .iter()
            .filter_map(|(token, range)| {
                option_label(body, range.start).map(|label| (token.clone(), label, range.clone()))
            })
            .collect();
        if labelled.len() == doubles.len()
            && labelled
                .iter()
                .all(|(token, _, _)| token.matches('_').count() >= 2)
        {
            let inputs = labelled
                .into_iter()
                .map(|(_, label, range)| FoundInput {
                    name: snake(label.trim_end_matches(':')),
                    slots: vec![(body[range.clone()].to_owned(), lines.of(range.start))],
                    label: Some(label),
                    section: None,
                    required: true,
                    description: None,
                })
                .collect();
            return Detected {
                dialect: Dialect::OptionList,
                inputs,
                declared_by_front_matter: false,
                evidence: "`{{option_list}}` placeholders, each after the label that names it"
                    .into(),
            };
        }
        return Detected {
            dialect: Dialect::DoubleBrace,
            inputs: group(doubles, body, lines),
            declared_by_front_matter: false,
            evidence: "`{{name}}` placeholders".into(),
        };
    }
    let escaped_braces = regions
        .iter()
        .any(|r| body[r.clone()].contains("{{") || body[r.clone()].contains("}}"));
    let singles = python_fields(body, regions, &code);
    if !singles.is_empty() {
        let dialect = if escaped_braces {
            Dialect::PythonFormat
        } else {
            Dialect::SingleBrace
        };
        return Detected {
            dialect,
            evidence: if escaped_braces {
                "`{name}` fields of a Python format string (`{{` and `}}` are escaped braces)"
                    .into()
            } else {
                "`{name}` placeholders outside code".into()
            },
            inputs: group(singles, body, lines),
            declared_by_front_matter: false,
        };
    }
    let dollar = dollars(body, regions, &code);
    if !dollar.is_empty() {
        return Detected {
            dialect: Dialect::Dollar,
            inputs: group(dollar, body, lines),
            declared_by_front_matter: false,
            evidence: "`$NAME` placeholders outside code".into(),
        };
    }
    let bracketed = brackets(body, regions);
    if !bracketed.is_empty() {
        return Detected {
            dialect: Dialect::Bracket,
            inputs: group(bracketed, body, lines),
            declared_by_front_matter: false,
            evidence: "`[UPPER_SNAKE]` placeholders (links, checkboxes and fill-ins left alone)"
                .into(),
        };
    }
    Detected {
        dialect: Dialect::DoubleBrace,
        inputs: Vec::new(),
        declared_by_front_matter: false,
        evidence: "no placeholder".into(),
    }
}

/// Names the front matter declares as variables: `variables:` and `argument_hint`.
fn declared_variables(keys: &BTreeMap<String, serde_yaml_ng::Value>) -> Vec<String> {
    let mut names: Vec<String> = keys
        .get("variables")
        .and_then(serde_yaml_ng::Value::as_sequence)
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if let Some(hint) = keys
        .get("argument_hint")
        .and_then(serde_yaml_ng::Value::as_str)
    {
        for word in hint.split_whitespace() {
            let word = word.trim_start_matches('[');
            if let Some((name, _)) = word.split_once('=')
                && is_identifier(name)
            {
                names.push(name.to_owned());
            }
        }
    }
    names
}

/// Names `argument_hint` marks optional (`[WINDOW="…"]`).
fn optional_in_hint(keys: &BTreeMap<String, serde_yaml_ng::Value>) -> Vec<String> {
    keys.get("argument_hint")
        .and_then(serde_yaml_ng::Value::as_str)
        .map(|hint| {
            hint.split_whitespace()
                .filter_map(|word| word.strip_prefix('['))
                .filter_map(|word| word.split_once('=').map(|(name, _)| name.to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// The top-level variables a template-language body uses, bound by its own front matter
/// when it declares them: `{{ name }}`, `{{#if name}}`, `{% for x in name %}`.
fn template_inputs(
    body: &str,
    regions: &[Range<usize>],
    lines: &Lines<'_>,
    keys: &BTreeMap<String, serde_yaml_ng::Value>,
) -> Vec<FoundInput> {
    const KEYWORDS: [&str; 16] = [
        "if", "else", "each", "unless", "with", "for", "in", "endfor", "endif", "not", "and", "or",
        "this", "true", "false", "loop",
    ];
    let mut loop_variables = Vec::new();
    let mut found = Vec::new();
    for (open, close) in [("{{", "}}"), ("{%", "%}")] {
        for (start, _) in body.match_indices(open) {
            if !in_any(regions, start) {
                continue;
            }
            let inner = start + open.len();
            let Some(end) = body[inner..].find(close).map(|i| inner + i) else {
                continue;
            };
            let expression = body[inner..end]
                .trim()
                .trim_start_matches(['#', '/', '-', '^']);
            let words: Vec<&str> = expression
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                .filter(|w| !w.is_empty())
                .collect();
            if words.first() == Some(&"for")
                && let Some(variable) = words.get(1)
            {
                loop_variables.push((*variable).to_owned());
            }
            for word in words {
                let root = word.split('.').next().unwrap_or_default();
                if is_identifier(root) && !KEYWORDS.contains(&root) && !root.starts_with('@') {
                    found.push((root.to_owned(), start..end + close.len()));
                }
            }
        }
    }
    found.sort_by_key(|(_, range)| range.start);
    found.retain(|(name, _)| !loop_variables.contains(name));
    let mut inputs = group(found, body, lines);
    let schema_fields = keys
        .get("input")
        .and_then(|input| input.as_mapping())
        .and_then(|input| input.get("schema"))
        .and_then(|schema| crate::prompt::picoschema::fields(schema).ok())
        .unwrap_or_default();
    for input in &mut inputs {
        if let Some(field) = schema_fields.iter().find(|f| f.name == input.name) {
            input.required = field.required;
            input.description.clone_from(&field.description);
        }
    }
    inputs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(body: &str) -> Detected {
        let lines = Lines {
            file: body,
            body_offset: 0,
        };
        let whole = std::slice::from_ref(&(0..body.len())).to_vec();
        detect(body, &whole, &BTreeMap::new(), None, &lines)
    }

    fn names(detected: &Detected) -> Vec<&str> {
        detected.inputs.iter().map(|i| i.name.as_str()).collect()
    }

    #[test]
    fn brackets_are_inputs_but_links_checkboxes_and_fill_ins_are_not() {
        let detected = found(
            "Repo: [REPOSITORY_NAME]\n[DIFF_OR_FILE_CONTENTS]\n- [ ] done\n[repo_name] [N] [Link](http://x) [SEE_ALSO](http://y)\n",
        );
        assert_eq!(detected.dialect, Dialect::Bracket);
        assert_eq!(
            names(&detected),
            ["REPOSITORY_NAME", "DIFF_OR_FILE_CONTENTS"]
        );
    }

    #[test]
    fn single_braces_in_code_are_code() {
        let detected = found("Title: {incidentTitle}\n```bash\necho {VERSION}\n```\nand `{x}`\n");
        assert_eq!(detected.dialect, Dialect::SingleBrace);
        assert_eq!(names(&detected), ["incidentTitle"]);
    }

    #[test]
    fn escaped_braces_make_a_python_format_string() {
        let detected = found("Text: {input_text}\nOutput: {{\"title\": \"<report_title>\"}}\n");
        assert_eq!(detected.dialect, Dialect::PythonFormat);
        assert_eq!(names(&detected), ["input_text"]);
    }

    #[test]
    fn labelled_option_lists_are_named_by_their_labels() {
        let detected = found(
            "- **Software Type**: {{web_app_mobile_app}}\nRELEASE OBJECTIVES:\n{{goals_and_targets_here}}\n",
        );
        assert_eq!(detected.dialect, Dialect::OptionList);
        assert_eq!(names(&detected), ["software_type", "release_objectives"]);
    }

    #[test]
    fn blank_form_lines_in_sections_are_inputs() {
        let detected = found(
            "<inputs>\n<release_package>\n- Version:\n- Build artifacts:\n</release_package>\n</inputs>\n",
        );
        assert_eq!(detected.dialect, Dialect::Form);
        assert_eq!(names(&detected), ["VERSION", "BUILD_ARTIFACTS"]);
    }
}
