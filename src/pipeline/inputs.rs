//! A pipeline's own inputs, gathered as an agent's are: from `--inputs DIR`, `--vars`, stdin
//! JSON and `--var`, with their defaults, under the same checks; every problem named at once.

use std::collections::BTreeMap;

use super::check::Plan;
use super::run::PipelineError;
use crate::inputs::{Limits, Sources, gather};
use crate::prompt::{InputSpec, Prompt};

/// The value of every input of `plan`, from `sources`.
pub fn read_pipeline_inputs(
    plan: &Plan,
    sources: &Sources,
    limits: &Limits,
) -> Result<BTreeMap<String, String>, PipelineError> {
    let specs = plan
        .inputs
        .iter()
        .map(|(name, input)| InputSpec {
            description: input.description.clone(),
            required: input.default.is_none(),
            default: input.default.clone(),
            ..InputSpec::new(name)
        })
        .collect();
    let prompt = Prompt::inputs_only(&plan.name, &plan.path, specs);
    let gathered = gather(&prompt, sources, limits).map_err(|error| PipelineError::Inputs {
        problems: error.problems.iter().map(ToString::to_string).collect(),
    })?;
    for warning in &gathered.warnings {
        tracing::warn!("{warning}");
    }
    Ok(gathered
        .inputs
        .iter()
        .map(|(name, value)| (name.clone(), value.text.clone()))
        .collect())
}
