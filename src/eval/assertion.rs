//! Assertions on a case's run. Where promptfoo has an assertion of the same meaning, it has
//! its name (`contains`, `icontains`, `regex`, `equals`, `is-json`, `contains-json`, `cost`,
//! `latency`), and any assertion may be negated with a `not-` prefix. Ours: `outcome`,
//! `json-path`, `heading`, `table-row`, `max-words`, `max-attempts`, `max-tokens`,
//! `no-reasoning-leak`, and `llm-rubric` (graded by a judge model, see [`super::judge`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::case::ExpectedOutcome;
use crate::model::Usage;
use crate::runner::RunOutcome;
use crate::text::fold;

/// An assertion as a case file writes it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AssertionSpec {
    #[serde(rename = "type")]
    kind: String,
    value: Option<serde_yaml_ng::Value>,
    threshold: Option<f64>,
    path: Option<String>,
    equals: Option<serde_yaml_ng::Value>,
    matches: Option<String>,
    exists: Option<bool>,
    section: Option<String>,
    level: Option<usize>,
    prompt_price: Option<f64>,
    completion_price: Option<f64>,
}

/// What an assertion checks.
#[derive(Debug, Clone)]
pub enum Assertion {
    /// The deliverable contains the text.
    Contains(String),
    /// … ignoring case.
    IContains(String),
    /// The deliverable equals the text (surrounding white space ignored).
    Equals(String),
    /// The deliverable matches the regular expression.
    Regex(regex::Regex),
    /// The deliverable is JSON.
    IsJson,
    /// The deliverable contains a JSON object or array.
    ContainsJson,
    /// The run cost at most this many dollars, at these prices per million tokens.
    Cost {
        /// Dollars.
        threshold: f64,
        /// Per million prompt tokens.
        prompt_price: f64,
        /// Per million completion tokens.
        completion_price: f64,
    },
    /// The model calls took at most this many milliseconds in all.
    Latency(f64),
    /// The run ended so.
    Outcome(ExpectedOutcome),
    /// A JSON pointer (or `$.a.b[0]` path) into a JSON deliverable exists, equals, or matches.
    JsonPath {
        /// The pointer.
        pointer: String,
        /// What to check there.
        check: PathCheck,
    },
    /// A heading with this text (folded) exists, at `level` if given.
    Heading {
        /// The text.
        text: String,
        /// The level, 1–6.
        level: Option<usize>,
    },
    /// Some table row has a cell containing each of these texts (case folded), in `section` if given.
    TableRow {
        /// The texts.
        cells: Vec<String>,
        /// The section heading.
        section: Option<String>,
    },
    /// At most this many words, in the deliverable or at `pointer`.
    MaxWords {
        /// The limit.
        max: usize,
        /// A JSON pointer, for a JSON deliverable.
        pointer: Option<String>,
    },
    /// At most this many attempts.
    MaxAttempts(u32),
    /// At most this many tokens over all attempts.
    MaxTokens(u64),
    /// No reasoning tag, and no line of the reasoning, in the deliverable.
    NoReasoningLeak,
    /// A judge model grades the deliverable against the rubric.
    LlmRubric(String),
}

/// What a `json-path` assertion checks.
#[derive(Debug, Clone)]
pub enum PathCheck {
    /// Something is there.
    Exists,
    /// It equals this value.
    Equals(Value),
    /// Its text matches this.
    Matches(regex::Regex),
}

/// An assertion, perhaps negated, with the name it was written with.
#[derive(Debug, Clone)]
pub struct Check {
    /// The assertion.
    pub assertion: Assertion,
    /// `not-` prefix.
    pub negated: bool,
    /// How the case file wrote it (`not-contains "foo"`), for reports.
    pub label: String,
}

/// What a run produced, for assertions to look at.
#[derive(Debug, Clone)]
pub(crate) struct Observed<'a> {
    /// How it ended.
    pub outcome: RunOutcome,
    /// The deliverable, when valid or declined.
    pub deliverable: Option<&'a str>,
    /// The final reasoning.
    pub reasoning: &'a str,
    /// Attempts made.
    pub attempts: u32,
    /// Tokens.
    pub usage: Usage,
    /// Model time in all.
    pub latency_ms: u64,
    /// The deliverable parsed as JSON, once for all the assertions that need it.
    pub json: std::cell::OnceCell<Option<Value>>,
}

impl Observed<'_> {
    fn json(&self) -> Option<&Value> {
        self.json
            .get_or_init(|| {
                self.deliverable
                    .and_then(|text| serde_json::from_str(text).ok())
            })
            .as_ref()
    }
}

/// An assertion's result before negation.
pub(crate) enum Judgement {
    /// Holds.
    Pass,
    /// Does not hold, and why.
    Fail(String),
    /// Could not be checked (no deliverable, no JSON, no such path): a failure even when
    /// negated, since `not-contains X` on a run with no output proves nothing.
    Unchecked(String),
    /// Needs the judge model.
    Judge(String),
}

fn text_value(spec: &AssertionSpec) -> Result<String, String> {
    match &spec.value {
        Some(serde_yaml_ng::Value::String(s)) => Ok(s.clone()),
        Some(serde_yaml_ng::Value::Number(n)) => Ok(n.to_string()),
        Some(serde_yaml_ng::Value::Bool(b)) => Ok(b.to_string()),
        _ => Err(format!("`{}` needs a text `value`", spec.kind)),
    }
}

fn number(spec: &AssertionSpec) -> Result<f64, String> {
    spec.threshold
        .or_else(|| spec.value.as_ref().and_then(serde_yaml_ng::Value::as_f64))
        .ok_or_else(|| format!("`{}` needs a number `value` (or `threshold`)", spec.kind))
}

impl Check {
    pub(crate) fn parse(spec: &AssertionSpec) -> Result<Check, String> {
        let (negated, kind) = match spec.kind.strip_prefix("not-") {
            Some(rest) => (true, rest),
            None => (false, spec.kind.as_str()),
        };
        let assertion = match kind {
            "contains" => Assertion::Contains(text_value(spec)?),
            "icontains" => Assertion::IContains(text_value(spec)?),
            "equals" => Assertion::Equals(text_value(spec)?),
            "regex" => {
                Assertion::Regex(regex::Regex::new(&text_value(spec)?).map_err(|e| e.to_string())?)
            }
            "is-json" => Assertion::IsJson,
            "contains-json" => Assertion::ContainsJson,
            "cost" => Assertion::Cost {
                threshold: number(spec)?,
                prompt_price: spec
                    .prompt_price
                    .ok_or("`cost` needs `prompt_price` (dollars per million prompt tokens)")?,
                completion_price: spec.completion_price.ok_or(
                    "`cost` needs `completion_price` (dollars per million completion tokens)",
                )?,
            },
            "latency" => Assertion::Latency(number(spec)?),
            "outcome" => Assertion::Outcome(
                serde_yaml_ng::from_value(spec.value.clone().unwrap_or_default())
                    .map_err(|_| "`outcome` takes valid, declined or violated")?,
            ),
            "json-path" => {
                let path = spec.path.as_deref().ok_or("`json-path` needs a `path`")?;
                let check = match (&spec.equals, &spec.matches, spec.exists) {
                    (Some(value), None, _) => {
                        PathCheck::Equals(serde_json::to_value(value).map_err(|e| e.to_string())?)
                    }
                    (None, Some(pattern), _) => {
                        PathCheck::Matches(regex::Regex::new(pattern).map_err(|e| e.to_string())?)
                    }
                    (None, None, Some(true) | None) => PathCheck::Exists,
                    _ => {
                        return Err(
                            "`json-path` takes one of `equals`, `matches` or `exists: true`".into(),
                        );
                    }
                };
                Assertion::JsonPath {
                    pointer: to_pointer(path)?,
                    check,
                }
            }
            "heading" => Assertion::Heading {
                text: text_value(spec)?,
                level: spec.level,
            },
            "table-row" => {
                let cells = match &spec.value {
                    Some(serde_yaml_ng::Value::Sequence(items)) => items
                        .iter()
                        .map(|i| {
                            i.as_str()
                                .map(str::to_owned)
                                .ok_or("`table-row` cells must be text")
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                    Some(serde_yaml_ng::Value::String(s)) => vec![s.clone()],
                    _ => return Err("`table-row` needs a `value` list of cell texts".into()),
                };
                Assertion::TableRow {
                    cells,
                    section: spec.section.clone(),
                }
            }
            "max-words" => Assertion::MaxWords {
                max: number(spec)? as usize,
                pointer: spec.path.as_deref().map(to_pointer).transpose()?,
            },
            "max-attempts" => Assertion::MaxAttempts(number(spec)? as u32),
            "max-tokens" => Assertion::MaxTokens(number(spec)? as u64),
            "no-reasoning-leak" => Assertion::NoReasoningLeak,
            "llm-rubric" => Assertion::LlmRubric(text_value(spec)?),
            other => return Err(format!("unknown assertion type `{other}`")),
        };
        let label = match &spec.value {
            Some(serde_yaml_ng::Value::String(s)) => {
                format!("{} {:?}", spec.kind, crate::text::clip(s, 60))
            }
            Some(other) => format!(
                "{} {}",
                spec.kind,
                serde_json::to_string(other).unwrap_or_default()
            ),
            None => match &spec.path {
                Some(path) => format!("{} {path}", spec.kind),
                None => spec.kind.clone(),
            },
        };
        Ok(Check {
            assertion,
            negated,
            label,
        })
    }

    /// Judge `observed`; `Judge` asks the caller to consult the judge model.
    pub(crate) fn evaluate(&self, observed: &Observed<'_>) -> Judgement {
        let result = self.assertion.holds(observed);
        match (result, self.negated) {
            (Judgement::Judge(rubric), _) => Judgement::Judge(rubric),
            (Judgement::Unchecked(reason), _) => Judgement::Fail(format!("not checked: {reason}")),
            (Judgement::Pass, false) | (Judgement::Fail(_), true) => Judgement::Pass,
            (Judgement::Fail(reason), false) => Judgement::Fail(reason),
            (Judgement::Pass, true) => {
                Judgement::Fail(format!("expected the opposite of `{}`", &self.label[4..]))
            }
        }
    }
}

/// `$.a.b[0].c` or `/a/b/0/c` to a JSON pointer.
fn to_pointer(path: &str) -> Result<String, String> {
    if path.is_empty() || path.starts_with('/') {
        return Ok(path.to_owned());
    }
    let rest = path
        .strip_prefix('$')
        .ok_or_else(|| format!("`{path}` is neither a JSON pointer nor a `$.` path"))?;
    let mut pointer = String::new();
    for part in rest.split('.').filter(|p| !p.is_empty()) {
        let (name, indexes) = part.split_once('[').map_or((part, ""), |(n, i)| (n, i));
        if !name.is_empty() {
            pointer.push('/');
            pointer.push_str(&name.replace('~', "~0").replace('/', "~1"));
        }
        for index in indexes.split('[').filter(|i| !i.is_empty()) {
            pointer.push('/');
            pointer.push_str(index.trim_end_matches(']'));
        }
    }
    Ok(pointer)
}

impl Assertion {
    fn holds(&self, observed: &Observed<'_>) -> Judgement {
        let fail = |reason: String| Judgement::Fail(reason);
        let check = |ok: bool, reason: &dyn Fn() -> String| {
            if ok { Judgement::Pass } else { fail(reason()) }
        };
        // Assertions on the run itself need no deliverable.
        match self {
            Assertion::Outcome(expected) => {
                let actual = match observed.outcome {
                    RunOutcome::Valid => Some(ExpectedOutcome::Valid),
                    RunOutcome::Declined => Some(ExpectedOutcome::Declined),
                    RunOutcome::Violated => Some(ExpectedOutcome::Violated),
                    _ => None,
                };
                return check(actual == Some(*expected), &|| {
                    format!("outcome {:?}, expected {expected:?}", observed.outcome)
                });
            }
            Assertion::MaxAttempts(max) => {
                return check(observed.attempts <= *max, &|| {
                    format!("{} attempts, at most {max} allowed", observed.attempts)
                });
            }
            Assertion::MaxTokens(max) => {
                let used = observed.usage.total_tokens;
                return check(used <= *max, &|| {
                    format!("{used} tokens, at most {max} allowed")
                });
            }
            Assertion::Latency(max) => {
                let ms = observed.latency_ms as f64;
                return check(ms <= *max, &|| {
                    format!("{ms} ms of model time, at most {max} allowed")
                });
            }
            Assertion::Cost {
                threshold,
                prompt_price,
                completion_price,
            } => {
                let usage = observed.usage;
                // Tokens not split into prompt and completion (a pipeline's steps, a server
                // that reports only a total) are priced at the higher rate: an upper bound,
                // never a free pass.
                let unsplit = usage
                    .total_tokens
                    .saturating_sub(usage.prompt_tokens + usage.completion_tokens);
                let cost = usage.prompt_tokens as f64 * prompt_price / 1e6
                    + usage.completion_tokens as f64 * completion_price / 1e6
                    + unsplit as f64 * prompt_price.max(*completion_price) / 1e6;
                return check(cost <= *threshold, &|| {
                    let note = if unsplit > 0 {
                        format!(
                            " ({unsplit} tokens not split into prompt and completion, priced at the higher rate)"
                        )
                    } else {
                        String::new()
                    };
                    format!("cost ${cost:.4}, at most ${threshold} allowed{note}")
                });
            }
            _ => {}
        }
        let Some(deliverable) = observed.deliverable else {
            return Judgement::Unchecked(format!(
                "no deliverable (outcome {:?})",
                observed.outcome
            ));
        };
        match self {
            Assertion::Contains(text) => check(deliverable.contains(text.as_str()), &|| {
                format!("does not contain {text:?}")
            }),
            Assertion::IContains(text) => check(
                deliverable.to_lowercase().contains(&text.to_lowercase()),
                &|| format!("does not contain {text:?} (any case)"),
            ),
            Assertion::Equals(text) => check(deliverable.trim() == text.trim(), &|| {
                "differs from the expected text".into()
            }),
            Assertion::Regex(pattern) => check(pattern.is_match(deliverable), &|| {
                format!("does not match /{pattern}/")
            }),
            Assertion::IsJson => check(observed.json().is_some(), &|| "is not JSON".into()),
            Assertion::ContainsJson => check(contains_json(deliverable), &|| {
                "holds no JSON object or array".into()
            }),
            Assertion::JsonPath {
                pointer,
                check: what,
            } => {
                let Some(value) = observed.json() else {
                    return Judgement::Unchecked("the deliverable is not JSON".into());
                };
                match (value.pointer(pointer), what) {
                    (None, PathCheck::Exists) => fail(format!("nothing at `{pointer}`")),
                    (None, _) => Judgement::Unchecked(format!("nothing at `{pointer}`")),
                    (Some(_), PathCheck::Exists) => Judgement::Pass,
                    (Some(found), PathCheck::Equals(expected)) => check(found == expected, &|| {
                        format!("`{pointer}` is {found}, expected {expected}")
                    }),
                    (Some(found), PathCheck::Matches(pattern)) => {
                        let text = found
                            .as_str()
                            .map_or_else(|| found.to_string(), str::to_owned);
                        check(pattern.is_match(&text), &|| {
                            format!("`{pointer}` is {found}, which does not match /{pattern}/")
                        })
                    }
                }
            }
            Assertion::Heading { text, level } => {
                let wanted = fold(text);
                let levels: Vec<usize> = headings(deliverable)
                    .iter()
                    .filter(|(_, t)| fold(t) == wanted)
                    .map(|(l, _)| *l)
                    .collect();
                let found = levels.iter().any(|l| level.is_none_or(|want| *l == want));
                check(found, &|| match (level, levels.is_empty()) {
                    (Some(want), false) => format!(
                        "no heading {text:?} at level {want}; found it at level {}",
                        levels
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    _ => format!("no heading {text:?}"),
                })
            }
            Assertion::TableRow { cells, section } => {
                let rows = table_rows(deliverable, section.as_deref());
                let wanted: Vec<String> = cells.iter().map(|c| fold(c)).collect();
                let found = rows.iter().any(|row| {
                    wanted
                        .iter()
                        .all(|w| row.iter().any(|cell| fold(cell).contains(w.as_str())))
                });
                check(found, &|| format!("no table row with {cells:?}"))
            }
            Assertion::MaxWords { max, pointer } => {
                let text = match pointer {
                    Some(pointer) => {
                        match observed.json().and_then(|v| v.pointer(pointer).cloned()) {
                            Some(Value::String(s)) => s,
                            Some(other) => other.to_string(),
                            None => return Judgement::Unchecked(format!("nothing at `{pointer}`")),
                        }
                    }
                    None => deliverable.to_owned(),
                };
                let words = crate::text::word_count(&text);
                check(words <= *max, &|| {
                    format!("{words} words, at most {max} allowed")
                })
            }
            Assertion::NoReasoningLeak => match leak(deliverable, observed.reasoning) {
                Some(what) => fail(what),
                None => Judgement::Pass,
            },
            Assertion::LlmRubric(rubric) => Judgement::Judge(rubric.clone()),
            Assertion::Outcome(_)
            | Assertion::MaxAttempts(_)
            | Assertion::MaxTokens(_)
            | Assertion::Latency(_)
            | Assertion::Cost { .. } => Judgement::Pass,
        }
    }
}

fn contains_json(text: &str) -> bool {
    text.char_indices()
        .filter(|(_, c)| *c == '{' || *c == '[')
        .take(64)
        .any(|(start, _)| {
            let mut stream =
                serde_json::Deserializer::from_str(&text[start..]).into_iter::<Value>();
            matches!(stream.next(), Some(Ok(Value::Object(_) | Value::Array(_))))
        })
}

/// A leak: a reasoning tag, or a line of the reasoning (40+ characters) repeated word for word.
fn leak(deliverable: &str, reasoning: &str) -> Option<String> {
    let lower = deliverable.to_ascii_lowercase();
    for tag in ["think", "release_planning", "reasoning"] {
        if lower.contains(&format!("<{tag}>")) || lower.contains(&format!("</{tag}>")) {
            return Some(format!("the deliverable holds a `<{tag}>` tag"));
        }
    }
    reasoning
        .lines()
        .map(str::trim)
        .filter(|line| line.chars().count() >= 40)
        .find(|line| deliverable.contains(line))
        .map(|line| {
            format!(
                "the deliverable repeats the reasoning line \"{}\"",
                crate::text::quote(line, 60)
            )
        })
}

fn headings(text: &str) -> Vec<(usize, String)> {
    use pulldown_cmark::{Event, Parser, Tag, TagEnd};
    let mut found = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for event in Parser::new(text) {
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                current = Some((level as usize, String::new()))
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some((_, heading)) = &mut current {
                    heading.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_)) => found.extend(current.take()),
            _ => {}
        }
    }
    found
}

/// The body rows of every table, or of the tables under `section` (its subsections included).
fn table_rows(text: &str, section: Option<&str>) -> Vec<Vec<String>> {
    use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};
    let wanted = section.map(fold);
    let mut rows = Vec::new();
    let mut in_section = wanted.is_none();
    // The level of the matched section heading, while inside it.
    let mut section_level: Option<usize> = None;
    let mut heading: Option<(usize, String)> = None;
    let mut row: Option<Vec<String>> = None;
    let mut cell: Option<String> = None;
    let mut in_head = false;
    for event in Parser::new_ext(text, Options::ENABLE_TABLES) {
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                heading = Some((level as usize, String::new()))
            }
            Event::End(TagEnd::Heading(_)) => {
                if let (Some((level, text)), Some(w)) = (heading.take(), &wanted) {
                    if fold(&text) == *w {
                        section_level = Some(level);
                    } else if section_level.is_some_and(|open| level <= open) {
                        section_level = None;
                    }
                    in_section = section_level.is_some();
                }
            }
            Event::Start(Tag::TableHead) => in_head = true,
            Event::End(TagEnd::TableHead) => in_head = false,
            Event::Start(Tag::TableRow) if !in_head => row = Some(Vec::new()),
            Event::End(TagEnd::TableRow) => {
                if let Some(done) = row.take()
                    && in_section
                {
                    rows.push(done);
                }
            }
            Event::Start(Tag::TableCell) => cell = Some(String::new()),
            Event::End(TagEnd::TableCell) => {
                if let (Some(done), Some(row)) = (cell.take(), &mut row) {
                    row.push(done);
                }
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some((_, h)) = &mut heading {
                    h.push_str(&t);
                } else if let Some(c) = &mut cell {
                    c.push_str(&t);
                }
            }
            _ => {}
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> Check {
        Check::parse(&serde_yaml_ng::from_str(yaml).expect("yaml")).expect("parses")
    }

    fn observed(deliverable: &str) -> Observed<'_> {
        Observed {
            outcome: RunOutcome::Valid,
            deliverable: Some(deliverable),
            reasoning: "I will put the production canary at five percent for thirty minutes first.",
            attempts: 2,
            usage: Usage {
                prompt_tokens: 1_000_000,
                completion_tokens: 100_000,
                total_tokens: 1_100_000,
            },
            latency_ms: 1200,
            json: std::cell::OnceCell::new(),
        }
    }

    fn passes(check: &Check, deliverable: &str) -> bool {
        matches!(check.evaluate(&observed(deliverable)), Judgement::Pass)
    }

    #[test]
    fn promptfoo_style_assertions_and_negation() {
        assert!(passes(
            &spec("{type: contains, value: OPS-1482}"),
            "ticket OPS-1482"
        ));
        assert!(!passes(
            &spec("{type: not-contains, value: OPS-1482}"),
            "ticket OPS-1482"
        ));
        assert!(passes(
            &spec("{type: icontains, value: ops-1482}"),
            "ticket OPS-1482"
        ));
        assert!(passes(
            &spec("{type: regex, value: 'v\\d+\\.\\d+'}"),
            "v2.4"
        ));
        assert!(passes(&spec("{type: is-json}"), "{\"a\": 1}"));
        assert!(!passes(&spec("{type: is-json}"), "# Plan"));
        assert!(passes(
            &spec("{type: contains-json}"),
            "see {\"a\": 1} here"
        ));
        assert!(passes(&spec("{type: equals, value: done}"), " done\n"));
        assert!(passes(
            &spec("{type: cost, threshold: 0.6, prompt_price: 0.4, completion_price: 1.6}"),
            "x"
        ));
        assert!(!passes(
            &spec("{type: cost, threshold: 0.5, prompt_price: 0.4, completion_price: 1.6}"),
            "x"
        ));
        assert!(passes(&spec("{type: latency, threshold: 1500}"), "x"));

        // Only a total (a pipeline): 1.1 M tokens at the higher $1.6 rate is $1.76.
        let mut total_only = observed("x");
        total_only.usage = Usage {
            prompt_tokens: 0,
            completion_tokens: 0,
            total_tokens: 1_100_000,
        };
        let cost = |threshold: f64| {
            spec(&format!(
                "{{type: cost, threshold: {threshold}, prompt_price: 0.4, completion_price: 1.6}}"
            ))
            .evaluate(&total_only)
        };
        assert!(matches!(cost(1.8), Judgement::Pass));
        match cost(1.7) {
            Judgement::Fail(reason) => assert!(
                reason.contains("$1.7600")
                    && reason.contains("not split into prompt and completion"),
                "{reason}"
            ),
            _ => panic!("a total over the threshold fails"),
        }
    }

    #[test]
    fn our_assertions() {
        let json = r#"{"deployment_plan": {"strategy": "canary", "environments": [{"name": "prod"}]}, "summary": "one two three"}"#;
        assert!(passes(
            &spec("{type: json-path, path: $.deployment_plan.strategy, equals: canary}"),
            json
        ));
        assert!(passes(
            &spec(
                "{type: json-path, path: '$.deployment_plan.environments[0].name', matches: '^pr'}"
            ),
            json
        ));
        assert!(passes(&spec("{type: json-path, path: /summary}"), json));
        assert!(!passes(&spec("{type: json-path, path: /missing}"), json));
        assert!(passes(
            &spec("{type: max-words, value: 3, path: /summary}"),
            json
        ));
        assert!(!passes(
            &spec("{type: max-words, value: 2, path: /summary}"),
            json
        ));
        let plan = "# Plan\n## 1. Environments\n| Stage | Region |\n|---|---|\n| Production | eu-central-1 |\n## 2. Other\n";
        assert!(passes(
            &spec("{type: heading, value: 1. environments, level: 2}"),
            plan
        ));
        assert!(!passes(
            &spec("{type: heading, value: 1. environments, level: 3}"),
            plan
        ));
        assert!(passes(
            &spec("{type: table-row, value: [production, eu-central]}"),
            plan
        ));
        assert!(passes(
            &spec("{type: table-row, value: [production], section: 1. Environments}"),
            plan
        ));
        assert!(!passes(
            &spec("{type: table-row, value: [production], section: 2. Other}"),
            plan
        ));
        assert!(passes(&spec("{type: max-attempts, value: 2}"), "x"));
        assert!(!passes(&spec("{type: max-attempts, value: 1}"), "x"));
        assert!(!passes(&spec("{type: max-tokens, value: 1000}"), "x"));
        assert!(passes(&spec("{type: outcome, value: valid}"), "x"));
        assert!(!passes(&spec("{type: outcome, value: declined}"), "x"));
        let nested = "## Scope\n### Matrix\n| Feature | Risk |\n|---|---|\n| Holds | Low |\n## Next\n| Feature | Risk |\n|---|---|\n| Other | High |\n";
        assert!(
            passes(
                &spec("{type: table-row, value: [holds], section: Scope}"),
                nested
            ),
            "a subsection's table is in its section"
        );
        assert!(!passes(
            &spec("{type: table-row, value: [other], section: Scope}"),
            nested
        ));
        let check = spec("{type: heading, value: Matrix, level: 2}");
        match check.evaluate(&observed(nested)) {
            Judgement::Fail(reason) => assert!(reason.contains("found it at level 3"), "{reason}"),
            _ => panic!("the heading is at level 3"),
        }
    }

    #[test]
    fn a_negated_assertion_that_cannot_be_checked_still_fails() {
        let mut none = observed("x");
        none.deliverable = None;
        none.outcome = RunOutcome::Violated;
        let check = spec("{type: not-contains, value: anything}");
        assert!(
            matches!(check.evaluate(&none), Judgement::Fail(reason) if reason.starts_with("not checked"))
        );
        let json = r#"{"a": 1}"#;
        assert!(
            !passes(&spec("{type: not-json-path, path: /b, equals: 2}"), json),
            "no `/b` to compare"
        );
        assert!(
            passes(&spec("{type: not-json-path, path: /b}"), json),
            "`/b` does not exist, as asserted"
        );
    }

    #[test]
    fn reasoning_leaks_are_caught_by_tag_and_by_repeated_line() {
        let check = spec("{type: no-reasoning-leak}");
        assert!(passes(&check, "# Plan\nCanary at 5%."));
        assert!(!passes(&check, "# Plan\n<think>x</think>"));
        assert!(!passes(
            &check,
            "# Plan\nI will put the production canary at five percent for thirty minutes first."
        ));
    }

    #[test]
    fn bad_assertions_are_refused() {
        for yaml in [
            "{type: contains}",
            "{type: regex, value: '('}",
            "{type: nope}",
            "{type: json-path}",
            "{type: cost, value: 1}",
        ] {
            let parsed: AssertionSpec = serde_yaml_ng::from_str(yaml).expect("yaml");
            assert!(Check::parse(&parsed).is_err(), "{yaml}");
        }
    }
}
