//! Tagged-answer contracts: a reply made of named tagged fields in order
//! (`<S1>…</S1><S2>3</S2>`), each with a type and bounds, written in YAML.
//!
//! ```yaml
//! description: Coherence grade with its explanation
//! fields:
//!   - { tag: S1, type: text, min_words: 3 }
//!   - { tag: S2, type: integer, min: 1, max: 5 }
//!   - { tag: category, type: enum, values: [Billing, Technical, Account] }
//!   - { tag: notes, type: text, optional: true, repeated: true }
//! order: strict      # strict (default) | any
//! outside: soft      # text outside the tags: hard | soft (default) | allowed
//! ```
//!
//! Tag names compare without regard to letter case; enum values compare exactly. The
//! deliverable stays the reply text, and the judgement also gives the fields as one JSON
//! object (`{"S1": "…", "S2": 3}`, a repeated field as an array), so JSON pointers and
//! `json-path` assertions work on a tagged deliverable.

use std::ops::Range;
use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error::ContractError;
use super::scaffold::Strictness;
use super::verdict::{Location, Violation};
use crate::text;

/// A tagged answer's required fields.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaggedContract {
    /// What this contract is, for people.
    pub description: Option<String>,
    /// The fields, in the order the reply must give them.
    pub fields: Vec<FieldSpec>,
    /// Whether the fields must come in the listed order.
    #[serde(default)]
    pub order: Order,
    /// What text outside the tags costs.
    #[serde(default = "soft")]
    pub outside: Strictness,
}

fn soft() -> Strictness {
    Strictness::Soft
}

/// Whether fields must come in order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Order {
    /// In the listed order.
    #[default]
    Strict,
    /// In any order.
    Any,
}

/// What a field holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FieldType {
    /// Free text, with optional word bounds and pattern.
    #[default]
    Text,
    /// A whole number, with optional bounds.
    Integer,
    /// A number, with optional bounds.
    Number,
    /// One of `values`, exactly.
    Enum,
}

impl FieldType {
    fn name(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Integer => "integer",
            FieldType::Number => "number",
            FieldType::Enum => "enum",
        }
    }
}

/// One tagged field.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// The tag name: `S1` for `<S1>…</S1>`.
    pub tag: String,
    /// What it holds.
    #[serde(default, rename = "type")]
    pub kind: FieldType,
    /// It may be left out.
    #[serde(default)]
    pub optional: bool,
    /// It may appear more than once; each occurrence is checked.
    #[serde(default)]
    pub repeated: bool,
    /// Text: the fewest words.
    pub min_words: Option<usize>,
    /// Text: the most words.
    pub max_words: Option<usize>,
    /// Text: a regular expression the value must match (anywhere, unless anchored).
    pub pattern: Option<String>,
    /// Integer or number: the smallest value allowed.
    pub min: Option<f64>,
    /// Integer or number: the largest value allowed.
    pub max: Option<f64>,
    /// Enum: the values allowed, compared exactly.
    #[serde(default)]
    pub values: Vec<String>,
    #[serde(skip)]
    compiled: Option<Regex>,
}

impl FieldSpec {
    /// What the field takes, in a few words (`integer 1–5`, `one of A, B`).
    pub fn describe(&self) -> String {
        let mut parts = vec![match self.kind {
            FieldType::Enum => format!("one of {}", self.values.join(", ")),
            kind => kind.name().to_owned(),
        }];
        match (self.kind, self.min, self.max) {
            (FieldType::Integer | FieldType::Number, Some(min), Some(max)) => {
                parts.push(format!("{min} to {max}"))
            }
            (FieldType::Integer | FieldType::Number, Some(min), None) => {
                parts.push(format!("at least {min}"))
            }
            (FieldType::Integer | FieldType::Number, None, Some(max)) => {
                parts.push(format!("at most {max}"))
            }
            _ => {}
        }
        match (self.min_words, self.max_words) {
            (Some(min), Some(max)) => parts.push(format!("{min} to {max} words")),
            (Some(min), None) => parts.push(format!("at least {min} words")),
            (None, Some(max)) => parts.push(format!("at most {max} words")),
            (None, None) => {}
        }
        if let Some(pattern) = &self.pattern {
            parts.push(format!("matching `{pattern}`"));
        }
        if self.optional {
            parts.push("optional".into());
        }
        if self.repeated {
            parts.push("may repeat".into());
        }
        parts.join(", ")
    }

    fn open(&self) -> String {
        format!("<{}>", self.tag)
    }

    fn close(&self) -> String {
        format!("</{}>", self.tag)
    }

    /// The JSON Schema of this field's parsed value.
    fn value_schema(&self) -> Value {
        let mut schema = match self.kind {
            FieldType::Text => {
                let mut schema = json!({"type": "string"});
                if let Some(pattern) = &self.pattern {
                    schema["pattern"] = json!(pattern);
                }
                schema
            }
            FieldType::Integer | FieldType::Number => {
                let mut schema = json!({"type": self.kind.name()});
                if let Some(min) = self.min {
                    schema["minimum"] = json!(min);
                }
                if let Some(max) = self.max {
                    schema["maximum"] = json!(max);
                }
                schema
            }
            FieldType::Enum => json!({"type": "string", "enum": self.values}),
        };
        if self.repeated {
            schema = json!({"type": "array", "items": schema});
        }
        schema
    }
}

/// Any tag: `<name>`, `</name>`, `<name/>`, with spaces inside the brackets and attributes.
static TAG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"<\s*(/?)\s*([A-Za-z_][A-Za-z0-9_.:\-]*)(?:\s[^<>\n]*?)?\s*(/?)\s*>")
        .expect("the tag pattern compiles")
});

/// A valid tag name.
static TAG_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[A-Za-z_][A-Za-z0-9_.:\-]*$").expect("the tag name pattern compiles")
});

impl TaggedContract {
    /// Parse a tagged contract file's text, and check that it makes sense.
    pub(crate) fn load(path: &Path, text: &str) -> Result<TaggedContract, ContractError> {
        let mut contract: TaggedContract = serde_yaml_ng::from_str(text).map_err(|error| {
            let offset = error.location().map(|location| location.index());
            ContractError::parse(path, text, error.to_string(), offset)
        })?;
        let at = |tag: &str, message: String| {
            let offset = text.find(&format!("tag: {tag}")).or_else(|| text.find(tag));
            ContractError::parse(path, text, message, offset)
        };
        if contract.fields.is_empty() {
            return Err(ContractError::parse(
                path,
                text,
                "a tagged contract needs at least one field under `fields`".into(),
                text.find("fields"),
            ));
        }
        let mut seen: Vec<String> = Vec::new();
        for field in &mut contract.fields {
            let tag = field.tag.clone();
            if !TAG_NAME.is_match(&tag) {
                return Err(at(
                    &tag,
                    format!(
                        "`{tag}` is not a tag name (a letter or `_`, then letters, digits, `_`, `-`, `.`, `:`)"
                    ),
                ));
            }
            let folded = tag.to_ascii_lowercase();
            if seen.contains(&folded) {
                return Err(at(
                    &tag,
                    format!("field `{tag}` is listed twice (tag names ignore letter case)"),
                ));
            }
            seen.push(folded);
            let kind = field.kind;
            let misplaced = |key: &str, applies: &str| {
                at(
                    &tag,
                    format!(
                        "field `{tag}`: `{key}` applies to {applies} fields, not {}",
                        kind.name()
                    ),
                )
            };
            if kind != FieldType::Text {
                for (key, set) in [
                    ("min_words", field.min_words.is_some()),
                    ("max_words", field.max_words.is_some()),
                    ("pattern", field.pattern.is_some()),
                ] {
                    if set {
                        return Err(misplaced(key, "text"));
                    }
                }
            }
            if !matches!(kind, FieldType::Integer | FieldType::Number) {
                for (key, set) in [("min", field.min.is_some()), ("max", field.max.is_some())] {
                    if set {
                        return Err(misplaced(key, "integer and number"));
                    }
                }
            }
            if kind != FieldType::Enum && !field.values.is_empty() {
                return Err(misplaced("values", "enum"));
            }
            if kind == FieldType::Enum && field.values.is_empty() {
                return Err(at(
                    &tag,
                    format!("field `{tag}` is an enum with no `values`"),
                ));
            }
            if let (Some(min), Some(max)) = (field.min, field.max)
                && min > max
            {
                return Err(at(
                    &tag,
                    format!("field `{tag}`: `min` {min} is over `max` {max}"),
                ));
            }
            if let (Some(min), Some(max)) = (field.min_words, field.max_words)
                && min > max
            {
                return Err(at(
                    &tag,
                    format!("field `{tag}`: `min_words` {min} is over `max_words` {max}"),
                ));
            }
            if let Some(pattern) = &field.pattern {
                field.compiled = Some(Regex::new(pattern).map_err(|error| {
                    at(
                        &tag,
                        format!("field `{tag}`: `pattern` is not a regular expression: {error}"),
                    )
                })?);
            }
        }
        Ok(contract)
    }

    /// The JSON Schema of the fields as one object, the way the judgement gives them.
    pub fn value_schema(&self) -> Value {
        let properties: Map<String, Value> = self
            .fields
            .iter()
            .map(|field| (field.tag.clone(), field.value_schema()))
            .collect();
        let required: Vec<&str> = self
            .fields
            .iter()
            .filter(|field| !field.optional)
            .map(|field| field.tag.as_str())
            .collect();
        json!({
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false,
        })
    }

    /// Judge `deliverable`; `reply_line` maps a byte offset in it to a line of the reply.
    pub(crate) fn judge(
        &self,
        deliverable: &str,
        reply_line: &dyn Fn(usize) -> usize,
    ) -> TaggedJudgement {
        Judge {
            contract: self,
            text: deliverable,
            line: reply_line,
        }
        .run()
    }
}

/// The judgement of a tagged deliverable, before it becomes a verdict.
pub(crate) struct TaggedJudgement {
    pub(crate) findings: Vec<Violation>,
    /// The fields as one JSON object.
    pub(crate) value: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TagKind {
    Open,
    Close,
    Empty,
}

/// A tag found in the deliverable.
#[derive(Debug, Clone)]
struct Tag {
    kind: TagKind,
    name: String,
    /// The contract field it names.
    field: Option<usize>,
    range: Range<usize>,
}

/// One occurrence of a field.
#[derive(Debug, Clone)]
struct Occurrence {
    field: usize,
    /// From its opening tag to the end of its closing tag (or where it was cut off).
    span: Range<usize>,
    content: Range<usize>,
    /// Closed, or cut off by this tag (none: by the end of the reply).
    cut_by: Option<Option<String>>,
}

impl Occurrence {
    fn closed(&self) -> bool {
        self.cut_by.is_none()
    }
}

struct Judge<'a> {
    contract: &'a TaggedContract,
    text: &'a str,
    line: &'a dyn Fn(usize) -> usize,
}

impl Judge<'_> {
    fn spec(&self, field: usize) -> &FieldSpec {
        &self.contract.fields[field]
    }

    fn at(&self, offset: usize, field: usize) -> Location {
        Location::line((self.line)(offset), Some(self.spec(field).open()))
    }

    fn tags(&self) -> Vec<Tag> {
        TAG.captures_iter(self.text)
            .filter_map(|captures| {
                let whole = captures.get(0)?;
                let name = captures.get(2)?.as_str().to_owned();
                let closing = captures.get(1).is_some_and(|m| !m.as_str().is_empty());
                let empty = captures.get(3).is_some_and(|m| !m.as_str().is_empty());
                let kind = match (closing, empty) {
                    (true, _) => TagKind::Close,
                    (false, true) => TagKind::Empty,
                    (false, false) => TagKind::Open,
                };
                let field = self
                    .contract
                    .fields
                    .iter()
                    .position(|f| f.tag.eq_ignore_ascii_case(&name));
                Some(Tag {
                    kind,
                    name,
                    field,
                    range: whole.range(),
                })
            })
            .collect()
    }

    /// Pair the fields' tags into occurrences; closing tags that close nothing are returned apart.
    fn occurrences(&self, tags: &[Tag]) -> (Vec<Occurrence>, Vec<Tag>) {
        let mut found = Vec::new();
        let mut lone = Vec::new();
        // The open field's tag, and which field it opens.
        let mut open: Option<(&Tag, usize)> = None;
        for tag in tags {
            let Some(field) = tag.field else { continue };
            if let Some((current, current_field)) = open {
                if tag.kind == TagKind::Close && field == current_field {
                    found.push(Occurrence {
                        field,
                        span: current.range.start..tag.range.end,
                        content: current.range.end..tag.range.start,
                        cut_by: None,
                    });
                    open = None;
                    continue;
                }
                // Another field's tag before this one closed: it was never closed.
                found.push(Occurrence {
                    field: current_field,
                    span: current.range.start..tag.range.start,
                    content: current.range.end..tag.range.start,
                    cut_by: Some(Some(self.text[tag.range.clone()].to_owned())),
                });
                open = None;
            }
            match tag.kind {
                TagKind::Open => open = Some((tag, field)),
                TagKind::Empty => found.push(Occurrence {
                    field,
                    span: tag.range.clone(),
                    content: tag.range.end..tag.range.end,
                    cut_by: None,
                }),
                TagKind::Close => lone.push(tag.clone()),
            }
        }
        if let Some((current, field)) = open {
            found.push(Occurrence {
                field,
                span: current.range.start..self.text.len(),
                content: current.range.end..self.text.len(),
                cut_by: Some(None),
            });
        }
        (found, lone)
    }

    fn run(&self) -> TaggedJudgement {
        let mut findings = Vec::new();
        if self.text.trim().is_empty() {
            findings.push(Violation::hard(
                "tagged.missing",
                Location::document(),
                "the deliverable is empty: no tagged fields follow the reasoning",
            ));
            return TaggedJudgement {
                findings,
                value: Value::Object(Map::new()),
            };
        }
        let tags = self.tags();
        let (occurrences, lone) = self.occurrences(&tags);
        // The occurrences that count: a field that may not repeat counts once.
        let mut counted: Vec<&Occurrence> = Vec::new();
        let mut values: Vec<Vec<Value>> = vec![Vec::new(); self.contract.fields.len()];
        for occurrence in &occurrences {
            let spec = self.spec(occurrence.field);
            if let Some(cut_by) = &occurrence.cut_by {
                let how = match cut_by {
                    Some(tag) => format!("before `{tag}`"),
                    None => format!(
                        "before the reply ends (line {})",
                        (self.line)(self.text.trim_end().len().saturating_sub(1))
                    ),
                };
                findings.push(Violation::hard(
                    "tagged.unclosed",
                    self.at(occurrence.span.start, occurrence.field),
                    format!(
                        "`{}` is never closed {how}; close it with `{}`",
                        spec.open(),
                        spec.close()
                    ),
                ));
            }
            let earlier = counted.iter().find(|o| o.field == occurrence.field);
            if let (Some(first), false) = (earlier, spec.repeated) {
                findings.push(Violation::hard(
                    "tagged.duplicate",
                    self.at(occurrence.span.start, occurrence.field),
                    format!(
                        "`{}` appears again (first at line {}); it may appear once",
                        spec.open(),
                        (self.line)(first.span.start)
                    ),
                ));
                continue;
            }
            counted.push(occurrence);
        }
        if self.contract.order == Order::Strict {
            self.check_order(&counted, &mut findings);
        }
        for occurrence in &counted {
            let content = self.text[occurrence.content.clone()].trim();
            let spec = self.spec(occurrence.field);
            if !occurrence.closed() {
                values[occurrence.field].push(Value::String(content.to_owned()));
                continue;
            }
            if content.is_empty() {
                if !spec.optional {
                    findings.push(Violation::hard(
                        "tagged.missing",
                        self.at(occurrence.span.start, occurrence.field),
                        format!("`{}` is empty; a value is required", spec.open()),
                    ));
                }
                continue;
            }
            values[occurrence.field].push(self.check_value(
                spec,
                occurrence,
                content,
                &mut findings,
            ));
        }
        for (index, spec) in self.contract.fields.iter().enumerate() {
            if spec.optional || occurrences.iter().any(|o| o.field == index) {
                continue;
            }
            findings.push(self.missing(index, &counted, &tags, &lone));
        }
        self.check_outside(&occurrences, &tags, &mut findings);
        let mut object = Map::new();
        for (spec, mut found) in self.contract.fields.iter().zip(values) {
            if found.is_empty() {
                continue;
            }
            let value = if spec.repeated {
                Value::Array(found)
            } else {
                found.swap_remove(0)
            };
            object.insert(spec.tag.clone(), value);
        }
        TaggedJudgement {
            findings,
            value: Value::Object(object),
        }
    }

    /// Check one value; returns it as JSON (typed when it parses).
    fn check_value(
        &self,
        spec: &FieldSpec,
        occurrence: &Occurrence,
        content: &str,
        findings: &mut Vec<Violation>,
    ) -> Value {
        let at = || self.at(occurrence.span.start, occurrence.field);
        let found = || text::quote(content, 80);
        match spec.kind {
            FieldType::Text => {
                let words = text::word_count(content);
                let bound = match (spec.min_words, spec.max_words) {
                    (Some(min), _) if words < min => Some(format!("at least {min}")),
                    (_, Some(max)) if words > max => Some(format!("at most {max}")),
                    _ => None,
                };
                if let Some(bound) = bound {
                    findings.push(Violation::hard(
                        "tagged.bounds",
                        at(),
                        format!("`{}` has {words} word(s); {bound} expected", spec.open()),
                    ));
                }
                if let (Some(pattern), Some(regex)) = (&spec.pattern, &spec.compiled)
                    && !regex.is_match(content)
                {
                    findings.push(Violation::hard(
                        "tagged.pattern",
                        at(),
                        format!("found \"{}\"; expected text matching `{pattern}`", found()),
                    ));
                }
                Value::String(content.to_owned())
            }
            FieldType::Integer | FieldType::Number => {
                let Some(number) = parse_number(content, spec.kind) else {
                    let expected = if spec.kind == FieldType::Integer {
                        "an integer"
                    } else {
                        "a number"
                    };
                    let alone = leading_number(content)
                        .map(|n| format!(" (write the number alone, e.g. `{n}`)"))
                        .unwrap_or_default();
                    findings.push(Violation::hard(
                        "tagged.type",
                        at(),
                        format!("found \"{}\"; expected {expected}{alone}", found()),
                    ));
                    return Value::String(content.to_owned());
                };
                let value = number.as_f64().unwrap_or_default();
                let outside = spec.min.is_some_and(|min| value < min)
                    || spec.max.is_some_and(|max| value > max);
                if outside {
                    let expected = match (spec.min, spec.max) {
                        (Some(min), Some(max)) => format!("between {min} and {max}"),
                        (Some(min), None) => format!("at least {min}"),
                        (None, Some(max)) => format!("at most {max}"),
                        (None, None) => String::new(),
                    };
                    findings.push(Violation::hard(
                        "tagged.bounds",
                        at(),
                        format!("found {number}; expected {expected}"),
                    ));
                }
                Value::Number(number)
            }
            FieldType::Enum => {
                if !spec.values.iter().any(|v| v == content) {
                    let mut message = format!(
                        "found \"{}\"; expected one of {}",
                        found(),
                        spec.values
                            .iter()
                            .map(|v| format!("`{v}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    let lower = content.to_lowercase();
                    if let Some(meant) = spec.values.iter().find(|v| v.to_lowercase() == lower) {
                        message.push_str(&format!(" (values are case-sensitive: `{meant}`)"));
                    } else if let Some(meant) = spec.values.iter().find(|v| {
                        let v = v.to_lowercase();
                        text::edit_distance(&v, &lower) <= 2
                            || (v.len() >= 4 && (lower.starts_with(&v) || v.starts_with(&lower)))
                    }) {
                        message.push_str(&format!(" (did you mean `{meant}`?)"));
                    }
                    findings.push(Violation::hard("tagged.enum", at(), message));
                }
                Value::String(content.to_owned())
            }
        }
    }

    /// Fields out of the listed order: those outside the longest run that keeps it.
    fn check_order(&self, counted: &[&Occurrence], findings: &mut Vec<Violation>) {
        let order: Vec<usize> = counted.iter().map(|o| o.field).collect();
        let keep = longest_non_decreasing(&order);
        for (position, occurrence) in counted.iter().enumerate() {
            if keep.contains(&position) {
                continue;
            }
            let index = occurrence.field;
            let fields = &self.contract.fields;
            let before = index.checked_sub(1).map(|i| fields[i].close());
            let after = fields.get(index + 1).map(FieldSpec::open);
            let place = match (before, after) {
                (Some(b), Some(a)) => format!("after `{b}` and before `{a}`"),
                (Some(b), None) => format!("after `{b}`"),
                (None, Some(a)) => format!("before `{a}`"),
                (None, None) => "elsewhere".to_owned(),
            };
            findings.push(Violation::hard(
                "tagged.order",
                self.at(occurrence.span.start, index),
                format!(
                    "`{}` is out of order; it belongs {place}",
                    fields[index].open()
                ),
            ));
        }
    }

    /// The finding for a required field that is not there: where it was expected, and what
    /// stands in its place (a lone closing tag, a misspelt tag, a plain-text label).
    fn missing(
        &self,
        index: usize,
        counted: &[&Occurrence],
        tags: &[Tag],
        lone: &[Tag],
    ) -> Violation {
        let spec = self.spec(index);
        let stand_in = lone
            .iter()
            .find(|t| t.field == Some(index))
            .map(|t| {
                (
                    t.range.start,
                    format!(
                        "found a lone `{}` at line {} with no `{}` before it",
                        &self.text[t.range.clone()],
                        (self.line)(t.range.start),
                        spec.open()
                    ),
                )
            })
            .or_else(|| {
                tags.iter()
                    .find(|t| {
                        t.field.is_none()
                            && t.kind != TagKind::Close
                            && near_name(&t.name, &spec.tag)
                    })
                    .map(|t| {
                        (
                            t.range.start,
                            format!(
                                "found `<{}>` at line {}; did you mean `{}`?",
                                t.name,
                                (self.line)(t.range.start),
                                spec.open()
                            ),
                        )
                    })
            })
            .or_else(|| {
                self.plain_label(&spec.tag, counted).map(|(offset, line)| {
                    (
                        offset,
                        format!(
                            "found `{}` as plain text at line {}, not inside `{}`…`{}`",
                            text::quote(line, 60),
                            (self.line)(offset),
                            spec.open(),
                            spec.close()
                        ),
                    )
                })
            });
        let fields = &self.contract.fields;
        let present = |i: usize| counted.iter().find(|o| o.field == i);
        let (anchor, expected) = if self.contract.order == Order::Any {
            (None, String::new())
        } else if let Some(previous) = (0..index).rev().find_map(present) {
            (
                Some(previous.span.end.saturating_sub(1)),
                format!(
                    "; expected after `{}` (line {})",
                    fields[previous.field].close(),
                    (self.line)(previous.span.end.saturating_sub(1))
                ),
            )
        } else if let Some(next) = (index + 1..fields.len()).find_map(present) {
            (
                Some(next.span.start),
                format!(
                    "; expected first, before `{}` (line {})",
                    fields[next.field].open(),
                    (self.line)(next.span.start)
                ),
            )
        } else {
            (
                None,
                "; the reply has none of the contract's tags".to_owned(),
            )
        };
        let (location, detail) = match stand_in {
            Some((offset, detail)) => (
                Location::line((self.line)(offset), None),
                format!("; {detail}"),
            ),
            None => (
                anchor.map_or_else(Location::document, |offset| {
                    Location::line((self.line)(offset), None)
                }),
                String::new(),
            ),
        };
        Violation::hard(
            "tagged.missing",
            location,
            format!("`{}` is missing{expected}{detail}", spec.open()),
        )
    }

    /// A line outside every field that starts with `tag` as a label (`S2: 3`, `**S2**: 3`).
    fn plain_label<'t>(&'t self, tag: &str, counted: &[&Occurrence]) -> Option<(usize, &'t str)> {
        let mut offset = 0;
        for line in self.text.split_inclusive('\n') {
            let start = offset;
            offset += line.len();
            if counted.iter().any(|o| o.span.contains(&start)) {
                continue;
            }
            let bare = line
                .trim()
                .trim_start_matches(['-', '*', '#', '_', ' '])
                .replace(['*', '_'], "");
            let Some(rest) = bare
                .get(..tag.len())
                .filter(|head| head.eq_ignore_ascii_case(tag))
            else {
                continue;
            };
            let after = bare[rest.len()..].trim_start();
            if after.starts_with(':') || after.starts_with('=') || after.starts_with('-') {
                return Some((start, line.trim()));
            }
        }
        None
    }

    fn check_outside(
        &self,
        occurrences: &[Occurrence],
        tags: &[Tag],
        findings: &mut Vec<Violation>,
    ) {
        if self.contract.outside == Strictness::Allowed {
            return;
        }
        let mut covered: Vec<Range<usize>> = occurrences.iter().map(|o| o.span.clone()).collect();
        // A lone closing tag of a missing field is reported with that field.
        covered.extend(
            tags.iter()
                .filter(|t| {
                    t.kind == TagKind::Close
                        && t.field
                            .is_some_and(|field| !occurrences.iter().any(|o| o.field == field))
                })
                .map(|t| t.range.clone()),
        );
        covered.sort_by_key(|r| r.start);
        let mut pieces = Vec::new();
        let mut at = 0;
        for range in covered
            .iter()
            .chain(std::iter::once(&(self.text.len()..self.text.len())))
        {
            if range.start > at {
                let gap = &self.text[at..range.start];
                if !gap.trim().is_empty() {
                    let lead = gap.len() - gap.trim_start().len();
                    pieces.push((at + lead, gap.trim()));
                }
            }
            at = at.max(range.end);
        }
        let Some(&(first, _)) = pieces.first() else {
            return;
        };
        let words: usize = pieces
            .iter()
            .map(|(_, piece)| text::word_count(piece))
            .sum();
        let quoted: Vec<String> = pieces
            .iter()
            .take(3)
            .map(|(offset, piece)| {
                format!(
                    "\"{}\" (line {})",
                    text::quote(piece, 60),
                    (self.line)(*offset)
                )
            })
            .collect();
        let more = if pieces.len() > 3 {
            format!(" and {} more", pieces.len() - 3)
        } else {
            String::new()
        };
        let unknown: Vec<String> = tags
            .iter()
            .filter(|t| t.field.is_none() && t.kind != TagKind::Close)
            .map(|t| format!("`<{}>`", t.name))
            .fold(Vec::new(), |mut seen, tag| {
                if !seen.contains(&tag) {
                    seen.push(tag);
                }
                seen
            });
        let hint = if unknown.is_empty() {
            String::new()
        } else {
            format!(
                "; {} not a tag of the contract ({})",
                unknown.join(", "),
                self.contract
                    .fields
                    .iter()
                    .map(|f| f.tag.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let message = format!(
            "{words} word(s) of text outside the tags: {}{more}{hint}",
            quoted.join(", ")
        );
        let location = Location::line((self.line)(first), None);
        findings.push(match self.contract.outside {
            Strictness::Hard => Violation::hard("tagged.outside", location, message),
            _ => Violation::soft("tagged.outside", location, message),
        });
    }
}

/// A number in JSON's grammar (a leading `+` allowed); for an integer field, a whole one.
fn parse_number(content: &str, kind: FieldType) -> Option<serde_json::Number> {
    let bare = content.strip_prefix('+').unwrap_or(content);
    let number: serde_json::Number = serde_json::from_str(bare).ok()?;
    if kind == FieldType::Integer && !(number.is_i64() || number.is_u64()) {
        return None;
    }
    Some(number)
}

/// The number a value starts with (`4` of `4 out of 5`), to suggest writing it alone.
fn leading_number(content: &str) -> Option<&str> {
    let end = content
        .char_indices()
        .find(|&(i, c)| {
            !(c.is_ascii_digit() || (c == '.' && i > 0) || (i == 0 && (c == '-' || c == '+')))
        })
        .map_or(content.len(), |(i, _)| i);
    let head = &content[..end];
    (head.chars().any(|c| c.is_ascii_digit()) && end < content.len()).then_some(head)
}

/// Is `found` a tag someone meant as `wanted`: the same name but for case, `_` and `-`, or a
/// small edit of a long one?
fn near_name(found: &str, wanted: &str) -> bool {
    let squash = |name: &str| name.to_ascii_lowercase().replace(['_', '-', '.'], "");
    let (found, wanted) = (squash(found), squash(wanted));
    found == wanted || (wanted.len() >= 5 && text::edit_distance(&found, &wanted) <= 2)
}

/// Positions (into `order`) of one longest non-decreasing subsequence: a repeated field's
/// occurrences side by side keep the order.
fn longest_non_decreasing(order: &[usize]) -> Vec<usize> {
    let n = order.len();
    let mut length = vec![1usize; n];
    let mut previous = vec![usize::MAX; n];
    for i in 0..n {
        for j in 0..i {
            if order[j] <= order[i] && length[j] + 1 > length[i] {
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
    use crate::contract::Severity;

    const COHERENCE: &str = "fields:\n  - { tag: S1, type: text, min_words: 3 }\n  - { tag: S2, type: integer, min: 1, max: 5 }\n";

    fn contract(yaml: &str) -> TaggedContract {
        TaggedContract::load(Path::new("t.tagged.yaml"), yaml).expect("loads")
    }

    fn judge(yaml: &str, reply: &str) -> TaggedJudgement {
        contract(yaml).judge(reply, &|offset| text::line_of(reply, offset))
    }

    fn found(judgement: &TaggedJudgement) -> Vec<(String, Severity, String)> {
        judgement
            .findings
            .iter()
            .map(|v| (v.rule.clone(), v.severity, v.location.to_string()))
            .collect()
    }

    fn rules(judgement: &TaggedJudgement) -> Vec<&str> {
        judgement.findings.iter().map(|v| v.rule.as_str()).collect()
    }

    #[test]
    fn a_valid_reply_gives_its_fields_as_json() {
        let judgement = judge(
            COHERENCE,
            "<S1>Clear and well ordered.</S1>\n<s2> 4 </s2>\n",
        );
        assert!(judgement.findings.is_empty(), "{:?}", found(&judgement));
        assert_eq!(
            judgement.value,
            json!({"S1": "Clear and well ordered.", "S2": 4})
        );
    }

    #[test]
    fn a_word_for_a_number_is_a_type_violation() {
        let judgement = judge(
            COHERENCE,
            "<S1>Clear and well ordered.</S1>\n<S2>three</S2>",
        );
        assert_eq!(rules(&judgement), ["tagged.type"]);
        assert_eq!(
            judgement.findings[0].message,
            "found \"three\"; expected an integer"
        );
        assert_eq!(
            judgement.findings[0].location.to_string(),
            "line 2 (in `<S2>`)"
        );
    }

    #[test]
    fn a_number_with_words_after_it_is_told_to_stand_alone() {
        let judgement = judge(
            COHERENCE,
            "<S1>Clear and well ordered.</S1><S2>4.5 out of 5</S2>",
        );
        assert_eq!(
            judgement.findings[0].message,
            "found \"4.5 out of 5\"; expected an integer (write the number alone, e.g. `4.5`)"
        );
    }

    #[test]
    fn numbers_outside_their_bounds_say_so() {
        let judgement = judge(COHERENCE, "<S1>Clear and well ordered.</S1><S2>7</S2>");
        assert_eq!(rules(&judgement), ["tagged.bounds"]);
        assert_eq!(
            judgement.findings[0].message,
            "found 7; expected between 1 and 5"
        );
        let judgement = judge(COHERENCE, "<S1>Too short.</S1><S2>2</S2>");
        assert_eq!(
            judgement.findings[0].message,
            "`<S1>` has 2 word(s); at least 3 expected"
        );
    }

    #[test]
    fn a_missing_field_says_where_it_was_expected_and_what_stands_in_its_place() {
        let judgement = judge(COHERENCE, "<S1>Clear and well ordered.</S1>\nS2: 4\n");
        assert_eq!(
            found(&judgement)[0],
            ("tagged.missing".into(), Severity::Hard, "line 2".into())
        );
        assert_eq!(
            judgement.findings[0].message,
            "`<S2>` is missing; expected after `</S1>` (line 1); found `S2: 4` as plain text at line 2, not inside `<S2>`…`</S2>`"
        );
        // The label is also text outside the tags, which only warns.
        assert_eq!(found(&judgement)[1].1, Severity::Soft);
    }

    #[test]
    fn a_lone_closing_tag_stands_for_its_missing_field() {
        let judgement = judge(COHERENCE, "<S1>Clear and well ordered.</S1>\n4</S2>");
        assert_eq!(
            judgement.findings[0].message,
            "`<S2>` is missing; expected after `</S1>` (line 1); found a lone `</S2>` at line 2 with no `<S2>` before it"
        );
    }

    #[test]
    fn a_misspelt_tag_is_named() {
        let yaml = "fields:\n  - { tag: final_summary, type: text }\n";
        let judgement = judge(yaml, "<finalSummary>Done.</finalSummary>");
        assert_eq!(rules(&judgement), ["tagged.missing", "tagged.outside"]);
        assert!(
            judgement.findings[0]
                .message
                .contains("did you mean `<final_summary>`?"),
            "{}",
            judgement.findings[0].message
        );
        assert!(
            judgement.findings[1]
                .message
                .contains("`<finalSummary>` not a tag of the contract")
        );
    }

    #[test]
    fn an_unclosed_field_is_cut_by_the_next_tag_or_the_end() {
        let judgement = judge(COHERENCE, "<S1>Clear and well ordered.\n<S2>4</S2>");
        assert_eq!(rules(&judgement), ["tagged.unclosed"]);
        assert_eq!(
            judgement.findings[0].message,
            "`<S1>` is never closed before `<S2>`; close it with `</S1>`"
        );
        let judgement = judge(COHERENCE, "<S1>Clear and well ordered.</S1>\n<S2>4\n");
        assert_eq!(
            judgement.findings[0].message,
            "`<S2>` is never closed before the reply ends (line 2); close it with `</S2>`"
        );
    }

    #[test]
    fn fields_out_of_order_and_twice() {
        let judgement = judge(
            COHERENCE,
            "<S2>4</S2>\n<S1>Clear and well ordered.</S1>\n<S2>5</S2>",
        );
        assert_eq!(rules(&judgement), ["tagged.duplicate", "tagged.order"]);
        assert_eq!(
            judgement.findings[0].message,
            "`<S2>` appears again (first at line 1); it may appear once"
        );
        assert_eq!(
            judgement.findings[1].location.to_string(),
            "line 2 (in `<S1>`)"
        );
        assert_eq!(
            judgement.findings[1].message,
            "`<S1>` is out of order; it belongs before `<S2>`"
        );
        let any = format!("{COHERENCE}order: any\n");
        assert!(
            judge(&any, "<S2>4</S2><S1>Clear and well ordered.</S1>")
                .findings
                .is_empty()
        );
    }

    #[test]
    fn enum_values_are_exact_and_a_case_slip_is_named() {
        let yaml = "fields:\n  - { tag: category, type: enum, values: [Billing, Technical] }\n";
        let judgement = judge(yaml, "<category>billing</category>");
        assert_eq!(
            judgement.findings[0].message,
            "found \"billing\"; expected one of `Billing`, `Technical` (values are case-sensitive: `Billing`)"
        );
        let judgement = judge(yaml, "<category>Technicall</category>");
        assert!(
            judgement.findings[0]
                .message
                .ends_with("(did you mean `Technical`?)")
        );
    }

    #[test]
    fn repeated_fields_are_each_checked_and_given_as_an_array() {
        let yaml = "fields:\n  - { tag: step, type: integer, repeated: true, max: 3 }\n";
        let judgement = judge(yaml, "<step>1</step><step>2</step><step>9</step>");
        assert_eq!(rules(&judgement), ["tagged.bounds"]);
        assert_eq!(judgement.value, json!({"step": [1, 2, 9]}));
    }

    #[test]
    fn text_outside_the_tags_is_soft_by_default_hard_or_allowed_on_request() {
        let reply = "Here is my grade:\n<S1>Clear and well ordered.</S1><S2>4</S2>";
        assert_eq!(
            found(&judge(COHERENCE, reply)),
            [("tagged.outside".into(), Severity::Soft, "line 1".into())]
        );
        let hard = format!("{COHERENCE}outside: hard\n");
        assert_eq!(found(&judge(&hard, reply))[0].1, Severity::Hard);
        let allowed = format!("{COHERENCE}outside: allowed\n");
        assert!(judge(&allowed, reply).findings.is_empty());
    }

    #[test]
    fn optional_fields_may_be_left_out_and_patterns_apply() {
        let yaml = "fields:\n  - { tag: S0, type: text, pattern: \"^Let's think\" }\n  - { tag: notes, optional: true }\n";
        assert!(
            judge(yaml, "<S0>Let's think step by step.</S0>")
                .findings
                .is_empty()
        );
        let judgement = judge(yaml, "<S0>I think so.</S0>");
        assert_eq!(rules(&judgement), ["tagged.pattern"]);
    }

    #[test]
    fn an_empty_reply_is_one_finding() {
        let judgement = judge(COHERENCE, "  \n");
        assert_eq!(
            found(&judgement),
            [("tagged.missing".into(), Severity::Hard, "document".into())]
        );
    }

    #[test]
    fn a_contract_that_makes_no_sense_is_refused_with_its_reason() {
        let refused = |yaml: &str| {
            TaggedContract::load(Path::new("t.tagged.yaml"), yaml)
                .expect_err("refused")
                .to_string()
        };
        assert!(refused("fields: []\n").contains("at least one field"));
        assert!(
            refused("fields:\n  - { tag: a, type: integer, values: [x] }\n")
                .contains("`values` applies to enum fields, not integer")
        );
        assert!(refused("fields:\n  - { tag: a, type: enum }\n").contains("no `values`"));
        assert!(refused("fields:\n  - { tag: a }\n  - { tag: A }\n").contains("listed twice"));
        assert!(
            refused("fields:\n  - { tag: a, pattern: \"(\" }\n")
                .contains("not a regular expression")
        );
        assert!(
            refused("fields:\n  - { tag: a, type: integer, min: 5, max: 1 }\n")
                .contains("over `max`")
        );
        assert!(refused("fields:\n  - { tag: \"1a\" }\n").contains("not a tag name"));
        assert!(refused("fields:\n  - { tag: a, kind: text }\n").contains("unknown field `kind`"));
    }

    #[test]
    fn the_value_schema_describes_the_parsed_fields() {
        let schema = contract(COHERENCE).value_schema();
        assert_eq!(
            schema["properties"]["S2"],
            json!({"type": "integer", "minimum": 1.0, "maximum": 5.0})
        );
        assert_eq!(schema["required"], json!(["S1", "S2"]));
    }
}
