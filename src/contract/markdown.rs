//! Judging a markdown deliverable against its [`Scaffold`].

use std::ops::Range;

use super::outline::{Heading, Outline};
use super::scaffold::{
    FrontMatterSpec, LineRef, ListSpec, Matching, NamedLine, Scaffold, SectionSpec, Strictness,
};
use super::verdict::{Location, Severity, Violation};
use crate::text::{self, fold, fold_tight};

/// The judgement of a markdown deliverable, before it becomes a verdict.
pub(crate) struct MarkdownJudgement {
    pub(crate) findings: Vec<Violation>,
    pub(crate) repairs: Vec<String>,
    pub(crate) deliverable: String,
}

/// Judge `deliverable`; `reply_line` maps a byte offset in it to a line of the reply.
pub(crate) fn judge(
    scaffold: &Scaffold,
    deliverable: &str,
    reply_line: &dyn Fn(usize) -> usize,
) -> MarkdownJudgement {
    let mut findings = Vec::new();
    let mut repairs = Vec::new();
    let unwrapped = unwrap_fence(deliverable);
    if unwrapped.is_some() {
        repairs.push("took the document out of the code fence around it".to_owned());
        findings.push(Violation::soft(
            "markdown.wrapped",
            Location::document(),
            "the document is wrapped in a code fence; send the markdown itself",
        ));
    }
    let (document, segments) = unwrapped.unwrap_or_else(|| (deliverable.to_owned(), vec![(0, 0)]));
    // A declared front matter block is read on its own and blanked for the other checks (its
    // `---` lines would read as a rule and a setext heading), keeping every offset in place.
    let front_matter = scaffold
        .front_matter
        .as_ref()
        .and_then(|_| FrontMatter::find(&document));
    let checked = match &front_matter {
        Some(block) if block.closed => blank(&document, block.range.clone()),
        // An unclosed block's end cannot be told: the document is checked as written.
        _ => document.clone(),
    };
    let outline = Outline::parse(&checked);
    let to_deliverable = |offset: usize| {
        let (document_start, source_start) = segments
            .iter()
            .rev()
            .find(|(start, _)| *start <= offset)
            .copied()
            .unwrap_or((0, 0));
        source_start + (offset - document_start)
    };
    let checker = Checker {
        document: &checked,
        original: &document,
        outline: &outline,
        line: &|offset| reply_line(to_deliverable(offset)),
        title: std::cell::Cell::new(None),
        sections: &scaffold.sections,
    };
    checker.check(scaffold, front_matter.as_ref(), &mut findings);
    MarkdownJudgement {
        findings,
        repairs,
        deliverable: document,
    }
}

/// A document wrapped in a fence marked `markdown` or `md` (or unmarked and opening on a
/// heading), perhaps with prose around it: the text without the two fence lines, and where
/// each stretch of it starts in the original (document offset, original offset).
///
/// The closing fence is the last bare fence line of the text: a scaffold copied from a prompt
/// nests other fences (seed 000's ```yaml) that close nothing.
fn unwrap_fence(text: &str) -> Option<(String, Vec<(usize, usize)>)> {
    let mut offset = 0;
    let mut opening = None;
    let lines: Vec<(usize, &str)> = text
        .split_inclusive('\n')
        .map(|line| {
            let start = offset;
            offset += line.len();
            (start, line)
        })
        .collect();
    for (index, (start, line)) in lines.iter().enumerate() {
        let trimmed = line.trim_end();
        let marker_len = trimmed.bytes().take_while(|&b| b == b'`').count();
        if marker_len < 3 {
            continue;
        }
        let info = trimmed[marker_len..].trim().to_ascii_lowercase();
        let next_is_heading = lines
            .get(index + 1)
            .is_some_and(|(_, next)| next.trim_start().starts_with('#'));
        if matches!(info.as_str(), "markdown" | "md") || (info.is_empty() && next_is_heading) {
            opening = Some((*start, line.len(), marker_len));
        }
        break;
    }
    let (open_start, open_len, marker_len) = opening?;
    let (close_start, close_line) = lines.iter().rev().find(|(start, line)| {
        let trimmed = line.trim();
        *start > open_start && trimmed.len() >= marker_len && trimmed.bytes().all(|b| b == b'`')
    })?;
    let inner_start = open_start + open_len;
    let after_start = close_start + close_line.len();
    let mut document = String::with_capacity(text.len());
    document.push_str(&text[..open_start]);
    let mut segments = vec![(0, 0), (document.len(), inner_start)];
    document.push_str(&text[inner_start..*close_start]);
    segments.push((document.len(), after_start));
    document.push_str(&text[after_start..]);
    Some((document, segments))
}

/// A YAML front matter block at the top of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FrontMatter {
    /// From its opening `---` to the end of its closing line (or of the document).
    range: Range<usize>,
    /// The YAML between the two lines.
    yaml: Range<usize>,
    /// Closed by a `---` (or `...`) line.
    closed: bool,
}

impl FrontMatter {
    /// The block, when the document's first non-blank line is `---`.
    fn find(document: &str) -> Option<FrontMatter> {
        let mut offset = 0;
        let mut lines = document.split_inclusive('\n');
        let mut start = None;
        for line in lines.by_ref() {
            if line.trim().is_empty() {
                offset += line.len();
                continue;
            }
            if line.trim_end() == "---" {
                start = Some(offset);
                offset += line.len();
            }
            break;
        }
        let start = start?;
        let yaml_start = offset;
        for line in lines {
            if matches!(line.trim_end(), "---" | "...") {
                return Some(FrontMatter {
                    range: start..offset + line.len(),
                    yaml: yaml_start..offset,
                    closed: true,
                });
            }
            offset += line.len();
        }
        Some(FrontMatter {
            range: start..document.len(),
            yaml: yaml_start..document.len(),
            closed: false,
        })
    }
}

/// `text` with `range` turned to spaces, its line breaks kept: offsets and lines stay put.
fn blank(text: &str, range: Range<usize>) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for byte in &mut bytes[range] {
        if *byte != b'\n' {
            *byte = b' ';
        }
    }
    // Whole lines of UTF-8 turned to ASCII spaces stay UTF-8.
    String::from_utf8(bytes).unwrap_or_else(|_| text.to_owned())
}

struct Checker<'a> {
    /// The document the structural checks read (a declared front matter blanked).
    document: &'a str,
    /// The document as written.
    original: &'a str,
    outline: &'a Outline,
    line: &'a dyn Fn(usize) -> usize,
    /// The title heading's offset, once found.
    title: std::cell::Cell<Option<usize>>,
    /// Every section of the scaffold, at every level.
    sections: &'a [SectionSpec],
}

/// Does a named (not patterned) section anywhere in `specs` match `heading`?
fn names_elsewhere(specs: &[SectionSpec], heading: &str) -> bool {
    specs.iter().any(|spec| {
        (spec.matching != Matching::Regex && spec.matches(heading))
            || names_elsewhere(&spec.subsections, heading)
    })
}

/// Where a missing section stands instead: a heading at another level, or a line of text.
enum StandIn<'h> {
    Level(&'h Heading),
    Text { offset: usize, line: String },
}

/// A line that reads like a heading written as text: bold alone on its line (`**Changes**`),
/// or ending with a colon (`CHANGES:`). The text inside, and whether it is so marked.
fn pseudo_heading(line: &str) -> Option<(String, bool)> {
    let trimmed = line.trim();
    if trimmed.is_empty() || trimmed.chars().count() > 120 || trimmed.starts_with(['#', '|', '>']) {
        return None;
    }
    let unmarked = trimmed.trim_end_matches(':').trim_end();
    for marker in ["**", "__"] {
        if let Some(inner) = unmarked
            .strip_prefix(marker)
            .and_then(|rest| rest.strip_suffix(marker))
            .filter(|inner| !inner.contains(marker))
        {
            return Some((inner.trim().trim_end_matches(':').trim().to_owned(), true));
        }
    }
    Some((unmarked.to_owned(), trimmed.ends_with(':')))
}

fn push(
    findings: &mut Vec<Violation>,
    strictness: Strictness,
    rule: &str,
    location: Location,
    message: String,
) {
    match strictness {
        Strictness::Hard => findings.push(Violation::hard(rule, location, message)),
        Strictness::Soft => findings.push(Violation::soft(rule, location, message)),
        Strictness::Allowed => {}
    }
}

impl Checker<'_> {
    fn at(&self, heading: &Heading) -> Location {
        Location::line((self.line)(heading.offset), Some(heading_line(heading)))
    }

    fn at_offset(&self, offset: usize, heading: Option<&Heading>) -> Location {
        Location::line((self.line)(offset), heading.map(heading_line))
    }

    fn check(
        &self,
        scaffold: &Scaffold,
        front_matter: Option<&FrontMatter>,
        findings: &mut Vec<Violation>,
    ) {
        if self.document.trim().is_empty() && front_matter.is_none() {
            // One finding says it all; listing every missing section would bury it.
            findings.push(Violation::hard(
                "markdown.empty",
                Location::document(),
                "the deliverable is empty: no document follows the reasoning",
            ));
            return;
        }
        if let Some(spec) = &scaffold.front_matter {
            self.check_front_matter(spec, front_matter, findings);
        }
        let headings = &self.outline.headings;
        // Sections sit at the level of the first heading that names one, whatever the title.
        let discovered_level = headings
            .iter()
            .find(|h| scaffold.sections.iter().any(|s| s.matches(&h.text)))
            .map(|h| h.level);
        let (title, section_level) = match &scaffold.title {
            Some(spec) => {
                let title = headings.iter().find(|h| spec.matches(&h.text));
                self.title.set(title.map(|t| t.offset));
                match title {
                    Some(title) => (Some(title), title.level + 1),
                    None => {
                        let as_text = (spec.matching != Matching::Regex)
                            .then(|| self.text_stand_in(&spec.text, spec.matching))
                            .flatten()
                            .map(|(offset, line)| {
                                format!(
                                    "; found `{}` as plain text at line {}, not as a heading",
                                    text::quote(&line, 80),
                                    (self.line)(offset)
                                )
                            })
                            .unwrap_or_default();
                        let first = headings
                            .first()
                            .map(|h| {
                                format!(
                                    "; the first heading is `{}` (line {})",
                                    heading_line(h),
                                    (self.line)(h.offset)
                                )
                            })
                            .unwrap_or_else(|| "; the document has no headings".into());
                        findings.push(Violation::hard(
                            "markdown.title",
                            Location::document(),
                            format!("no title heading `{}`{first}{as_text}", spec.label()),
                        ));
                        (None, discovered_level.unwrap_or(2))
                    }
                }
            }
            None => (None, discovered_level.unwrap_or(2)),
        };
        let start = title.map_or(0, |t| t.offset);
        self.check_preamble(scaffold, title, section_level, findings);
        let range = start..self.document.len();
        let matched = self.check_sections(
            &scaffold.sections,
            range,
            section_level,
            scaffold.extra_sections,
            None,
            findings,
        );
        self.check_trailing(scaffold, findings);
        self.check_required_lines(scaffold, findings);
        self.check_lines(scaffold, findings);
        self.check_soft(scaffold, title, &matched, findings);
    }

    /// Text before the title, or before the first section when the scaffold has no title.
    fn check_preamble(
        &self,
        scaffold: &Scaffold,
        title: Option<&Heading>,
        section_level: usize,
        findings: &mut Vec<Violation>,
    ) {
        let end = match title {
            Some(title) => title.offset,
            None => self
                .outline
                .headings
                .iter()
                .find(|h| h.level >= section_level)
                .map_or(0, |h| h.offset),
        };
        // Without a scaffold title, a higher-level heading before the sections is the document's own title.
        let own_titles: Vec<usize> = self
            .outline
            .headings
            .iter()
            .filter(|h| title.is_none() && h.offset < end && h.level < section_level)
            .map(|h| h.offset)
            .collect();
        let mut first = None;
        let mut pieces = Vec::new();
        let mut offset = 0;
        for line in self.document[..end].split_inclusive('\n') {
            if !line.trim().is_empty() && !own_titles.contains(&offset) {
                first.get_or_insert(offset);
                pieces.push(line.trim());
            }
            offset += line.len();
        }
        if let Some(first) = first {
            let preamble = pieces.join("\n");
            let what = if title.is_some() {
                "the title"
            } else {
                "the first section"
            };
            push(
                findings,
                scaffold.preamble,
                "markdown.preamble",
                Location::line((self.line)(first), None),
                format!("text before {what}: \"{}\"", text::quote(&preamble, 80)),
            );
        }
    }

    /// Check the sections of `specs` among the headings of `level` inside `range`.
    /// Returns the matched sections: (spec index, heading, content range).
    fn check_sections<'h>(
        &'h self,
        specs: &[SectionSpec],
        range: Range<usize>,
        level: usize,
        extra: Strictness,
        parent: Option<&Heading>,
        findings: &mut Vec<Violation>,
    ) -> Vec<(usize, &'h Heading, Range<usize>)> {
        let headings: Vec<&Heading> = self
            .outline
            .headings
            .iter()
            .filter(|h| range.contains(&h.offset) && h.level == level)
            .collect();
        let mut matched: Vec<(usize, &Heading, Range<usize>)> = Vec::new();
        let mut unmatched: Vec<&Heading> = Vec::new();
        for heading in &headings {
            // A heading the scaffold names outright is that section; a pattern (`.+`) takes a
            // heading only while its section is still open and nothing after it was seen.
            let named = specs
                .iter()
                .position(|s| s.matching != Matching::Regex && s.matches(&heading.text));
            let patterned = || {
                specs.iter().enumerate().position(|(index, s)| {
                    s.matching == Matching::Regex
                        && s.matches(&heading.text)
                        && !matched.iter().any(|(seen, _, _)| *seen >= index)
                })
            };
            let Some(index) = named.or_else(patterned) else {
                unmatched.push(heading);
                // A section of the scaffold at the wrong level is reported as such where it
                // belongs, not as a section the scaffold does not know.
                if names_elsewhere(self.sections, &heading.text) {
                    continue;
                }
                push(
                    findings,
                    extra,
                    "markdown.extra-section",
                    self.at(heading),
                    format!("section `{}` is not in the scaffold", heading.text),
                );
                continue;
            };
            if matched.iter().any(|(seen, _, _)| *seen == index) {
                findings.push(Violation::hard(
                    "markdown.duplicate-section",
                    self.at(heading),
                    format!("section `{}` appears more than once", specs[index].heading),
                ));
                continue;
            }
            matched.push((index, heading, self.section_range(heading, range.end)));
        }
        self.check_order(specs, &matched, findings);
        let required = specs.iter().filter(|s| !s.optional).count();
        if matched.is_empty() && required > 1 && parent.is_none() {
            // Not one section: say so once, rather than once per section.
            let as_text: Vec<(usize, String)> = specs
                .iter()
                .filter(|s| !s.optional && s.matching != Matching::Regex)
                .filter_map(|s| self.text_stand_in(&s.heading, s.matching))
                .collect();
            let bold = self.bold_lines();
            let hint = if let Some((offset, line)) = as_text.iter().min_by_key(|(o, _)| *o) {
                format!(
                    "; {} of them are written as plain text, not as headings (the first: `{}` at line {})",
                    as_text.len(),
                    text::quote(line, 80),
                    (self.line)(*offset)
                )
            } else if bold > 0 {
                format!("; {bold} bold line(s) look like headings but are not")
            } else {
                String::new()
            };
            findings.push(Violation::hard(
                "markdown.no-sections",
                Location::document(),
                format!(
                    "none of the {required} sections was found: no level-{level} heading names one (expected `{}` first){hint}",
                    specs[0].label()
                ),
            ));
            return matched;
        }
        for (index, spec) in specs.iter().enumerate() {
            if spec.optional || matched.iter().any(|(seen, _, _)| *seen == index) {
                continue;
            }
            let after = specs[..index]
                .iter()
                .rev()
                .find(|s| !s.optional)
                .map(|s| format!(" (expected after `{}`)", s.label()))
                .unwrap_or_default();
            let next = matched
                .iter()
                .filter(|(seen, _, _)| *seen > index)
                .min_by_key(|(seen, _, _)| *seen);
            let (location, end_note) = match (next, matched.last()) {
                (Some((_, heading, _)), _) => (self.at(heading), String::new()),
                // Nothing the scaffold puts later was written: the document stops short.
                (None, Some((_, last, section))) => {
                    let end = self.document[..section.end]
                        .trim_end()
                        .len()
                        .saturating_sub(1);
                    let note = if self.document[section.end..].trim().is_empty() {
                        format!("; the document ends at line {}", (self.line)(end))
                    } else {
                        String::new()
                    };
                    (self.at_offset(end, Some(last)), note)
                }
                (None, None) => (
                    parent.map_or_else(Location::document, |heading| self.at(heading)),
                    String::new(),
                ),
            };
            match self.stand_in(spec, level) {
                Some(StandIn::Level(heading)) => {
                    findings.push(Violation::hard(
                        "markdown.heading-level",
                        self.at(heading),
                        format!(
                            "section `{}` is a level-{} heading (`{}`); it belongs at level {level} (`{} {}`)",
                            spec.heading,
                            heading.level,
                            heading_line(heading),
                            "#".repeat(level),
                            heading.text
                        ),
                    ));
                    continue;
                }
                Some(StandIn::Text { offset, line }) => {
                    findings.push(Violation::hard(
                        "markdown.heading-as-text",
                        self.at_offset(offset, None),
                        format!(
                            "found `{}` as plain text at line {}, not as a heading; write section `{}` as `{} {}`",
                            text::quote(&line, 80),
                            (self.line)(offset),
                            spec.heading,
                            "#".repeat(level),
                            spec.heading
                        ),
                    ));
                    continue;
                }
                None => {}
            }
            let near = unmatched
                .iter()
                .find(|h| spec.matching != Matching::Regex && near_miss(&h.text, &spec.heading))
                .map(|h| {
                    format!(
                        "; did you mean `{}` (line {})?",
                        h.text,
                        (self.line)(h.offset)
                    )
                })
                .unwrap_or_default();
            findings.push(Violation::hard(
                "markdown.missing-section",
                location,
                format!(
                    "section `{}` is missing{after}{end_note}{near}",
                    spec.label()
                ),
            ));
        }
        for (index, heading, section) in &matched {
            self.check_contents(&specs[*index], heading, section.clone(), findings);
        }
        matched
    }

    /// What stands where the missing section `spec` of `level` should be: its heading at
    /// another level, or its heading written as text. A pattern (`match: regex`) would find
    /// stand-ins everywhere, so only named sections have them.
    fn stand_in(&self, spec: &SectionSpec, level: usize) -> Option<StandIn<'_>> {
        if spec.matching == Matching::Regex {
            return None;
        }
        let title = self.title.get();
        let misplaced = self
            .outline
            .headings
            .iter()
            .find(|h| h.level != level && Some(h.offset) != title && spec.matches(&h.text));
        if let Some(heading) = misplaced {
            return Some(StandIn::Level(heading));
        }
        self.text_stand_in(&spec.heading, spec.matching)
            .map(|(offset, line)| StandIn::Text { offset, line })
    }

    /// The first line of text (outside code blocks) that reads as the heading `wanted`: bold
    /// or ending with a colon, or, for an exact heading, the heading's words alone.
    fn text_stand_in(&self, wanted: &str, matching: Matching) -> Option<(usize, String)> {
        let wanted = fold(wanted);
        let names = |text: &str| match matching {
            Matching::Exact => fold(text) == wanted,
            Matching::Prefix => fold(text).starts_with(&wanted),
            Matching::Regex => false,
        };
        let in_code = |offset: usize| {
            self.outline
                .code_blocks
                .iter()
                .any(|b| (b.offset..b.end).contains(&offset))
        };
        let mut offset = 0;
        for line in self.document.split_inclusive('\n') {
            let start = offset;
            offset += line.len();
            if in_code(start) {
                continue;
            }
            let Some((inner, marked)) = pseudo_heading(line) else {
                continue;
            };
            // A sentence that starts like a prefix heading is not one.
            let plain_ok = matching == Matching::Exact;
            if (marked || plain_ok) && names(&inner) {
                return Some((
                    start + (line.len() - line.trim_start().len()),
                    line.trim().to_owned(),
                ));
            }
        }
        None
    }

    /// The YAML front matter block: there, closed, valid YAML, a mapping, every key with a value.
    fn check_front_matter(
        &self,
        spec: &FrontMatterSpec,
        block: Option<&FrontMatter>,
        findings: &mut Vec<Violation>,
    ) {
        let keys = if spec.keys.is_empty() {
            String::new()
        } else {
            format!(
                " with {}",
                spec.keys
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let Some(block) = block else {
            if spec.required {
                let first = self
                    .original
                    .split_inclusive('\n')
                    .scan(0, |offset, line| {
                        let start = *offset;
                        *offset += line.len();
                        Some((start, line))
                    })
                    .find(|(_, line)| !line.trim().is_empty());
                let fenced = first
                    .filter(|(_, line)| {
                        let lower = line.trim().to_ascii_lowercase();
                        lower.starts_with("```yaml") || lower.starts_with("```yml")
                    })
                    .map(|(offset, _)| {
                        format!(
                            "; found a ```yaml block at line {}: front matter goes between `---` lines, not in a code fence",
                            (self.line)(offset)
                        )
                    })
                    .unwrap_or_default();
                findings.push(Violation::hard(
                    "markdown.front-matter",
                    Location::document(),
                    format!(
                        "the document does not open with a YAML front matter block (`---` … `---`){keys}{fenced}"
                    ),
                ));
            }
            return;
        };
        let at = Location::line((self.line)(block.range.start), None);
        if !block.closed {
            findings.push(Violation::hard(
                "markdown.front-matter",
                at,
                "the front matter block is never closed: end it with a `---` line",
            ));
            return;
        }
        let yaml = &self.original[block.yaml.clone()];
        let value = match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(yaml) {
            Ok(value) => value,
            Err(error) => {
                let offset = block.yaml.start + error.location().map_or(0, |l| l.index());
                let message = error.to_string();
                // The parser counts lines inside the block; the location says the reply's.
                let message = message
                    .split(" at line ")
                    .next()
                    .unwrap_or(&message)
                    .to_owned();
                findings.push(Violation::hard(
                    "markdown.front-matter",
                    Location::line((self.line)(offset.min(block.yaml.end)), None),
                    format!("the front matter is not valid YAML: {message}"),
                ));
                return;
            }
        };
        let mapping = value.as_mapping();
        if mapping.is_none() && !matches!(value, serde_yaml_ng::Value::Null) {
            findings.push(Violation::hard(
                "markdown.front-matter",
                at,
                "the front matter is not a mapping of keys to values",
            ));
            return;
        }
        for key in &spec.keys {
            let found = mapping.and_then(|m| m.get(key.as_str()));
            let empty = match found {
                None => Some("is missing"),
                Some(serde_yaml_ng::Value::Null) => Some("has no value"),
                Some(serde_yaml_ng::Value::String(text)) if text.trim().is_empty() => {
                    Some("has no value")
                }
                Some(_) => None,
            };
            if let Some(what) = empty {
                findings.push(Violation::hard(
                    "markdown.front-matter-key",
                    at.clone(),
                    format!("front matter key `{key}` {what}"),
                ));
            }
        }
    }

    /// The rules on single lines, counted from the first non-blank line (after a declared
    /// front matter block).
    fn check_lines(&self, scaffold: &Scaffold, findings: &mut Vec<Violation>) {
        if scaffold.lines.is_empty() {
            return;
        }
        let mut offset = 0;
        let lines: Vec<(usize, &str)> = self
            .document
            .split_inclusive('\n')
            .map(|line| {
                let start = offset;
                offset += line.len();
                (start, line.trim_end_matches(['\n', '\r']))
            })
            .collect();
        let first = lines.iter().position(|(_, l)| !l.trim().is_empty());
        let last = lines.iter().rposition(|(_, l)| !l.trim().is_empty());
        for rule in &scaffold.lines {
            let index = match (rule.line, first, last) {
                (LineRef::Number(number), Some(first), _) => Some(first + number.saturating_sub(1)),
                (LineRef::Named(NamedLine::Last), _, Some(last)) => Some(last),
                _ => None,
            };
            let found = index.and_then(|i| lines.get(i)).copied();
            let mut problems = Vec::new();
            match found {
                None => {
                    if !rule.blank {
                        problems.push(format!(
                            "the document has only {} line(s)",
                            last.map_or(0, |last| last + 1 - first.unwrap_or(0))
                        ));
                    }
                }
                Some((_, line)) => {
                    let chars = line.chars().count();
                    if rule.blank && !line.trim().is_empty() {
                        problems.push("it is not blank".to_owned());
                    }
                    if let Some(max) = rule.max_chars
                        && chars > max
                    {
                        problems.push(format!("it has {chars} characters; at most {max} allowed"));
                    }
                    if let Some(min) = rule.min_chars
                        && chars < min
                    {
                        problems.push(format!(
                            "it has {chars} characters; at least {min} expected"
                        ));
                    }
                    if let (Some(pattern), Some(regex)) = (&rule.pattern, &rule.compiled)
                        && !regex.is_match(line)
                    {
                        problems.push(format!("it does not match `{pattern}`"));
                    }
                }
            }
            if problems.is_empty() {
                continue;
            }
            let (location, quoted) = match found {
                Some((offset, line)) => (
                    Location::line((self.line)(offset), None),
                    format!(" (\"{}\")", text::quote(line, 80)),
                ),
                None => (Location::document(), String::new()),
            };
            let message = format!("{}{quoted}: {}", rule.line, problems.join("; "));
            findings.push(match rule.severity {
                Severity::Hard => Violation::hard("markdown.line", location, message),
                Severity::Soft => Violation::soft("markdown.line", location, message),
            });
        }
    }

    /// Lines that are nothing but bold text, which models write instead of headings.
    fn bold_lines(&self) -> usize {
        self.document
            .lines()
            .map(str::trim)
            .filter(|line| {
                line.len() > 4
                    && line.starts_with("**")
                    && line.trim_end_matches(':').ends_with("**")
            })
            .count()
    }

    /// The content of a section: up to the next heading at its level or above.
    fn section_range(&self, heading: &Heading, limit: usize) -> Range<usize> {
        let end = self
            .outline
            .headings
            .iter()
            .find(|h| h.offset > heading.offset && h.level <= heading.level)
            .map_or(limit, |h| h.offset.min(limit));
        heading.offset..end
    }

    /// Sections that break the scaffold's order: those outside the longest run that keeps it.
    fn check_order(
        &self,
        specs: &[SectionSpec],
        matched: &[(usize, &Heading, Range<usize>)],
        findings: &mut Vec<Violation>,
    ) {
        let order: Vec<usize> = matched.iter().map(|(index, _, _)| *index).collect();
        let keep = longest_increasing(&order);
        for (position, (index, heading, _)) in matched.iter().enumerate() {
            if keep.contains(&position) {
                continue;
            }
            let before = specs[..*index]
                .iter()
                .rev()
                .find(|s| !s.optional)
                .map(|s| s.heading.as_str());
            let after = specs[index + 1..]
                .iter()
                .find(|s| !s.optional)
                .map(|s| s.heading.as_str());
            let place = match (before, after) {
                (Some(b), Some(a)) => format!("after `{b}` and before `{a}`"),
                (Some(b), None) => format!("after `{b}`"),
                (None, Some(a)) => format!("before `{a}`"),
                (None, None) => "elsewhere".to_owned(),
            };
            findings.push(Violation::hard(
                "markdown.section-order",
                self.at(heading),
                format!(
                    "section `{}` is out of order; it belongs {place}",
                    specs[*index].heading
                ),
            ));
        }
    }

    fn check_contents(
        &self,
        spec: &SectionSpec,
        heading: &Heading,
        range: Range<usize>,
        findings: &mut Vec<Violation>,
    ) {
        let inside = |offset: &usize| range.contains(offset) && *offset != range.start;
        for table_spec in &spec.tables {
            let wanted: Vec<String> = table_spec.columns.iter().map(|c| fold_tight(c)).collect();
            let tables: Vec<_> = self
                .outline
                .tables
                .iter()
                .filter(|t| inside(&t.offset))
                .collect();
            let exact = tables
                .iter()
                .find(|t| t.columns.iter().map(|c| fold_tight(c)).collect::<Vec<_>>() == wanted);
            match (exact, tables.first()) {
                (Some(table), _) => {
                    if table.rows < table_spec.min_rows {
                        findings.push(Violation::hard(
                            "markdown.table-rows",
                            self.at_offset(table.offset, Some(heading)),
                            format!(
                                "table has {} row(s); at least {} expected",
                                table.rows, table_spec.min_rows
                            ),
                        ));
                    }
                }
                (None, Some(closest)) => {
                    let found: Vec<String> =
                        closest.columns.iter().map(|c| fold_tight(c)).collect();
                    let missing: Vec<&str> = table_spec
                        .columns
                        .iter()
                        .zip(&wanted)
                        .filter(|(_, w)| !found.contains(w))
                        .map(|(c, _)| c.as_str())
                        .collect();
                    let unexpected: Vec<&str> = closest
                        .columns
                        .iter()
                        .zip(&found)
                        .filter(|(_, f)| !wanted.contains(f))
                        .map(|(c, _)| c.as_str())
                        .collect();
                    let mut detail = Vec::new();
                    if !missing.is_empty() {
                        detail.push(format!("missing {}", list(&missing)));
                    }
                    if !unexpected.is_empty() {
                        detail.push(format!("unexpected {}", list(&unexpected)));
                    }
                    if detail.is_empty() {
                        detail.push("the same columns in another order".into());
                    }
                    findings.push(Violation::hard(
                        "markdown.table-columns",
                        self.at_offset(closest.offset, Some(heading)),
                        format!(
                            "table columns are {}; expected {} ({})",
                            list(
                                &closest
                                    .columns
                                    .iter()
                                    .map(String::as_str)
                                    .collect::<Vec<_>>()
                            ),
                            list(
                                &table_spec
                                    .columns
                                    .iter()
                                    .map(String::as_str)
                                    .collect::<Vec<_>>()
                            ),
                            detail.join("; ")
                        ),
                    ));
                }
                (None, None) => findings.push(Violation::hard(
                    "markdown.table",
                    self.at(heading),
                    format!(
                        "no table in this section; expected one with columns {}",
                        list(
                            &table_spec
                                .columns
                                .iter()
                                .map(String::as_str)
                                .collect::<Vec<_>>()
                        )
                    ),
                )),
            }
        }
        for block in &spec.code_blocks {
            let found = self
                .outline
                .code_blocks
                .iter()
                .filter(|b| inside(&b.offset))
                .any(|b| match (&block.language, &b.language) {
                    (None, _) => true,
                    (Some(wanted), Some(found)) => same_language(wanted, found),
                    (Some(_), None) => false,
                });
            if !found {
                let what = block
                    .language
                    .as_deref()
                    .map_or(String::new(), |l| format!("`{l}` "));
                findings.push(Violation::hard(
                    "markdown.code-block",
                    self.at(heading),
                    format!("no {what}code block in this section"),
                ));
            }
        }
        if spec.checklist && !self.outline.tasks.iter().any(inside) {
            findings.push(Violation::hard(
                "markdown.checklist",
                self.at(heading),
                "no checklist (`- [ ]` or `- [x]` items) in this section",
            ));
        }
        if let Some(list) = &spec.list {
            self.check_list(list, heading, &range, findings);
        }
        if !spec.subsections.is_empty() {
            self.check_sections(
                &spec.subsections,
                range,
                heading.level + 1,
                Strictness::Allowed,
                Some(heading),
                findings,
            );
        }
    }

    fn check_trailing(&self, scaffold: &Scaffold, findings: &mut Vec<Violation>) {
        let last_heading = self.outline.headings.last().map_or(0, |h| h.offset);
        let Some(&rule) = self
            .outline
            .breaks
            .iter()
            .rev()
            .find(|&&b| b > last_heading)
        else {
            return;
        };
        let after_start = self.document[rule..]
            .find('\n')
            .map_or(self.document.len(), |i| rule + i + 1);
        // Closing lines the scaffold asks for (`Environment:`) belong to the document.
        let after: Vec<&str> = self.document[after_start..]
            .lines()
            .filter(|line| {
                !scaffold
                    .required_lines
                    .iter()
                    .any(|wanted| starts_line(line, wanted))
            })
            .collect();
        let after = after.join("\n");
        let after = after.trim();
        if !after.is_empty() {
            push(
                findings,
                scaffold.trailing_text,
                "markdown.trailing-text",
                self.at_offset(rule, self.outline.headings.last()),
                format!(
                    "text after the closing `---`: \"{}\"",
                    text::quote(after, 80)
                ),
            );
        }
    }

    fn check_required_lines(&self, scaffold: &Scaffold, findings: &mut Vec<Violation>) {
        for wanted in &scaffold.required_lines {
            let present = self.document.lines().any(|line| starts_line(line, wanted));
            if !present {
                findings.push(Violation::hard(
                    "markdown.required-line",
                    Location::document(),
                    format!("no line starting `{wanted}`"),
                ));
            }
        }
    }

    /// The section's top-level list items, up to its first subsection: how many, and of
    /// which kind.
    fn check_list(
        &self,
        spec: &ListSpec,
        heading: &Heading,
        section: &Range<usize>,
        findings: &mut Vec<Violation>,
    ) {
        let own_end = self
            .outline
            .headings
            .iter()
            .map(|h| h.offset)
            .find(|&offset| offset > heading.offset && section.contains(&offset))
            .unwrap_or(section.end);
        let items: Vec<bool> = self
            .outline
            .top_items
            .iter()
            .zip(&self.outline.top_numbered)
            .filter(|(offset, _)| (heading.offset..own_end).contains(offset))
            .map(|(_, &numbered)| numbered)
            .collect();
        let count = items.len();
        let kind = |numbered: bool| if numbered { "numbered" } else { "bulleted" };
        if let Some(wanted) = spec.numbered
            && count > 0
            && let Some(off) = items.iter().position(|&n| n != wanted)
        {
            findings.push(Violation::hard(
                "markdown.list",
                self.at(heading),
                format!(
                    "item {} of the list is {}; the section's list must be {}",
                    off + 1,
                    kind(!wanted),
                    kind(wanted)
                ),
            ));
        }
        let (min, max) = match spec.items {
            Some(exact) => (Some(exact), Some(exact)),
            None => (spec.min_items, spec.max_items),
        };
        let wanted = match (min, max) {
            (Some(a), Some(b)) if a == b => format!("exactly {a}"),
            (Some(a), Some(b)) => format!("{a} to {b}"),
            (Some(a), None) => format!("at least {a}"),
            (None, Some(b)) => format!("at most {b}"),
            (None, None) => String::new(),
        };
        if min.is_some_and(|min| count < min) || max.is_some_and(|max| count > max) {
            findings.push(Violation::hard(
                "markdown.list",
                self.at(heading),
                format!("the section's list has {count} item(s); expected {wanted}"),
            ));
        }
    }

    fn check_soft(
        &self,
        scaffold: &Scaffold,
        title: Option<&Heading>,
        matched: &[(usize, &Heading, Range<usize>)],
        findings: &mut Vec<Violation>,
    ) {
        if let Some(range) = scaffold.soft.bullets_per_section {
            for (_, heading, section) in matched {
                let count = self
                    .outline
                    .top_items
                    .iter()
                    .filter(|o| section.contains(o))
                    .count();
                if count < range.min || count > range.max {
                    findings.push(Violation::soft(
                        "markdown.bullets",
                        self.at(heading),
                        format!("{count} bullet(s); {}–{} preferred", range.min, range.max),
                    ));
                }
            }
        }
        if scaffold.soft.title_case_headings {
            let headings = title.into_iter().chain(matched.iter().map(|(_, h, _)| *h));
            for heading in headings {
                if let Some(word) = not_title_case(&heading.text) {
                    findings.push(Violation::soft(
                        "markdown.title-case",
                        self.at(heading),
                        format!("heading is not in Title Case (`{word}`)"),
                    ));
                }
            }
        }
        for placeholder in &scaffold.soft.unfilled_placeholders {
            for (offset, _) in self.document.match_indices(placeholder.as_str()) {
                findings.push(Violation::soft(
                    "markdown.placeholder",
                    self.at_offset(offset, None),
                    format!("placeholder `{placeholder}` was left unfilled"),
                ));
            }
        }
    }
}

/// Is `found` a heading someone meant as `wanted`: the same words but for a number or a
/// small edit, or the same leading words?
fn near_miss(found: &str, wanted: &str) -> bool {
    let strip_number = |text: &str| {
        let folded = fold(text);
        folded
            .trim_start_matches(|c: char| c.is_ascii_digit() || c == '.' || c == ')' || c == ' ')
            .to_owned()
    };
    let (found, wanted) = (strip_number(found), strip_number(wanted));
    if found.is_empty() || wanted.is_empty() {
        return false;
    }
    let first_word = |text: &str| text.split(' ').next().unwrap_or("").to_owned();
    found == wanted
        || text::edit_distance(&found, &wanted) * 4 <= wanted.chars().count()
        || (first_word(&found) == first_word(&wanted) && first_word(&wanted).len() >= 5)
}

/// Does `line` start with `wanted`, ignoring list markers, emphasis, spacing and case?
fn starts_line(line: &str, wanted: &str) -> bool {
    let mut bare = line
        .trim_start()
        .trim_start_matches(['-', '*', '+', '_', ' ', '>', '#']);
    // A numbered item's marker (`1.`, `12)`) is a list marker too.
    let digits = bare.bytes().take_while(u8::is_ascii_digit).count();
    if (1..=3).contains(&digits)
        && let Some(rest) = bare[digits..].strip_prefix(['.', ')'])
        && rest.starts_with(' ')
    {
        bare = rest.trim_start();
    }
    fold(&bare.replace(['*', '_'], "")).starts_with(&fold(wanted))
}

fn heading_line(heading: &Heading) -> String {
    format!("{} {}", "#".repeat(heading.level), heading.text)
}

fn list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|item| format!("`{item}`")).collect();
    format!("[{}]", quoted.join(", "))
}

fn same_language(wanted: &str, found: &str) -> bool {
    let canonical = |language: &str| match language {
        "yml" => "yaml".to_owned(),
        "sh" | "shell" | "zsh" | "console" => "bash".to_owned(),
        other => other.to_owned(),
    };
    canonical(&wanted.to_ascii_lowercase()) == canonical(found)
}

/// Small words that stay lower case inside a Title Case heading.
const MINOR_WORDS: &[&str] = &[
    "a", "an", "and", "as", "at", "but", "by", "for", "from", "in", "into", "nor", "of", "on",
    "or", "per", "the", "to", "via", "vs", "vs.", "with",
];

/// The first word that breaks Title Case, if any.
fn not_title_case(heading: &str) -> Option<String> {
    heading
        .split_whitespace()
        .enumerate()
        .find(|(index, word)| {
            let first = word.chars().find(|c| c.is_alphanumeric());
            let lower = first.is_some_and(char::is_lowercase);
            lower && (*index == 0 || !MINOR_WORDS.contains(&word.to_lowercase().as_str()))
        })
        .map(|(_, word)| word.to_owned())
}

/// Positions (into `order`) of one longest strictly increasing subsequence.
fn longest_increasing(order: &[usize]) -> Vec<usize> {
    let n = order.len();
    let mut length = vec![1usize; n];
    let mut previous = vec![usize::MAX; n];
    for i in 0..n {
        for j in 0..i {
            if order[j] < order[i] && length[j] + 1 > length[i] {
                length[i] = length[j] + 1;
                previous[i] = j;
            }
        }
    }
    let Some(mut at) = (0..n).max_by_key(|&i| (length[i], std::cmp::Reverse(i))) else {
        return Vec::new();
    };
    let mut keep = vec![at];
    while previous[at] != usize::MAX {
        at = previous[at];
        keep.push(at);
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_ordered_run_is_kept() {
        let mut keep = longest_increasing(&[0, 1, 3, 2, 4]);
        keep.sort_unstable();
        assert_eq!(keep.len(), 4);
        assert!(keep.contains(&0) && keep.contains(&1) && keep.contains(&4));
        let mut keep = longest_increasing(&[2, 0, 1]);
        keep.sort_unstable();
        assert_eq!(keep, [1, 2]);
    }

    #[test]
    fn title_case_allows_minor_words_inside() {
        assert_eq!(not_title_case("Go/No-Go Checklist"), None);
        assert_eq!(not_title_case("Verification & Observability"), None);
        assert_eq!(not_title_case("1. Pre-Deployment Checks"), None);
        assert_eq!(not_title_case("Rollback of the Database"), None);
        assert_eq!(
            not_title_case("Rollback preparation"),
            Some("preparation".into())
        );
        assert_eq!(not_title_case("the Plan"), Some("the".into()));
    }

    #[test]
    fn a_fenced_document_is_unwrapped() {
        let (inner, segments) =
            unwrap_fence("```markdown\n# Plan\n```yaml\na: 1\n```\n```").expect("unwrapped");
        assert_eq!(inner, "# Plan\n```yaml\na: 1\n```\n");
        assert_eq!(segments[1], (0, 12));
        assert!(unwrap_fence("```json\n{}\n```").is_none());
        assert!(unwrap_fence("# Plan\n```\nx\n```").is_none());
    }

    #[test]
    fn prose_around_a_fenced_document_stays_for_the_checks() {
        let (inner, segments) = unwrap_fence("Here:\n```md\n# Plan\n```\nBye").expect("unwrapped");
        assert_eq!(inner, "Here:\n# Plan\nBye");
        assert_eq!(segments, [(0, 0), (6, 12), (13, 23)]);
    }
}
