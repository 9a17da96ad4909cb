//! Running a checked pipeline: ready steps at once, dependents of a failed step skipped,
//! `pipeline.json` written after every step, completed steps reused on `--resume`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use miette::Diagnostic;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::check::{Binding, Part, Plan, PlannedStep};
use super::report::{PipelineReport, StepRecord, StepStatus};
use crate::artifacts::RunFolder;
use crate::inputs::{Limits, Sources, gather, read};
use crate::model::ModelClient;
use crate::runner::{Run, RunError, RunOptions, RunOutcome, run};

/// A pipeline that cannot run.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum PipelineError {
    /// The file cannot be read.
    #[error("cannot read pipeline `{}`", path.display())]
    #[diagnostic(code(agent::pipeline::read))]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file names problems; all are listed.
    #[error("pipeline `{}` cannot run:\n{}", path.display(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    #[diagnostic(code(agent::pipeline::invalid))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Each problem, with file and line.
        problems: Vec<String>,
    },
    /// The pipeline's own inputs are missing or bad.
    #[error("the inputs of the pipeline:\n{}", problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    #[diagnostic(code(agent::pipeline::inputs))]
    Inputs {
        /// Each problem.
        problems: Vec<String>,
    },
    /// The run record cannot be written (a full disk).
    #[error("cannot write the pipeline run record `{}`", path.display())]
    #[diagnostic(code(agent::pipeline::write))]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A run record cannot be read back.
    #[error("pipeline run folder `{}`: {message}", path.display())]
    #[diagnostic(code(agent::pipeline::folder))]
    Folder {
        /// The folder or file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// The model and parameters of one step.
#[derive(Debug, Clone, Default)]
pub struct StepParameters {
    /// The model: agents may name their own.
    pub model: String,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Reply token limit.
    pub max_tokens: Option<u32>,
    /// Sampling seed.
    pub seed: Option<i64>,
    /// Nucleus sampling.
    pub top_p: Option<f32>,
    /// The context window attempts are fitted into (`--context-window`).
    pub context_window: Option<u64>,
}

impl StepParameters {
    /// The model and parameters `settings` resolve to.
    pub fn from_settings(
        settings: &crate::settings::Settings,
    ) -> Result<StepParameters, crate::settings::SettingsError> {
        Ok(StepParameters {
            model: settings.model()?.to_owned(),
            temperature: settings.temperature.as_ref().map(|t| t.value),
            max_tokens: settings.max_tokens.as_ref().map(|t| t.value),
            seed: settings.seed.as_ref().map(|t| t.value),
            top_p: settings.top_p.as_ref().map(|t| t.value),
            context_window: None,
        })
    }
}

/// How to run a pipeline.
pub struct PipelineOptions {
    /// The model and parameters of each agent.
    pub parameters: BTreeMap<String, StepParameters>,
    /// Size limits on the files steps read.
    pub limits: Limits,
    /// Attempts per step, unless a step sets its own.
    pub attempts: u32,
    /// `response_format` per step, unless a step sets its own.
    pub response_format: crate::runner::ResponseFormat,
    /// The run folder: one sub-folder per step, and `pipeline.json`.
    pub folder: Option<RunFolder>,
    /// The run being resumed (its folder is `folder`).
    pub resume: Option<PipelineReport>,
    /// Cancelled by Ctrl-C.
    pub cancel: CancellationToken,
}

/// The result of a run.
pub struct PipelineResult {
    /// The record.
    pub report: PipelineReport,
    /// The output step's deliverable, if it completed.
    pub output: Option<String>,
    /// The output deliverable, parsed, when the output step's contract is JSON.
    pub output_json: Option<Value>,
    /// Each step's reasoning, by step: kept out of every later step, but checked by evals.
    pub reasoning: Vec<String>,
}

struct Finished {
    status: StepStatus,
    reasoning: String,
    attempts: u32,
    tokens: u64,
    /// Prompt, cached prompt and reply tokens.
    counts: (u64, u64, u64),
    elapsed_ms: u64,
    fingerprint: Option<String>,
    reason: Option<String>,
    deliverable: Option<String>,
    json: Option<Value>,
    reused: bool,
}

/// Run `plan` with the pipeline `inputs`, answering requests with `client`.
pub async fn run_pipeline(
    plan: &Plan,
    inputs: &BTreeMap<String, String>,
    client: &dyn ModelClient,
    options: &PipelineOptions,
) -> Result<PipelineResult, PipelineError> {
    let started = Instant::now();
    let count = plan.steps.len();
    let mut report = PipelineReport {
        pipeline: plan.name.clone(),
        file: plan.path.display().to_string(),
        model: models(plan, options),
        steps: plan
            .steps
            .iter()
            .map(|step| StepRecord {
                name: step.name.clone(),
                agent: step.agent.prompt.name.clone(),
                status: StepStatus::Pending,
                reused: false,
                attempts: 0,
                tokens: 0,
                prompt_tokens: 0,
                cached_tokens: 0,
                completion_tokens: 0,
                elapsed_ms: 0,
                needs: step
                    .needs
                    .iter()
                    .map(|&i| plan.steps[i].name.clone())
                    .collect(),
                fingerprint: None,
                reason: None,
            })
            .collect(),
        output: plan.steps[plan.output].name.clone(),
        partial: true,
        elapsed_ms: 0,
    };
    let mut deliverables: Vec<Option<String>> = vec![None; count];
    let mut parsed: Vec<Option<Value>> = vec![None; count];
    let mut reasoning: Vec<String> = vec![String::new(); count];
    let mut started_steps = vec![false; count];
    let mut running = FuturesUnordered::new();
    // Written before any step starts, so a run killed during its first step can be resumed.
    write_report(options, &mut report, started)?;
    loop {
        if skip_blocked(plan, &mut report, options) {
            write_report(options, &mut report, started)?;
        }
        for (index, step) in plan.steps.iter().enumerate() {
            if started_steps[index] || report.steps[index].status != StepStatus::Pending {
                continue;
            }
            let ready = step
                .needs
                .iter()
                .all(|&need| report.steps[need].status == StepStatus::Valid);
            if !ready || options.cancel.is_cancelled() {
                continue;
            }
            started_steps[index] = true;
            let sources = resolve(plan, step, inputs, &deliverables, &parsed, &options.limits);
            let previous = options
                .resume
                .as_ref()
                .and_then(|previous| previous.steps.iter().find(|s| s.name == step.name).cloned());
            running.push(async move {
                (
                    index,
                    run_step(step, sources, client, options, previous).await,
                )
            });
        }
        let Some((index, finished)) = running.next().await else {
            break;
        };
        let record = &mut report.steps[index];
        record.status = finished.status;
        record.attempts = finished.attempts;
        record.tokens = finished.tokens;
        (
            record.prompt_tokens,
            record.cached_tokens,
            record.completion_tokens,
        ) = finished.counts;
        record.elapsed_ms = finished.elapsed_ms;
        record.fingerprint = finished.fingerprint;
        record.reason = finished.reason;
        record.reused = finished.reused;
        deliverables[index] = finished.deliverable;
        parsed[index] = finished.json;
        reasoning[index] = finished.reasoning;
        write_report(options, &mut report, started)?;
    }
    report.partial = report
        .steps
        .iter()
        .any(|s| matches!(s.status, StepStatus::Pending | StepStatus::Interrupted));
    write_report(options, &mut report, started)?;
    Ok(PipelineResult {
        output: deliverables[plan.output].take(),
        output_json: parsed[plan.output].take(),
        reasoning,
        report,
    })
}

/// Mark skipped every pending step that needs one which ended without a deliverable to pass
/// on, and the steps that need those, whatever order they are written in. A step behind an
/// interrupted one stays pending: it was not refused, only never reached. Did any change?
fn skip_blocked(plan: &Plan, report: &mut PipelineReport, options: &PipelineOptions) -> bool {
    let mut any = false;
    loop {
        let mut changed = false;
        for (index, step) in plan.steps.iter().enumerate() {
            if report.steps[index].status != StepStatus::Pending {
                continue;
            }
            let Some(&blocker) = step
                .needs
                .iter()
                .find(|&&need| report.steps[need].status.stops_dependents())
            else {
                continue;
            };
            let blocker = &report.steps[blocker];
            let reason = format!("needs `{}`, which ended {}", blocker.name, blocker.status);
            report.steps[index].status = StepStatus::Skipped;
            report.steps[index].reason = Some(reason);
            // An earlier run's artifacts of this step are not this run's.
            if let Some(folder) = &options.folder {
                let _ = std::fs::remove_dir_all(folder.path().join(&step.name));
            }
            changed = true;
        }
        if !changed {
            return any;
        }
        any = true;
    }
}

/// The models the steps use, for the record.
fn models(plan: &Plan, options: &PipelineOptions) -> String {
    let mut models: Vec<&str> = plan
        .steps
        .iter()
        .filter_map(|step| options.parameters.get(&step.agent.prompt.name))
        .map(|parameters| parameters.model.as_str())
        .collect();
    models.sort_unstable();
    models.dedup();
    models.join(", ")
}

fn write_report(
    options: &PipelineOptions,
    report: &mut PipelineReport,
    started: Instant,
) -> Result<(), PipelineError> {
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    if let Some(folder) = &options.folder {
        folder
            .write_json("pipeline.json", report)
            .map_err(|source| PipelineError::Write {
                path: folder.path().join("pipeline.json"),
                source,
            })?;
    }
    Ok(())
}

/// The sources of a step's inputs, with every upstream deliverable it needs already in hand.
fn resolve(
    plan: &Plan,
    step: &PlannedStep,
    inputs: &BTreeMap<String, String>,
    deliverables: &[Option<String>],
    parsed: &[Option<Value>],
    limits: &Limits,
) -> Result<Sources, String> {
    let mut sources = Sources {
        dir: step.inputs_dir.clone(),
        ..Sources::default()
    };
    let text_of = |part: &Part| -> Result<String, String> {
        match part {
            Part::Literal(text) => Ok(text.clone()),
            Part::Input(name) => inputs
                .get(name)
                .cloned()
                .ok_or_else(|| format!("no value for pipeline input `{name}`")),
            Part::File(path) => read::read_text(path, limits.max_file_bytes)
                .map(|text| text.trim_end_matches(['\n', '\r']).to_owned())
                .map_err(|problem| problem.to_string()),
            Part::Step {
                step: upstream,
                pointer,
            } => {
                let name = &plan.steps[*upstream].name;
                match pointer {
                    None => deliverables[*upstream]
                        .clone()
                        .ok_or_else(|| format!("`{name}` has no deliverable")),
                    Some(pointer) => {
                        let value = parsed[*upstream]
                            .as_ref()
                            .and_then(|json| json.pointer(pointer))
                            .ok_or_else(|| {
                                format!("`{name}`'s deliverable has nothing at `{pointer}`")
                            })?;
                        Ok(match value {
                            Value::String(text) => text.clone(),
                            other => serde_json::to_string_pretty(other).unwrap_or_default(),
                        })
                    }
                }
            }
        }
    };
    for (name, binding) in &step.bindings {
        match binding {
            Binding::One(Part::File(path)) => sources.files.push((name.clone(), path.clone())),
            Binding::One(part) => sources.values.push((name.clone(), text_of(part)?)),
            Binding::Joined(parts) => {
                let texts = parts.iter().map(&text_of).collect::<Result<Vec<_>, _>>()?;
                sources.values.push((name.clone(), texts.join("\n\n")));
            }
        }
    }
    Ok(sources)
}

async fn run_step(
    step: &PlannedStep,
    sources: Result<Sources, String>,
    client: &dyn ModelClient,
    options: &PipelineOptions,
    previous: Option<StepRecord>,
) -> Finished {
    let started = Instant::now();
    let failed = |status: StepStatus, reason: String| Finished {
        status,
        reasoning: String::new(),
        attempts: 0,
        tokens: 0,
        counts: (0, 0, 0),
        elapsed_ms: started.elapsed().as_millis() as u64,
        fingerprint: None,
        reason: Some(reason),
        deliverable: None,
        json: None,
        reused: false,
    };
    let agent = &step.agent;
    let sources = match sources {
        Ok(sources) => sources,
        Err(reason) => return failed(StepStatus::InputError, reason),
    };
    let gathered = match gather(&agent.prompt, &sources, &options.limits) {
        Ok(gathered) => gathered,
        Err(error) => return failed(StepStatus::InputError, error.to_string()),
    };
    let parameters = options
        .parameters
        .get(&agent.prompt.name)
        .cloned()
        .unwrap_or_default();
    let fingerprint = fingerprint(step, &gathered.inputs, &parameters);
    let extension = agent.contract.deliverable_extension();
    let step_folder = options
        .folder
        .as_ref()
        .map(|root| root.path().join(&step.name));

    // Reuse a completed step whose agent, prompt and inputs have not changed.
    if let (Some(previous), Some(dir)) = (&previous, &step_folder)
        && previous.status.completed()
        && previous.fingerprint.as_deref() == Some(fingerprint.as_str())
        && let Ok(deliverable) =
            std::fs::read_to_string(dir.join(format!("deliverable.{extension}")))
    {
        let deliverable = deliverable.trim_end_matches('\n').to_owned();
        let json = (extension == "json")
            .then(|| serde_json::from_str(&deliverable).ok())
            .flatten();
        let reasoning = std::fs::read_to_string(dir.join("reasoning.md")).unwrap_or_default();
        tracing::info!(step = %step.name, "unchanged since the resumed run; reused");
        return Finished {
            status: previous.status,
            reasoning,
            attempts: previous.attempts,
            tokens: previous.tokens,
            counts: (
                previous.prompt_tokens,
                previous.cached_tokens,
                previous.completion_tokens,
            ),
            elapsed_ms: 0,
            fingerprint: Some(fingerprint),
            reason: None,
            deliverable: Some(deliverable),
            json,
            reused: true,
        };
    }
    // A step that runs again starts from an empty folder: an earlier run's artifacts of it
    // must not pass for this run's.
    if let Some(dir) = &step_folder
        && dir.exists()
        && let Err(error) = std::fs::remove_dir_all(dir)
    {
        return failed(
            StepStatus::InputError,
            format!("cannot clear `{}`: {error}", dir.display()),
        );
    }
    let folder = match &options.folder {
        Some(root) => match root.child(&step.name) {
            Ok(folder) => Some(folder),
            Err(error) => {
                return failed(
                    StepStatus::InputError,
                    format!(
                        "cannot create `{}`: {error}",
                        root.path().join(&step.name).display()
                    ),
                );
            }
        },
        None => None,
    };
    let outcome = run(
        client,
        Run {
            agent,
            inputs: &gathered.inputs,
            model: parameters.model.clone(),
            temperature: parameters.temperature,
            max_tokens: parameters.max_tokens,
            seed: parameters.seed,
            top_p: parameters.top_p,
            options: RunOptions {
                attempts: step.attempts.unwrap_or(options.attempts).max(1),
                context_window: parameters.context_window,
                response_format: step.response_format.unwrap_or(options.response_format),
                ..RunOptions::default()
            },
            folder,
            cancel: options.cancel.clone(),
        },
    )
    .await;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match outcome {
        Ok(mut report) => {
            let status = match report.outcome {
                RunOutcome::Valid => StepStatus::Valid,
                RunOutcome::Declined => StepStatus::Declined,
                RunOutcome::Violated => StepStatus::Violated,
                RunOutcome::ModelError => StepStatus::ModelError,
                RunOutcome::InputError => StepStatus::InputError,
                RunOutcome::Interrupted => StepStatus::Interrupted,
            };
            let reason = match status {
                StepStatus::Violated => report
                    .last_violations()
                    .first()
                    .map(ToString::to_string)
                    .or_else(|| report.stop_reason.clone()),
                StepStatus::Declined => Some("the agent declined: insufficient context".into()),
                _ => None,
            };
            Finished {
                status,
                reasoning: std::mem::take(&mut report.reasoning),
                attempts: report.attempts.len() as u32,
                tokens: report.usage.total_tokens,
                counts: counts(&report),
                elapsed_ms,
                fingerprint: Some(fingerprint),
                reason,
                json: report.deliverable_json.take(),
                deliverable: report.deliverable.take(),
                reused: false,
            }
        }
        // A stale recording is the caller's mistake, as `agent run` reports it.
        Err(RunError::Model { error, report }) => Finished {
            attempts: report.attempts.len() as u32,
            tokens: report.usage.total_tokens,
            counts: counts(&report),
            ..failed(
                if error.is_usage() {
                    StepStatus::InputError
                } else {
                    StepStatus::ModelError
                },
                error.to_string(),
            )
        },
        Err(other) => failed(StepStatus::InputError, crate::text::error_chain(&other)),
    }
}

/// A run's prompt, cached prompt and reply tokens.
fn counts(report: &crate::runner::RunReport) -> (u64, u64, u64) {
    (
        report.usage.prompt_tokens,
        report.attempts.iter().filter_map(|a| a.cached_tokens).sum(),
        report.usage.completion_tokens,
    )
}

/// A hash of everything that decides a step's reply: its agent, the agent file, its
/// contract, the model and parameters, and every input value.
fn fingerprint(
    step: &PlannedStep,
    inputs: &crate::inputs::Inputs,
    parameters: &StepParameters,
) -> String {
    let mut hash = Sha256::new();
    let agent = &step.agent;
    for part in [agent.prompt.name.as_str(), agent.prompt.source.as_str()] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hash.update(std::fs::read(&agent.contract.path).unwrap_or_default());
    hash.update(format!("{parameters:?}").as_bytes());
    for (name, value) in inputs.iter() {
        hash.update(name.as_bytes());
        hash.update([0]);
        hash.update(value.text.as_bytes());
        hash.update([0]);
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
