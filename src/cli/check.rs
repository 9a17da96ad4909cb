//! `agent check`: split a reply, judge its deliverable, report. Every kind of contract
//! (JSON Schema, markdown scaffold, tagged answer) is judged the same way `agent run` judges it.

use std::fmt::Write as _;

use super::args::CheckArgs;
use crate::contract::{Verdict, judge};
use crate::error::Error;
use crate::exit::Status;
use crate::extract::{Extracted, extract_with};
use crate::project::Project;

pub(crate) fn run(project: &Project, args: &CheckArgs) -> Result<Status, Error> {
    let agent = project.load(&args.agent)?;
    let reply = read_reply(args)?;
    let extracted = extract_with(
        &reply,
        None,
        &agent.prompt.reasoning_tags,
        agent.contract.syntax(),
    );
    let verdict = judge(
        &agent.contract,
        &reply,
        &extracted,
        &agent.prompt.reasoning_tags,
    );
    let text = if args.json {
        let envelope = serde_json::json!({
            "agent": agent.prompt.name,
            "outcome": verdict.outcome,
            "violations": verdict.violations,
            "warnings": verdict.warnings,
            "repairs": verdict.repairs,
            "reasoning": extracted.reasoning,
            "deliverable": verdict.deliverable,
            // A JSON deliverable parsed, or a tagged answer's fields as one object.
            "value": verdict.json,
        });
        serde_json::to_string_pretty(&envelope).unwrap_or_default() + "\n"
    } else {
        report(&agent.prompt.name, &extracted, &verdict)
    };
    super::output::print(text.as_bytes(), None)?;
    Ok(verdict.outcome.status())
}

fn read_reply(args: &CheckArgs) -> Result<String, Error> {
    let io = |source| Error::Io {
        action: "read",
        path: args.reply.clone(),
        source,
    };
    if args.reply.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map_err(io)?;
        Ok(text)
    } else {
        std::fs::read_to_string(&args.reply).map_err(io)
    }
}

/// The report for people: outcome, reasoning found, repairs, then each finding on a line.
fn report(agent: &str, extracted: &Extracted, verdict: &Verdict) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{agent}: {} ({} violation{}, {} warning{})",
        verdict.outcome,
        verdict.violations.len(),
        if verdict.violations.len() == 1 {
            ""
        } else {
            "s"
        },
        verdict.warnings.len(),
        if verdict.warnings.len() == 1 { "" } else { "s" },
    );
    if extracted.reasoning.is_empty() {
        let _ = writeln!(text, "  reasoning: none");
    }
    for block in &extracted.reasoning {
        let place = if block.line == 0 {
            "from the server's reasoning field".to_owned()
        } else if block.unopened {
            format!(
                "from line {} up to a `</{}>` that was never opened",
                block.line, block.tag
            )
        } else {
            format!("`<{}>` at line {}", block.tag, block.line)
        };
        let _ = writeln!(
            text,
            "  reasoning: {} chars, {place}",
            block.text.chars().count()
        );
    }
    for repair in &verdict.repairs {
        let _ = writeln!(text, "  repaired:  {repair}");
    }
    for violation in &verdict.violations {
        let _ = writeln!(text, "  violation: {violation}");
    }
    for warning in &verdict.warnings {
        let _ = writeln!(text, "  warning:   {warning}");
    }
    text
}
