//! [`Contract`]: a loaded contract, and [`judge`], which applies it to a reply.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::error::ContractError;
use super::json::JsonContract;
use super::markdown;
use super::scaffold::{Scaffold, Strictness};
use super::tagged::TaggedContract;
use super::verdict::{Location, Verdict, Violation};
use crate::extract::{ExtractIssue, Extracted};

/// An agent's output contract.
#[derive(Debug)]
pub struct Contract {
    /// The contract file.
    pub path: PathBuf,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Json(Box<JsonContract>),
    Markdown(Scaffold),
    Tagged(TaggedContract),
}

impl Contract {
    /// Load a contract; `*.schema.json` is a JSON Schema, `*.scaffold.yaml` a markdown
    /// scaffold, `*.tagged.yaml` a tagged answer (`.yml` also).
    pub fn load(path: &Path) -> Result<Contract, ContractError> {
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let yaml = |kind: &str| {
            file_name.ends_with(&format!(".{kind}.yaml"))
                || file_name.ends_with(&format!(".{kind}.yml"))
        };
        #[derive(PartialEq)]
        enum Format {
            Json,
            Scaffold,
            Tagged,
        }
        let format = if file_name.ends_with(".schema.json") {
            Format::Json
        } else if yaml("scaffold") {
            Format::Scaffold
        } else if yaml("tagged") {
            Format::Tagged
        } else {
            return Err(ContractError::UnknownKind {
                path: path.to_owned(),
            });
        };
        let text = std::fs::read_to_string(path).map_err(|source| ContractError::Read {
            path: path.to_owned(),
            source,
        })?;
        let kind = match format {
            Format::Json => Kind::Json(Box::new(JsonContract::load(path, &text)?)),
            Format::Scaffold => Kind::Markdown(Scaffold::load(path, &text)?),
            Format::Tagged => Kind::Tagged(TaggedContract::load(path, &text)?),
        };
        Ok(Contract {
            path: path.to_owned(),
            kind,
        })
    }

    /// A JSON contract from text; `path` names it in messages.
    pub fn json_from_str(path: &Path, text: &str) -> Result<Contract, ContractError> {
        Ok(Contract {
            path: path.to_owned(),
            kind: Kind::Json(Box::new(JsonContract::load(path, text)?)),
        })
    }

    /// A tagged contract from text; `path` names it in messages.
    pub fn tagged_from_str(path: &Path, text: &str) -> Result<Contract, ContractError> {
        Ok(Contract {
            path: path.to_owned(),
            kind: Kind::Tagged(TaggedContract::load(path, text)?),
        })
    }

    /// The JSON Schema, for a JSON contract.
    pub fn json_schema(&self) -> Option<&Value> {
        match &self.kind {
            Kind::Json(json) => Some(&json.schema),
            Kind::Markdown(_) | Kind::Tagged(_) => None,
        }
    }

    /// What kind of text the deliverable is, for reasoning extraction: a tag inside a JSON
    /// string is content.
    pub fn syntax(&self) -> crate::extract::Syntax {
        match &self.kind {
            Kind::Json(_) => crate::extract::Syntax::Json,
            Kind::Markdown(_) | Kind::Tagged(_) => crate::extract::Syntax::Text,
        }
    }

    /// The JSON Schema of the deliverable's parsed value ([`Verdict::json`]): a JSON
    /// contract's schema, or the object of a tagged contract's fields. None for markdown.
    /// What JSON pointers into a deliverable can be checked against.
    pub fn value_schema(&self) -> Option<Value> {
        match &self.kind {
            Kind::Json(json) => Some(json.schema.clone()),
            Kind::Tagged(tagged) => Some(tagged.value_schema()),
            Kind::Markdown(_) => None,
        }
    }

    /// The extension of a deliverable file under this contract: a tagged answer is plain text.
    pub fn deliverable_extension(&self) -> &'static str {
        match &self.kind {
            Kind::Json(_) => "json",
            Kind::Markdown(_) => "md",
            Kind::Tagged(_) => "txt",
        }
    }

    /// The scaffold, for a markdown contract.
    pub fn scaffold(&self) -> Option<&Scaffold> {
        match &self.kind {
            Kind::Markdown(scaffold) => Some(scaffold),
            Kind::Json(_) | Kind::Tagged(_) => None,
        }
    }

    /// The fields, for a tagged contract.
    pub fn tagged(&self) -> Option<&TaggedContract> {
        match &self.kind {
            Kind::Tagged(tagged) => Some(tagged),
            Kind::Json(_) | Kind::Markdown(_) => None,
        }
    }

    /// One line on what the contract demands, for `agent show`.
    pub fn summary(&self) -> String {
        match &self.kind {
            Kind::Json(json) => {
                let variants = json
                    .schema
                    .get("oneOf")
                    .and_then(Value::as_array)
                    .map_or(1, Vec::len);
                format!("JSON Schema (draft 2020-12), one object, {variants} variant(s)")
            }
            Kind::Markdown(scaffold) => {
                let title = scaffold
                    .title
                    .as_ref()
                    .map(|t| format!("titled `{}`, ", t.label()))
                    .unwrap_or_default();
                let required = scaffold.sections.iter().filter(|s| !s.optional).count();
                let optional = scaffold.sections.len() - required;
                let nested: usize = scaffold.sections.iter().map(|s| s.subsections.len()).sum();
                let mut summary = format!("markdown scaffold, {title}{required} sections in order");
                if optional > 0 {
                    summary.push_str(&format!(" (+{optional} optional)"));
                }
                if nested > 0 {
                    summary.push_str(&format!(", {nested} subsections"));
                }
                if !scaffold.required_lines.is_empty() {
                    summary.push_str(&format!(
                        ", closing lines {}",
                        scaffold.required_lines.join(" ")
                    ));
                }
                if let Some(front_matter) = &scaffold.front_matter {
                    summary.push_str(&format!(
                        ", front matter{}",
                        if front_matter.keys.is_empty() {
                            String::new()
                        } else {
                            format!(" with {}", front_matter.keys.join(", "))
                        }
                    ));
                }
                if !scaffold.lines.is_empty() {
                    summary.push_str(&format!(", {} line rule(s)", scaffold.lines.len()));
                }
                summary
            }
            Kind::Tagged(tagged) => {
                let tags: Vec<String> = tagged
                    .fields
                    .iter()
                    .map(|f| format!("<{}>", f.tag))
                    .collect();
                let order = match tagged.order {
                    super::tagged::Order::Strict => "in order",
                    super::tagged::Order::Any => "in any order",
                };
                let outside = match tagged.outside {
                    Strictness::Hard => "nothing outside them",
                    Strictness::Soft => "text outside them warns",
                    Strictness::Allowed => "text outside them allowed",
                };
                format!(
                    "tagged answer, {} field(s) {order}: {}; {outside}",
                    tagged.fields.len(),
                    tags.join(" ")
                )
            }
        }
    }
}

/// Judge a reply: its extraction irregularities, reasoning leaks, and the deliverable
/// against `contract`. `reasoning_tags` are the agent's reasoning tags.
#[tracing::instrument(skip_all, fields(contract = %contract.path.display()))]
pub fn judge(
    contract: &Contract,
    reply: &str,
    extracted: &Extracted,
    reasoning_tags: &[String],
) -> Verdict {
    let mut findings = Vec::new();
    for issue in &extracted.issues {
        findings.push(match issue {
            ExtractIssue::Unclosed { tag, line } => Violation::hard(
                "reasoning.unclosed",
                Location::line(*line, None),
                format!("`<{tag}>` is never closed, so everything after it was taken as reasoning; close it with `</{tag}>` before the deliverable"),
            ),
            ExtractIssue::Inline { tag, line } => Violation::hard(
                "reasoning.leak",
                Location::line(*line, None),
                format!("a `<{tag}>` block sits inside a line of the deliverable and was cut out of it; reasoning goes before the deliverable, never inside it"),
            ),
            ExtractIssue::UnopenedClose { tag, line } => Violation::soft(
                "reasoning.unopened-close",
                Location::line(*line, None),
                format!("`</{tag}>` closes a block that was never opened; the text before it was taken as reasoning"),
            ),
        });
    }
    findings.extend(leaks(reply, extracted, reasoning_tags));
    let deliverable = &extracted.deliverable;
    let mut parsed = None;
    let (repairs, cleaned, declined) = match &contract.kind {
        Kind::Json(json) => {
            let judged = json.judge(deliverable);
            findings.extend(judged.findings);
            parsed = judged.value;
            (judged.repairs, judged.deliverable, judged.declined)
        }
        Kind::Markdown(scaffold) => {
            let judged = markdown::judge(scaffold, deliverable, &|offset| {
                extracted.reply_line(reply, offset)
            });
            findings.extend(judged.findings);
            (judged.repairs, judged.deliverable, false)
        }
        Kind::Tagged(tagged) => {
            let judged = tagged.judge(deliverable, &|offset| extracted.reply_line(reply, offset));
            findings.extend(judged.findings);
            parsed = Some(judged.value);
            (Vec::new(), deliverable.clone(), false)
        }
    };
    let mut verdict = Verdict::new(findings, repairs, cleaned, declined);
    verdict.json = parsed;
    verdict
}

/// Reasoning tags left in the deliverable (inside code fences, or escaped), which would pass
/// private reasoning downstream. Every form starts with `<` or `&`, so one SIMD scan for those
/// two bytes finds the few places worth comparing; the deliverable is tens of kilobytes.
fn leaks(reply: &str, extracted: &Extracted, tags: &[String]) -> Vec<Violation> {
    let forms: Vec<String> = tags
        .iter()
        .flat_map(|tag| {
            let tag = tag.to_ascii_lowercase();
            [
                format!("<{tag}>"),
                format!("</{tag}>"),
                format!("&lt;{tag}&gt;"),
            ]
        })
        .collect();
    let text = extracted.deliverable.as_bytes();
    let mut found = Vec::new();
    for offset in memchr::memchr2_iter(b'<', b'&', text) {
        for form in &forms {
            let candidate = &text[offset..text.len().min(offset + form.len())];
            if candidate.eq_ignore_ascii_case(form.as_bytes()) {
                found.push((offset, form));
            }
        }
    }
    // One violation a line: a block left whole in a JSON string is its two tags on one line.
    let mut by_line: Vec<(usize, Vec<&String>)> = Vec::new();
    for (offset, form) in found {
        let line = extracted.reply_line(reply, offset);
        match by_line.last_mut() {
            Some((last, forms)) if *last == line => forms.push(form),
            _ => by_line.push((line, vec![form])),
        }
    }
    by_line
        .into_iter()
        .map(|(line, forms)| {
            let tags: Vec<String> = forms.iter().map(|form| format!("`{form}`")).collect();
            let (noun, list) = match tags.as_slice() {
                [one] => ("tag", one.clone()),
                many => ("tags", many.join(" and ")),
            };
            Violation::hard(
                "reasoning.leak",
                Location::line(line, None),
                format!("the deliverable carries the reasoning {noun} {list}; private reasoning must not be passed on"),
            )
        })
        .collect()
}
