//! `agent config`: the resolved model settings, the key redacted.

use std::fmt::Write as _;

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
    let mut text = String::new();
    for (name, value) in rows {
        let _ = writeln!(text, "{name:width$}  {value}");
    }
    super::output::print(text.as_bytes(), None)?;
    Ok(Status::Ok)
}
