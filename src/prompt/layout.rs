//! Where the template is in the body, and which messages it becomes.
//!
//! By default the whole body is one user message. A prompt from a collection often says more:
//! a documentation page holds the prompt in a fenced block (`## Prompt` then ```` ```text ````),
//! or in sections (`## System Instruction`, `## User Prompt Template`); a fabric pattern is a
//! system prompt whose input is sent as the user message; a `.prompty` file marks its roles
//! with `system:` / `user:` lines. The agent's `messages:` key says which, and only those parts
//! of the body are rendered and sent; the rest of the page stays in the file, unrendered.

use std::ops::Range;

use serde::Serialize;

use crate::model::Role;

/// Where one message's text comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartSource {
    /// These bytes of the body, rendered as a template.
    Body(Range<usize>),
    /// The inputs that have no placeholder, one after the other (a fabric pattern's input).
    Inputs,
}

/// One message the prompt becomes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessagePart {
    /// Who speaks it.
    pub role: Role,
    /// What it holds.
    pub source: PartSource,
}

/// The default layout: the whole body as one user message.
pub(crate) fn whole(body: &str) -> Vec<MessagePart> {
    vec![MessagePart {
        role: Role::User,
        source: PartSource::Body(0..body.len()),
    }]
}

/// Read the `messages:` declaration against `body`.
pub(crate) fn parse(decl: &serde_yaml_ng::Value, body: &str) -> Result<Vec<MessagePart>, String> {
    use serde_yaml_ng::Value;
    match decl {
        Value::String(keyword) if keyword == "marked" => marked(body),
        Value::Sequence(items) => {
            let mut parts = Vec::new();
            for (index, item) in items.iter().enumerate() {
                let at = |message: String| format!("`messages` item {}: {message}", index + 1);
                let Value::Mapping(map) = item else {
                    return Err(at("write it as `{ role: user, from: body }`".into()));
                };
                let mut role = None;
                let mut source = None;
                for (key, value) in map {
                    let key = key.as_str().unwrap_or_default();
                    let mut set = |found: Result<PartSource, String>| -> Result<(), String> {
                        if source.is_some() {
                            return Err(at(
                                "give one of `from`, `section` and `fence`, not several".into(),
                            ));
                        }
                        source = Some(found.map_err(&at)?);
                        Ok(())
                    };
                    match key {
                        "role" => {
                            role = Some(match value.as_str() {
                                Some("system") => Role::System,
                                Some("user") => Role::User,
                                Some("assistant") => Role::Assistant,
                                _ => {
                                    return Err(at(
                                        "`role` is one of `system`, `user`, `assistant`".into(),
                                    ));
                                }
                            })
                        }
                        "from" => set(match value.as_str() {
                            Some("body") => Ok(PartSource::Body(0..body.len())),
                            Some("inputs") => Ok(PartSource::Inputs),
                            _ => Err("`from` is `body` or `inputs`".into()),
                        })?,
                        "section" => set(match value.as_str() {
                            Some(heading) => section(body, heading).map(PartSource::Body),
                            None => Err("`section` takes a heading's text".into()),
                        })?,
                        "fence" => set(match value {
                            Value::String(heading) => {
                                fence(body, Some(heading)).map(PartSource::Body)
                            }
                            Value::Number(n) if n.as_u64() == Some(1) => {
                                fence(body, None).map(PartSource::Body)
                            }
                            _ => Err(
                                "`fence` takes the heading the fenced block follows, or 1 for the body's first fence"
                                    .into(),
                            ),
                        })?,
                        other => {
                            return Err(at(format!(
                                "unknown key `{other}` (known: role, from, section, fence)"
                            )));
                        }
                    }
                }
                let role = role.ok_or_else(|| at("it needs a `role`".into()))?;
                let source = source
                    .ok_or_else(|| at("it needs one of `from`, `section` or `fence`".into()))?;
                parts.push(MessagePart { role, source });
            }
            if parts.is_empty() {
                return Err("`messages` lists no message".into());
            }
            Ok(parts)
        }
        _ => Err("`messages` is `marked` or a list such as `[{ role: system, from: body }, { role: user, from: inputs }]`".into()),
    }
}

/// A line that marks a role in a `.prompty` body: `system:`, `user:`, `assistant:` alone on
/// their line, in any case.
fn role_marker(line: &str) -> Option<Role> {
    let word = line.trim().strip_suffix(':')?.trim();
    match word.to_ascii_lowercase().as_str() {
        "system" => Some(Role::System),
        "user" => Some(Role::User),
        "assistant" => Some(Role::Assistant),
        _ => None,
    }
}

/// The body split at its role marker lines; the markers themselves are not sent.
fn marked(body: &str) -> Result<Vec<MessagePart>, String> {
    let mut parts: Vec<(Role, usize)> = Vec::new();
    let mut ends = Vec::new();
    let mut offset = 0;
    let mut before_first = 0..0;
    for line in body.split_inclusive('\n') {
        if let Some(role) = role_marker(line) {
            if parts.is_empty() {
                before_first = 0..offset;
            } else {
                ends.push(offset);
            }
            parts.push((role, offset + line.len()));
        }
        offset += line.len();
    }
    ends.push(body.len());
    if parts.is_empty() {
        return Err("`messages: marked` needs role lines (`system:`, `user:`) in the body".into());
    }
    if !body[before_first].trim().is_empty() {
        return Err("text comes before the first role line; it would be sent as no one's".into());
    }
    Ok(parts
        .into_iter()
        .zip(ends)
        .map(|((role, start), end)| MessagePart {
            role,
            source: PartSource::Body(trimmed(body, start..end)),
        })
        .collect())
}

/// `range` without the blank lines and spaces at either end.
fn trimmed(body: &str, range: Range<usize>) -> Range<usize> {
    let text = &body[range.clone()];
    let start = range.start + (text.len() - text.trim_start().len());
    let end = range.end - (text.len() - text.trim_end().len());
    start..end.max(start)
}

/// An ATX heading line (`## Prompt`): its level and text, or none.
fn heading(line: &str) -> Option<(usize, &str)> {
    let trimmed = line.trim_start_matches(' ');
    if line.len() - trimmed.len() > 3 {
        return None;
    }
    let level = trimmed.bytes().take_while(|&b| b == b'#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &trimmed[level..];
    if !rest.is_empty() && !rest.starts_with([' ', '\t', '\n', '\r']) {
        return None;
    }
    Some((level, rest.trim().trim_end_matches('#').trim()))
}

/// A fence line: its character, its length, its info string, and its indent.
fn fence_line(line: &str) -> Option<(u8, usize, &str, usize)> {
    let content = line.trim_end_matches(['\n', '\r']);
    let stripped = content.trim_start_matches(' ');
    let indent = content.len() - stripped.len();
    let marker = *stripped.as_bytes().first()?;
    if marker != b'`' && marker != b'~' {
        return None;
    }
    let length = stripped.bytes().take_while(|&b| b == marker).count();
    if length < 3 {
        return None;
    }
    let info = stripped[length..].trim();
    if marker == b'`' && info.contains('`') {
        return None;
    }
    Some((marker, length, info, indent))
}

/// Lines of `body` with their byte offsets, and whether each is inside a fenced block, read
/// the way CommonMark reads fences (for finding headings outside code).
fn lines_outside_fences(body: &str) -> Vec<(usize, &str, bool)> {
    let mut lines = Vec::new();
    let mut offset = 0;
    let mut open: Option<(u8, usize)> = None;
    for line in body.split_inclusive('\n') {
        let fence = fence_line(line).filter(|f| f.3 <= 3);
        let inside = match (open, fence) {
            (None, Some((marker, length, _, _))) => {
                open = Some((marker, length));
                true
            }
            (Some((marker, length)), Some((m, l, info, _)))
                if m == marker && l >= length && info.is_empty() =>
            {
                open = None;
                true
            }
            (Some(_), _) => true,
            (None, None) => false,
        };
        lines.push((offset, line, inside));
        offset += line.len();
    }
    lines
}

/// Compare two heading texts as people read them: case, Unicode spaces and dashes folded.
fn same_heading(a: &str, b: &str) -> bool {
    crate::text::fold(a) == crate::text::fold(b)
}

/// The content of the section under the heading `wanted`, up to the next heading of the
/// same or a higher level.
pub(crate) fn section(body: &str, wanted: &str) -> Result<Range<usize>, String> {
    let lines = lines_outside_fences(body);
    let mut found = None;
    for (index, &(offset, line, inside)) in lines.iter().enumerate() {
        if inside {
            continue;
        }
        if let Some((level, text)) = heading(line)
            && same_heading(text, wanted)
        {
            found = Some((index, level, offset + line.len()));
            break;
        }
    }
    let (index, level, start) =
        found.ok_or_else(|| format!("no heading `{wanted}` in the body"))?;
    let end = lines[index + 1..]
        .iter()
        .find(|&&(_, line, inside)| !inside && heading(line).is_some_and(|(l, _)| l <= level))
        .map_or(body.len(), |&(offset, _, _)| offset);
    Ok(trimmed(body, start..end))
}

/// The content of the first fenced block after the heading `after` (or of the body's first
/// fenced block). Fences inside it are read as the page's author nested them: a fence with an
/// info string opens an inner block, a bare fence (or one with the outer block's own info
/// string) closes the innermost open one, and a bare fence closes the outer block only when
/// no inner block is open. CommonMark would end the outer block at its first bare fence,
/// which cuts most prompts that show example outputs in fences short; [`fence_hazard`] tells
/// when the two readings differ.
pub(crate) fn fence(body: &str, after: Option<&str>) -> Result<Range<usize>, String> {
    fence_extent(body, after).map(|(range, _)| range)
}

/// Where the CommonMark reading of the same fence would end it, when that differs from ours.
pub(crate) fn fence_hazard(body: &str, after: Option<&str>) -> Option<usize> {
    fence_extent(body, after)
        .ok()
        .and_then(|(_, hazard)| hazard)
}

fn fence_extent(body: &str, after: Option<&str>) -> Result<(Range<usize>, Option<usize>), String> {
    let lines = lines_outside_fences(body);
    let first = match after {
        Some(wanted) => {
            lines
                .iter()
                .position(|&(_, line, inside)| {
                    !inside && heading(line).is_some_and(|(_, text)| same_heading(text, wanted))
                })
                .ok_or_else(|| format!("no heading `{wanted}` in the body"))?
                + 1
        }
        None => 0,
    };
    let open_index = lines[first..]
        .iter()
        .position(|&(_, line, _)| fence_line(line).is_some_and(|f| f.3 <= 3))
        .map(|i| first + i)
        .ok_or_else(|| match after {
            Some(wanted) => format!("no fenced block after the heading `{wanted}`"),
            None => "the body holds no fenced block".into(),
        })?;
    extent_from(&lines, open_index, body)
}

/// The content of the fenced block whose opening line starts at byte `opener` of `body`,
/// read as [`fence`] reads it; and where CommonMark would end it instead, if elsewhere.
pub(crate) fn fence_at(body: &str, opener: usize) -> Result<(Range<usize>, Option<usize>), String> {
    let lines = lines_outside_fences(body);
    let open_index = lines
        .iter()
        .position(|&(offset, _, _)| offset == opener)
        .ok_or("no line starts there")?;
    extent_from(&lines, open_index, body)
}

fn extent_from(
    lines: &[(usize, &str, bool)],
    open_index: usize,
    body: &str,
) -> Result<(Range<usize>, Option<usize>), String> {
    let (outer_marker, outer_length, outer_info, _) =
        fence_line(lines[open_index].1).ok_or("not a fence line")?;
    let start = lines[open_index].0 + lines[open_index].1.len();
    let mut depth = 0usize;
    let mut commonmark_end = None;
    for &(offset, line, _) in &lines[open_index + 1..] {
        let Some((marker, length, info, indent)) = fence_line(line) else {
            continue;
        };
        let closes_outer_in_commonmark =
            marker == outer_marker && length >= outer_length && info.is_empty() && indent <= 3;
        if closes_outer_in_commonmark && commonmark_end.is_none() {
            commonmark_end = Some(offset);
        }
        if depth == 0 {
            if closes_outer_in_commonmark {
                let hazard = commonmark_end.filter(|&end| end != offset);
                return Ok((
                    start..offset,
                    hazard.map(|end| crate::text::line_of(body, end)),
                ));
            }
            if !info.is_empty() {
                depth = 1;
            }
        } else if info.is_empty() || info == outer_info {
            depth -= 1;
        } else {
            depth += 1;
        }
    }
    Err("the fenced block is never closed".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(body: &str, range: &Range<usize>) -> String {
        body[range.clone()].to_owned()
    }

    #[test]
    fn a_fence_with_examples_inside_is_read_as_its_author_nested_it() {
        let body = "# Page\n\n## Prompt\n\n```text\nReview [DIFF].\n```diff\n[DIFF]\n```text\nAnswer as:\n```markdown\n## Report\n  ```python\n  code\n  ```\n```text\nNow review.\n```\n\n## Variables\n";
        let range = fence(body, Some("Prompt")).expect("found");
        assert_eq!(
            text(body, &range),
            "Review [DIFF].\n```diff\n[DIFF]\n```text\nAnswer as:\n```markdown\n## Report\n  ```python\n  code\n  ```\n```text\nNow review.\n"
        );
        assert_eq!(
            fence_hazard(body, Some("Prompt")),
            Some(15),
            "CommonMark would stop at the indented bare fence"
        );
    }

    #[test]
    fn a_page_wrapped_in_one_fence_is_its_content() {
        let body = "```md\nPlan:\n```markdown\n# Title\n```yaml\na: 1\n```\n```\nDone.\n```\n";
        let range = fence(body, None).expect("found");
        assert_eq!(
            text(body, &range),
            "Plan:\n```markdown\n# Title\n```yaml\na: 1\n```\n```\nDone.\n"
        );
    }

    #[test]
    fn sections_end_at_the_next_heading_of_their_level() {
        let body = "# Title\n## System Instruction\nYou are X.\n### Detail\nmore\n```\n## not a heading\n```\n## User Prompt Template\n- **Title**: {title}\n";
        let system = section(body, "system instruction").expect("found");
        assert_eq!(
            text(body, &system),
            "You are X.\n### Detail\nmore\n```\n## not a heading\n```"
        );
        let user = section(body, "User Prompt Template").expect("found");
        assert_eq!(text(body, &user), "- **Title**: {title}");
        assert!(section(body, "Missing").is_err());
    }

    #[test]
    fn role_lines_split_a_prompty_body() {
        let body = "\nsystem:\nYou grade answers.\n\nUser:\n{{question}}\n";
        let parts = marked(body).expect("marked");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].role, Role::System);
        assert_eq!(parts[1].role, Role::User);
        let PartSource::Body(user) = &parts[1].source else {
            panic!("a body part")
        };
        assert_eq!(text(body, user), "{{question}}");
        assert!(
            marked("Hello\nuser:\nx").is_err(),
            "text before the first role"
        );
    }

    #[test]
    fn message_lists_are_checked_with_their_item() {
        let decl: serde_yaml_ng::Value =
            serde_yaml_ng::from_str("[{ role: system, from: body }, { role: user, from: inputs }]")
                .expect("yaml");
        let parts = parse(&decl, "You summarise.").expect("parses");
        assert_eq!(parts[1].source, PartSource::Inputs);
        let bad: serde_yaml_ng::Value =
            serde_yaml_ng::from_str("[{ role: user, from: body, fence: 1 }]").expect("yaml");
        let error = parse(&bad, "x").expect_err("two sources");
        assert!(error.contains("item 1"), "{error}");
    }
}
