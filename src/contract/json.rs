//! JSON contracts: a JSON Schema (draft 2020-12) plus the named checks of its `x-agent` block.

use std::path::Path;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{ValidationError, Validator};
use serde_json::Value;

use super::checks::Extension;
use super::error::ContractError;
use super::repair;
use super::verdict::{Location, Violation};
use crate::text;

/// A loaded JSON contract.
#[derive(Debug)]
pub(crate) struct JsonContract {
    /// The schema as written, for people and for `response_format`.
    pub(crate) schema: Value,
    validator: Validator,
    extension: Extension,
}

/// The judgement of a JSON deliverable, before it becomes a verdict.
pub(crate) struct JsonJudgement {
    pub(crate) value: Option<serde_json::Value>,
    pub(crate) findings: Vec<Violation>,
    pub(crate) repairs: Vec<String>,
    pub(crate) deliverable: String,
    pub(crate) declined: bool,
}

impl JsonContract {
    pub(crate) fn load(path: &Path, text: &str) -> Result<JsonContract, ContractError> {
        let schema: Value = serde_json::from_str(text).map_err(|error| {
            let offset: usize = text
                .split_inclusive('\n')
                .take(error.line().saturating_sub(1))
                .map(str::len)
                .sum::<usize>()
                + error.column().saturating_sub(1);
            ContractError::parse(path, text, error.to_string(), Some(offset))
        })?;
        let extension = match schema.get("x-agent") {
            Some(block) => serde_json::from_value(block.clone()).map_err(|error| {
                ContractError::parse(
                    path,
                    text,
                    format!("in `x-agent`: {error}"),
                    text.find("\"x-agent\""),
                )
            })?,
            None => Extension::default(),
        };
        let validator = jsonschema::draft202012::options()
            .should_validate_formats(true)
            .offline()
            .build(&schema)
            .map_err(|error| ContractError::Schema {
                path: path.to_owned(),
                message: error.to_string(),
            })?;
        Ok(JsonContract {
            schema,
            validator,
            extension,
        })
    }

    /// Is the deliverable's value a refusal?
    pub(crate) fn declines(&self, value: &Value) -> bool {
        self.extension
            .declined
            .as_ref()
            .is_some_and(|declined| declined.matches(value))
    }

    pub(crate) fn judge(&self, deliverable: &str) -> JsonJudgement {
        let found = repair::find_json(deliverable, self.extension.prose);
        let mut findings = found.findings;
        let declined = match &found.value {
            Some(value) if value.is_object() => {
                findings.extend(self.schema_findings(value));
                for check in &self.extension.checks {
                    check.run(value, &mut findings);
                }
                self.declines(value)
            }
            _ => false,
        };
        JsonJudgement {
            value: found.value,
            findings,
            repairs: found.repairs,
            deliverable: found.text,
            declined,
        }
    }

    fn schema_findings(&self, value: &Value) -> Vec<Violation> {
        let mut findings = Vec::new();
        for error in self.validator.iter_errors(value) {
            describe(&error, &self.schema, &mut findings);
        }
        findings
    }
}

/// Turn one validation error into violations, descending into the `oneOf` branch the
/// deliverable came closest to, so that the report speaks of the variant the model meant.
/// When nothing in the deliverable points to one (`{}`), every branch is described alike: a
/// re-ask that listed only the refusal's few fields would nudge the model to decline.
fn describe(error: &ValidationError<'_>, root: &Value, findings: &mut Vec<Violation>) {
    let pointer = error.instance_path().as_str().to_owned();
    let instance = error.instance();
    let found = || text::quote(&instance.to_string(), 80);
    let (rule, message) = match error.kind() {
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } => {
            // The branch the deliverable meant is the one whose top-level shape fits: fewest
            // missing or unexpected properties right at this object, then fewest errors.
            let shape_errors = |branch: &Vec<ValidationError<'_>>| {
                branch
                    .iter()
                    .filter(|inner| {
                        inner.instance_path().as_str() == pointer
                            && matches!(
                                inner.kind(),
                                ValidationErrorKind::Required { .. }
                                    | ValidationErrorKind::AdditionalProperties { .. }
                                    | ValidationErrorKind::Type { .. }
                            )
                    })
                    .map(|inner| match inner.kind() {
                        ValidationErrorKind::AdditionalProperties { unexpected } => {
                            unexpected.len()
                        }
                        _ => 1,
                    })
                    .sum::<usize>()
            };
            let branches = branch_schemas(root, error.schema_path().as_str());
            // How many of the deliverable's own properties each branch knows: the evidence of
            // which one the model meant.
            let evidence = |index: usize| {
                let (Some(branches), Some(object)) = (&branches, instance.as_object()) else {
                    return 0;
                };
                branches.get(index).map_or(0, |branch| {
                    object.keys().filter(|key| knows(branch, key)).count()
                })
            };
            let unclear = branches.is_some()
                && instance.is_object()
                && context.len() > 1
                && (0..context.len()).all(|index| evidence(index) == 0);
            if unclear {
                let names: Vec<String> = (0..context.len())
                    .map(|index| {
                        branches
                            .as_ref()
                            .and_then(|b| b.get(index))
                            .map_or_else(|| format!("shape {}", index + 1), |b| b.name.clone())
                    })
                    .collect();
                for (index, branch) in context.iter().enumerate() {
                    let missing: Vec<String> = branch
                        .iter()
                        .filter(|inner| inner.instance_path().as_str() == pointer)
                        .filter_map(|inner| match inner.kind() {
                            ValidationErrorKind::Required { property } => {
                                property.as_str().map(|name| format!("`{name}`"))
                            }
                            _ => None,
                        })
                        .collect();
                    let what = if missing.is_empty() {
                        "it breaks other rules of that shape".to_owned()
                    } else {
                        let shown = missing.len().min(6);
                        let more = if missing.len() > shown {
                            format!(", … ({} in all)", missing.len())
                        } else {
                            String::new()
                        };
                        format!(
                            "it lacks the required properties {}{more}",
                            missing[..shown].join(", ")
                        )
                    };
                    findings.push(Violation::hard(
                        "schema.oneOf",
                        Location::pointer(pointer.clone()),
                        format!(
                            "matches none of the {} allowed shapes ({}); as `{}` {what}",
                            context.len(),
                            names
                                .iter()
                                .map(|n| format!("`{n}`"))
                                .collect::<Vec<_>>()
                                .join(" or "),
                            names[index]
                        ),
                    ));
                }
                return;
            }
            if let Some((_, closest)) = context.iter().enumerate().min_by_key(|(index, branch)| {
                (
                    std::cmp::Reverse(evidence(*index)),
                    shape_errors(branch),
                    branch.len(),
                )
            }) {
                for inner in closest {
                    describe(inner, root, findings);
                }
                return;
            }
            (
                "schema.oneOf",
                "matches none of the allowed shapes".to_owned(),
            )
        }
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            findings.push(Violation::hard(
                "schema.required",
                Location::pointer(format!("{pointer}/{}", escape(name))),
                format!("missing required property `{name}`"),
            ));
            return;
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            for name in unexpected {
                findings.push(Violation::hard(
                    "schema.additionalProperties",
                    Location::pointer(format!("{pointer}/{}", escape(name))),
                    format!("unexpected property `{name}`; the contract does not allow it"),
                ));
            }
            return;
        }
        ValidationErrorKind::Enum { options } => {
            let allowed: Vec<&str> = options
                .as_array()
                .map(|items| items.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut message = format!(
                "found {}; expected one of {}",
                found(),
                allowed
                    .iter()
                    .map(|a| format!("`{a}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if let Some(given) = instance.as_str() {
                let lower = given.to_lowercase();
                if let Some(meant) = allowed.iter().find(|a| a.eq_ignore_ascii_case(given)) {
                    message.push_str(&format!(" (values are case-sensitive: `{meant}`)"));
                } else if let Some(meant) = allowed.iter().find(|a| {
                    let a = a.to_lowercase();
                    lower.starts_with(&a)
                        || a.starts_with(&lower)
                        || text::edit_distance(&a, &lower) <= 2
                }) {
                    message.push_str(&format!(" (did you mean `{meant}`?)"));
                }
            }
            ("schema.enum", message)
        }
        ValidationErrorKind::Constant { expected_value } => (
            "schema.const",
            format!("found {}; expected {}", found(), expected_value),
        ),
        ValidationErrorKind::Format { format } => {
            let expected = match format.as_str() {
                "date-time" => {
                    "an ISO 8601 date-time with a time zone (RFC 3339, e.g. `2025-03-14T09:30:00Z`)"
                }
                "date" => "an ISO 8601 date (e.g. `2025-03-14`)",
                "uri" => "an absolute URI with a scheme (e.g. `https://…`)",
                "email" => "an e-mail address",
                _ => "the declared format",
            };
            (
                "schema.format",
                format!("found {}; expected {expected} (format `{format}`)", found()),
            )
        }
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                jsonschema::error::TypeKind::Single(single) => single.to_string(),
                jsonschema::error::TypeKind::Multiple(set) => set
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(" or "),
            };
            (
                "schema.type",
                format!("found {}; expected a value of type {expected}", found()),
            )
        }
        other => (
            "schema.other",
            format!(
                "{} ({})",
                text::clip(&error.to_string(), 200),
                other.keyword()
            ),
        ),
    };
    let rule = if rule == "schema.other" {
        format!("schema.{}", error.kind().keyword())
    } else {
        rule.to_owned()
    };
    findings.push(Violation::hard(rule, Location::pointer(pointer), message));
}

/// One branch of a `oneOf` or `anyOf`: its name (the `$ref`'s last part, or its `title`) and
/// the properties it knows.
struct Branch {
    name: String,
    properties: Vec<String>,
}

fn knows(branch: &Branch, key: &str) -> bool {
    branch.properties.iter().any(|p| p == key)
}

/// The branches of the combinator at `schema_path`, following local `$ref`s; none when the
/// path cannot be followed (a remote reference, a form not handled here).
fn branch_schemas<'a>(root: &'a Value, schema_path: &str) -> Option<Vec<Branch>> {
    let resolve = |node: &'a Value| resolve_ref(root, node);
    let mut node = root;
    for segment in schema_path.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if segment == "$ref" {
            node = resolve(node)?.1;
            continue;
        }
        node = match node {
            Value::Object(map) => map.get(&segment)?,
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    let branches = node.as_array()?;
    branches
        .iter()
        .enumerate()
        .map(|(index, branch)| {
            let (name, schema) = resolve(branch)?;
            let name = name
                .or_else(|| {
                    schema
                        .get("title")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| format!("shape {}", index + 1));
            let mut properties: Vec<String> = schema
                .get("properties")
                .and_then(Value::as_object)
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default();
            properties.extend(
                schema
                    .get("required")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_owned),
            );
            Some(Branch { name, properties })
        })
        .collect()
}

/// `node` with its local `$ref`s followed, and the last reference's name.
fn resolve_ref<'a>(root: &'a Value, mut node: &'a Value) -> Option<(Option<String>, &'a Value)> {
    let mut name = None;
    // A cycle of references ends here rather than looping.
    for _ in 0..16 {
        let Some(reference) = node.get("$ref").and_then(Value::as_str) else {
            return Some((name, node));
        };
        let pointer = reference.strip_prefix('#')?;
        name = pointer.rsplit('/').next().map(str::to_owned);
        node = root.pointer(pointer)?;
    }
    None
}

/// Escape a property name for a JSON pointer.
fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}
