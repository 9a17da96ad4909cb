//! [`Verdict`]: what the contract says of one reply.

use std::fmt;

use serde::Serialize;

/// The judgement's bottom line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The deliverable meets its contract.
    Valid,
    /// The deliverable is a valid refusal (`insufficient_context`).
    Declined,
    /// The deliverable breaks at least one hard rule.
    Invalid,
}

impl Outcome {
    /// The exit status this outcome maps to.
    pub fn status(self) -> crate::Status {
        match self {
            Outcome::Valid => crate::Status::Ok,
            Outcome::Declined => crate::Status::Declined,
            Outcome::Invalid => crate::Status::Violated,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Valid => "valid",
            Outcome::Declined => "declined",
            Outcome::Invalid => "invalid",
        })
    }
}

/// Whether a rule's breach fails the deliverable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// Fails the deliverable and triggers a re-ask.
    Hard,
    /// Recorded as a warning.
    Soft,
}

/// Where in the deliverable a violation is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", untagged)]
pub enum Location {
    /// The deliverable as a whole.
    Document {
        /// Always `document`.
        r#in: &'static str,
    },
    /// A JSON pointer into a JSON deliverable.
    Pointer {
        /// The pointer (`""` is the root).
        pointer: String,
    },
    /// A line of the reply, and the heading it falls under.
    Line {
        /// The 1-based line of the reply.
        line: usize,
        /// The heading the line falls under, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        heading: Option<String>,
    },
}

impl Location {
    /// The deliverable as a whole.
    pub fn document() -> Location {
        Location::Document { r#in: "document" }
    }

    /// A JSON pointer.
    pub fn pointer(pointer: impl Into<String>) -> Location {
        Location::Pointer {
            pointer: pointer.into(),
        }
    }

    /// A reply line under a heading.
    pub fn line(line: usize, heading: Option<String>) -> Location {
        Location::Line { line, heading }
    }

    /// The reply line, for a location on one.
    pub fn line_number(&self) -> Option<usize> {
        match self {
            Location::Line { line, .. } => Some(*line),
            Location::Document { .. } | Location::Pointer { .. } => None,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Document { .. } => f.write_str("document"),
            Location::Pointer { pointer } if pointer.is_empty() => f.write_str("/ (root)"),
            Location::Pointer { pointer } => f.write_str(pointer),
            Location::Line {
                line,
                heading: Some(heading),
            } => write!(f, "line {line} (in `{heading}`)"),
            Location::Line {
                line,
                heading: None,
            } => write!(f, "line {line}"),
        }
    }
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The rule, as `family.name` (`schema.enum`, `markdown.section-order`).
    pub rule: String,
    /// Hard or soft.
    pub severity: Severity,
    /// Where.
    pub location: Location,
    /// What was found, and what was expected.
    pub message: String,
}

impl Violation {
    /// A hard violation.
    pub fn hard(
        rule: impl Into<String>,
        location: Location,
        message: impl Into<String>,
    ) -> Violation {
        Violation {
            rule: rule.into(),
            severity: Severity::Hard,
            location,
            message: message.into(),
        }
    }

    /// A soft violation (a warning).
    pub fn soft(
        rule: impl Into<String>,
        location: Location,
        message: impl Into<String>,
    ) -> Violation {
        Violation {
            severity: Severity::Soft,
            ..Violation::hard(rule, location, message)
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}: {}", self.rule, self.location, self.message)
    }
}

/// The judgement of one reply.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// Valid, declined or invalid.
    pub outcome: Outcome,
    /// Hard rules broken; empty unless the outcome is invalid.
    pub violations: Vec<Violation>,
    /// Soft rules broken.
    pub warnings: Vec<Violation>,
    /// What the lenient pre-pass repaired before the strict check.
    pub repairs: Vec<String>,
    /// The deliverable as it should be passed on (a repaired JSON text, an unwrapped document).
    pub deliverable: String,
    /// A JSON deliverable, parsed (kept so that nothing downstream parses it again).
    #[serde(skip)]
    pub json: Option<serde_json::Value>,
}

impl Verdict {
    /// Add a finding about the reply itself (truncated, refused), updating the outcome.
    pub fn add(&mut self, violation: Violation) {
        match violation.severity {
            Severity::Hard => {
                self.violations.push(violation);
                self.outcome = Outcome::Invalid;
            }
            Severity::Soft => self.warnings.push(violation),
        }
    }

    /// A verdict of one finding on a reply with no deliverable to judge.
    pub fn rejected(violation: Violation) -> Verdict {
        Verdict::new(vec![violation], Vec::new(), String::new(), false)
    }

    /// Sort findings into a verdict. `declined` says whether the deliverable is a refusal.
    pub(crate) fn new(
        findings: Vec<Violation>,
        repairs: Vec<String>,
        deliverable: String,
        declined: bool,
    ) -> Verdict {
        let (violations, warnings): (Vec<_>, Vec<_>) = findings
            .into_iter()
            .partition(|violation| violation.severity == Severity::Hard);
        let outcome = if !violations.is_empty() {
            Outcome::Invalid
        } else if declined {
            Outcome::Declined
        } else {
            Outcome::Valid
        };
        Verdict {
            outcome,
            violations,
            warnings,
            repairs,
            deliverable,
            json: None,
        }
    }
}
