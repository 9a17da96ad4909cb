//! The lenient pre-pass for JSON deliverables: find the one JSON object a model meant,
//! record what had to be repaired, and leave the verdict to the strict checks.
//!
//! A fence around nothing but the object is repaired with a warning. Prose around the
//! object is repaired too, so its schema violations can still be reported: a warning
//! (`json.prose`) by default, or the hard rule "exactly one JSON object and nothing else"
//! (`json.single-object`) when the contract says `prose: hard`. A second JSON value is always
//! that hard rule: which of the two the model meant cannot be told.

use serde_json::Value;

use super::scaffold::Strictness;
use super::verdict::{Location, Violation};
use crate::text;

/// The JSON found in a deliverable.
pub(crate) struct Found {
    /// The object, if one was found.
    pub(crate) value: Option<Value>,
    /// The object's text as the model wrote it.
    pub(crate) text: String,
    /// Rules broken on the way.
    pub(crate) findings: Vec<Violation>,
    /// What was repaired.
    pub(crate) repairs: Vec<String>,
}

/// How many `{` to try before giving up on finding an object inside prose.
const MAX_CANDIDATES: usize = 32;

/// Find the one JSON object of `deliverable`; `prose` is what prose around it costs.
pub(crate) fn find_json(deliverable: &str, prose: Strictness) -> Found {
    let trimmed = deliverable.trim();
    let mut found = Found {
        value: None,
        text: trimmed.to_owned(),
        findings: Vec::new(),
        repairs: Vec::new(),
    };
    if trimmed.is_empty() {
        found.findings.push(Violation::hard(
            "json.parse",
            Location::document(),
            "the deliverable is empty; expected one JSON object",
        ));
        return found;
    }
    let whole_error = match serde_json::from_str::<Value>(trimmed) {
        Ok(value) => {
            if !value.is_object() {
                found.findings.push(Violation::hard(
                    "json.single-object",
                    Location::pointer(""),
                    format!("expected one JSON object, found {}", kind(&value)),
                ));
            }
            found.value = Some(value);
            return found;
        }
        Err(error) => error,
    };
    if let Some(inner) = fenced(trimmed)
        && let Ok(value) = serde_json::from_str::<Value>(inner.trim())
        && value.is_object()
    {
        found
            .repairs
            .push("took the JSON object out of its code fence".into());
        found.findings.push(Violation::soft(
            "json.fenced",
            Location::document(),
            "the JSON object is wrapped in a code fence; send the bare object",
        ));
        found.text = inner.trim().to_owned();
        found.value = Some(value);
        return found;
    }
    for (start, _) in trimmed.match_indices('{').take(MAX_CANDIDATES) {
        // An object nested in one that never closed is a fragment, not the reply.
        if open_braces(&trimmed[..start]) > 0 {
            continue;
        }
        let mut stream = serde_json::Deserializer::from_str(&trimmed[start..]).into_iter::<Value>();
        let Some(Ok(value)) = stream.next() else {
            continue;
        };
        if !value.is_object() {
            continue;
        }
        let end = start + stream.byte_offset();
        let before = strip_fence_line(&trimmed[..start], true);
        let after = strip_fence_line(&trimmed[end..], false);
        found
            .repairs
            .push("took the JSON object out of the prose around it".into());
        let mut parts = Vec::new();
        let mut second = false;
        if !before.is_empty() {
            parts.push(format!(
                "{} word(s) before it (\"{}\")",
                text::word_count(before),
                text::quote(before, 60)
            ));
        }
        if !after.is_empty() {
            second = serde_json::from_str::<Value>(after.trim()).is_ok();
            parts.push(if second {
                "a second JSON value after it".to_owned()
            } else {
                format!(
                    "{} word(s) after it (\"{}\")",
                    text::word_count(after),
                    text::quote(after, 60)
                )
            });
        }
        if second || (!parts.is_empty() && prose == Strictness::Hard) {
            found.findings.push(Violation::hard(
                "json.single-object",
                Location::document(),
                format!(
                    "expected exactly one JSON object and nothing else; found {}",
                    parts.join(" and ")
                ),
            ));
        } else if !parts.is_empty() {
            if prose == Strictness::Soft {
                found.findings.push(Violation::soft(
                    "json.prose",
                    Location::document(),
                    format!(
                        "the JSON object was taken out of the prose around it: {}; send the bare object",
                        parts.join(" and ")
                    ),
                ));
            }
        } else {
            found.findings.push(Violation::soft(
                "json.fenced",
                Location::document(),
                "the JSON object is wrapped in a code fence; send the bare object",
            ));
        }
        found.text = trimmed[start..end].to_owned();
        found.value = Some(value);
        return found;
    }
    let message = if whole_error.is_eof() {
        format!(
            "the JSON ends before it is complete (line {}, column {}); the reply looks cut off",
            whole_error.line(),
            whole_error.column()
        )
    } else {
        // serde_json's message ends with its own "at line L column C": say it once.
        let full = whole_error.to_string();
        let what = full
            .strip_suffix(&format!(
                " at line {} column {}",
                whole_error.line(),
                whole_error.column()
            ))
            .unwrap_or(&full);
        if what == "number out of range" {
            format!(
                "a number is out of range (line {}, column {}): it is valid JSON syntax, but larger than a 64-bit float can hold (about 1.8e308); write it smaller, or as a string",
                whole_error.line(),
                whole_error.column()
            )
        } else {
            format!(
                "not valid JSON: {what} (line {}, column {})",
                whole_error.line(),
                whole_error.column()
            )
        }
    };
    found
        .findings
        .push(Violation::hard("json.parse", Location::document(), message));
    found
}

/// How many `{` in `text` are still open, outside JSON strings.
fn open_braces(text: &str) -> usize {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for ch in text.chars() {
        match ch {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '{' if !in_string => depth += 1,
            '}' if !in_string => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    depth
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The inside of a text that is one fenced block and nothing else.
fn fenced(text: &str) -> Option<&str> {
    let first_end = text.find('\n')?;
    let first = &text[..first_end];
    let marker = if first.starts_with("```") {
        "```"
    } else if first.starts_with("~~~") {
        "~~~"
    } else {
        return None;
    };
    let body = text[first_end + 1..].trim_end();
    let inner = body.strip_suffix(marker)?;
    (!inner.contains(&format!("\n{marker}"))).then_some(inner)
}

/// Prose around an object, less a fence line that belonged to the object.
fn strip_fence_line(prose: &str, before: bool) -> &str {
    let prose = prose.trim();
    let lines: Vec<&str> = prose.lines().collect();
    let is_fence =
        |line: &&str| line.trim_start().starts_with("```") || line.trim_start().starts_with("~~~");
    let cut = if before { lines.last() } else { lines.first() };
    match cut {
        Some(line) if is_fence(line) => {
            if before {
                prose[..prose.len() - line.len()].trim()
            } else {
                prose[line.len()..].trim()
            }
        }
        _ => prose,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(found: &Found) -> Vec<(&str, super::super::Severity)> {
        found
            .findings
            .iter()
            .map(|v| (v.rule.as_str(), v.severity))
            .collect()
    }

    #[test]
    fn issue_12_the_position_of_a_parse_error_is_said_once() {
        let found = find_json("xyz", Strictness::Soft);
        assert_eq!(
            found.findings[0].message,
            "not valid JSON: expected value (line 1, column 1)"
        );
    }

    #[test]
    fn issue_12_a_number_out_of_float_range_is_not_called_invalid_json() {
        let found = find_json("{\"replicas\": 1e400}", Strictness::Soft);
        let message = &found.findings[0].message;
        assert!(!message.contains("not valid JSON"), "{message}");
        assert!(
            message.starts_with("a number is out of range (line 1, column 18)"),
            "{message}"
        );
    }

    #[test]
    fn a_bare_object_needs_no_repair() {
        let found = find_json("  {\"a\": 1}\n", Strictness::Soft);
        assert!(found.findings.is_empty() && found.repairs.is_empty());
        assert_eq!(found.text, "{\"a\": 1}");
    }

    #[test]
    fn a_fence_alone_is_repaired_with_a_warning() {
        let found = find_json("```json\n{\"a\": 1}\n```", Strictness::Soft);
        assert_eq!(
            rules(&found),
            [("json.fenced", super::super::Severity::Soft)]
        );
        assert_eq!(found.text, "{\"a\": 1}");
    }

    #[test]
    fn prose_around_the_object_is_a_hard_violation_after_repair_when_the_contract_says_so() {
        let found = find_json(
            "Here is the release record:\n```json\n{\"a\": {\"b\": 2}}\n```\nLet me know!",
            Strictness::Hard,
        );
        assert_eq!(
            rules(&found),
            [("json.single-object", super::super::Severity::Hard)]
        );
        assert!(
            found.findings[0].message.contains("before it")
                && found.findings[0].message.contains("after it")
        );
        assert_eq!(found.value, Some(serde_json::json!({"a": {"b": 2}})));
    }

    #[test]
    fn braces_in_prose_do_not_stop_the_search() {
        let found = find_json("Version v{DATE}: {\"a\": 1}", Strictness::Soft);
        assert_eq!(found.value, Some(serde_json::json!({"a": 1})));
    }

    #[test]
    fn broken_json_says_where() {
        let found = find_json("{\"a\": 1,,}", Strictness::Soft);
        assert_eq!(found.findings[0].rule, "json.parse");
        assert!(found.findings[0].message.contains("line 1"));
        assert!(found.value.is_none());
    }

    #[test]
    fn a_truncated_object_is_a_parse_error_not_its_nested_objects() {
        let found = find_json("{\"a\": {\"b\": 1}, \"c\": \"cut of", Strictness::Soft);
        assert_eq!(
            rules(&found),
            [("json.parse", super::super::Severity::Hard)]
        );
        assert!(
            found.findings[0].message.contains("cut off"),
            "{}",
            found.findings[0].message
        );
        assert!(found.value.is_none());
    }

    #[test]
    fn an_array_is_not_an_object() {
        let found = find_json("[1]", Strictness::Soft);
        assert_eq!(found.findings[0].rule, "json.single-object");
    }

    #[test]
    fn prose_around_the_object_is_a_warning_by_default_and_the_object_is_extracted() {
        let found = find_json(
            "Sure! Here is the summary:\n{\"summary\": \"ok\"}\nHope this helps.",
            Strictness::Soft,
        );
        assert_eq!(
            rules(&found),
            [("json.prose", super::super::Severity::Soft)]
        );
        assert_eq!(found.text, "{\"summary\": \"ok\"}");
        assert_eq!(
            found.repairs,
            ["took the JSON object out of the prose around it"]
        );
        assert!(
            found.findings[0].message.contains("5 word(s) before it"),
            "{}",
            found.findings[0].message
        );
    }

    #[test]
    fn prose_allowed_is_repaired_without_a_finding() {
        let found = find_json("Result: {\"a\": 1}", Strictness::Allowed);
        assert!(found.findings.is_empty());
        assert_eq!(found.repairs.len(), 1);
        assert_eq!(found.value, Some(serde_json::json!({"a": 1})));
    }

    #[test]
    fn a_second_json_object_stays_a_violation_whatever_prose_costs() {
        for prose in [Strictness::Soft, Strictness::Allowed] {
            let found = find_json("{\"a\": 1}\n{\"a\": 2}", prose);
            assert_eq!(
                rules(&found),
                [("json.single-object", super::super::Severity::Hard)]
            );
        }
    }
}
