//! What an agent says about one of its inputs, after merging every place that declares it.

use serde::{Deserialize, Serialize};

/// The shape of an input's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputKind {
    /// A piece of text: a file's content or a literal.
    Text,
    /// A source tree: a directory walked honouring `.gitignore`, each file headed by its path.
    Tree,
    /// A document the prompt requires as context (`required-context`), appended after the body.
    Context,
}

/// One declared input.
#[derive(Debug, Clone, Serialize)]
pub struct InputSpec {
    /// The name placeholders and `--var` use (`PROJECT_REQUEST`, `software_type`, `spec.md`).
    pub name: String,
    /// What the input is for.
    pub description: Option<String>,
    /// The value's shape.
    pub kind: InputKind,
    /// A required input with no value stops the run before any model call.
    pub required: bool,
    /// The value used when an optional input is not given.
    pub default: Option<String>,
    /// When not empty, the only values accepted.
    pub allowed: Vec<String>,
    /// Values the prompt suggests, shown to people; any value is accepted.
    pub suggested: Vec<String>,
    /// The label that binds the placeholder (form and option-list dialects).
    pub label: Option<String>,
    /// The `<section>` a form field lives in.
    pub section: Option<String>,
    /// The exact placeholder text, when the dialect's own form is not used.
    pub placeholder: Option<String>,
    /// For a tree: how many bytes of file content it may add to the prompt.
    pub budget_bytes: Option<u64>,
    /// A structured value (an object or a list, given as JSON) for a template language to
    /// walk (`{% for item in documentation %}`), rather than text.
    pub structured: bool,
    /// A sample value the prompt's own front matter gives, for drafting an eval case.
    pub sample: Option<String>,
}

impl InputSpec {
    /// A required text input with nothing else said about it.
    pub fn new(name: impl Into<String>) -> InputSpec {
        InputSpec {
            name: name.into(),
            description: None,
            kind: InputKind::Text,
            required: true,
            default: None,
            allowed: Vec::new(),
            suggested: Vec::new(),
            label: None,
            section: None,
            placeholder: None,
            budget_bytes: None,
            structured: false,
            sample: None,
        }
    }

    /// Does this input accept `value`? Any value, unless it lists the allowed ones; surrounding
    /// whitespace does not count.
    pub fn allows(&self, value: &str) -> bool {
        self.allowed.is_empty() || self.allowed.iter().any(|a| a == value.trim())
    }

    /// Does `key` (a file stem, a variables-file key, a `--var` name) name this input?
    /// Case and the choice of `-` or `_` do not matter: `technical-specification.md`
    /// binds `TECHNICAL_SPECIFICATION`.
    pub fn answers_to(&self, key: &str) -> bool {
        let fold = |ch: char| {
            if ch == '-' {
                '_'
            } else {
                ch.to_ascii_lowercase()
            }
        };
        self.name.len() == key.len() && self.name.chars().map(fold).eq(key.chars().map(fold))
    }
}

/// Fold an input name for binding: lower case, `-` and `_` alike.
pub(crate) fn fold_name(name: &str) -> String {
    name.chars()
        .map(|ch| {
            if ch == '-' {
                '_'
            } else {
                ch.to_ascii_lowercase()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_bind_case_insensitively_with_either_separator() {
        let spec = InputSpec::new("TECHNICAL_SPECIFICATION");
        assert!(spec.answers_to("technical_specification"));
        assert!(spec.answers_to("Technical-Specification"));
        assert!(!spec.answers_to("technical_spec"));
    }
}
