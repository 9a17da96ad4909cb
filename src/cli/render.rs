//! `agent render`: gather inputs, render, print the prompt. No model is called.

use super::args::RenderArgs;
use crate::error::Error;
use crate::exit::Status;
use crate::project::Project;

pub(crate) fn run(project: &Project, args: &RenderArgs) -> Result<Status, Error> {
    let agent = project.load(&args.agent)?;
    crate::lint::check_unbound(&agent.prompt, args.strict)?;
    let sources = args.inputs.sources()?;
    let gathered = crate::inputs::gather(&agent.prompt, &sources, &args.inputs.limits())?;
    for warning in &gathered.warnings {
        tracing::warn!("{warning}");
    }
    let rendered = crate::render::render(&agent.prompt, &gathered.inputs)?;
    for report in &rendered.guarded {
        tracing::warn!("{report}");
    }
    super::output::print(rendered.text.as_bytes(), None)?;
    Ok(Status::Ok)
}
