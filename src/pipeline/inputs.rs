//! A pipeline's own inputs, gathered as an agent's are: from `--inputs DIR`, `--vars`, stdin
//! JSON and `--var`, with their defaults, under the same checks; every problem named at once.

use std::collections::BTreeMap;

use super::check::{Binding, Part, Plan};
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
    let values: BTreeMap<String, String> = gathered
        .inputs
        .iter()
        .map(|(name, value)| (name.clone(), value.text.clone()))
        .collect();
    let problems = values_not_allowed(plan, &values);
    if !problems.is_empty() {
        return Err(PipelineError::Inputs { problems });
    }
    Ok(values)
}

/// Pipeline inputs bound to a step input that takes only certain values (`ENVIRONMENT`:
/// staging or production), checked now rather than when the step is reached, after the
/// steps before it have spent their tokens.
fn values_not_allowed(plan: &Plan, values: &BTreeMap<String, String>) -> Vec<String> {
    let mut problems = Vec::new();
    for step in &plan.steps {
        for (name, binding) in &step.bindings {
            let (Binding::One(Part::Input(input)), Some(spec)) =
                (binding, step.agent.prompt.input(name))
            else {
                continue;
            };
            let Some(value) = values.get(input) else {
                continue;
            };
            if !spec.allows(value) {
                problems.push(format!(
                    "`{input}` is `{value}`, but step `{}` takes it as `{name}`, which allows only {}",
                    step.name,
                    spec.allowed.join(", ")
                ));
            }
        }
    }
    problems
}
