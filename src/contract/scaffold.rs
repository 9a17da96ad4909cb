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
//! soft:
//!   bullets_per_section: { min: 4, max: 6 }
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::ContractError;

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
    /// Exact text, or a prefix (for headings that go on with a project's name).
    #[serde(default, rename = "match")]
    pub matching: Matching,
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
}

/// One section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SectionSpec {
    /// The heading text.
    pub heading: String,
    /// Exact or prefix.
    #[serde(default, rename = "match")]
    pub matching: Matching,
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
    /// Sections one level down, in order.
    #[serde(default)]
    pub subsections: Vec<SectionSpec>,
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
    /// Parse a scaffold file's text.
    pub(crate) fn load(path: &Path, text: &str) -> Result<Scaffold, ContractError> {
        serde_yaml_ng::from_str(text).map_err(|error| {
            let offset = error.location().map(|location| location.index());
            ContractError::parse(path, text, error.to_string(), offset)
        })
    }
}
