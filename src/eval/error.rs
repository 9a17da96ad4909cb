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
    /// The eval folder cannot be used.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Folder(#[from] crate::artifacts::FolderError),
    /// A resume with flags or a model setup other than the eval was started with.
    #[error("--resume continues the eval as it was started, and the flags differ:\n  {conflicts}")]
    #[diagnostic(
        code(agent::eval::resume),
        help("give the same flags and model settings, or leave the flags out")
    )]
    Resume {
        /// Each difference, one per line.
        conflicts: String,
    },
    /// A report that could not be written (a full disk).
    #[error("cannot write the report `{}`", path.display())]
    #[diagnostic(code(agent::eval::write))]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A bad flag value.
    #[error("{message}")]
    #[diagnostic(code(agent::eval::usage))]
    Usage {
        /// What is wrong.
        message: String,
    },
}
