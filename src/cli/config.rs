//! `agent config`: the resolved model settings, the key redacted.

use std::io::Write as _;

use clap::Args;

use super::model_args::ModelArgs;
use crate::error::Error;
use crate::exit::Status;
use crate::project::Project;
use crate::prompt::ModelDefaults;

/// `agent config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Include this agent's defaults in the resolution.
    pub agent: Option<String>,
    /// Model flags, as `run` would take them.
    #[command(flatten)]
    pub model: ModelArgs,
}

pub(crate) fn run(project: &Project, args: &ConfigArgs) -> Result<Status, Error> {
    let defaults = match &args.agent {
        Some(name) => project.load(name)?.prompt.defaults,
        None => ModelDefaults::default(),
    };
    let settings = args.model.settings(project, &defaults, None)?;
    let rows = settings.describe();
    let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    let mut out = std::io::stdout().lock();
    for (name, value) in rows {
        let _ = writeln!(out, "{name:width$}  {value}");
    }
    Ok(Status::Ok)
}
