//! `agent eval` and `agent eval merge`.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, Subcommand};

use super::Interrupt;
use super::model_args::ModelArgs;
use crate::artifacts::RunFolder;
use crate::error::Error;
use crate::eval::{
    EvalContext, EvalError, EvalOptions, EvalReport, Mode, RunResult, Shard, discover, merge,
    run_eval,
};
use crate::exit::Status;
use crate::model::{OpenAiClient, Pacer};
use crate::project::Project;

/// `agent eval`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct EvalArgs {
    /// `merge`.
    #[command(subcommand)]
    pub action: Option<EvalAction>,
    /// Running cases.
    #[command(flatten)]
    pub run: EvalRunArgs,
}

/// Subcommands of `agent eval`.
#[derive(Debug, Subcommand)]
pub enum EvalAction {
    /// Join shard reports (JSON) into one.
    Merge(MergeArgs),
}

/// `agent eval merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The JSON reports of the shards.
    #[arg(required = true)]
    pub reports: Vec<PathBuf>,
    /// Write the merged report (format by extension: .json, .xml JUnit, .md); repeatable.
    #[arg(long = "report", value_name = "FILE")]
    pub outputs: Vec<PathBuf>,
    /// Compare with an earlier JSON report.
    #[arg(long, value_name = "REPORT")]
    pub baseline: Option<PathBuf>,
}

/// `agent eval [AGENT…]`.
#[derive(Debug, Clone, Args)]
pub struct EvalRunArgs {
    /// Agents to evaluate [default: all].
    pub agents: Vec<String>,
    /// Answer from each case's recording, offline (the default).
    #[arg(long, conflicts_with_all = ["live", "record"])]
    pub replay: bool,
    /// Call the configured endpoint.
    #[arg(long, conflicts_with = "record")]
    pub live: bool,
    /// Call the configured endpoint and refresh each case's recording.
    #[arg(long)]
    pub record: bool,
    /// Cases running at once; a 429 slows the whole pool.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub concurrency: usize,
    /// Runs per case; a case passes when its pass rate reaches --min-pass-rate.
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,
    /// The pass rate a case needs over its repeats.
    #[arg(long, value_name = "RATE", default_value_t = 1.0)]
    pub min_pass_rate: f64,
    /// Only the cases this names: `agent/case`, `case`, one dataset row (`case#row`), an agent,
    /// or a tag (`tag:X`); exact names, repeatable.
    #[arg(long, value_name = "TEXT")]
    pub filter: Vec<String>,
    /// Run shard i of n of the stable case order (for CI matrices); join them with `agent eval merge`.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,
    /// Compare with an earlier JSON report: regressions fail the eval.
    #[arg(long, value_name = "REPORT")]
    pub baseline: Option<PathBuf>,
    /// Write the report (format by extension: .json, .xml JUnit, .md); repeatable.
    #[arg(long = "report", value_name = "FILE")]
    pub reports: Vec<PathBuf>,
    /// The eval folder; by default `.agent/evals/<time>-eval-<id>`.
    #[arg(long, value_name = "DIR", conflicts_with = "resume")]
    pub out: Option<PathBuf>,
    /// Continue an interrupted eval in DIR, running only the cases it has not finished.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Keep every run's folder under the eval folder.
    #[arg(long)]
    pub artifacts: bool,
    /// The model that grades `llm-rubric` assertions [default: the case's model].
    #[arg(long, value_name = "NAME")]
    pub judge_model: Option<String>,
    /// Model choice and parameters, for --live and --record.
    #[command(flatten)]
    pub model: ModelArgs,
}

pub(crate) async fn run(project: &Project, args: &EvalArgs, quiet: bool) -> Result<Status, Error> {
    match &args.action {
        Some(EvalAction::Merge(merge_args)) => merge_reports(merge_args),
        None => evaluate(project, &args.run, quiet).await,
    }
}

fn merge_reports(args: &MergeArgs) -> Result<Status, Error> {
    let reports = args
        .reports
        .iter()
        .map(|path| Ok((path.clone(), EvalReport::load(path)?)))
        .collect::<Result<Vec<_>, EvalError>>()?;
    let mut merged = merge(reports)?;
    if let Some(baseline) = &args.baseline {
        merged.compare(&EvalReport::load(baseline)?);
    }
    for path in &args.outputs {
        merged.write(path)?;
    }
    super::output::print(merged.table().as_bytes(), None)?;
    Ok(if merged.passed() {
        Status::Ok
    } else {
        Status::Violated
    })
}

/// What an eval runs: saved in its folder, so that `--resume` finishes the same eval.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Selection {
    agents: Vec<String>,
    filter: Vec<String>,
    shard: Option<String>,
    repeat: u32,
    min_pass_rate: f64,
    mode: String,
}

const SELECTION_FILE: &str = "selection.json";

impl Selection {
    fn of(args: &EvalRunArgs) -> Selection {
        Selection {
            agents: args.agents.clone(),
            filter: args.filter.clone(),
            shard: args.shard.map(|s| s.to_string()),
            repeat: args.repeat,
            min_pass_rate: args.min_pass_rate,
            mode: if args.live {
                "live"
            } else if args.record {
                "record"
            } else {
                "replay"
            }
            .into(),
        }
    }
}

/// `args` with the selection of the eval in `dir`, which a resume continues. A flag given
/// now must agree with it; one left out takes its value.
fn resumed(args: &EvalRunArgs, dir: &std::path::Path) -> Result<EvalRunArgs, Error> {
    let path = dir.join(SELECTION_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        tracing::warn!(
            "`{}` is missing; resuming with the flags given now",
            path.display()
        );
        return Ok(args.clone());
    };
    let saved: Selection = serde_json::from_str(&text).map_err(|e| Error::Usage {
        message: format!("`{}`: {e}", path.display()),
        hint: None,
    })?;
    let given = Selection::of(args);
    let default = Selection {
        agents: Vec::new(),
        filter: Vec::new(),
        shard: None,
        repeat: 1,
        min_pass_rate: 1.0,
        mode: "replay".into(),
    };
    let mut conflicts = Vec::new();
    let mut check = |name: &str, given: String, saved: String, default: String| {
        if given != default && given != saved {
            conflicts.push(format!("{name}: started with {saved}, now {given}"));
        }
    };
    let shown = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
    check(
        "agents",
        given.agents.join(" "),
        saved.agents.join(" "),
        String::new(),
    );
    check(
        "--filter",
        given.filter.join(", "),
        saved.filter.join(", "),
        String::new(),
    );
    check(
        "--shard",
        shown(&given.shard),
        shown(&saved.shard),
        shown(&default.shard),
    );
    check(
        "--repeat",
        given.repeat.to_string(),
        saved.repeat.to_string(),
        "1".into(),
    );
    check(
        "--min-pass-rate",
        given.min_pass_rate.to_string(),
        saved.min_pass_rate.to_string(),
        "1".into(),
    );
    check(
        "mode",
        given.mode.clone(),
        saved.mode.clone(),
        default.mode.clone(),
    );
    if !conflicts.is_empty() {
        return Err(Error::Usage {
            message: format!(
                "--resume continues the eval as it was started, and the flags differ:\n  {}",
                conflicts.join("\n  ")
            ),
            hint: Some("give the same flags, or leave them out".into()),
        });
    }
    let mut args = args.clone();
    args.agents = saved.agents;
    args.filter = saved.filter;
    args.shard = match saved.shard.as_deref().map(str::parse::<Shard>) {
        Some(Ok(shard)) => Some(shard),
        Some(Err(e)) => {
            return Err(Error::Usage {
                message: format!("`{}`: {e}", path.display()),
                hint: None,
            });
        }
        None => None,
    };
    args.repeat = saved.repeat;
    args.min_pass_rate = saved.min_pass_rate;
    args.live = saved.mode == "live";
    args.record = saved.mode == "record";
    args.replay = false;
    Ok(args)
}

async fn evaluate(project: &Project, args: &EvalRunArgs, quiet: bool) -> Result<Status, Error> {
    let resumed_args;
    let args = match &args.resume {
        Some(dir) => {
            resumed_args = resumed(args, dir)?;
            &resumed_args
        }
        None => args,
    };
    let started = Instant::now();
    let mode = match (args.live, args.record) {
        (true, _) => Mode::Live,
        (_, true) => Mode::Record,
        _ => Mode::Replay,
    };
    let mut cases = discover(project, &args.agents)?;
    let mut cases_per_recording: HashMap<PathBuf, usize> = HashMap::new();
    for case in &cases {
        *cases_per_recording
            .entry(case.recording.clone())
            .or_default() += 1;
    }
    if !args.filter.is_empty() {
        cases.retain(|case| args.filter.iter().any(|f| case.matches(f)));
    }
    if let Some(shard) = args.shard {
        cases = shard.select(cases);
    }
    if cases.is_empty() {
        return Err(EvalError::NoCases {
            what: describe_selection(args),
        }
        .into());
    }
    let mut settings = HashMap::new();
    let mut live = None;
    if mode != Mode::Replay {
        // A pipeline case may run any agent.
        let all = project.agent_names()?;
        let agents: BTreeSet<&str> = if cases.iter().any(|c| c.pipeline.is_some()) {
            all.iter().map(String::as_str).collect()
        } else {
            cases.iter().map(|c| c.agent.as_str()).collect()
        };
        for name in agents {
            let agent = project.load(name)?;
            settings.insert(
                name.to_owned(),
                args.model.settings(project, &agent.prompt.defaults, None)?,
            );
        }
        let first = settings.values().next().ok_or(EvalError::NoCases {
            what: "any agent".into(),
        })?;
        // Every case shares one client, so a 429 holds the whole pool.
        live = Some(Arc::new(OpenAiClient::new(
            first.endpoint(),
            Arc::new(Pacer::new()),
        )?));
    }
    let (folder, previous) = match &args.resume {
        Some(dir) => (dir.clone(), read_results(&dir.join("results.jsonl"))?),
        None => {
            let folder = match &args.out {
                Some(dir) => RunFolder::at(dir),
                None => RunFolder::create_in(&project.root.join(".agent").join("evals"), "eval"),
            }
            .map_err(|source| Error::Io {
                action: "create",
                path: args
                    .out
                    .clone()
                    .unwrap_or_else(|| project.root.join(".agent/evals")),
                source,
            })?;
            let selection = serde_json::to_vec_pretty(&Selection::of(args)).unwrap_or_default();
            folder
                .write(SELECTION_FILE, &selection)
                .map_err(|source| Error::Io {
                    action: "write",
                    path: folder.path().join(SELECTION_FILE),
                    source,
                })?;
            (folder.path().to_owned(), Vec::new())
        }
    };
    let done: BTreeSet<(String, u32)> = previous
        .iter()
        .map(|r| (r.case.clone(), r.repeat))
        .collect();
    let progress = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} cases {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    };
    let interrupt = Interrupt::watch();
    let cancel = interrupt.token();
    let context = EvalContext {
        project,
        settings: &settings,
        live,
        cancel: cancel.clone(),
        progress: progress.clone(),
    };
    let mut selected_per_recording: HashMap<PathBuf, usize> = HashMap::new();
    for case in cases
        .iter()
        .filter(|case| !done.iter().any(|(id, _)| *id == case.id()))
    {
        *selected_per_recording
            .entry(case.recording.clone())
            .or_default() += 1;
    }
    let whole_recordings = selected_per_recording
        .into_iter()
        .filter(|(path, count)| cases_per_recording.get(path) == Some(count))
        .map(|(path, _)| path)
        .collect();
    let options = EvalOptions {
        mode,
        concurrency: args.concurrency,
        repeat: args.repeat,
        artifacts: args.artifacts.then(|| folder.join("runs")),
        judge_model: args.judge_model.clone(),
        whole_recordings,
    };
    let fresh = run_eval(
        &context,
        &cases,
        &options,
        &folder.join("results.jsonl"),
        &done,
    )
    .await?;
    progress.finish_and_clear();
    let mut results = previous;
    results.extend(fresh);
    let mut report = EvalReport::build(
        &cases,
        &results,
        mode.name(),
        args.min_pass_rate,
        args.repeat,
    );
    report.shard = args.shard.map(|s| s.to_string());
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    if let Some(baseline) = &args.baseline {
        report.compare(&EvalReport::load(baseline)?);
    }
    report.write(&folder.join("report.json"))?;
    for path in &args.reports {
        report.write(path)?;
    }
    super::output::print(report.table().as_bytes(), Some(&folder))?;
    if !quiet {
        eprintln!("eval folder: {}", folder.display());
    }
    Ok(if cancel.is_cancelled() {
        Status::Interrupted
    } else if report.passed() {
        Status::Ok
    } else {
        Status::Violated
    })
}

fn describe_selection(args: &EvalRunArgs) -> String {
    let mut parts = Vec::new();
    if !args.agents.is_empty() {
        parts.push(format!("agents {}", args.agents.join(", ")));
    }
    if !args.filter.is_empty() {
        parts.push(format!("filters {}", args.filter.join(", ")));
    }
    if let Some(shard) = args.shard {
        parts.push(format!("shard {shard}"));
    }
    if parts.is_empty() {
        "the project (no fixtures/<agent>/<case>/case.yaml found)".into()
    } else {
        parts.join(" and ")
    }
}

/// Results of an earlier, interrupted eval. A torn last line (killed mid-write) is dropped,
/// and cut from the file so that the results appended next start on a line of their own:
/// its case runs again.
fn read_results(path: &std::path::Path) -> Result<Vec<RunResult>, Error> {
    let io = |source| Error::Io {
        action: "read",
        path: path.to_owned(),
        source,
    };
    let text = std::fs::read_to_string(path).map_err(io)?;
    if !text.is_empty() && !text.ends_with('\n') {
        let complete = text.rfind('\n').map_or(0, |end| end + 1);
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|file| file.set_len(complete as u64))
            .map_err(io)?;
    }
    let mut results = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str(line) {
            Ok(result) => results.push(result),
            Err(error) => tracing::warn!(
                "{}: dropping an unreadable result line ({error})",
                path.display()
            ),
        }
    }
    Ok(results)
}
