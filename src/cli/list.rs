//! `agent list`.

use std::io::Write as _;

use super::args::ListArgs;
use crate::error::Error;
use crate::exit::Status;
use crate::project::Project;

pub(crate) fn run(project: &Project, args: &ListArgs) -> Result<Status, Error> {
    let mut rows = Vec::new();
    for name in project.agent_names()? {
        let agent = project.load(&name)?;
        rows.push(serde_json::json!({
            "name": name,
            "dialect": agent.prompt.dialect,
            "contract": agent.prompt.contract,
            "description": agent.prompt.description,
        }));
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        let text = serde_json::to_string_pretty(&rows).unwrap_or_default();
        let _ = writeln!(out, "{text}");
        return Ok(Status::Ok);
    }
    let width = rows
        .iter()
        .filter_map(|r| r["name"].as_str())
        .map(str::len)
        .max()
        .unwrap_or(4);
    for row in &rows {
        let _ = writeln!(
            out,
            "{:width$}  {}",
            row["name"].as_str().unwrap_or_default(),
            row["description"].as_str().unwrap_or_default(),
        );
    }
    Ok(Status::Ok)
}
