//! Errors of the MCP server: [`McpError`] stops `agent mcp`; a [`CallError`] fails one tool
//! call, and reaches the caller as a tool result with `isError` set.

use std::path::PathBuf;

use miette::Diagnostic;

use crate::inputs::{InputProblem, InputsError};
use crate::runner::RunError;

/// The server cannot run.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum McpError {
    /// No agent to serve.
    #[error("no agents to serve in `{}`", prompts.display())]
    #[diagnostic(code(agent::mcp::no_agents))]
    NoAgents {
        /// The prompts directory.
        prompts: PathBuf,
    },
    /// The client went away, or spoke something else than MCP, before the handshake ended.
    #[error("the MCP handshake on stdio failed")]
    #[diagnostic(
        code(agent::mcp::handshake),
        help("`agent mcp` is started by an MCP client, which talks to it over stdin and stdout")
    )]
    Handshake {
        /// What rmcp saw.
        #[source]
        source: Box<rmcp::service::ServerInitializeError>,
    },
    /// A root given with `--allow-root` (or the project directory) is not a readable
    /// directory.
    #[error("cannot allow `{}` as a root of tree inputs", path.display())]
    #[diagnostic(
        code(agent::mcp::allow_root),
        help("`--allow-root` takes an existing directory")
    )]
    Root {
        /// The root given.
        path: PathBuf,
        /// Why it cannot be resolved.
        #[source]
        source: std::io::Error,
    },
    /// The task serving the connection panicked or was aborted.
    #[error("the MCP server stopped unexpectedly")]
    #[diagnostic(code(agent::mcp::stopped))]
    Stopped {
        /// The join error.
        #[source]
        source: tokio::task::JoinError,
    },
}

/// One tool call that could not produce a run report.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// An argument is not a string (or a number or boolean, taken as text).
    #[error("argument `{name}` must be a string, not {found}")]
    Argument {
        /// The argument.
        name: String,
        /// The JSON type given.
        found: &'static str,
    },
    /// A tree argument names a path outside the project directory and the allowed roots.
    #[error(
        "argument `{name}`: `{path}` is outside the project directory and the allowed roots (`agent mcp --allow-root DIR` allows more)"
    )]
    OutsideRoots {
        /// The argument.
        name: String,
        /// The path given.
        path: String,
    },
    /// A tree argument names a path inside the roots that cannot be read.
    #[error("argument `{name}`: cannot read `{path}`: {message}")]
    TreePath {
        /// The argument.
        name: String,
        /// The path given.
        path: String,
        /// The I/O error.
        message: String,
    },
    /// The arguments do not make valid inputs. Not a `source`: the message already lists
    /// every problem, and the caller would read them twice.
    #[error("{}", describe_inputs(.0))]
    Inputs(InputsError),
    /// The run folder cannot be created.
    #[error("cannot create the run folder in `{}`", path.display())]
    Folder {
        /// The parent directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The run could not be made or finished.
    #[error(transparent)]
    Run(RunError),
}

/// The problems as a caller of the tool reads them: a missing input is a missing argument,
/// not the files and flags `agent run` would take it from.
fn describe_inputs(error: &InputsError) -> String {
    let problems: Vec<String> = error
        .problems
        .iter()
        .map(|problem| match problem {
            InputProblem::Missing { input, .. } => format!("  - missing required input `{input}`"),
            other => format!("  - {other}"),
        })
        .collect();
    format!(
        "{} with the inputs of `{}`:\n{}",
        if problems.len() == 1 {
            "1 problem".to_owned()
        } else {
            format!("{} problems", problems.len())
        },
        error.agent,
        problems.join("\n")
    )
}
