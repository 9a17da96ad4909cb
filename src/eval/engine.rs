//! Running cases: concurrently, under the shared transport limits, each result durable as it
//! finishes.

use std::collections::{BTreeSet, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::assertion::{Judgement, Observed};
use super::case::{Case, ExpectedOutcome};
use super::error::EvalError;
use super::judge;
use super::report::{Failure, RunResult};
use crate::artifacts::RunFolder;
use crate::inputs::{DirLayer, Limits, gather_over, read_dir_layer};
use crate::model::{ModelClient, OpenAiClient, Recorder, Replayer};
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
}

/// What the engine needs besides the cases.
pub struct EvalContext<'a> {
    /// The project.
    pub project: &'a Project,
    /// Settings per agent, for live and record runs (model, parameters, endpoint).
    pub settings: &'a HashMap<String, Settings>,
    /// The shared live client (one pacer for the whole pool), for live and record runs.
    pub live: Option<Arc<OpenAiClient>>,
    /// Cancelled by Ctrl-C.
    pub cancel: CancellationToken,
    /// Shows progress (hidden when stderr is not a terminal).
    pub progress: indicatif::ProgressBar,
}

/// Run `cases` (each `repeat` times, skipping the runs in `done`), appending each result to
/// `results` as it finishes. Returns the new results.
pub async fn run_eval(
    context: &EvalContext<'_>,
    cases: &[Case],
    options: &EvalOptions,
    results: &Path,
    done: &BTreeSet<(String, u32)>,
) -> Result<Vec<RunResult>, EvalError> {
    let report_error = |e: std::io::Error| EvalError::Report {
        path: results.to_owned(),
        message: e.to_string(),
    };
    let mut agents: HashMap<String, Arc<Agent>> = HashMap::new();
    for case in cases {
        if !agents.contains_key(&case.agent) {
            let agent = context
                .project
                .load(&case.agent)
                .map_err(|e| EvalError::Cases {
                    problems: vec![e.to_string()],
                })?;
            agents.insert(case.agent.clone(), Arc::new(agent));
        }
    }
    let judge = Arc::new(judge::judge_agent().map_err(|e| EvalError::Cases { problems: vec![e] })?);
    let clients = Clients::default();
    if options.mode == Mode::Record {
        // A refreshed recording starts empty, so it holds exactly what this eval sent.
        for case in cases {
            clients.recorder(context, &case.recording, true);
        }
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(results)
        .map_err(report_error)?;
    let file = Mutex::new(file);
    let runs: Vec<(&Case, u32)> = cases
        .iter()
        .flat_map(|case| (0..options.repeat).map(move |repeat| (case, repeat)))
        .filter(|(case, repeat)| !done.contains(&(case.id(), *repeat)))
        .collect();
    context.progress.set_length(runs.len() as u64);
    let mut finished = Vec::with_capacity(runs.len());
    let mut stream = futures::stream::iter(runs)
        .map(|(case, repeat)| {
            let agent = agents[&case.agent].clone();
            let judge = judge.clone();
            let clients = &clients;
            async move { run_case(context, clients, &agent, &judge, case, repeat, options).await }
        })
        .buffer_unordered(options.concurrency.max(1));
    while let Some(result) = stream.next().await {
        let Some(result) = result else { continue };
        // One write per result: a killed eval keeps every line written before it died,
        // without paying an fsync per case (the file is synced once at the end).
        let mut line = serde_json::to_vec(&result).unwrap_or_default();
        line.push(b'\n');
        file.lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_all(&line)
            .map_err(report_error)?;
        context.progress.inc(1);
        if !result.passed {
            context
                .progress
                .set_message(format!("{} failed", result.case));
        }
        finished.push(result);
    }
    file.lock()
        .unwrap_or_else(|e| e.into_inner())
        .sync_all()
        .map_err(report_error)?;
    Ok(finished)
}

/// What cases share: one replayer per recording file, one recorder per file, one read of
/// each inputs directory per agent.
#[derive(Default)]
struct Clients {
    layers: Mutex<HashMap<(String, PathBuf), Arc<DirLayer>>>,
    replayers: Mutex<HashMap<PathBuf, Arc<Replayer>>>,
    recorders: Mutex<HashMap<PathBuf, Arc<Recorder<Arc<OpenAiClient>>>>>,
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

    fn recorder(
        &self,
        context: &EvalContext<'_>,
        path: &Path,
        fresh: bool,
    ) -> Option<Arc<Recorder<Arc<OpenAiClient>>>> {
        let live = context.live.clone()?;
        let mut recorders = self.recorders.lock().unwrap_or_else(|e| e.into_inner());
        if fresh || !recorders.contains_key(path) {
            recorders.insert(path.to_owned(), Arc::new(Recorder::fresh(live, path)));
        }
        recorders.get(path).cloned()
    }
}

/// Run one case once and judge it. `None` when the run was interrupted: it has not finished,
/// so it is not recorded, and `--resume` runs it again.
async fn run_case(
    context: &EvalContext<'_>,
    clients: &Clients,
    agent: &Agent,
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
    let fail = |mut result: RunResult, error: String| {
        result.error = Some(error);
        Some(result)
    };
    let layer = case
        .sources
        .dir
        .as_deref()
        .map(|dir| clients.layer(agent, dir));
    let gathered = match gather_over(
        &agent.prompt,
        layer.as_deref(),
        &case.sources,
        &Limits::default(),
    ) {
        Ok(gathered) => gathered,
        Err(error) => return fail(result, error.to_string()),
    };
    result.warnings.clone_from(&gathered.warnings);
    let (client, model): (Arc<dyn ModelClient>, String) = match options.mode {
        Mode::Replay => match clients.replayer(&case.recording) {
            Ok(replayer) => {
                let model = replayer.recording().model().unwrap_or("unknown").to_owned();
                (replayer, model)
            }
            Err(error) => return fail(result, error),
        },
        Mode::Live | Mode::Record => {
            let Some(settings) = context.settings.get(&case.agent) else {
                return fail(result, format!("no settings resolved for `{}`", case.agent));
            };
            let model = match settings.model() {
                Ok(model) => model.to_owned(),
                Err(error) => return fail(result, error.to_string()),
            };
            let client: Arc<dyn ModelClient> = if options.mode == Mode::Record {
                match clients.recorder(context, &case.recording, false) {
                    Some(recorder) => recorder,
                    None => return fail(result, "no live endpoint to record from".into()),
                }
            } else {
                match &context.live {
                    Some(live) => live.clone(),
                    None => return fail(result, "no live endpoint".into()),
                }
            };
            (client, model)
        }
    };
    let settings = context.settings.get(&case.agent);
    let param = |pick: fn(&Settings) -> Option<f64>| settings.and_then(pick);
    let folder = options.artifacts.as_ref().and_then(|dir| {
        let name = format!("{}-{}", case.name.replace(['/', '#'], "_"), repeat + 1);
        RunFolder::at(&dir.join(&case.agent).join(name))
            .ok()
            .map(RunFolder::without_sync)
    });
    let (temperature, max_tokens, seed, top_p) = match options.mode {
        // A replay sends what the agent's defaults say, as the recording was made.
        Mode::Replay => (
            agent.prompt.defaults.temperature,
            agent.prompt.defaults.max_tokens,
            agent.prompt.defaults.seed,
            agent.prompt.defaults.top_p,
        ),
        Mode::Live | Mode::Record => (
            param(|s| s.temperature.as_ref().map(|t| f64::from(t.value))).map(|t| t as f32),
            settings.and_then(|s| s.max_tokens.as_ref().map(|t| t.value)),
            settings.and_then(|s| s.seed.as_ref().map(|t| t.value)),
            param(|s| s.top_p.as_ref().map(|t| f64::from(t.value))).map(|t| t as f32),
        ),
    };
    let outcome = run(
        client.as_ref(),
        Run {
            agent,
            inputs: &gathered.inputs,
            model: model.clone(),
            temperature,
            max_tokens,
            seed,
            top_p,
            options: RunOptions {
                attempts: case.attempts,
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
            result.attempts = report.attempts.len() as u32;
            return fail(result, error.to_string());
        }
        Err(error) => return fail(result, error.to_string()),
    };
    if report.outcome == RunOutcome::Interrupted {
        return None;
    }
    result
        .warnings
        .extend(report.guarded.iter().map(ToString::to_string));
    result.outcome = report.outcome;
    result.attempts = report.attempts.len() as u32;
    result.tokens = report.usage.total_tokens;
    result.latency_ms = report.attempts.iter().map(|a| a.model_ms).sum();
    let expected = match case.expect.outcome {
        ExpectedOutcome::Valid => RunOutcome::Valid,
        ExpectedOutcome::Declined => RunOutcome::Declined,
        ExpectedOutcome::Violated => RunOutcome::Violated,
    };
    if report.outcome != expected {
        let detail = report
            .last_violations()
            .first()
            .map(|v| format!("; last attempt: {v}"))
            .unwrap_or_default();
        result.failures.push(Failure {
            check: "outcome".into(),
            reason: format!(
                "{:?} after {} attempt(s), expected {:?}{detail}",
                report.outcome, result.attempts, expected
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
    let observed = Observed {
        outcome: report.outcome,
        deliverable: report.deliverable.as_deref(),
        reasoning: &report.reasoning,
        attempts: result.attempts,
        usage: report.usage,
        latency_ms: result.latency_ms,
        json: std::cell::OnceCell::new(),
    };
    if let Some(value) = report.deliverable_json.take() {
        let _ = observed.json.set(Some(value));
    }
    for check in &case.checks {
        let reason = match check.evaluate(&observed) {
            Judgement::Pass => continue,
            Judgement::Fail(reason) | Judgement::Unchecked(reason) => reason,
            Judgement::Judge(rubric) => {
                let judge_model = options.judge_model.clone().unwrap_or_else(|| model.clone());
                let output = report.deliverable.as_deref().unwrap_or("");
                match judge::grade(
                    client.as_ref(),
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
