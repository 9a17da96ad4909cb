//! `llm-rubric`: a judge model grades a deliverable against a rubric. The judge is an agent
//! like any other, built in: its reply is held to a JSON contract and re-asked when it breaks
//! it, through the same runner as every case.

use std::path::Path;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::contract::Contract;
use crate::inputs::Inputs;
use crate::model::ModelClient;
use crate::project::Agent;
use crate::prompt::Prompt;
use crate::runner::{Run, RunOptions, RunOutcome, run};

const PROMPT: &str = include_str!("judge.md");
const SCHEMA: &str = include_str!("judge.schema.json");

/// The built-in judge agent.
pub(crate) fn judge_agent() -> Result<Agent, String> {
    let prompt = Prompt::parse(
        "llm-rubric-judge",
        Path::new("<built-in judge prompt>"),
        PROMPT.to_owned(),
    )
    .map_err(|e| e.to_string())?;
    let contract = Contract::json_from_str(Path::new("<built-in judge schema>"), SCHEMA)
        .map_err(|e| e.to_string())?;
    Ok(Agent { prompt, contract })
}

#[derive(Deserialize)]
struct Grade {
    reason: String,
    score: f64,
    pass: bool,
}

/// Grade `output` against `rubric` with `model`; `Ok(None)` passes, `Ok(Some(reason))` fails.
pub(crate) async fn grade(
    client: &dyn ModelClient,
    judge: &Agent,
    model: &str,
    rubric: &str,
    output: &str,
    cancel: CancellationToken,
) -> Result<Option<String>, String> {
    let mut inputs = Inputs::new();
    inputs.set("RUBRIC", rubric);
    inputs.set("OUTPUT", output);
    let report = run(
        client,
        Run {
            agent: judge,
            inputs: &inputs,
            model: model.to_owned(),
            temperature: judge.prompt.defaults.temperature,
            max_tokens: judge.prompt.defaults.max_tokens,
            seed: None,
            top_p: None,
            options: RunOptions {
                attempts: 2,
                ..RunOptions::default()
            },
            folder: None,
            cancel,
        },
    )
    .await
    .map_err(|e| format!("the judge model failed: {e}"))?;
    if report.outcome != RunOutcome::Valid {
        let violations: Vec<String> = report
            .last_violations()
            .iter()
            .map(ToString::to_string)
            .collect();
        return Err(format!(
            "the judge's reply broke its contract after {} attempt(s): {}",
            report.attempts.len(),
            violations.join("; ")
        ));
    }
    let grade: Grade = serde_json::from_str(report.deliverable.as_deref().unwrap_or("{}"))
        .map_err(|e| e.to_string())?;
    Ok(
        (!grade.pass)
            .then(|| format!("the judge failed it ({:.2}): {}", grade.score, grade.reason)),
    )
}
