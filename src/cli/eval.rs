//! `agent eval` and `agent eval merge`.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, Subcommand};

use super::Interrupt;
use super::model_args::ModelArgs;
use crate::error::Error;
use crate::eval::{
    EvalContext, EvalError, EvalFolder, EvalOptions, EvalReport, Mode, ModelSetup, ReportFormat,
    Selection, Shard, merge, run_eval, select,
};
use crate::exit::Status;
use crate::model::{ModelClient, OpenAiClient, Pacer};
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
    /// For JSON agents: ask the server to constrain each reply, unless a case sets its own `response_format`.
    #[arg(long, value_enum, default_value = "none")]
    pub response_format: crate::runner::ResponseFormat,
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
    for path in &args.outputs {
        ReportFormat::check_destination(path)?;
    }
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

impl EvalRunArgs {
    /// What these flags select (the model side is resolved later).
    fn selection(&self) -> Selection {
        Selection {
            agents: self.agents.clone(),
            filter: self.filter.clone(),
            shard: self.shard.map(|s| s.to_string()),
            repeat: self.repeat,
            min_pass_rate: self.min_pass_rate,
            mode: self.mode().name().into(),
            artifacts: self.artifacts,
            models: std::collections::BTreeMap::new(),
        }
    }

    fn mode(&self) -> Mode {
        match (self.live, self.record) {
            (true, _) => Mode::Live,
            (_, true) => Mode::Record,
            _ => Mode::Replay,
        }
    }
}

async fn evaluate(project: &Project, args: &EvalRunArgs, quiet: bool) -> Result<Status, Error> {
    let started = Instant::now();
    // Every report can be written and the baseline read before a request is spent.
    for path in &args.reports {
        ReportFormat::check_destination(path)?;
    }
    let baseline = args.baseline.as_deref().map(EvalReport::load).transpose()?;
    // A resume is locked before anything is read from it: two resumes never both run.
    let resumed = args.resume.as_deref().map(EvalFolder::resume).transpose()?;
    let mut selection = match &resumed {
        Some(folder) => folder.continued(&args.selection())?,
        None => args.selection(),
    };
    let mode: Mode = selection.mode.parse().map_err(|message| Error::Usage {
        message,
        hint: None,
    })?;
    let shard = selection
        .shard
        .as_deref()
        .map(str::parse::<Shard>)
        .transpose()
        .map_err(|message| Error::Usage {
            message,
            hint: None,
        })?;
    let selected = select(project, &selection.agents, &selection.filter, shard)?;
    let cases = &selected.cases;
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
            let resolved = args.model.settings(project, &agent.prompt.defaults, None)?;
            selection
                .models
                .insert(name.to_owned(), ModelSetup::of(&resolved)?);
            settings.insert(name.to_owned(), resolved);
        }
        let first = settings.values().next().ok_or(EvalError::NoCases {
            what: "any agent".into(),
        })?;
        // Every case shares one client, so a 429 holds the whole pool.
        let client: Arc<dyn ModelClient> =
            Arc::new(OpenAiClient::new(first.endpoint(), Arc::new(Pacer::new()))?);
        live = Some(client);
    }
    let folder = match resumed {
        Some(folder) => {
            folder.check_models(&selection.models)?;
            folder
        }
        None => match &args.out {
            Some(dir) => EvalFolder::create(dir, &selection)?,
            None => EvalFolder::create_in(&project.root.join(".agent").join("evals"), &selection)?,
        },
    };
    let previous = folder.finished_results()?;
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
    let options = EvalOptions {
        mode,
        concurrency: args.concurrency,
        repeat: selection.repeat,
        artifacts: selection.artifacts.then(|| folder.path().join("runs")),
        judge_model: args.judge_model.clone(),
        response_format: args.response_format,
        whole_recordings: selected.whole_recordings(&done),
        recordings_staged_in: folder.path().join("recordings"),
    };
    // The bar's message carries the live token counts of streamed replies.
    let live_counts = if quiet {
        crate::progress::Progress::off()
    } else {
        crate::progress::Progress::bar(progress.clone())
    };
    let fresh = live_counts
        .scope(run_eval(&context, cases, &options, &folder, &done))
        .await?;
    progress.finish_and_clear();
    let mut results = previous;
    results.extend(fresh);
    let mut report = EvalReport::build(
        cases,
        &results,
        mode.name(),
        selection.min_pass_rate,
        selection.repeat,
    );
    report.shard = selection.shard.clone();
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    if let Some(baseline) = &baseline {
        report.compare(baseline);
    }
    report.write(&folder.path().join("report.json"))?;
    for path in &args.reports {
        report.write(path)?;
    }
    super::output::print(report.table().as_bytes(), Some(folder.path()))?;
    if !quiet {
        eprintln!("eval folder: {}", folder.path().display());
    }
    Ok(if cancel.is_cancelled() {
        Status::Interrupted
    } else if report.passed() {
        Status::Ok
    } else {
        Status::Violated
    })
}
