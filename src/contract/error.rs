//! Errors met while loading a contract.

use std::path::PathBuf;

use miette::{Diagnostic, NamedSource, SourceSpan};

/// A contract file that cannot be used.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum ContractError {
    /// The file could not be read.
    #[error("cannot read contract `{}`", path.display())]
    #[diagnostic(code(agent::contract::read))]
    Read {
        /// The contract file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The file's name says no kind of contract.
    #[error("contract `{}` is not a JSON Schema (`*.schema.json`), a markdown scaffold (`*.scaffold.yaml`) or a tagged answer (`*.tagged.yaml`)", path.display())]
    #[diagnostic(code(agent::contract::kind))]
    UnknownKind {
        /// The contract file.
        path: PathBuf,
    },

    /// The file does not parse.
    #[error("invalid contract `{}`: {message}", path.display())]
    #[diagnostic(code(agent::contract::parse))]
    Parse {
        /// The contract file.
        path: PathBuf,
        /// What the parser said.
        message: String,
        /// The file's text.
        #[source_code]
        src: NamedSource<String>,
        /// Where.
        #[label("here")]
        span: Option<SourceSpan>,
    },

    /// The JSON Schema is not a valid schema.
    #[error("invalid JSON Schema `{}`: {message}", path.display())]
    #[diagnostic(code(agent::contract::schema))]
    Schema {
        /// The contract file.
        path: PathBuf,
        /// What the validator said.
        message: String,
    },
}

impl ContractError {
    pub(crate) fn parse(
        path: &std::path::Path,
        text: &str,
        message: String,
        offset: Option<usize>,
    ) -> ContractError {
        ContractError::Parse {
            path: path.to_owned(),
            message,
            src: NamedSource::new(path.display().to_string(), text.to_owned()),
            span: offset.map(|offset| SourceSpan::from((offset.min(text.len()), 1))),
        }
    }
}
