//! Markdown scaffolds: the shape a markdown deliverable must have, written in YAML.
//!
//! ```yaml
//! title: { text: Release & Deployment Plan }
//! sections:
//!   - heading: "1. Environments"
//!     tables: [{ columns: [Stage, Cloud / Region, Runtime, Data Stores, Purpose] }]
//!   - heading: "3. CI/CD Pipeline"
//!     match: prefix
//!     code_blocks: [{ language: yaml }]
//! extra_sections: hard
//! front_matter: { required: true, keys: [title, date] }
//! lines: [{ line: 1, max_chars: 72 }]
//! soft:
//!   bullets_per_section: { min: 4, max: 6 }
//! ```

use std::path::Path;

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

use super::error::ContractError;
use super::verdict::Severity;

/// A markdown deliverable's required shape.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scaffold {
    /// What this scaffold is, for people.
    pub description: Option<String>,
    /// The document's title heading; sections sit one level below it.
    pub title: Option<HeadingSpec>,
    /// The sections, in order.
    pub sections: Vec<SectionSpec>,
    /// A section heading the scaffold does not list.
    #[serde(default)]
    pub extra_sections: Strictness,
    /// Text before the title (or before the first section when there is no title).
    #[serde(default)]
    pub preamble: Strictness,
    /// Text after a closing thematic break (`---`) at the end of the document.
    #[serde(default)]
    pub trailing_text: Strictness,
    /// Lines that must start a line somewhere in the document (`Environment:`).
    #[serde(default)]
    pub required_lines: Vec<String>,
    /// A YAML front matter block the document must open with, and its keys.
    pub front_matter: Option<FrontMatterSpec>,
    /// Rules on single lines of the document (the first line of a commit message).
    #[serde(default)]
    pub lines: Vec<LineRule>,
    /// Rules recorded as warnings.
    #[serde(default)]
    pub soft: SoftRules,
}

/// How a heading is recognised.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HeadingSpec {
    /// The heading text, compared with Unicode spaces, dashes and case folded.
    pub text: String,
    /// Exact text, a prefix (for headings that go on with a project's name), or a regex.
    #[serde(default, rename = "match")]
    pub matching: Matching,
    #[serde(skip)]
    compiled: Option<Regex>,
}

impl HeadingSpec {
    /// Does `heading` name this title?
    pub(crate) fn matches(&self, heading: &str) -> bool {
        heading_matches(heading, &self.text, self.matching, self.compiled.as_ref())
    }

    /// The title as messages name it: its text, or `/regex/`.
    pub fn label(&self) -> String {
        label(&self.text, self.matching)
    }
}

/// How heading text is compared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Matching {
    /// The whole heading.
    #[default]
    Exact,
    /// The heading starts with the text.
    Prefix,
    /// The text is a regular expression the whole folded heading must match (letter case
    /// ignored): `.+` for a heading the model fills in (`# [Incident Title]`).
    Regex,
}

/// Does `heading` match `wanted`? Both are folded (Unicode spaces, dashes, case).
fn heading_matches(heading: &str, wanted: &str, matching: Matching, regex: Option<&Regex>) -> bool {
    let heading = crate::text::fold(heading);
    match matching {
        Matching::Exact => heading == crate::text::fold(wanted),
        Matching::Prefix => heading.starts_with(&crate::text::fold(wanted)),
        Matching::Regex => regex.is_some_and(|regex| regex.is_match(&heading)),
    }
}

fn label(text: &str, matching: Matching) -> String {
    match matching {
        Matching::Regex => format!("/{text}/"),
        Matching::Exact | Matching::Prefix => text.to_owned(),
    }
}

/// A whole-match, case-insensitive regex for folded headings.
fn heading_regex(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(&format!("^(?:{pattern})$"))
        .case_insensitive(true)
        .build()
}

/// One section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SectionSpec {
    /// The heading text.
    pub heading: String,
    /// Exact, prefix or regex.
    #[serde(default, rename = "match")]
    pub matching: Matching,
    #[serde(skip)]
    compiled: Option<Regex>,
    /// An optional section may be left out.
    #[serde(default)]
    pub optional: bool,
    /// Tables the section must hold.
    #[serde(default)]
    pub tables: Vec<TableSpec>,
    /// Fenced code blocks the section must hold.
    #[serde(default)]
    pub code_blocks: Vec<CodeBlockSpec>,
    /// The section must hold a task list (`- [ ]`).
    #[serde(default)]
    pub checklist: bool,
    /// The section's list: how many items, numbered or bulleted.
    #[serde(default)]
    pub list: Option<ListSpec>,
    /// Sections one level down, in order.
    #[serde(default)]
    pub subsections: Vec<SectionSpec>,
}

impl SectionSpec {
    /// Does `heading` name this section?
    pub(crate) fn matches(&self, heading: &str) -> bool {
        heading_matches(
            heading,
            &self.heading,
            self.matching,
            self.compiled.as_ref(),
        )
    }

    /// The section as messages name it: its heading, or `/regex/`.
    pub fn label(&self) -> String {
        label(&self.heading, self.matching)
    }
}

/// The YAML front matter block a document opens with (`---` … `---`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FrontMatterSpec {
    /// The block must be there; when it need not be, its keys are checked only when it is.
    #[serde(default = "yes")]
    pub required: bool,
    /// Keys that must be there, each with a value.
    #[serde(default)]
    pub keys: Vec<String>,
}

fn yes() -> bool {
    true
}

/// Which line a [`LineRule`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum LineRef {
    /// The n-th line (1-based), counted from the document's first non-blank line.
    Number(usize),
    /// `last`: the last non-blank line.
    Named(NamedLine),
}

/// A line named by a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NamedLine {
    /// The last non-blank line.
    Last,
}

impl std::fmt::Display for LineRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LineRef::Number(number) => write!(f, "line {number}"),
            LineRef::Named(NamedLine::Last) => f.write_str("the last line"),
        }
    }
}

/// A rule on one line of the document.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LineRule {
    /// The line.
    pub line: LineRef,
    /// A regular expression the line must match (anywhere, unless anchored).
    pub pattern: Option<String>,
    /// The most characters the line may have.
    pub max_chars: Option<usize>,
    /// The fewest characters the line may have.
    pub min_chars: Option<usize>,
    /// The line must be blank (the line after a commit message's subject).
    #[serde(default)]
    pub blank: bool,
    /// Hard (the default) or soft.
    #[serde(default = "hard")]
    pub severity: Severity,
    #[serde(skip)]
    pub(crate) compiled: Option<Regex>,
}

fn hard() -> Severity {
    Severity::Hard
}

impl LineRule {
    /// What the rule asks, in a few words.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(pattern) = &self.pattern {
            parts.push(format!("matches `{pattern}`"));
        }
        if let Some(min) = self.min_chars {
            parts.push(format!("at least {min} characters"));
        }
        if let Some(max) = self.max_chars {
            parts.push(format!("at most {max} characters"));
        }
        if self.blank {
            parts.push("blank".to_owned());
        }
        format!("{}: {}", self.line, parts.join(", "))
    }
}

/// A required table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    /// Its header cells, in order.
    pub columns: Vec<String>,
    /// The fewest body rows it may have.
    #[serde(default = "one")]
    pub min_rows: usize,
}

fn one() -> usize {
    1
}

/// A required fenced code block.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CodeBlockSpec {
    /// Its language (`yaml`); any language when absent.
    pub language: Option<String>,
}

/// What breaking a structural rule costs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strictness {
    /// A violation.
    #[default]
    Hard,
    /// A warning.
    Soft,
    /// Nothing.
    Allowed,
}

/// Rules that only warn.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SoftRules {
    /// Each section's count of top-level list items.
    pub bullets_per_section: Option<CountRange>,
    /// Headings in Title Case.
    #[serde(default)]
    pub title_case_headings: bool,
    /// Placeholder text the model should have filled (`{DATE}`).
    #[serde(default)]
    pub unfilled_placeholders: Vec<String>,
}

/// The list a section must hold (`list: { items: 10, numbered: true }`): its top-level items
/// are counted, nested ones belong to their parent.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListSpec {
    /// Exactly this many items.
    #[serde(default)]
    pub items: Option<usize>,
    /// At least this many.
    #[serde(default)]
    pub min_items: Option<usize>,
    /// At most this many.
    #[serde(default)]
    pub max_items: Option<usize>,
    /// `true`: a numbered list (`1.`); `false`: bullets (`-`); absent: either.
    #[serde(default)]
    pub numbered: Option<bool>,
}

/// An inclusive count range.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CountRange {
    /// At least.
    pub min: usize,
    /// At most.
    pub max: usize,
}

impl Scaffold {
    /// Parse a scaffold file's text, and compile its regular expressions.
    pub(crate) fn load(path: &Path, text: &str) -> Result<Scaffold, ContractError> {
        let mut scaffold: Scaffold = serde_yaml_ng::from_str(text).map_err(|error| {
            let offset = error.location().map(|location| location.index());
            ContractError::parse(path, text, error.to_string(), offset)
        })?;
        let at = |pattern: &str, message: String| {
            ContractError::parse(path, text, message, text.find(pattern))
        };
        let compile = |pattern: &str| {
            heading_regex(pattern).map_err(|error| {
                at(
                    pattern,
                    format!("`{pattern}` is not a regular expression: {error}"),
                )
            })
        };
        if let Some(title) = &mut scaffold.title
            && title.matching == Matching::Regex
        {
            title.compiled = Some(compile(&title.text)?);
        }
        fn sections(
            specs: &mut [SectionSpec],
            compile: &dyn Fn(&str) -> Result<Regex, ContractError>,
        ) -> Result<(), ContractError> {
            for spec in specs {
                if spec.matching == Matching::Regex {
                    spec.compiled = Some(compile(&spec.heading)?);
                }
                sections(&mut spec.subsections, compile)?;
            }
            Ok(())
        }
        sections(&mut scaffold.sections, &compile)?;
        for rule in &mut scaffold.lines {
            if rule.line == LineRef::Number(0) {
                return Err(at(
                    "line: 0",
                    "line rules count lines from 1 (or name `last`)".into(),
                ));
            }
            if rule.pattern.is_none()
                && rule.max_chars.is_none()
                && rule.min_chars.is_none()
                && !rule.blank
            {
                return Err(at(
                    "lines",
                    format!(
                        "the rule on {} says nothing: give `pattern`, `max_chars`, `min_chars` or `blank`",
                        rule.line
                    ),
                ));
            }
            if let Some(pattern) = &rule.pattern {
                rule.compiled = Some(Regex::new(pattern).map_err(|error| {
                    at(
                        pattern,
                        format!("`{pattern}` is not a regular expression: {error}"),
                    )
                })?);
            }
        }
        Ok(scaffold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str) -> Result<Scaffold, String> {
        Scaffold::load(Path::new("s.scaffold.yaml"), yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn a_regex_heading_matches_the_whole_folded_heading() {
        let scaffold = load(
            "title: { text: 'incident postmortem', match: exact }\nsections:\n  - { heading: '.+', match: regex }\n  - { heading: '\\d+\\. root cause.*', match: regex }\n",
        )
        .expect("loads");
        assert!(scaffold.sections[0].matches("Checkout 502s"));
        assert!(scaffold.sections[1].matches("3. ROOT CAUSE ANALYSIS"));
        assert!(!scaffold.sections[1].matches("Notes on 3. Root Cause"));
        assert_eq!(scaffold.sections[1].label(), "/\\d+\\. root cause.*/");
    }

    #[test]
    fn broken_regexes_and_empty_line_rules_are_refused() {
        assert!(
            load("sections:\n  - { heading: '(', match: regex }\n")
                .expect_err("refused")
                .contains("not a regular expression")
        );
        assert!(
            load("sections: []\nlines: [{ line: 1 }]\n")
                .expect_err("refused")
                .contains("says nothing")
        );
        assert!(
            load("sections: []\nlines: [{ line: 0, blank: true }]\n")
                .expect_err("refused")
                .contains("from 1")
        );
        let scaffold =
            load("sections: []\nlines: [{ line: last, max_chars: 9, severity: soft }]\n")
                .expect("loads");
        assert_eq!(scaffold.lines[0].line, LineRef::Named(NamedLine::Last));
    }
}
