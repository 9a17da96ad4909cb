//! Running cases: concurrently, under the shared transport limits, each result durable as it
//! finishes.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::assertion::{Judgement, Observed};
use super::budget::{Budgeted, CostBudget};
use super::case::{Case, Cases, ExpectedOutcome};
use super::error::EvalError;
use super::folder::EvalFolder;
use super::judge;
use super::matrix::Column;
use super::report::{AttemptLog, Failure, Noted, RunResult, TokenCounts};
use super::stream::RunSet;
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
    /// Does this shard run the case at `place` among the cases the filters pick?
    pub fn keeps(self, place: u64) -> bool {
        place % u64::from(self.count) == u64::from(self.index - 1)
    }

    /// How many of the first `places` picked cases this shard runs.
    pub fn kept_below(self, places: u64) -> u64 {
        let first = u64::from(self.index - 1);
        if places > first {
            (places - first - 1) / u64::from(self.count) + 1
        } else {
            0
        }
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
    /// Sampling parameters given on the command line. A replay sends them over the agent's
    /// defaults, as `--record` sent them, so a case recorded with `--max-tokens 64` replays
    /// with `--max-tokens 64`.
    pub sampling: SamplingFlags,
    /// Keep every attempt's reply in the results, passed runs' included (for a matrix or an
    /// HTML report); a failed run's are always kept.
    pub keep_replies: bool,
    /// Prices per model, from `agent.toml`.
    pub prices: BTreeMap<String, crate::settings::Price>,
    /// Stop the eval before a request would take its cost over this (US dollars).
    pub max_cost: Option<f64>,
    /// On replay, more recordings to answer from after each case's own (another model's
    /// exchanges, kept apart from the case's recording), found by their requests too.
    pub also_recordings: Vec<PathBuf>,
}

/// The sampling flags (`--temperature`, `--max-tokens`, `--seed`, `--top-p`); unset ones
/// leave the agent's defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct SamplingFlags {
    /// `--temperature`.
    pub temperature: Option<f32>,
    /// `--max-tokens`.
    pub max_tokens: Option<u32>,
    /// `--seed`.
    pub seed: Option<i64>,
    /// `--top-p`.
    pub top_p: Option<f32>,
    /// `--context-window`, which every mode fits attempts into.
    pub context_window: Option<u64>,
}

impl std::fmt::Display for SamplingFlags {
    /// The flags given, as they were typed (`none` when none was).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut given = Vec::new();
        if let Some(value) = self.temperature {
            given.push(format!("--temperature {value}"));
        }
        if let Some(value) = self.max_tokens {
            given.push(format!("--max-tokens {value}"));
        }
        if let Some(value) = self.seed {
            given.push(format!("--seed {value}"));
        }
        if let Some(value) = self.top_p {
            given.push(format!("--top-p {value}"));
        }
        if let Some(value) = self.context_window {
            given.push(format!("--context-window {value}"));
        }
        if given.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&given.join(" "))
        }
    }
}

/// How the runs of an eval went, counted as they finished.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Runs that passed.
    pub passed: u64,
    /// Runs that failed.
    pub failed: u64,
    /// The eval stopped at `--max-cost`.
    pub out_of_budget: bool,
}

/// What the engine needs besides the cases.
pub struct EvalContext<'a> {
    /// The project.
    pub project: &'a Project,
    /// Settings per matrix column and agent, for live and record runs (model, parameters,
    /// endpoint).
    pub settings: &'a HashMap<(usize, String), Settings>,
    /// The live client of each column (one pacer per endpoint, shared by the pool), for live
    /// and record runs; the scripted replies of `agent record`. A column past the end uses
    /// the first.
    pub live: Vec<Arc<dyn ModelClient>>,
    /// Cancelled by Ctrl-C.
    pub cancel: CancellationToken,
    /// Shows progress (hidden when stderr is not a terminal).
    pub progress: indicatif::ProgressBar,
}

/// Run `cases` in every column that runs them (each `repeat` times, skipping the runs in
/// `done`), appending each result to the eval `folder` as it finishes. Nothing of a result
/// stays in memory once it is written: the reports are written from the folder's stream.
pub async fn run_eval(
    context: &EvalContext<'_>,
    cases: &Cases,
    columns: &[Column],
    options: &EvalOptions,
    folder: &EvalFolder,
    done: &RunSet,
) -> Result<Tally, EvalError> {
    // What each case runs: an agent (or a variant of it), loaded once, or a pipeline,
    // checked once. A dataset's rows run what their case file runs.
    let mut targets: HashMap<String, Arc<Target>> = HashMap::new();
    for case in cases.files() {
        for column in columns.iter().filter(|c| c.runs(case)) {
            let key = target_key(case, column);
            if targets.contains_key(&key) {
                continue;
            }
            let problem = |e: String| EvalError::Cases { problems: vec![e] };
            let target = match (&case.pipeline, &column.variant) {
                (Some(path), _) => Target::Pipeline(
                    check(context.project, path).map_err(|e| problem(e.to_string()))?,
                ),
                (None, Some(variant)) => Target::Agent(Box::new(variant.load(context.project)?)),
                (None, None) => Target::Agent(Box::new(
                    context
                        .project
                        .load(&case.agent)
                        .map_err(|e| problem(e.to_string()))?,
                )),
            };
            targets.insert(key, Arc::new(target));
        }
    }
    let judge = Arc::new(judge::judge_agent().map_err(|e| EvalError::Cases { problems: vec![e] })?);
    let also = options
        .also_recordings
        .iter()
        .map(|path| {
            Replayer::load(path)
                .map(Arc::new)
                .map_err(|e| EvalError::Usage {
                    message: format!("--recording `{}`: {e}", path.display()),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let clients = Clients {
        also,
        budget: options
            .max_cost
            .map(|limit| Arc::new(CostBudget::new(limit, context.cancel.clone()))),
        ..Clients::default()
    };
    // Runs are made as they are taken, never listed, and a dataset's rows are read as they
    // are needed: a million-row dataset costs no memory here.
    let unreadable: Mutex<Option<EvalError>> = Mutex::new(None);
    let runs = cases
        .iter()
        .map_while(|case| match case {
            Ok(case) => Some(Arc::new(case)),
            Err(error) => {
                *unreadable.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
                None
            }
        })
        .enumerate()
        .flat_map(|(position, case)| {
            let mut runs = Vec::new();
            for (index, column) in columns.iter().enumerate() {
                if !column.runs(&case) {
                    continue;
                }
                for repeat in 0..options.repeat {
                    if !done.contains((position as u64, index as u32, repeat)) {
                        runs.push((position, case.clone(), index, column, repeat));
                    }
                }
            }
            runs
        });
    context.progress.set_length(
        cases
            .runs(columns, options.repeat)
            .saturating_sub(done.len()),
    );
    let mut tally = Tally::default();
    let mut stream = futures::stream::iter(runs)
        .map(|(position, case, index, column, repeat)| {
            let target = targets[&target_key(&case, column)].clone();
            let judge = judge.clone();
            let clients = &clients;
            async move {
                let at = Place {
                    position: position as u64,
                    index,
                    column,
                    repeat,
                };
                run_case(context, clients, &target, &judge, &case, &at, options).await
            }
        })
        .buffer_unordered(options.concurrency.max(1));
    while let Some(result) = stream.next().await {
        let Some(result) = result else { continue };
        folder.append(&result)?;
        context.progress.inc(1);
        if result.passed {
            tally.passed += 1;
        } else {
            tally.failed += 1;
        }
        // Counts as they come, so a run going badly shows before it ends.
        context.progress.set_message(format!(
            "{} passed, {} failed{}",
            tally.passed,
            tally.failed,
            if result.passed {
                String::new()
            } else {
                format!(" (last: {})", result.case)
            }
        ));
    }
    folder.sync()?;
    drop(stream);
    let unreadable = unreadable.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(error) = unreadable {
        return Err(error);
    }
    tally.out_of_budget = clients.budget.as_ref().is_some_and(|b| b.exhausted());
    // An interrupted refresh leaves every recording as it was; `--resume` continues from
    // the staged ones.
    if options.mode == Mode::Record && !context.cancel.is_cancelled() {
        clients.commit_recordings()?;
    }
    Ok(tally)
}

/// Where a run sits in the matrix.
struct Place<'a> {
    position: u64,
    index: usize,
    column: &'a Column,
    repeat: u32,
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

fn target_key(case: &Case, column: &Column) -> String {
    match (&case.pipeline, &column.variant) {
        (Some(path), _) => format!("pipeline:{}", path.display()),
        (None, Some(variant)) => format!("variant:{}", variant.path.display()),
        (None, None) => case.agent.clone(),
    }
}

/// A recorder in front of the shared client.
type SharedRecorder = Recorder<Arc<dyn ModelClient>>;

/// What cases share: one replayer per recording file, one recorder per file, one read of
/// each inputs directory per agent.
#[derive(Default)]
struct Clients {
    /// `--recording`: more recordings to answer from.
    also: Vec<Arc<Replayer>>,
    /// `--max-cost`, shared by every run.
    budget: Option<Arc<CostBudget>>,
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
        column: usize,
        path: &Path,
        options: &EvalOptions,
    ) -> Option<Arc<SharedRecorder>> {
        let live = live_client(context, column)?;
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
    /// Tokens by kind.
    counts: TokenCounts,
    /// What the tokens cost, each at its model's price; none when no model used has one.
    cost: Option<f64>,
    /// Each attempt, its reply included.
    attempt_log: Vec<AttemptLog>,
    /// The run folder, with `--artifacts`.
    run_folder: Option<PathBuf>,
}

/// Why a run produced nothing to judge.
enum Unproduced {
    /// Ctrl-C: not finished, so not recorded; `--resume` runs it again.
    Interrupted,
    /// An error that stopped it: `outcome` says whose (`input-error` for a stale recording or
    /// bad inputs, as `agent run` and `agent pipeline run` say; `model-error` for the endpoint).
    Failed {
        error: String,
        attempts: u32,
        outcome: RunOutcome,
    },
}

impl Unproduced {
    /// The case's own inputs or recording stopped it, before or without the endpoint.
    fn input(error: String) -> Unproduced {
        Unproduced::Failed {
            error,
            attempts: 0,
            outcome: RunOutcome::InputError,
        }
    }

    /// The endpoint (or something else outside the case) stopped it.
    fn model(error: String, attempts: u32) -> Unproduced {
        Unproduced::Failed {
            error,
            attempts,
            outcome: RunOutcome::ModelError,
        }
    }
}

/// Run one case once and judge it. `None` when the run was interrupted.
async fn run_case(
    context: &EvalContext<'_>,
    clients: &Clients,
    target: &Target,
    judge: &Agent,
    case: &Case,
    at: &Place<'_>,
    options: &EvalOptions,
) -> Option<RunResult> {
    if context.cancel.is_cancelled() {
        return None;
    }
    let mut result = RunResult {
        position: at.position,
        column: at.column.label.clone(),
        ..RunResult::new(case.id(), at.repeat)
    };
    let produced = match target {
        Target::Agent(agent) => produce_agent(context, clients, agent, case, at, options).await,
        Target::Pipeline(plan) => produce_pipeline(context, clients, plan, case, at, options).await,
    };
    let mut produced = match produced {
        Ok(produced) => produced,
        Err(Unproduced::Interrupted) => return None,
        // Stopped by `--max-cost`: not run, so `--resume` runs it (with a larger budget).
        Err(Unproduced::Failed { .. })
            if clients.budget.as_ref().is_some_and(|b| b.exhausted()) =>
        {
            return None;
        }
        Err(Unproduced::Failed {
            error,
            attempts,
            outcome,
        }) => {
            result.outcome = outcome;
            result.attempts = attempts;
            result.error = Some(error);
            return Some(result);
        }
    };
    result.warnings = std::mem::take(&mut produced.warnings);
    result.model = Some(produced.model.clone());
    result.usage = produced.counts;
    result.cost = produced.cost;
    result.attempt_log = std::mem::take(&mut produced.attempt_log);
    result.run_folder = produced.run_folder.take();
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
    // Assertions that could not be checked (no deliverable): one line for all of them when the
    // outcome already says why, not a "not checked" per assertion.
    let mut unchecked: Vec<(String, String)> = Vec::new();
    let outcome_failed = result.failures.iter().any(|f| f.check == "outcome");
    for check in &case.checks {
        let reason = match check.evaluate(&observed) {
            Judgement::Pass => continue,
            Judgement::Unchecked(reason) if outcome_failed => {
                unchecked.push((check.label.clone(), reason));
                continue;
            }
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
    match unchecked.len() {
        0 => {}
        1 => {
            let (check, reason) = unchecked.remove(0);
            result.failures.push(Failure { check, reason });
        }
        count => {
            let labels: Vec<String> = unchecked.iter().map(|(label, _)| label.clone()).collect();
            result.failures.push(Failure {
                check: "assertions".into(),
                reason: format!(
                    "{count} not checked ({}): {}",
                    unchecked[0].1,
                    labels.join("; ")
                ),
            });
        }
    }
    result.passed = result.failures.is_empty() && result.error.is_none();
    if result.passed && !options.keep_replies {
        // A passed run's replies are in its recording or run folder; the stream keeps only
        // what the reports of a failure need.
        for attempt in &mut result.attempt_log {
            attempt.reply = String::new();
        }
    } else {
        result.reasoning = std::mem::take(&mut produced.reasoning);
    }
    Some(result)
}

/// The client and model a case runs with: its recording, or the live endpoint (recorded).
fn client_for(
    context: &EvalContext<'_>,
    clients: &Clients,
    case: &Case,
    at: &Place<'_>,
    options: &EvalOptions,
    settings: Option<&Settings>,
) -> Result<(Arc<dyn ModelClient>, String), Unproduced> {
    let (client, model) = unbudgeted_client_for(context, clients, case, at, options, settings)?;
    Ok(match &clients.budget {
        Some(budget) => (
            Arc::new(Budgeted {
                client,
                budget: budget.clone(),
                price: options.prices.get(&model).copied(),
            }),
            model,
        ),
        None => (client, model),
    })
}

fn unbudgeted_client_for(
    context: &EvalContext<'_>,
    clients: &Clients,
    case: &Case,
    at: &Place<'_>,
    options: &EvalOptions,
    settings: Option<&Settings>,
) -> Result<(Arc<dyn ModelClient>, String), Unproduced> {
    let failed = |error: String| Unproduced::model(error, 0);
    match options.mode {
        Mode::Replay => {
            let replayer = clients
                .replayer(&case.recording)
                .map_err(Unproduced::input)?;
            let client: Arc<dyn ModelClient> = if clients.also.is_empty() {
                replayer.clone()
            } else {
                Arc::new(Replays {
                    own: replayer.clone(),
                    also: clients.also.clone(),
                })
            };
            // A recording keyed by request holds each model's exchanges side by side: a
            // matrix column asks for its model, and a recording made for one model answers
            // as that model.
            let model = match &at.column.model {
                Some(model) => model.clone(),
                None => replayer
                    .recording()
                    .model()
                    .or_else(|| {
                        replayer
                            .recording()
                            .exchanges
                            .first()
                            .map(|e| e.request.model.as_str())
                    })
                    .unwrap_or("unknown")
                    .to_owned(),
            };
            Ok((client, model))
        }
        Mode::Live | Mode::Record => {
            let settings = settings
                .ok_or_else(|| failed(format!("no settings resolved for `{}`", case.agent)))?;
            let model = settings
                .model()
                .map_err(|e| Unproduced::input(e.to_string()))?
                .to_owned();
            let client: Arc<dyn ModelClient> = if options.mode == Mode::Record {
                clients
                    .recorder(context, at.index, &case.recording, options)
                    .ok_or_else(|| failed("no live endpoint to record from".into()))?
            } else {
                live_client(context, at.index).ok_or_else(|| failed("no live endpoint".into()))?
            };
            Ok((client, model))
        }
    }
}

/// The model and parameters for `agent`: on replay the recording's model and the agent's own
/// defaults under the sampling flags (as the recording was made), the resolved settings when
/// live.
fn parameters_for(
    agent: &Agent,
    options: &EvalOptions,
    settings: Option<&Settings>,
    model: &str,
) -> StepParameters {
    let flags = &options.sampling;
    match (options.mode, settings) {
        (Mode::Live | Mode::Record, Some(settings)) => StepParameters {
            model: settings.model().unwrap_or(model).to_owned(),
            temperature: settings.temperature.as_ref().map(|t| t.value),
            max_tokens: settings.max_tokens.as_ref().map(|t| t.value),
            seed: settings.seed.as_ref().map(|t| t.value),
            top_p: settings.top_p.as_ref().map(|t| t.value),
            context_window: flags.context_window,
        },
        _ => StepParameters {
            model: model.to_owned(),
            temperature: flags.temperature.or(agent.prompt.defaults.temperature),
            max_tokens: flags.max_tokens.or(agent.prompt.defaults.max_tokens),
            seed: flags.seed.or(agent.prompt.defaults.seed),
            top_p: flags.top_p.or(agent.prompt.defaults.top_p),
            context_window: flags.context_window,
        },
    }
}

/// The live client of column `index`.
fn live_client(context: &EvalContext<'_>, index: usize) -> Option<Arc<dyn ModelClient>> {
    context
        .live
        .get(index)
        .or_else(|| context.live.first())
        .cloned()
}

fn artifacts_folder(options: &EvalOptions, case: &Case, at: &Place<'_>) -> Option<RunFolder> {
    options.artifacts.as_ref().and_then(|dir| {
        let name = format!("{}-{}", case.name.replace(['/', '#'], "_"), at.repeat + 1);
        let dir = if at.column.label.is_empty() {
            dir.clone()
        } else {
            dir.join(at.index.to_string())
        };
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
    at: &Place<'_>,
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
    .map_err(|error| Unproduced::input(error.to_string()))?;
    let settings = context.settings.get(&(at.index, case.agent.clone()));
    let (client, model) = client_for(context, clients, case, at, options, settings)?;
    let parameters = parameters_for(agent, options, settings, &model);
    let folder = artifacts_folder(options, case, at);
    let run_folder = folder.as_ref().map(|f| f.path().to_owned());
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
                context_window: parameters.context_window,
                response_format: case.response_format.unwrap_or(options.response_format),
                ..RunOptions::default()
            },
            folder,
            cancel: context.cancel.clone(),
        },
    )
    .await;
    let mut report = match outcome {
        Ok(report) => report,
        Err(crate::runner::RunError::Model { error, report }) => {
            // The run's own word for it: a stale recording is `input-error`, as `agent run`
            // says.
            // As the server wrote it: the reports escape it where they show it.
            return Err(Unproduced::Failed {
                error: error.recorded(),
                attempts: report.attempts.len() as u32,
                outcome: report.outcome,
            });
        }
        Err(error @ crate::runner::RunError::Artifacts { .. }) => {
            return Err(Unproduced::model(error.to_string(), 0));
        }
        // The options or the template do not fit the case's inputs.
        Err(error) => return Err(Unproduced::input(error.to_string())),
    };
    if report.outcome == RunOutcome::Interrupted {
        return Err(Unproduced::Interrupted);
    }
    let mut warnings = gathered.warnings;
    warnings.extend(report.guarded.iter().map(ToString::to_string));
    let counts = TokenCounts {
        prompt: report.usage.prompt_tokens,
        cached: report.attempts.iter().filter_map(|a| a.cached_tokens).sum(),
        completion: report.usage.completion_tokens,
    };
    let cost = options
        .prices
        .get(&model)
        .map(|price| price.cost(counts.prompt, counts.cached, counts.completion));
    let attempt_log = report
        .attempts
        .iter_mut()
        .map(|attempt| AttemptLog {
            number: attempt.number,
            outcome: attempt.outcome.to_string(),
            reply: std::mem::take(&mut attempt.reply),
            violations: attempt.violations.iter().map(noted).collect(),
            warnings: attempt.warnings.iter().map(noted).collect(),
        })
        .collect();
    Ok(Produced {
        counts,
        cost,
        attempt_log,
        run_folder,
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
    at: &Place<'_>,
    options: &EvalOptions,
) -> Result<Produced, Unproduced> {
    let failed = |error: String| Unproduced::model(error, 0);
    let inputs = read_pipeline_inputs(plan, &case.sources, &Limits::default())
        .map_err(|e| Unproduced::input(e.to_string()))?;
    let first_agent = plan
        .steps
        .first()
        .map(|s| s.agent.prompt.name.clone())
        .unwrap_or_default();
    let (client, model) = client_for(
        context,
        clients,
        case,
        at,
        options,
        context.settings.get(&(at.index, first_agent)),
    )?;
    let parameters: BTreeMap<String, StepParameters> = plan
        .steps
        .iter()
        .map(|step| {
            let name = step.agent.prompt.name.clone();
            let settings = context.settings.get(&(at.index, name.clone()));
            (name, parameters_for(&step.agent, options, settings, &model))
        })
        .collect();
    // Each step at the price of its own model (agents may name their own).
    let step_models: BTreeMap<String, String> = parameters
        .iter()
        .map(|(name, parameters)| (name.clone(), parameters.model.clone()))
        .collect();
    let pipeline_options = PipelineOptions {
        parameters,
        limits: Limits::default(),
        attempts: case.attempts,
        response_format: case.response_format.unwrap_or(options.response_format),
        folder: artifacts_folder(options, case, at),
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
                outcome: if worst == StepStatus::InputError {
                    RunOutcome::InputError
                } else {
                    RunOutcome::ModelError
                },
            });
        }
    };
    let deliverable = done.output;
    let counts = TokenCounts {
        prompt: report.steps.iter().map(|s| s.prompt_tokens).sum(),
        cached: report.steps.iter().map(|s| s.cached_tokens).sum(),
        completion: report.steps.iter().map(|s| s.completion_tokens).sum(),
    };
    let cost = report
        .steps
        .iter()
        .filter_map(|step| {
            let price = options.prices.get(step_models.get(&step.agent)?)?;
            Some(price.cost(
                step.prompt_tokens,
                step.cached_tokens,
                step.completion_tokens,
            ))
        })
        .reduce(|a, b| a + b);
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
        counts,
        cost,
        attempt_log: Vec::new(),
        run_folder: None,
    })
}

/// A violation as the reports show it: its text, and its reply line when it has one.
fn noted(violation: &crate::contract::Violation) -> Noted {
    Noted {
        line: match &violation.location {
            crate::contract::Location::Line { line, .. } => Some(*line),
            _ => None,
        },
        text: violation.to_string(),
    }
}

/// A case's recording, then the `--recording` files: each request is answered by the first
/// that holds it, and a request none holds is stale in the case's own.
struct Replays {
    own: Arc<Replayer>,
    also: Vec<Arc<Replayer>>,
}

impl ModelClient for Replays {
    fn complete<'a>(
        &'a self,
        request: &'a crate::model::ChatRequest,
    ) -> crate::model::ModelFuture<'a> {
        let found = std::iter::once(&self.own)
            .chain(&self.also)
            .find_map(|replayer| replayer.recording().find(request).cloned());
        match found {
            Some(response) => {
                Box::pin(async move { crate::model::Completion::from_response(response) })
            }
            None => self.own.complete(request),
        }
    }

    fn describe(&self) -> String {
        self.own.describe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_counts_its_cases_as_it_picks_them() {
        for (index, count) in [(1, 1), (1, 3), (2, 3), (3, 3), (4, 7)] {
            let shard = Shard { index, count };
            for places in 0..40 {
                let picked = (0..places).filter(|&p| shard.keeps(p)).count() as u64;
                assert_eq!(shard.kept_below(places), picked, "{shard} below {places}");
            }
        }
    }
}
