//! Problems with an agent's inputs, collected so that all are named at once.

use std::fmt;
use std::path::PathBuf;

use miette::Diagnostic;

/// One thing wrong with the inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputProblem {
    /// A required input has no value.
    Missing {
        /// The input.
        input: String,
        /// The file names that would bind it.
        expected: String,
    },
    /// A required input's value is empty.
    Empty {
        /// The input.
        input: String,
        /// Where the empty value came from.
        from: String,
    },
    /// A value is not one of the allowed ones.
    NotAllowed {
        /// The input.
        input: String,
        /// The value given.
        value: String,
        /// The allowed values.
        allowed: Vec<String>,
    },
    /// `--var` names no declared input.
    UnknownVariable {
        /// The name given.
        name: String,
        /// The declared names.
        known: Vec<String>,
    },
    /// Two sources in one place bind the same input.
    Ambiguous {
        /// The input.
        input: String,
        /// The competing sources.
        sources: Vec<String>,
    },
    /// The inputs directory does not exist or is not a directory.
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// The inputs directory holds nothing.
    EmptyDirectory {
        /// The directory.
        path: PathBuf,
    },
    /// A file is not valid UTF-8 text.
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// A file holds binary data.
    Binary {
        /// The file.
        path: PathBuf,
    },
    /// A value holds a NUL byte, which no text input may.
    Nul {
        /// Where the value came from.
        from: String,
        /// Byte offset of the first NUL.
        offset: usize,
    },
    /// A value given as text is over the size limit of one input.
    ValueTooLarge {
        /// Where the value came from.
        from: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A file is over the size limit.
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A link points outside the inputs directory.
    LinkEscapes {
        /// The link.
        path: PathBuf,
        /// Where it points.
        target: PathBuf,
    },
    /// A variables file or stdin JSON cannot be read as variables.
    BadVariables {
        /// Where.
        from: String,
        /// What is wrong.
        message: String,
    },
    /// A file cannot be read.
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        message: String,
    },
}

impl fmt::Display for InputProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputProblem::Missing { input, expected } => {
                write!(f, "missing required input `{input}` (give {expected})")
            }
            InputProblem::Empty { input, from } => {
                write!(f, "required input `{input}` is empty (from {from})")
            }
            InputProblem::NotAllowed {
                input,
                value,
                allowed,
            } => write!(
                f,
                "`{input}` is `{}`; allowed: {}",
                crate::text::quote(value, 60),
                allowed
                    .iter()
                    .map(|a| format!("`{a}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            InputProblem::UnknownVariable { name, known } => write!(
                f,
                "`{name}` is not a declared input; the inputs are {}",
                known
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            InputProblem::Ambiguous { input, sources } => {
                write!(f, "`{input}` is given twice: {}", sources.join(" and "))
            }
            InputProblem::NotADirectory { path } => {
                write!(f, "`{}` is not a directory", path.display())
            }
            InputProblem::EmptyDirectory { path } => {
                write!(f, "the inputs directory `{}` is empty", path.display())
            }
            InputProblem::NotUtf8 { path, offset } => write!(
                f,
                "`{}` is not UTF-8 text (invalid byte at offset {offset})",
                path.display()
            ),
            InputProblem::Binary { path } => {
                write!(f, "`{}` is a binary file, not text", path.display())
            }
            InputProblem::Nul { from, offset } => write!(
                f,
                "{from} holds a NUL byte (at byte {offset}); a text input cannot"
            ),
            InputProblem::ValueTooLarge { from, size, limit } => write!(
                f,
                "{from} is {}, over the {} limit for one input",
                crate::text::bytes(*size),
                crate::text::bytes(*limit)
            ),
            InputProblem::TooLarge { path, size, limit } => write!(
                f,
                "`{}` is {}, over the {} limit for one input file",
                path.display(),
                crate::text::bytes(*size),
                crate::text::bytes(*limit)
            ),
            InputProblem::LinkEscapes { path, target } => write!(
                f,
                "`{}` is a link to `{}`, outside the inputs directory",
                path.display(),
                target.display()
            ),
            InputProblem::BadVariables { from, message } => {
                write!(f, "cannot read variables from {from}: {message}")
            }
            InputProblem::Unreadable { path, message } => {
                write!(f, "cannot read `{}`: {message}", path.display())
            }
        }
    }
}

/// The inputs of an agent cannot be used.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{} with the inputs of `{agent}`:\n{}", count(problems.len()), list(problems))]
#[diagnostic(
    code(agent::inputs),
    help("run `agent show {agent}` to see the inputs it declares and how files bind to them")
)]
pub struct InputsError {
    /// The agent.
    pub agent: String,
    /// Every problem found.
    pub problems: Vec<InputProblem>,
}

fn count(n: usize) -> String {
    if n == 1 {
        "1 problem".to_owned()
    } else {
        format!("{n} problems")
    }
}

fn list(problems: &[InputProblem]) -> String {
    problems
        .iter()
        .map(|problem| format!("  - {problem}"))
        .collect::<Vec<_>>()
        .join("\n")
}
