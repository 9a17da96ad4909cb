//! `agent render`: gather inputs, render, print the prompt. No model is called.

use std::io::Write as _;

use super::args::RenderArgs;
use crate::error::Error;
use crate::exit::Status;
use crate::project::Project;

pub(crate) fn run(project: &Project, args: &RenderArgs) -> Result<Status, Error> {
    let agent = project.load(&args.agent)?;
    let sources = args.inputs.sources()?;
    let gathered = crate::inputs::gather(&agent.prompt, &sources, &args.inputs.limits())?;
    for warning in &gathered.warnings {
        tracing::warn!("{warning}");
    }
    let rendered = crate::render::render(&agent.prompt, &gathered.inputs)?;
    for report in &rendered.guarded {
        tracing::warn!("{report}");
    }
    let mut out = std::io::stdout().lock();
    out.write_all(rendered.text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|source| Error::Io {
            action: "write",
            path: "<stdout>".into(),
            source,
        })?;
    Ok(Status::Ok)
}
