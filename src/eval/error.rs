//! Errors that stop an eval before or outside its cases.

use std::path::PathBuf;

use miette::Diagnostic;

/// An eval that cannot run.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum EvalError {
    /// Case files that cannot be used, all named.
    #[error("{} case file problem(s):\n{}", problems.len(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    #[diagnostic(
        code(agent::eval::cases),
        help("see the `Fixtures and cases` section of the README for the case file format")
    )]
    Cases {
        /// Each problem, with its file.
        problems: Vec<String>,
    },
    /// No case matched.
    #[error("no case matches {what}")]
    #[diagnostic(code(agent::eval::no_cases))]
    NoCases {
        /// The selection.
        what: String,
    },
    /// A report file that cannot be read, written or merged.
    #[error("report `{}`: {message}", path.display())]
    #[diagnostic(code(agent::eval::report))]
    Report {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A bad flag value.
    #[error("{message}")]
    #[diagnostic(code(agent::eval::usage))]
    Usage {
        /// What is wrong.
        message: String,
    },
}
