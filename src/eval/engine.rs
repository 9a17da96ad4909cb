//! Running cases: concurrently, under the shared transport limits, each result durable as it
//! finishes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::assertion::{Judgement, Observed};
use super::case::{Case, ExpectedOutcome};
use super::error::EvalError;
use super::folder::EvalFolder;
use super::judge;
use super::report::{Failure, RunResult};
use crate::artifacts::RunFolder;
use crate::inputs::{DirLayer, Limits, gather_over, read_dir_layer};
use crate::model::{ModelClient, Recorder, Replayer};
use crate::pipeline::{
    PipelineOptions, Plan, StepParameters, StepStatus, check, read_pipeline_inputs, run_pipeline,
};
use crate::project::{Agent, Project};
use crate::runner::{Run, RunOptions, RunOutcome, run};
use crate::settings::Settings;

/// Where replies come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Each case's recording, offline.
    Replay,
    /// The configured endpoint.
    Live,
    /// The configured endpoint, refreshing each case's recording.
    Record,
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(text: &str) -> Result<Mode, String> {
        match text {
            "replay" => Ok(Mode::Replay),
            "live" => Ok(Mode::Live),
            "record" => Ok(Mode::Record),
            other => Err(format!(
                "`{other}` is not an eval mode (replay, live, record)"
            )),
        }
    }
}

impl Mode {
    /// `replay`, `live`, `record`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Replay => "replay",
            Mode::Live => "live",
            Mode::Record => "record",
        }
    }
}

/// Shard `index` of `count` (1-based): the cases whose stable position modulo `count` is `index - 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 1-based.
    pub index: u32,
    /// Shards in all.
    pub count: u32,
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Shard, String> {
        let (index, count) = text
            .split_once('/')
            .ok_or("write a shard as i/n, such as 2/3")?;
        let index: u32 = index
            .trim()
            .parse()
            .map_err(|_| format!("`{index}` is not a shard number"))?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| format!("`{count}` is not a shard count"))?;
        if count == 0 || index == 0 || index > count {
            return Err(format!(
                "shard {index}/{count} does not exist; shards run from 1/{count} to {count}/{count}"
            ));
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// Keep this shard's cases of `cases`, which must be in stable order.
    pub fn select(self, cases: Vec<Case>) -> Vec<Case> {
        cases
            .into_iter()
            .enumerate()
            .filter(|(position, _)| *position as u32 % self.count == self.index - 1)
            .map(|(_, case)| case)
            .collect()
    }
}

/// How to run an eval.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Where replies come from.
    pub mode: Mode,
    /// Cases running at once.
    pub concurrency: usize,
    /// Runs per case.
    pub repeat: u32,
    /// Keep each run's folder under this directory (without fsync).
    pub artifacts: Option<PathBuf>,
    /// The model that grades `llm-rubric` (default: the case's model).
    pub judge_model: Option<String>,
    /// `response_format` for every case that sets none of its own.
    pub response_format: crate::runner::ResponseFormat,
    /// With `--record`: the recording files every one of whose cases this eval runs, which
    /// start empty. Any other recording keeps the exchanges of the cases not run (rows left
    /// out by a filter, a shard or a resume).
    pub whole_recordings: std::collections::HashSet<PathBuf>,
    /// With `--record`: where recordings are written while the eval runs. Each is moved over
    /// its case's recording only when the eval finishes, so an interrupted one leaves the old
    /// recording whole, and a resume continues from what it had recorded.
    pub recordings_staged_in: PathBuf,
}

/// What the engine needs besides the cases.
pub struct EvalContext<'a> {
    /// The project.
    pub project: &'a Project,
    /// Settings per agent, for live and record runs (model, parameters, endpoint).
    pub settings: &'a HashMap<String, Settings>,
    /// The shared live client (one pacer for the whole pool), for live and record runs; the
    /// scripted replies of `agent record`.
    pub live: Option<Arc<dyn ModelClient>>,
    /// Cancelled by Ctrl-C.
    pub cancel: CancellationToken,
    /// Shows progress (hidden when stderr is not a terminal).
    pub progress: indicatif::ProgressBar,
}

/// Run `cases` (each `repeat` times, skipping the runs in `done`), appending each result to
/// the eval `folder` as it finishes. Returns the new results.
pub async fn run_eval(
    context: &EvalContext<'_>,
    cases: &[Case],
    options: &EvalOptions,
    folder: &EvalFolder,
    done: &BTreeSet<(String, u32)>,
) -> Result<Vec<RunResult>, EvalError> {
    // What each case runs: an agent, loaded once, or a pipeline, checked once.
    let mut targets: HashMap<String, Arc<Target>> = HashMap::new();
    for case in cases {
        let key = target_key(case);
        if targets.contains_key(&key) {
            continue;
        }
        let problem = |e: String| EvalError::Cases { problems: vec![e] };
        let target = match &case.pipeline {
            Some(path) => {
                Target::Pipeline(check(context.project, path).map_err(|e| problem(e.to_string()))?)
            }
            None => Target::Agent(Box::new(
                context
                    .project
                    .load(&case.agent)
                    .map_err(|e| problem(e.to_string()))?,
            )),
        };
        targets.insert(key, Arc::new(target));
    }
    let judge = Arc::new(judge::judge_agent().map_err(|e| EvalError::Cases { problems: vec![e] })?);
    let clients = Clients::default();
    let runs: Vec<(&Case, u32)> = cases
        .iter()
        .flat_map(|case| (0..options.repeat).map(move |repeat| (case, repeat)))
        .filter(|(case, repeat)| !done.contains(&(case.id(), *repeat)))
        .collect();
    context.progress.set_length(runs.len() as u64);
    let mut finished = Vec::with_capacity(runs.len());
    let mut stream = futures::stream::iter(runs)
        .map(|(case, repeat)| {
            let target = targets[&target_key(case)].clone();
            let judge = judge.clone();
            let clients = &clients;
            async move { run_case(context, clients, &target, &judge, case, repeat, options).await }
        })
        .buffer_unordered(options.concurrency.max(1));
    while let Some(result) = stream.next().await {
        let Some(result) = result else { continue };
        folder.append(&result)?;
        context.progress.inc(1);
        if !result.passed {
            context
                .progress
                .set_message(format!("{} failed", result.case));
        }
        finished.push(result);
    }
    folder.sync()?;
    // An interrupted refresh leaves every recording as it was; `--resume` continues from
    // the staged ones.
    if options.mode == Mode::Record && !context.cancel.is_cancelled() {
        clients.commit_recordings()?;
    }
    Ok(finished)
}

/// The staged copy's file name for the recording at `path`: unique per recording, readable.
fn staged_name(path: &Path) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(path.to_string_lossy().as_bytes());
    let short: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    let name = path.file_name().map_or_else(
        || "recording.json".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    format!("{short}-{name}")
}

/// What a case runs.
enum Target {
    Agent(Box<Agent>),
    Pipeline(Plan),
}

fn target_key(case: &Case) -> String {
    match &case.pipeline {
        Some(path) => format!("pipeline:{}", path.display()),
        None => case.agent.clone(),
    }
}

/// A recorder in front of the shared client.
type SharedRecorder = Recorder<Arc<dyn ModelClient>>;

/// What cases share: one replayer per recording file, one recorder per file, one read of
/// each inputs directory per agent.
#[derive(Default)]
struct Clients {
    layers: Mutex<HashMap<(String, PathBuf), Arc<DirLayer>>>,
    replayers: Mutex<HashMap<PathBuf, Arc<Replayer>>>,
    recorders: Mutex<HashMap<PathBuf, Arc<SharedRecorder>>>,
}

impl Clients {
    fn layer(&self, agent: &Agent, dir: &Path) -> Arc<DirLayer> {
        let key = (agent.prompt.name.clone(), dir.to_owned());
        let mut layers = self.layers.lock().unwrap_or_else(|e| e.into_inner());
        layers
            .entry(key)
            .or_insert_with(|| Arc::new(read_dir_layer(&agent.prompt, dir, &Limits::default())))
            .clone()
    }

    fn replayer(&self, path: &Path) -> Result<Arc<Replayer>, String> {
        let mut replayers = self.replayers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = replayers.get(path) {
            return Ok(found.clone());
        }
        if !path.exists() {
            return Err(format!(
                "no recording at `{}`: record the case with --record against a live endpoint",
                path.display()
            ));
        }
        let replayer = Arc::new(Replayer::load(path).map_err(|e| e.to_string())?);
        replayers.insert(path.to_owned(), replayer.clone());
        Ok(replayer)
    }

    /// The recorder of the recording at `path`, made on first use. A recording this eval
    /// refreshes whole starts empty, so it holds exactly what was sent; one it refreshes in
    /// part keeps the rest. Either is staged in the eval folder until the eval finishes.
    fn recorder(
        &self,
        context: &EvalContext<'_>,
        path: &Path,
        options: &EvalOptions,
    ) -> Option<Arc<SharedRecorder>> {
        let live = context.live.clone()?;
        let mut recorders = self.recorders.lock().unwrap_or_else(|e| e.into_inner());
        let recorder = recorders.entry(path.to_owned()).or_insert_with(|| {
            let staging = options.recordings_staged_in.join(staged_name(path));
            let whole = options.whole_recordings.contains(path);
            let recorder =
                Recorder::staged(live.clone(), path, &staging, whole).unwrap_or_else(|error| {
                    tracing::warn!("{error}; recording `{}` afresh", path.display());
                    Recorder::fresh(live, path)
                });
            Arc::new(recorder)
        });
        Some(recorder.clone())
    }

    /// Move every staged recording over its case's recording.
    fn commit_recordings(&self) -> Result<(), EvalError> {
        let recorders = self.recorders.lock().unwrap_or_else(|e| e.into_inner());
        let mut problems = Vec::new();
        for recorder in recorders.values() {
            if let Err(error) = recorder.commit() {
                problems.push(error.to_string());
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(EvalError::Cases { problems })
        }
    }
}

/// What one run of a case produced, from an agent or a pipeline.
struct Produced {
    outcome: RunOutcome,
    attempts: u32,
    tokens: u64,
    latency_ms: u64,
    usage: crate::model::Usage,
    deliverable: Option<String>,
    json: Option<serde_json::Value>,
    reasoning: String,
    warnings: Vec<String>,
    /// The last attempt's first violation, to explain an unexpected outcome.
    explanation: Option<String>,
    /// A pipeline's step statuses.
    steps: BTreeMap<String, StepStatus>,
    /// The client and model, for the llm-rubric judge.
    client: Arc<dyn ModelClient>,
    model: String,
}

/// Why a run produced nothing to judge.
enum Unproduced {
    /// Ctrl-C: not finished, so not recorded; `--resume` runs it again.
    Interrupted,
    /// An error that stopped it (stale recording, bad inputs, model failure).
    Failed { error: String, attempts: u32 },
}

/// Run one case once and judge it. `None` when the run was interrupted.
async fn run_case(
    context: &EvalContext<'_>,
    clients: &Clients,
    target: &Target,
    judge: &Agent,
    case: &Case,
    repeat: u32,
    options: &EvalOptions,
) -> Option<RunResult> {
    if context.cancel.is_cancelled() {
        return None;
    }
    let mut result = RunResult {
        case: case.id(),
        repeat,
        outcome: RunOutcome::ModelError,
        passed: false,
        attempts: 0,
        tokens: 0,
        latency_ms: 0,
        failures: Vec::new(),
        error: None,
        warnings: Vec::new(),
    };
    let produced = match target {
        Target::Agent(agent) => produce_agent(context, clients, agent, case, repeat, options).await,
        Target::Pipeline(plan) => {
            produce_pipeline(context, clients, plan, case, repeat, options).await
        }
    };
    let mut produced = match produced {
        Ok(produced) => produced,
        Err(Unproduced::Interrupted) => return None,
        Err(Unproduced::Failed { error, attempts }) => {
            result.attempts = attempts;
            result.error = Some(error);
            return Some(result);
        }
    };
    result.warnings = std::mem::take(&mut produced.warnings);
    result.outcome = produced.outcome;
    result.attempts = produced.attempts;
    result.tokens = produced.tokens;
    result.latency_ms = produced.latency_ms;
    let expected = match case.expect.outcome {
        ExpectedOutcome::Valid => RunOutcome::Valid,
        ExpectedOutcome::Declined => RunOutcome::Declined,
        ExpectedOutcome::Violated => RunOutcome::Violated,
    };
    if produced.outcome != expected {
        let detail = produced
            .explanation
            .as_ref()
            .map(|v| format!("; {v}"))
            .unwrap_or_default();
        result.failures.push(Failure {
            check: "outcome".into(),
            reason: format!(
                "{:?} after {} attempt(s), expected {:?}{detail}",
                produced.outcome, result.attempts, expected
            ),
        });
    }
    if let Some(attempts) = case.expect.attempts
        && attempts != result.attempts
    {
        result.failures.push(Failure {
            check: "attempts".into(),
            reason: format!("{} attempt(s), expected {attempts}", result.attempts),
        });
    }
    for (step, want) in &case.expect.steps {
        match produced.steps.get(step) {
            Some(status) if status == want => {}
            Some(status) => result.failures.push(Failure {
                check: format!("step {step}"),
                reason: format!("ended {status:?}, expected {want:?}"),
            }),
            None => result.failures.push(Failure {
                check: format!("step {step}"),
                reason: "the pipeline has no such step".into(),
            }),
        }
    }
    let observed = Observed {
        outcome: produced.outcome,
        deliverable: produced.deliverable.as_deref(),
        reasoning: &produced.reasoning,
        attempts: result.attempts,
        usage: produced.usage,
        latency_ms: result.latency_ms,
        json: std::cell::OnceCell::new(),
    };
    if let Some(value) = produced.json.take() {
        let _ = observed.json.set(Some(value));
    }
    for check in &case.checks {
        let reason = match check.evaluate(&observed) {
            Judgement::Pass => continue,
            Judgement::Fail(reason) | Judgement::Unchecked(reason) => reason,
            Judgement::Judge(rubric) => {
                let judge_model = options
                    .judge_model
                    .clone()
                    .unwrap_or_else(|| produced.model.clone());
                let output = produced.deliverable.as_deref().unwrap_or("");
                match judge::grade(
                    produced.client.as_ref(),
                    judge,
                    &judge_model,
                    &rubric,
                    output,
                    context.cancel.clone(),
                )
                .await
                {
                    Ok(None) if !check.negated => continue,
                    Ok(Some(_)) if check.negated => continue,
                    Ok(None) => "the judge passed it".to_owned(),
                    Ok(Some(reason)) => reason,
                    Err(error) => error,
                }
            }
        };
        result.failures.push(Failure {
            check: check.label.clone(),
            reason,
        });
    }
    result.passed = result.failures.is_empty() && result.error.is_none();
    Some(result)
}

/// The client and model a case runs with: its recording, or the live endpoint (recorded).
fn client_for(
    context: &EvalContext<'_>,
    clients: &Clients,
    case: &Case,
    options: &EvalOptions,
    settings: Option<&Settings>,
) -> Result<(Arc<dyn ModelClient>, String), Unproduced> {
    let failed = |error: String| Unproduced::Failed { error, attempts: 0 };
    match options.mode {
        Mode::Replay => {
            let replayer = clients.replayer(&case.recording).map_err(failed)?;
            let model = replayer.recording().model().unwrap_or("unknown").to_owned();
            Ok((replayer, model))
        }
        Mode::Live | Mode::Record => {
            let settings = settings
                .ok_or_else(|| failed(format!("no settings resolved for `{}`", case.agent)))?;
            let model = settings
                .model()
                .map_err(|e| failed(e.to_string()))?
                .to_owned();
            let client: Arc<dyn ModelClient> = if options.mode == Mode::Record {
                clients
                    .recorder(context, &case.recording, options)
                    .ok_or_else(|| failed("no live endpoint to record from".into()))?
            } else {
                context
                    .live
                    .clone()
                    .ok_or_else(|| failed("no live endpoint".into()))?
            };
            Ok((client, model))
        }
    }
}

/// The model and parameters for `agent`: on replay the recording's model and the agent's own
/// defaults (as the recording was made), the resolved settings when live.
fn parameters_for(
    agent: &Agent,
    mode: Mode,
    settings: Option<&Settings>,
    model: &str,
) -> StepParameters {
    match (mode, settings) {
        (Mode::Live | Mode::Record, Some(settings)) => StepParameters {
            model: settings.model().unwrap_or(model).to_owned(),
            temperature: settings.temperature.as_ref().map(|t| t.value),
            max_tokens: settings.max_tokens.as_ref().map(|t| t.value),
            seed: settings.seed.as_ref().map(|t| t.value),
            top_p: settings.top_p.as_ref().map(|t| t.value),
        },
        _ => StepParameters {
            model: model.to_owned(),
            temperature: agent.prompt.defaults.temperature,
            max_tokens: agent.prompt.defaults.max_tokens,
            seed: agent.prompt.defaults.seed,
            top_p: agent.prompt.defaults.top_p,
        },
    }
}

fn artifacts_folder(options: &EvalOptions, case: &Case, repeat: u32) -> Option<RunFolder> {
    options.artifacts.as_ref().and_then(|dir| {
        let name = format!("{}-{}", case.name.replace(['/', '#'], "_"), repeat + 1);
        // The eval folder's lock covers its runs; an earlier try of this run (before a
        // resume) leaves nothing behind that could pass for this one's.
        RunFolder::fresh(&dir.join(&case.agent).join(name))
            .ok()
            .map(RunFolder::without_sync)
    })
}

async fn produce_agent(
    context: &EvalContext<'_>,
    clients: &Clients,
    agent: &Agent,
    case: &Case,
    repeat: u32,
    options: &EvalOptions,
) -> Result<Produced, Unproduced> {
    let layer = case
        .sources
        .dir
        .as_deref()
        .map(|dir| clients.layer(agent, dir));
    let gathered = gather_over(
        &agent.prompt,
        layer.as_deref(),
        &case.sources,
        &Limits::default(),
    )
    .map_err(|error| Unproduced::Failed {
        error: error.to_string(),
        attempts: 0,
    })?;
    let settings = context.settings.get(&case.agent);
    let (client, model) = client_for(context, clients, case, options, settings)?;
    let parameters = parameters_for(agent, options.mode, settings, &model);
    let outcome = run(
        client.as_ref(),
        Run {
            agent,
            inputs: &gathered.inputs,
            model: model.clone(),
            temperature: parameters.temperature,
            max_tokens: parameters.max_tokens,
            seed: parameters.seed,
            top_p: parameters.top_p,
            options: RunOptions {
                attempts: case.attempts,
                response_format: case.response_format.unwrap_or(options.response_format),
                ..RunOptions::default()
            },
            folder: artifacts_folder(options, case, repeat),
            cancel: context.cancel.clone(),
        },
    )
    .await;
    let mut report = match outcome {
        Ok(report) => report,
        Err(crate::runner::RunError::Model { error, report }) => {
            return Err(Unproduced::Failed {
                error: error.to_string(),
                attempts: report.attempts.len() as u32,
            });
        }
        Err(error) => {
            return Err(Unproduced::Failed {
                error: error.to_string(),
                attempts: 0,
            });
        }
    };
    if report.outcome == RunOutcome::Interrupted {
        return Err(Unproduced::Interrupted);
    }
    let mut warnings = gathered.warnings;
    warnings.extend(report.guarded.iter().map(ToString::to_string));
    Ok(Produced {
        outcome: report.outcome,
        attempts: report.attempts.len() as u32,
        tokens: report.usage.total_tokens,
        latency_ms: report.attempts.iter().map(|a| a.model_ms).sum(),
        usage: report.usage,
        explanation: report
            .last_violations()
            .first()
            .map(|v| format!("last attempt: {v}")),
        json: report.deliverable_json.take(),
        deliverable: report.deliverable.take(),
        reasoning: std::mem::take(&mut report.reasoning),
        warnings,
        steps: BTreeMap::new(),
        client,
        model,
    })
}

async fn produce_pipeline(
    context: &EvalContext<'_>,
    clients: &Clients,
    plan: &Plan,
    case: &Case,
    repeat: u32,
    options: &EvalOptions,
) -> Result<Produced, Unproduced> {
    let failed = |error: String| Unproduced::Failed { error, attempts: 0 };
    let inputs = read_pipeline_inputs(plan, &case.sources, &Limits::default())
        .map_err(|e| failed(e.to_string()))?;
    let first_agent = plan
        .steps
        .first()
        .map(|s| s.agent.prompt.name.clone())
        .unwrap_or_default();
    let (client, model) = client_for(
        context,
        clients,
        case,
        options,
        context.settings.get(&first_agent),
    )?;
    let parameters = plan
        .steps
        .iter()
        .map(|step| {
            let name = step.agent.prompt.name.clone();
            let settings = context.settings.get(&name);
            (
                name,
                parameters_for(&step.agent, options.mode, settings, &model),
            )
        })
        .collect();
    let pipeline_options = PipelineOptions {
        parameters,
        limits: Limits::default(),
        attempts: case.attempts,
        response_format: case.response_format.unwrap_or(options.response_format),
        folder: artifacts_folder(options, case, repeat),
        resume: None,
        cancel: context.cancel.clone(),
    };
    let done = run_pipeline(plan, &inputs, client.as_ref(), &pipeline_options)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let report = done.report;
    let worst = report.outcome();
    // The step that decided the outcome, not one skipped because of it.
    let explanation = report.steps.iter().find(|s| s.status == worst).map(|s| {
        format!(
            "step `{}` ended {}: {}",
            s.name,
            s.status,
            s.reason.as_deref().unwrap_or_default()
        )
    });
    let outcome = match worst {
        StepStatus::Valid => RunOutcome::Valid,
        StepStatus::Declined | StepStatus::Skipped => RunOutcome::Declined,
        StepStatus::Violated => RunOutcome::Violated,
        StepStatus::Pending | StepStatus::Interrupted => return Err(Unproduced::Interrupted),
        StepStatus::ModelError | StepStatus::InputError => {
            return Err(Unproduced::Failed {
                error: explanation.unwrap_or_default(),
                attempts: report.steps.iter().map(|s| s.attempts).sum(),
            });
        }
    };
    let deliverable = done.output;
    Ok(Produced {
        outcome,
        attempts: report.steps.iter().map(|s| s.attempts).sum(),
        tokens: report.steps.iter().map(|s| s.tokens).sum(),
        latency_ms: report.steps.iter().map(|s| s.elapsed_ms).sum(),
        usage: crate::model::Usage {
            total_tokens: report.steps.iter().map(|s| s.tokens).sum(),
            ..crate::model::Usage::default()
        },
        json: done.output_json,
        deliverable,
        // Every step's: a reasoning block must leak into no deliverable, the output's included.
        reasoning: done.reasoning.join("\n"),
        warnings: Vec::new(),
        explanation,
        steps: report
            .steps
            .iter()
            .map(|s| (s.name.clone(), s.status))
            .collect(),
        client,
        model,
    })
}
