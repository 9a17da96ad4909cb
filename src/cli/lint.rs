//! `agent lint`: an agent's problems before a run, for people, for GitHub and as JSON.

use std::fmt::Write as _;

use clap::{Args, ValueEnum};

use super::output;
use crate::error::Error;
use crate::exit::Status;
use crate::lint::{Finding, Severity};
use crate::project::Project;

/// How `agent lint` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LintFormat {
    /// Lines for people.
    Text,
    /// GitHub Actions workflow annotations (`::error file=…,line=…::…`).
    Github,
    /// One JSON object.
    Json,
}

/// `agent lint`.
#[derive(Debug, Args)]
pub struct LintArgs {
    /// Agents to lint [default: all].
    pub agents: Vec<String>,
    /// How to print the findings.
    #[arg(long, value_enum, default_value = "text")]
    pub format: LintFormat,
    /// Warnings count as errors.
    #[arg(long)]
    pub strict: bool,
}

pub(crate) fn run(project: &Project, args: &LintArgs) -> Result<Status, Error> {
    let paths =
        crate::lint::targets(&project.prompts_dir(), &args.agents).map_err(|source| Error::Io {
            action: "read",
            path: project.prompts_dir(),
            source,
        })?;
    let mut results: Vec<(String, std::path::PathBuf, Vec<Finding>)> = Vec::new();
    for path in paths {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let findings = if path.is_file() {
            crate::lint::lint(&path, &project.schemas_dir())
        } else {
            vec![Finding {
                severity: Severity::Error,
                rule: "agent.missing",
                line: None,
                message: format!("no agent `{name}`"),
            }]
        };
        results.push((name, path, findings));
    }
    let counts = |severity: Severity| {
        results
            .iter()
            .flat_map(|(_, _, f)| f)
            .filter(|f| f.severity == severity)
            .count()
    };
    let (errors, warnings) = (counts(Severity::Error), counts(Severity::Warning));
    let relative = |path: &std::path::Path| {
        path.strip_prefix(&project.root)
            .unwrap_or(path)
            .display()
            .to_string()
    };
    let mut text = String::new();
    match args.format {
        LintFormat::Json => {
            let agents: Vec<serde_json::Value> = results
                .iter()
                .map(|(name, path, findings)| {
                    serde_json::json!({ "agent": name, "path": relative(path), "findings": findings })
                })
                .collect();
            let value =
                serde_json::json!({ "agents": agents, "errors": errors, "warnings": warnings });
            text = serde_json::to_string_pretty(&value).unwrap_or_default() + "\n";
        }
        LintFormat::Github => {
            for (_, path, findings) in &results {
                for finding in findings {
                    let level = match finding.severity {
                        Severity::Error => "error",
                        Severity::Warning => "warning",
                        Severity::Note => "notice",
                    };
                    let line = finding
                        .line
                        .map(|l| format!(",line={l}"))
                        .unwrap_or_default();
                    // Workflow commands end at a line break: escape as GitHub documents.
                    let message = finding
                        .message
                        .replace('%', "%25")
                        .replace('\r', "%0D")
                        .replace('\n', "%0A");
                    let _ = writeln!(
                        text,
                        "::{level} file={}{line},title={}::{message}",
                        relative(path),
                        finding.rule
                    );
                }
            }
        }
        LintFormat::Text => {
            for (_, path, findings) in &results {
                for finding in findings {
                    let at = finding.line.map(|l| format!(":{l}")).unwrap_or_default();
                    let level = match finding.severity {
                        Severity::Error => "error",
                        Severity::Warning => "warning",
                        Severity::Note => "note",
                    };
                    let _ = writeln!(
                        text,
                        "{}{at}: {level}[{}]: {}",
                        relative(path),
                        finding.rule,
                        finding.message
                    );
                }
            }
            let _ = writeln!(
                text,
                "{} agent(s): {errors} error(s), {warnings} warning(s)",
                results.len()
            );
        }
    }
    output::print(text.as_bytes(), None)?;
    Ok(if errors > 0 || (args.strict && warnings > 0) {
        Status::Violated
    } else {
        Status::Ok
    })
}
