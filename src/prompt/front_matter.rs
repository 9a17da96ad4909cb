//! The front matter: the prompt's own keys plus our `agent:` block.

use std::collections::BTreeMap;
use std::path::Path;

use miette::{NamedSource, SourceSpan};
use serde::Deserialize;

use super::dialect::Dialect;
use super::error::PromptError;
use super::input_spec::InputKind;

/// The whole front matter block.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct FrontMatter {
    /// Our settings, parsed on their own (see [`parse`]).
    #[serde(skip)]
    pub(crate) agent: Option<AgentSection>,
    /// Variables the prompt declares itself (seed 002 style).
    pub(crate) variables: Option<Vec<String>>,
    /// Files the prompt needs as context (seed 002 style).
    #[serde(rename = "required-context")]
    pub(crate) required_context: Option<Vec<String>>,
    /// The smallest context window the prompt's author says it needs.
    #[serde(rename = "min-context-window")]
    pub(crate) min_context_window: Option<u64>,
    /// Arguments as a one-line usage string (seed 004 style).
    pub(crate) argument_hint: Option<String>,
    /// Everything else the prompt brings (title, tags, author…), kept as written.
    #[serde(flatten)]
    pub(crate) other: BTreeMap<String, serde_yaml_ng::Value>,
}

/// Our block of the front matter.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AgentSection {
    pub(crate) description: Option<String>,
    pub(crate) source: Option<String>,
    pub(crate) dialect: Dialect,
    /// Which parts of the body are sent, as which messages (see [`super::layout`]).
    pub(crate) messages: Option<serde_yaml_ng::Value>,
    /// Placeholder-looking texts meant literally (`{DATE}` for the model to fill).
    #[serde(default)]
    pub(crate) literals: Vec<String>,
    #[serde(default)]
    pub(crate) inputs: Vec<InputDecl>,
    #[serde(default)]
    pub(crate) reasoning: ReasoningDecl,
    pub(crate) contract: String,
    #[serde(default)]
    pub(crate) defaults: DefaultsDecl,
}

/// One input as our block declares or refines it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InputDecl {
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) kind: Option<InputKind>,
    pub(crate) required: Option<bool>,
    pub(crate) default: Option<String>,
    #[serde(default)]
    pub(crate) allowed: Vec<String>,
    #[serde(default)]
    pub(crate) suggested: Vec<String>,
    pub(crate) label: Option<String>,
    pub(crate) section: Option<String>,
    pub(crate) placeholder: Option<String>,
    pub(crate) budget_bytes: Option<u64>,
    pub(crate) structured: Option<bool>,
}

/// Where the prompt asks the model to put its private reasoning.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReasoningDecl {
    #[serde(default = "default_reasoning_tags")]
    pub(crate) tags: Vec<String>,
}

impl Default for ReasoningDecl {
    fn default() -> Self {
        ReasoningDecl {
            tags: default_reasoning_tags(),
        }
    }
}

/// Models that think out loud in the reply (DeepSeek R1 served without a reasoning parser,
/// QwQ) wrap it in `<think>`; every agent strips it unless it says otherwise.
fn default_reasoning_tags() -> Vec<String> {
    vec!["think".to_owned()]
}

/// Model parameters the agent suggests; flags and configuration override them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DefaultsDecl {
    pub(crate) model: Option<String>,
    pub(crate) temperature: Option<f32>,
    pub(crate) max_tokens: Option<u32>,
    pub(crate) top_p: Option<f32>,
    pub(crate) seed: Option<i64>,
}

/// The front matter and the body of an agent file, split.
pub(crate) struct Split<'a> {
    pub(crate) yaml: &'a str,
    /// Byte offset of the YAML text in the file.
    pub(crate) yaml_offset: usize,
    /// Byte offset of the body in the file.
    pub(crate) body_offset: usize,
}

/// Split `text` at its front matter fences. The body starts on the line after the closing `---`.
pub(crate) fn split<'a>(path: &Path, text: &'a str) -> Result<Split<'a>, PromptError> {
    let no_front_matter = || PromptError::NoFrontMatter {
        path: path.to_owned(),
    };
    let yaml_offset = if text.starts_with("---\n") {
        4
    } else if text.starts_with("---\r\n") {
        5
    } else {
        return Err(no_front_matter());
    };
    let rest = &text[yaml_offset..];
    let mut line_start = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end_matches(['\r', '\n']) == "---" {
            let body_offset = yaml_offset + line_start + line.len();
            return Ok(Split {
                yaml: &rest[..line_start],
                yaml_offset,
                body_offset,
            });
        }
        line_start += line.len();
    }
    Err(no_front_matter())
}

/// Parse the YAML of a front matter block, pointing into the file on error.
///
/// Each top-level key is parsed on its own. Prompt collections often write front matter that
/// is not strict YAML (`description: Safe plan: pre-checks, steps`, read line by line by the
/// tools they were written for); such a one-line entry is kept as the literal text after its
/// colon. Our `agent:` block is always parsed strictly.
pub(crate) fn parse(
    path: &Path,
    text: &str,
    split: &Split<'_>,
) -> Result<FrontMatter, PromptError> {
    let error_at = |message: String, offset: Option<usize>| PromptError::FrontMatter {
        path: path.to_owned(),
        message,
        src: NamedSource::new(path.display().to_string(), text.to_owned()),
        span: offset.map(|offset| SourceSpan::from((offset.min(text.len()), 1))),
    };
    let mut mapping = serde_yaml_ng::Mapping::new();
    let mut agent = None;
    for entry in top_level_entries(split.yaml) {
        let entry_offset = split.yaml_offset + entry.offset;
        let located = |error: serde_yaml_ng::Error| {
            let offset = error.location().map(|l| entry_offset + l.index());
            error_at(error.to_string(), offset)
        };
        if entry.key == "agent" {
            match serde_yaml_ng::from_str::<AgentWrapper>(entry.text) {
                Ok(wrapper) => agent = Some(wrapper.agent),
                Err(error) => {
                    // Name every problem of the block at once, each at its own line.
                    let problems = agent_problems(entry.text);
                    if problems.is_empty() {
                        return Err(located(error));
                    }
                    return Err(PromptError::FrontMatterProblems {
                        path: path.to_owned(),
                        count: problems.len(),
                        src: NamedSource::new(path.display().to_string(), text.to_owned()),
                        labels: problems
                            .into_iter()
                            .map(|(offset, message)| {
                                miette::LabeledSpan::at(
                                    (entry_offset + offset).min(text.len())
                                        ..(entry_offset + offset + 1).min(text.len()),
                                    message,
                                )
                            })
                            .collect(),
                    });
                }
            }
            continue;
        }
        let value = match serde_yaml_ng::from_str::<serde_yaml_ng::Mapping>(entry.text) {
            Ok(parsed) => parsed.into_iter().next().map(|(_, value)| value),
            Err(error) if !entry.text.trim_end().contains('\n') => {
                tracing::debug!(key = entry.key, %error, "front matter entry is not strict YAML; kept as text");
                let literal = entry
                    .text
                    .split_once(':')
                    .map_or("", |(_, rest)| rest.trim());
                Some(serde_yaml_ng::Value::String(literal.to_owned()))
            }
            Err(error) => return Err(located(error)),
        };
        if let Some(value) = value {
            mapping.insert(serde_yaml_ng::Value::String(entry.key.to_owned()), value);
        }
    }
    let mut front: FrontMatter = serde_yaml_ng::from_value(serde_yaml_ng::Value::Mapping(mapping))
        .map_err(|error| error_at(error.to_string(), Some(split.yaml_offset)))?;
    front.agent = agent;
    Ok(front)
}

/// The keys of a prompt's own front matter, read as leniently as its tools read them: a
/// one-line entry that is not strict YAML is kept as the text after its colon. `Err` names an
/// entry of several lines that does not parse.
pub(crate) fn lenient_keys(yaml: &str) -> Result<BTreeMap<String, serde_yaml_ng::Value>, String> {
    let mut keys = BTreeMap::new();
    for entry in top_level_entries(yaml) {
        let value = match serde_yaml_ng::from_str::<serde_yaml_ng::Mapping>(entry.text) {
            Ok(parsed) => parsed.into_iter().next().map(|(_, value)| value),
            Err(_) if !entry.text.trim_end().contains('\n') => Some(serde_yaml_ng::Value::String(
                entry
                    .text
                    .split_once(':')
                    .map_or("", |(_, rest)| rest.trim())
                    .to_owned(),
            )),
            Err(error) => return Err(format!("`{}`: {error}", entry.key)),
        };
        if let Some(value) = value {
            keys.insert(entry.key.to_owned(), value);
        }
    }
    Ok(keys)
}

#[derive(Deserialize)]
struct AgentWrapper {
    agent: AgentSection,
}

const AGENT_KEYS: [&str; 9] = [
    "description",
    "source",
    "dialect",
    "messages",
    "literals",
    "inputs",
    "reasoning",
    "contract",
    "defaults",
];

/// Every problem of an `agent:` block that serde stops at the first of: unknown keys, values
/// of the wrong shape, each input's own problems, missing required keys. Offsets are into the
/// block's text.
fn agent_problems(block: &str) -> Vec<(usize, String)> {
    use serde_yaml_ng::Value;
    let Ok(Value::Mapping(outer)) = serde_yaml_ng::from_str::<Value>(block) else {
        return Vec::new();
    };
    let Some(Value::Mapping(agent)) = outer.get("agent") else {
        return vec![(0, "`agent:` must be a map of settings".into())];
    };
    let key_offset = |key: &str| {
        let mut offset = 0;
        for line in block.split_inclusive('\n') {
            let trimmed = line.trim_start();
            if line.len() - trimmed.len() == 2 && trimmed.starts_with(&format!("{key}:")) {
                return offset + 2;
            }
            offset += line.len();
        }
        0
    };
    let item_offsets = || {
        let mut offsets = Vec::new();
        let mut inside = false;
        let mut offset = 0;
        for line in block.split_inclusive('\n') {
            let indent = line.len() - line.trim_start().len();
            if line.trim_start().starts_with("inputs:") && indent == 2 {
                inside = true;
            } else if inside && indent <= 2 && !line.trim().is_empty() {
                inside = false;
            } else if inside && line.trim_start().starts_with("- ") {
                offsets.push(offset + indent);
            }
            offset += line.len();
        }
        offsets
    };
    let message = |error: serde_yaml_ng::Error| {
        let text = error.to_string();
        text.split(" at line ").next().unwrap_or(&text).to_owned()
    };
    let mut problems = Vec::new();
    for (key, value) in agent {
        let Some(key) = key.as_str() else { continue };
        let at = key_offset(key);
        let problem = match key {
            "description" | "source" | "contract" => {
                serde_yaml_ng::from_value::<String>(value.clone())
                    .err()
                    .map(message)
            }
            "dialect" => serde_yaml_ng::from_value::<Dialect>(value.clone())
                .err()
                .map(message),
            "literals" => serde_yaml_ng::from_value::<Vec<String>>(value.clone())
                .err()
                .map(message),
            "reasoning" => serde_yaml_ng::from_value::<ReasoningDecl>(value.clone())
                .err()
                .map(message),
            "defaults" => serde_yaml_ng::from_value::<DefaultsDecl>(value.clone())
                .err()
                .map(message),
            "messages" => None,
            "inputs" => {
                let Value::Sequence(items) = value else {
                    problems.push((at, "`inputs` is a list of inputs".to_owned()));
                    continue;
                };
                let offsets = item_offsets();
                for (index, item) in items.iter().enumerate() {
                    if let Err(error) = serde_yaml_ng::from_value::<InputDecl>(item.clone()) {
                        let name = item.get("name").and_then(Value::as_str).unwrap_or("?");
                        problems.push((
                            offsets.get(index).copied().unwrap_or(at),
                            format!("input {} (`{name}`): {}", index + 1, message(error)),
                        ));
                    }
                }
                None
            }
            other => {
                let known = AGENT_KEYS.join(", ");
                // A model parameter written at the top of the block belongs under `defaults`.
                let candidates = AGENT_KEYS
                    .iter()
                    .map(|k| ((*k).to_owned(), (*k).to_owned()))
                    .chain(
                        ["model", "temperature", "max_tokens", "top_p", "seed"]
                            .iter()
                            .map(|k| ((*k).to_owned(), format!("defaults: {{ {k}: … }}"))),
                    );
                let near = candidates
                    .min_by_key(|(k, _)| crate::text::edit_distance(k, other))
                    .filter(|(k, _)| crate::text::edit_distance(k, other) <= 2)
                    .map(|(_, shown)| format!("; did you mean `{shown}`?"))
                    .unwrap_or_default();
                Some(format!("unknown key `{other}` (known: {known}){near}"))
            }
        };
        if let Some(problem) = problem {
            problems.push((at, format!("`{key}`: {problem}")));
        }
    }
    for required in ["dialect", "contract"] {
        if !agent.contains_key(required) {
            problems.push((0, format!("`agent:` needs `{required}`")));
        }
    }
    problems
}

/// One top-level `key:` of the front matter, with the indented lines that belong to it.
struct Entry<'a> {
    key: &'a str,
    offset: usize,
    text: &'a str,
}

fn top_level_entries(yaml: &str) -> Vec<Entry<'_>> {
    let mut starts: Vec<(usize, &str)> = Vec::new();
    let mut offset = 0;
    for line in yaml.split_inclusive('\n') {
        let starts_entry = line.starts_with(|c: char| !c.is_whitespace() && c != '#' && c != '-')
            && line.contains(':');
        if starts_entry {
            starts.push((
                offset,
                line.split_once(':').map_or("", |(key, _)| key.trim()),
            ));
        }
        offset += line.len();
    }
    let ends = starts
        .iter()
        .skip(1)
        .map(|(start, _)| *start)
        .chain([yaml.len()]);
    starts
        .iter()
        .zip(ends)
        .map(|(&(start, key), end)| Entry {
            key,
            offset: start,
            text: &yaml[start..end],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_the_body_byte_for_byte() {
        let text = "---\na: 1\n---\n\n# Body\n---\nmore\n";
        let split = split(Path::new("x.md"), text).expect("front matter");
        assert_eq!(split.yaml, "a: 1\n");
        assert_eq!(&text[split.body_offset..], "\n# Body\n---\nmore\n");
    }

    #[test]
    fn split_refuses_a_file_without_front_matter() {
        assert!(matches!(
            split(Path::new("x.md"), "# just a prompt\n"),
            Err(PromptError::NoFrontMatter { .. })
        ));
        assert!(matches!(
            split(Path::new("x.md"), "---\nnever closed\n"),
            Err(PromptError::NoFrontMatter { .. })
        ));
    }

    #[test]
    fn a_one_line_entry_that_is_not_strict_yaml_is_kept_as_text() {
        let text = "---\ntitle: Plan\ndescription: Safe plan: pre-checks, steps.\nagent:\n  dialect: dollar\n  contract: x.yaml\n---\nbody\n";
        let split = split(Path::new("x.md"), text).expect("split");
        let front = parse(Path::new("x.md"), text, &split).expect("lenient");
        assert_eq!(
            front.other.get("description").and_then(|v| v.as_str()),
            Some("Safe plan: pre-checks, steps.")
        );
        assert!(front.agent.is_some());
    }

    #[test]
    fn unknown_keys_in_our_block_are_errors_with_a_place() {
        let text =
            "---\nagent:\n  dialect: dollar\n  contract: x.yaml\n  temprature: 1\n---\nbody\n";
        let split = split(Path::new("x.md"), text).expect("split");
        let error = parse(Path::new("x.md"), text, &split).expect_err("typo is refused");
        match error {
            PromptError::FrontMatterProblems { labels, .. } => {
                assert_eq!(labels.len(), 1);
                let label = labels[0].label().unwrap_or_default();
                assert!(
                    label.contains("temprature") && label.contains("defaults: { temperature"),
                    "{label}"
                );
                assert_eq!(
                    &text[labels[0].offset()..labels[0].offset() + 10],
                    "temprature"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn every_problem_of_the_agent_block_is_named_at_its_own_line() {
        let text = "---\nagent:\n  dialect: curly\n  colour: red\n  inputs:\n    - { name: A, kind: blob }\n    - { name: B }\n    - { name: C, requird: true }\n---\nbody\n";
        let split = split(Path::new("x.md"), text).expect("split");
        let error = parse(Path::new("x.md"), text, &split).expect_err("refused");
        let PromptError::FrontMatterProblems { labels, .. } = error else {
            panic!("every problem at once: {error:?}");
        };
        let messages: Vec<(usize, String)> = labels
            .iter()
            .map(|l| {
                (
                    crate::text::line_of(text, l.offset()),
                    l.label().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        assert_eq!(messages.len(), 5, "{messages:#?}");
        assert!(
            messages[0].1.contains("dialect") && messages[0].0 == 3,
            "{messages:#?}"
        );
        assert!(
            messages[1].1.contains("colour") && messages[1].0 == 4,
            "{messages:#?}"
        );
        assert!(
            messages[2].1.contains("input 1") && messages[2].0 == 6,
            "{messages:#?}"
        );
        assert!(
            messages[3].1.contains("input 3") && messages[3].0 == 8,
            "{messages:#?}"
        );
        assert!(messages[4].1.contains("needs `contract`"), "{messages:#?}");
    }
}
