//! Placeholder dialects: how a prompt body marks the places its inputs go.
//!
//! Only declared names are bound. Everything else stays literal: `{VERSION}` in a shell
//! snippet, `${{ secrets.X }}` in CI YAML, `{DATE}` that the model is meant to fill.

use std::collections::BTreeSet;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::input_spec::{InputKind, InputSpec};

/// The placeholder syntax a prompt body uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dialect {
    /// `{{PROJECT_REQUEST}}`.
    DoubleBrace,
    /// `{PROJECT_NAME}`.
    SingleBrace,
    /// `{document}` in a Python format string: `{{` and `}}` are escaped braces, rendered as
    /// `{` and `}`.
    PythonFormat,
    /// `$NOTES` or `${NOTES}`.
    Dollar,
    /// A blank form line, `- Version:`, inside a `<section>`; the value follows the colon.
    Form,
    /// `{{web_application_mobile_app_…}}`: the name lists choices; the label before it
    /// (`**Software Type**:`) names the input.
    OptionList,
    /// VS Code prompt files: `${input:name}`, `${input:name:hint}`, and the editor's own
    /// `${selection}`, `${file}`… when declared as inputs.
    Vscode,
    /// `[DIFF_OR_FILE_CONTENTS]`: a declared name in square brackets; a markdown link, a
    /// checkbox or a fill-in the model is meant to replace stays literal.
    Bracket,
    /// A Jinja template (prompty): the body is rendered by the template engine, blocks
    /// (`{% for %}`, `{% if %}`) and all; inputs may be structured (JSON) values.
    Jinja,
    /// A Handlebars template (dotprompt): `{{#if}}`, `{{#each}}` and `{{else}}` are evaluated;
    /// inputs may be structured (JSON) values.
    Handlebars,
}

impl Dialect {
    /// A short human description, for `agent show`.
    pub fn describe(self) -> &'static str {
        match self {
            Dialect::DoubleBrace => "{{VAR}}",
            Dialect::SingleBrace => "{VAR}",
            Dialect::Dollar => "$VAR",
            Dialect::Form => "blank form lines (`- Label:`) inside <section> tags",
            Dialect::OptionList => "{{option_list}} placeholders bound through their labels",
            Dialect::PythonFormat => "{var} (Python format string; {{ and }} are escaped braces)",
            Dialect::Vscode => "${input:name} (VS Code prompt file)",
            Dialect::Bracket => "[VAR]",
            Dialect::Jinja => "Jinja template ({{ var }}, {% for %}, {% if %})",
            Dialect::Handlebars => "Handlebars template ({{var}}, {{#if}}, {{#each}})",
        }
    }

    /// Is the body a program of a template language, rendered by its engine, rather than
    /// literal text with slots?
    pub fn is_template_language(self) -> bool {
        matches!(self, Dialect::Jinja | Dialect::Handlebars)
    }
}

/// How a value is written into its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotStyle {
    /// The value replaces the placeholder text.
    Plain,
    /// The value follows a form label after one space; an empty value leaves the line blank,
    /// and continuation lines are indented to stay inside the list item.
    FormValue,
}

/// One place in the body where an input's value goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// Index into the prompt's inputs.
    pub input: usize,
    /// The placeholder's bytes in the body (empty for a form line).
    pub range: Range<usize>,
    /// How the value is written.
    pub style: SlotStyle,
}

/// Find every slot of every input in `body`, within `regions` (the parts of the body that
/// are rendered). Inputs in `unplaced` need no slot (they go into a message of their own).
/// `Err` names the first input with no slot.
pub(crate) fn find_slots(
    dialect: Dialect,
    body: &str,
    inputs: &[InputSpec],
    regions: &[Range<usize>],
    inputs_apart: bool,
) -> Result<Vec<Slot>, (usize, String)> {
    let mut slots = Vec::new();
    for (index, spec) in inputs.iter().enumerate() {
        if spec.kind == InputKind::Context {
            continue;
        }
        let found: Vec<Slot> = if let Some(placeholder) = &spec.placeholder {
            occurrences(body, placeholder)
                .map(|start| plain(index, start..start + placeholder.len()))
                .collect()
        } else {
            match dialect {
                Dialect::DoubleBrace => braced(body, index, &spec.name, 2),
                Dialect::SingleBrace => braced(body, index, &spec.name, 1),
                Dialect::PythonFormat => python_format(body, index, &spec.name),
                Dialect::Dollar => dollar(body, index, &spec.name),
                Dialect::Form => form_line(body, index, spec).into_iter().collect(),
                Dialect::OptionList => labelled(body, index, spec),
                Dialect::Vscode => vscode(body, index, &spec.name),
                Dialect::Bracket => bracket(body, index, &spec.name),
                Dialect::Jinja | Dialect::Handlebars => {
                    template_references(body, index, &spec.name)
                }
            }
        };
        let found: Vec<Slot> = found
            .into_iter()
            .filter(|slot| {
                regions
                    .iter()
                    .any(|r| r.start <= slot.range.start && slot.range.end <= r.end)
            })
            .collect();
        if found.is_empty() {
            if inputs_apart {
                // Sent in the message of inputs instead.
                continue;
            }
            // A template may leave a value its front matter declares unread (a `.prompty`
            // whose sample carries a `question` its body never uses); the prompt treats it
            // as optional and `agent lint` says so.
            if dialect.is_template_language() {
                continue;
            }
            return Err((index, looked_for(dialect, spec)));
        }
        slots.extend(found);
    }
    slots.sort_by_key(|slot| slot.range.start);
    if !dialect.is_template_language() {
        for pair in slots.windows(2) {
            if pair[0].range.end > pair[1].range.start {
                return Err((
                    pair[1].input,
                    format!(
                        "its placeholder overlaps the one of `{}`",
                        inputs[pair[0].input].name
                    ),
                ));
            }
        }
    }
    Ok(slots)
}

fn looked_for(dialect: Dialect, spec: &InputSpec) -> String {
    let name = &spec.name;
    if let Some(placeholder) = &spec.placeholder {
        return format!("looked for the literal text `{placeholder}`");
    }
    let label = spec.label.as_deref().unwrap_or("<no label declared>");
    match dialect {
        Dialect::DoubleBrace => format!("looked for `{{{{{name}}}}}`"),
        Dialect::SingleBrace => format!("looked for `{{{name}}}`"),
        Dialect::Dollar => format!("looked for `${name}` and `${{{name}}}`"),
        Dialect::Form => format!(
            "looked for a blank line `- {label}:` inside <{}>",
            spec.section.as_deref().unwrap_or("<no section declared>")
        ),
        Dialect::OptionList => {
            format!("looked for the label `{label}` followed by a `{{{{…}}}}` placeholder")
        }
        Dialect::PythonFormat => {
            format!("looked for `{{{name}}}` (not `{{{{{name}}}}}`, an escaped brace)")
        }
        Dialect::Vscode => format!("looked for `${{input:{name}}}` and `${{input:{name}:…}}`"),
        Dialect::Bracket => format!("looked for `[{name}]`"),
        Dialect::Jinja | Dialect::Handlebars => {
            format!("looked for a use of `{name}` inside `{{{{ … }}}}` or a block tag")
        }
    }
}

fn plain(input: usize, range: Range<usize>) -> Slot {
    Slot {
        input,
        range,
        style: SlotStyle::Plain,
    }
}

fn occurrences<'a>(haystack: &'a str, needle: &'a str) -> impl Iterator<Item = usize> + 'a {
    haystack.match_indices(needle).map(|(start, _)| start)
}

fn is_name_char(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// `{{NAME}}` (depth 2, inner spaces allowed) or `{NAME}` (depth 1, exact).
fn braced(body: &str, input: usize, name: &str, depth: usize) -> Vec<Slot> {
    let open = "{".repeat(depth);
    let close = "}".repeat(depth);
    let bytes = body.as_bytes();
    let mut slots = Vec::new();
    for start in occurrences(body, &open) {
        // In the single-brace dialect, `{{X}}` is not `{X}`; in the double-brace one, `{{{X}}}` is not `{{X}}`.
        if start > 0 && bytes[start - 1] == b'{' {
            continue;
        }
        let after = start + depth;
        let Some(end) = body[after..].find(&close).map(|i| after + i) else {
            continue;
        };
        let inner = &body[after..end];
        let inner = if depth == 2 { inner.trim() } else { inner };
        if inner == name && bytes.get(end + depth) != Some(&b'}') {
            slots.push(plain(input, start..end + depth));
        }
    }
    slots
}

/// `{NAME}` in a Python format string: braces doubled before it are escapes, so `{{NAME}}`
/// is literal text; `{NAME:>10}` and `{NAME!r}` carry a format spec.
fn python_format(body: &str, input: usize, name: &str) -> Vec<Slot> {
    let bytes = body.as_bytes();
    let mut slots = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'{' if bytes.get(at + 1) == Some(&b'{') => at += 2,
            b'}' if bytes.get(at + 1) == Some(&b'}') => at += 2,
            b'{' => {
                let inner = at + 1;
                let end = body[inner..].find('}').map(|i| inner + i);
                if let Some(end) = end {
                    let field = &body[inner..end];
                    let field_name = field.split([':', '!']).next().unwrap_or_default();
                    if field_name == name {
                        slots.push(plain(input, at..end + 1));
                    }
                    at = end + 1;
                } else {
                    at += 1;
                }
            }
            _ => at += 1,
        }
    }
    slots
}

/// `${input:NAME}` or `${input:NAME:any hint}`, and `${NAME}` for the editor's own variables
/// (`${selection}`, `${file}`).
fn vscode(body: &str, input: usize, name: &str) -> Vec<Slot> {
    let mut slots = Vec::new();
    for start in occurrences(body, "${") {
        let inner = start + 2;
        let Some(end) = body[inner..].find('}').map(|i| inner + i) else {
            continue;
        };
        let field = &body[inner..end];
        let bound = match field.strip_prefix("input:") {
            Some(rest) => rest.split(':').next() == Some(name),
            None => field == name,
        };
        if bound {
            slots.push(plain(input, start..end + 1));
        }
    }
    slots
}

/// `[NAME]`, unless it is a markdown link (`[NAME](…)`, `[NAME][ref]`) or a link reference
/// definition (`[NAME]: …` at the start of a line).
fn bracket(body: &str, input: usize, name: &str) -> Vec<Slot> {
    let token = format!("[{name}]");
    let bytes = body.as_bytes();
    occurrences(body, &token)
        .filter(|&start| {
            let end = start + token.len();
            let link = matches!(bytes.get(end), Some(b'(' | b'['));
            let line_start = body[..start].rfind('\n').map_or(0, |i| i + 1);
            let definition =
                body[line_start..start].trim().is_empty() && bytes.get(end) == Some(&b':');
            let image = start > 0 && bytes[start - 1] == b'!';
            !(link || definition || image)
        })
        .map(|start| plain(input, start..start + token.len()))
        .collect()
}

/// Where a template-language body uses `name`: inside `{{ … }}` or `{% … %}`, as a whole
/// word. These are for messages and lint; the engine itself resolves the variables.
fn template_references(body: &str, input: usize, name: &str) -> Vec<Slot> {
    let mut slots = Vec::new();
    for (open, close) in [("{{", "}}"), ("{%", "%}")] {
        for start in occurrences(body, open) {
            let inner = start + open.len();
            let Some(end) = body[inner..].find(close).map(|i| inner + i) else {
                continue;
            };
            let expression = &body[inner..end];
            let uses = expression
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .any(|word| word == name);
            if uses {
                slots.push(plain(input, start..end + close.len()));
            }
        }
    }
    slots.sort_by_key(|slot| slot.range.start);
    slots.dedup_by_key(|slot| slot.range.start);
    slots
}

/// `$NAME` not followed by a name character, or `${NAME}`.
fn dollar(body: &str, input: usize, name: &str) -> Vec<Slot> {
    let bytes = body.as_bytes();
    let mut slots = Vec::new();
    for start in occurrences(body, "$") {
        let after = start + 1;
        if body[after..].starts_with('{') {
            let inner_start = after + 1;
            if body[inner_start..].starts_with(name)
                && bytes.get(inner_start + name.len()) == Some(&b'}')
            {
                slots.push(plain(input, start..inner_start + name.len() + 1));
            }
        } else if body[after..].starts_with(name)
            && !bytes
                .get(after + name.len())
                .is_some_and(|&byte| is_name_char(byte))
        {
            slots.push(plain(input, start..after + name.len()));
        }
    }
    slots
}

/// The blank line `- Label:` inside `<section>…</section>`; the slot is just after the colon.
fn form_line(body: &str, input: usize, spec: &InputSpec) -> Option<Slot> {
    let section = spec.section.as_deref()?;
    let label = spec.label.as_deref()?;
    let range = section_range(body, section)?;
    let wanted = format!("- {label}:");
    let mut offset = range.start;
    for line in body[range.clone()].split_inclusive('\n') {
        let content = line.trim_end_matches(['\n', '\r']);
        if content.trim() == wanted {
            let indent = content.len() - content.trim_start().len();
            let at = offset + indent + wanted.len();
            return Some(Slot {
                input,
                range: at..at,
                style: SlotStyle::FormValue,
            });
        }
        offset += line.len();
    }
    None
}

/// The bytes between a `<section>` line and its `</section>` line.
fn section_range(body: &str, section: &str) -> Option<Range<usize>> {
    let open = format!("<{section}>");
    let close = format!("</{section}>");
    let mut offset = 0;
    let mut start = None;
    for line in body.split_inclusive('\n') {
        let content = line.trim();
        if start.is_none() && content == open {
            start = Some(offset + line.len());
        } else if let Some(start) = start
            && content == close
        {
            return Some(start..offset);
        }
        offset += line.len();
    }
    None
}

/// The first `{{…}}` after the input's label, on the label's line or the next one.
fn labelled(body: &str, input: usize, spec: &InputSpec) -> Vec<Slot> {
    let Some(label) = spec.label.as_deref() else {
        return Vec::new();
    };
    let bold = format!("**{label}**");
    let Some((label_at, label_len)) = body
        .find(&bold)
        .map(|at| (at, bold.len()))
        .or_else(|| body.find(label).map(|at| (at, label.len())))
    else {
        return Vec::new();
    };
    let after = label_at + label_len;
    let Some(open) = body[after..].find("{{").map(|i| after + i) else {
        return Vec::new();
    };
    if body[after..open].matches('\n').count() > 1 {
        return Vec::new();
    }
    let Some(close) = body[open..].find("}}").map(|i| open + i + 2) else {
        return Vec::new();
    };
    let token = &body[open..close];
    // Bind every occurrence of the same option list, not only the labelled one.
    occurrences(body, token)
        .map(|start| plain(input, start..start + token.len()))
        .collect()
}

/// The tag names the body uses as structure (`<project_request>`, `</inputs>`), which an
/// input must never open or close.
pub(crate) fn tag_names(body: &str) -> BTreeSet<String> {
    let bytes = body.as_bytes();
    let mut names = BTreeSet::new();
    for start in occurrences(body, "<") {
        let mut at = start + 1;
        if bytes.get(at) == Some(&b'/') {
            at += 1;
        }
        if !bytes.get(at).is_some_and(u8::is_ascii_alphabetic) {
            continue;
        }
        let name_start = at;
        while bytes
            .get(at)
            .is_some_and(|&b| is_name_char(b) || b == b'-' || b == b'.')
        {
            at += 1;
        }
        if bytes.get(at) == Some(&b'>') {
            names.insert(body[name_start..at].to_ascii_lowercase());
        }
    }
    names
}

/// Placeholder-looking text that is not bound to an input and stays for the model to fill
/// (`{DATE}`, `{VERSION}`), for `agent show`.
pub(crate) fn literal_placeholders(body: &str, slots: &[Slot]) -> BTreeSet<String> {
    let bytes = body.as_bytes();
    let mut found = BTreeSet::new();
    for start in occurrences(body, "{") {
        if slots.iter().any(|slot| slot.range.contains(&start)) {
            continue;
        }
        if start > 0 && matches!(bytes[start - 1], b'{' | b'$') {
            continue;
        }
        let depth = if body[start..].starts_with("{{") {
            2
        } else {
            1
        };
        let inner_start = start + depth;
        let mut end = inner_start;
        while bytes.get(end).is_some_and(|&b| is_name_char(b)) {
            end += 1;
        }
        let closes = body[end..].starts_with(&"}".repeat(depth));
        let name = &body[inner_start..end];
        if closes && !name.is_empty() && name.bytes().any(|b| b.is_ascii_alphabetic()) {
            found.insert(body[start..end + depth].to_owned());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> InputSpec {
        InputSpec::new(name)
    }

    fn slots_in(
        dialect: Dialect,
        body: &str,
        inputs: &[InputSpec],
    ) -> Result<Vec<Slot>, (usize, String)> {
        find_slots(
            dialect,
            body,
            inputs,
            std::slice::from_ref(&(0..body.len())),
            false,
        )
    }

    #[test]
    fn python_format_skips_escaped_braces() {
        let body = "Text: {document}\nJSON: {{\"title\": \"{{document}}\"}} {document:>10} {other}";
        let slots = slots_in(Dialect::PythonFormat, body, &[spec("document")]).expect("bound");
        assert_eq!(texts(body, &slots), ["{document}", "{document:>10}"]);
    }

    #[test]
    fn vscode_inputs_take_an_optional_hint() {
        let body = "Doc ${input:ComponentPath} and ${input:ComponentPath:Path to the class} ${input:Other} ${selection} ${file}";
        let mut selection = spec("selection");
        selection.required = false;
        let slots =
            slots_in(Dialect::Vscode, body, &[spec("ComponentPath"), selection]).expect("bound");
        assert_eq!(
            texts(body, &slots),
            [
                "${input:ComponentPath}",
                "${input:ComponentPath:Path to the class}",
                "${selection}"
            ]
        );
    }

    #[test]
    fn brackets_bind_declared_names_but_not_links() {
        let body = "Diff: [DIFF]\nSee [DIFF](http://x) and [DIFF][1] and ![DIFF](img)\n[DIFF]: http://ref\n- [ ] task [repo_name]";
        let slots = slots_in(Dialect::Bracket, body, &[spec("DIFF")]).expect("bound");
        assert_eq!(texts(body, &slots), ["[DIFF]"]);
    }

    #[test]
    fn slots_outside_the_rendered_regions_are_not_bound() {
        let body = "| `[REPO]` | the repository |\n```text\nRepo: [REPO]\n```\n";
        let start = body.find("Repo:").expect("region");
        let slots = find_slots(
            Dialect::Bracket,
            body,
            &[spec("REPO")],
            std::slice::from_ref(&(start..body.len())),
            false,
        )
        .expect("bound");
        assert_eq!(slots.len(), 1);
        assert!(slots[0].range.start > start);
    }

    fn texts<'a>(body: &'a str, slots: &[Slot]) -> Vec<&'a str> {
        slots.iter().map(|slot| &body[slot.range.clone()]).collect()
    }

    #[test]
    fn double_brace_binds_only_declared_names() {
        let body =
            "a {{PROJECT_REQUEST}} b {{ PROJECT_REQUEST }} c {{OTHER}} d {{{PROJECT_REQUEST}}}";
        let slots =
            slots_in(Dialect::DoubleBrace, body, &[spec("PROJECT_REQUEST")]).expect("bound");
        assert_eq!(
            texts(body, &slots),
            ["{{PROJECT_REQUEST}}", "{{ PROJECT_REQUEST }}"]
        );
    }

    #[test]
    fn single_brace_leaves_shell_and_ci_braces_alone() {
        let body = "deploy {PROJECT_NAME} v{VERSION} --environment Variables={...} ${{ secrets.X }} {{PROJECT_NAME}}";
        let slots = slots_in(Dialect::SingleBrace, body, &[spec("PROJECT_NAME")]).expect("bound");
        assert_eq!(texts(body, &slots), ["{PROJECT_NAME}"]);
    }

    #[test]
    fn dollar_needs_a_name_boundary() {
        let body = "`$FLAG` and ${FLAG} but not $FLAGS or $FLAG_X; $NOTES.";
        let slots = slots_in(Dialect::Dollar, body, &[spec("FLAG"), spec("NOTES")]).expect("bound");
        assert_eq!(texts(body, &slots), ["$FLAG", "${FLAG}", "$NOTES"]);
    }

    #[test]
    fn form_lines_bind_inside_their_section_only() {
        let body = "- Version:\n<release_package>\n- Version:\n- Risk level:\n</release_package>\n";
        let mut version = spec("VERSION");
        version.section = Some("release_package".into());
        version.label = Some("Version".into());
        let slots = slots_in(Dialect::Form, body, &[version]).expect("bound");
        assert_eq!(slots.len(), 1);
        assert_eq!(slots[0].range, 39..39);
        assert_eq!(
            &body[..slots[0].range.start],
            "- Version:\n<release_package>\n- Version:"
        );
    }

    #[test]
    fn option_lists_bind_through_their_labels() {
        let body = "- **Software Type**: {{web_application_mobile_app}}\nOBJECTIVES:\n{{goals_and_targets}}\n\nExample: {{software_type}}: Mobile\n";
        let mut software = spec("software_type");
        software.label = Some("Software Type".into());
        let mut goals = spec("objectives");
        goals.label = Some("OBJECTIVES:".into());
        let slots = slots_in(Dialect::OptionList, body, &[software, goals]).expect("bound");
        assert_eq!(
            texts(body, &slots),
            ["{{web_application_mobile_app}}", "{{goals_and_targets}}"]
        );
    }

    #[test]
    fn an_input_without_a_placeholder_is_named() {
        let error =
            slots_in(Dialect::DoubleBrace, "no placeholders", &[spec("X")]).expect_err("unbound");
        assert_eq!(error.0, 0);
        assert!(error.1.contains("{{X}}"), "{}", error.1);
    }

    #[test]
    fn tags_are_collected_without_comments_or_operators() {
        let tags =
            tag_names("<role>\n</role> a < b <!-- c --> <inputs> <release_package>\n<Think>");
        let tags: Vec<_> = tags.into_iter().collect();
        assert_eq!(tags, ["inputs", "release_package", "role", "think"]);
    }

    #[test]
    fn literal_placeholders_are_listed_for_people() {
        let body = "v{DATE} {PROJECT_NAME} ${{ secrets.X }} {...}";
        let slots = slots_in(Dialect::SingleBrace, body, &[spec("PROJECT_NAME")]).expect("bound");
        let literal: Vec<_> = literal_placeholders(body, &slots).into_iter().collect();
        assert_eq!(literal, ["{DATE}"]);
    }
}
