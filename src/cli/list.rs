//! `agent list`: every agent of the project, a broken one with its error beside the good ones.

use super::args::ListArgs;
use super::output;
use crate::error::Error;
use crate::exit::Status;
use crate::project::Project;

pub(crate) fn run(project: &Project, args: &ListArgs) -> Result<Status, Error> {
    let mut rows = Vec::new();
    let mut broken = 0;
    for name in project.agent_names()? {
        match project.load(&name) {
            Ok(agent) => rows.push(serde_json::json!({
                "name": name,
                "dialect": agent.prompt.dialect,
                "contract": agent.prompt.contract,
                "description": agent.prompt.description,
            })),
            Err(error) => {
                broken += 1;
                // The whole diagnostic (with its source excerpt) is for `agent show NAME`;
                // a list keeps one line per agent.
                rows.push(serde_json::json!({
                    "name": name,
                    "error": crate::text::quote(&one_line(&error), 300),
                }));
            }
        }
    }
    let text = if args.json {
        serde_json::to_string_pretty(&rows).unwrap_or_default() + "\n"
    } else {
        table(&rows)
    };
    output::print(text.as_bytes(), None)?;
    if broken > 0 {
        tracing::error!(
            "{broken} agent{} cannot be loaded; `agent show NAME` shows why",
            if broken == 1 { "" } else { "s" }
        );
        return Ok(Status::Usage);
    }
    Ok(Status::Ok)
}

/// An error and its first labelled problem, on one line.
fn one_line(error: &Error) -> String {
    use miette::Diagnostic as _;
    let mut text = crate::text::error_chain(error);
    if let Some(label) = error
        .labels()
        .and_then(|mut labels| labels.next())
        .and_then(|label| label.label().map(str::to_owned))
    {
        text.push_str(": ");
        text.push_str(&label);
    }
    text
}

fn table(rows: &[serde_json::Value]) -> String {
    let width = rows
        .iter()
        .filter_map(|r| r["name"].as_str())
        .map(str::len)
        .max()
        .unwrap_or(4);
    let mut text = String::new();
    for row in rows {
        let name = row["name"].as_str().unwrap_or_default();
        let line = match row["error"].as_str() {
            Some(error) => format!("{name:width$}  BROKEN: {error}"),
            None => format!(
                "{name:width$}  {}",
                row["description"].as_str().unwrap_or_default()
            ),
        };
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}
