//! Errors met while loading an agent file.

use std::path::PathBuf;

use miette::{Diagnostic, NamedSource, SourceSpan};

/// An agent file that cannot be loaded.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum PromptError {
    /// The file could not be read.
    #[error("cannot read agent file `{}`", path.display())]
    #[diagnostic(code(agent::prompt::read))]
    Read {
        /// The agent file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The file does not start with a `---` front matter block.
    #[error("agent file `{}` has no front matter", path.display())]
    #[diagnostic(
        code(agent::prompt::no_front_matter),
        help(
            "start the file with a `---` line, the YAML settings under `agent:`, and a closing `---` line"
        )
    )]
    NoFrontMatter {
        /// The agent file.
        path: PathBuf,
    },

    /// The front matter is not valid YAML, or does not fit the expected shape.
    #[error("invalid front matter in `{}`: {message}", path.display())]
    #[diagnostic(code(agent::prompt::front_matter))]
    FrontMatter {
        /// The agent file.
        path: PathBuf,
        /// What the YAML parser said.
        message: String,
        /// The file's text.
        #[source_code]
        src: NamedSource<String>,
        /// Where in the file.
        #[label("here")]
        span: Option<SourceSpan>,
    },

    /// The `agent:` block has several problems; each is labelled at its place.
    #[error("invalid front matter in `{}`: {count} problem(s) in the `agent:` block", path.display())]
    #[diagnostic(code(agent::prompt::front_matter))]
    FrontMatterProblems {
        /// The agent file.
        path: PathBuf,
        /// How many.
        count: usize,
        /// The file's text.
        #[source_code]
        src: NamedSource<String>,
        /// Each problem at its place.
        #[label(collection)]
        labels: Vec<miette::LabeledSpan>,
    },

    /// The front matter parses but says something inconsistent.
    #[error("agent `{agent}`: {message}")]
    #[diagnostic(code(agent::prompt::declaration))]
    Declaration {
        /// The agent's name.
        agent: String,
        /// What is wrong.
        message: String,
        /// How to fix it.
        #[help]
        hint: Option<String>,
    },

    /// A declared input has no placeholder in the body, so it could never reach the model.
    #[error("agent `{agent}`: input `{input}` has no placeholder in the prompt body")]
    #[diagnostic(code(agent::prompt::unbound_input))]
    UnboundInput {
        /// The agent's name.
        agent: String,
        /// The input.
        input: String,
        /// What was looked for.
        #[help]
        hint: String,
    },
}
