//! Exit codes: one number per kind of outcome, the same for every command.

/// How a command ended, as the process exit code tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// The deliverable is valid (or the command had nothing to judge).
    Ok,
    /// The deliverable breaks its contract (after the last attempt, for `run`).
    Violated,
    /// Bad flags, agent file, template, schema, configuration or inputs.
    Usage,
    /// The model endpoint failed: transport, authentication, server errors.
    Model,
    /// The agent declined with a valid `insufficient_context` reply.
    Declined,
    /// The result could not be written: stdout refused it (a full disk, a closed pipe) or a
    /// run folder, report or recording could not be written.
    Output,
    /// Stopped by Ctrl-C or SIGTERM before the run finished.
    Interrupted,
}

impl Status {
    /// The process exit code for this status.
    pub fn code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Violated => 1,
            Status::Usage => 2,
            Status::Model => 3,
            Status::Declined => 4,
            Status::Output => 5,
            Status::Interrupted => 130,
        }
    }
}
