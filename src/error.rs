//! The top-level error: every stage's error, and the exit code each maps to.

use std::path::PathBuf;

use miette::Diagnostic;

use crate::contract::ContractError;
use crate::exit::Status;
use crate::inputs::InputsError;
use crate::project::ProjectError;
use crate::prompt::PromptError;
use crate::render::RenderError;
use crate::runner::RunError;
use crate::settings::SettingsError;

/// Anything that stops a command.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum Error {
    /// Finding the project or agent.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Project(#[from] ProjectError),
    /// Loading an agent file.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Prompt(#[from] PromptError),
    /// Loading a contract.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Contract(#[from] ContractError),
    /// Gathering inputs.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Inputs(#[from] InputsError),
    /// Rendering a prompt.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Render(#[from] RenderError),
    /// Resolving model settings.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Settings(#[from] SettingsError),
    /// A run that failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Run(#[from] RunError),
    /// A model client that could not be set up (a recording that cannot be read).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Model(#[from] crate::model::ModelError),
    /// A pipeline that cannot run.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Pipeline(#[from] crate::pipeline::PipelineError),
    /// An eval that cannot run.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Eval(#[from] crate::eval::EvalError),
    /// The MCP server cannot run.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Mcp(#[from] crate::mcp::McpError),
    /// A run, eval or pipeline folder that cannot be used.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Folder(#[from] crate::artifacts::FolderError),
    /// A prompt that cannot be imported.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Import(#[from] crate::import::ImportError),
    /// A file the command needs cannot be read or written.
    #[error("cannot {action} `{}`", path.display())]
    #[diagnostic(code(agent::io))]
    Io {
        /// `read` or `write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Stdout could not take the whole output: a full disk, a closed pipe.
    #[error("cannot write the output to stdout ({bytes} bytes): {reason}")]
    #[diagnostic(code(agent::stdout))]
    Stdout {
        /// The size of the output.
        bytes: usize,
        /// Why, in words (`the reader closed the pipe`, `no space left on device`).
        reason: String,
        /// That stdout holds no complete result, and where the result can still be found.
        #[help]
        hint: String,
    },
    /// Flags that do not fit together.
    #[error("{message}")]
    #[diagnostic(code(agent::usage))]
    Usage {
        /// What is wrong.
        message: String,
        /// How to fix it.
        #[help]
        hint: Option<String>,
    },
}

impl Error {
    /// The exit status this error ends the process with.
    pub fn exit_code(&self) -> Status {
        match self {
            Error::Run(RunError::Model { error, .. }) | Error::Model(error) => {
                if error.is_usage() {
                    Status::Usage
                } else {
                    Status::Model
                }
            }
            Error::Run(RunError::Artifacts { .. }) | Error::Stdout { .. } => Status::Output,
            Error::Io { action, .. } if *action != "read" => Status::Output,
            Error::Folder(error) | Error::Eval(crate::eval::EvalError::Folder(error))
                if error.is_io() =>
            {
                Status::Output
            }
            Error::Eval(crate::eval::EvalError::Write { .. })
            | Error::Pipeline(crate::pipeline::PipelineError::Write { .. }) => Status::Output,
            Error::Run(_)
            | Error::Settings(_)
            | Error::Eval(_)
            | Error::Pipeline(_)
            | Error::Mcp(_) => Status::Usage,
            Error::Project(_)
            | Error::Prompt(_)
            | Error::Contract(_)
            | Error::Inputs(_)
            | Error::Render(_)
            | Error::Io { .. }
            | Error::Folder(_)
            | Error::Import(_)
            | Error::Usage { .. } => Status::Usage,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_after_the_run_is_an_output_failure_not_usage() {
        let full = || std::io::Error::from(std::io::ErrorKind::StorageFull);
        let artifacts = Error::Run(RunError::Artifacts {
            path: "run/deliverable.json".into(),
            source: full(),
        });
        assert_eq!(artifacts.exit_code(), Status::Output);
        let report = Error::Eval(crate::eval::EvalError::Write {
            path: "report.xml".into(),
            source: full(),
        });
        assert_eq!(report.exit_code(), Status::Output);
        let unreadable = Error::Io {
            action: "read",
            path: "vars.yaml".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(unreadable.exit_code(), Status::Usage);
    }
}
