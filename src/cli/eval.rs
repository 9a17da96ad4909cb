//! `agent eval` and `agent eval merge`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, Subcommand};

use super::Interrupt;
use super::model_args::ModelArgs;
use crate::error::Error;
use crate::eval::{
    Baseline, Column, EvalContext, EvalError, EvalFolder, EvalOptions, EvalReport, Mode,
    ModelSetup, ReportFormat, ReportPlan, Selection, Shard, Variant, merge, run_eval, select,
    write_reports,
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
    /// Stop before a request would take the eval's cost over this many US dollars (by the
    /// prices in `agent.toml`); the runs not made are left for `--resume`.
    #[arg(long, value_name = "USD")]
    pub max_cost: Option<f64>,
    /// On replay, another recording to answer from after each case's own (a second model's
    /// exchanges, made with `agent record --model NAME --recording FILE`); repeatable.
    #[arg(long = "recording", value_name = "FILE")]
    pub recordings: Vec<PathBuf>,
    /// Run the cases also with an edited copy of an agent's prompt file, as a column of its
    /// own (`FILE`, named for its agent as `release-plan.v2.md`, or `AGENT=FILE`); repeatable.
    #[arg(long = "variant", value_name = "FILE")]
    pub variants: Vec<String>,
    /// For JSON agents: ask the server to constrain each reply, unless a case sets its own `response_format`.
    #[arg(long, value_enum, default_value = "none")]
    pub response_format: crate::runner::ResponseFormat,
    /// Refuse agents whose templates hold placeholder-looking text no input binds (by default
    /// a warning: the text is sent as written).
    #[arg(long)]
    pub strict: bool,
    /// Model choice and parameters, for --live and --record.
    #[command(flatten)]
    pub model: EvalModelArgs,
}

/// The model flags of `agent eval`: those of `agent run`, with `--model` and `--profile`
/// repeatable to make a matrix.
#[derive(Debug, Args, Default, Clone)]
pub struct EvalModelArgs {
    /// The model; repeat it to run every case against each (a matrix). On replay, each
    /// model's exchanges are found in the recordings by their requests.
    #[arg(long = "model", value_name = "NAME", help_heading = "Model")]
    pub models: Vec<String>,
    /// A profile of `agent.toml`; repeat it to run every case against each.
    #[arg(long = "profile", value_name = "NAME", help_heading = "Model")]
    pub profiles: Vec<String>,
    /// The rest, as `agent run` takes them.
    #[command(flatten)]
    pub tuning: super::model_args::ModelTuning,
}

impl EvalModelArgs {
    /// The sampling flags alone, which an eval replay sends over the agent's defaults.
    fn sampling(&self) -> crate::eval::SamplingFlags {
        self.tuning.sampling()
    }

    /// The flags of one column, as `agent run` takes them.
    fn column(&self, column: &Column) -> ModelArgs {
        ModelArgs {
            model: column.model.clone(),
            profile: column.profile.clone(),
            tuning: self.tuning.clone(),
        }
    }
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
    fn selection(&self, project: &Project) -> Result<Selection, Error> {
        let variants = self
            .variants
            .iter()
            .map(|spec| Variant::parse(spec, project))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Selection {
            agents: self.agents.clone(),
            filter: self.filter.clone(),
            shard: self.shard.map(|s| s.to_string()),
            repeat: self.repeat,
            min_pass_rate: self.min_pass_rate,
            mode: self.mode().name().into(),
            artifacts: self.artifacts,
            models: std::collections::BTreeMap::new(),
            columns: Column::matrix(&self.model.models, &self.model.profiles, &variants),
            sampling: self.model.sampling(),
        })
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
    let baseline = args.baseline.as_deref().map(Baseline::load).transpose()?;
    // Once per agent, before the eval folder exists: a refused agent leaves nothing behind.
    let named = if args.agents.is_empty() {
        project.agent_names()?
    } else {
        args.agents.clone()
    };
    for name in &named {
        // An agent that does not load is reported by the eval itself, with its case.
        if let Ok(agent) = project.load(name) {
            crate::lint::check_unbound(&agent.prompt, args.strict)?;
        }
    }
    let (mut folder, selection) = EvalFolder::open(
        args.resume.as_deref(),
        args.out.as_deref(),
        &project.root.join(".agent").join("evals"),
        &args.selection(project)?,
    )?;
    let usage = |message: String| Error::Usage {
        message,
        hint: None,
    };
    let mode: Mode = selection.mode.parse().map_err(usage)?;
    let shard = selection
        .shard
        .as_deref()
        .map(str::parse::<Shard>)
        .transpose()
        .map_err(usage)?;
    let columns = &selection.columns;
    let selected = select(project, &selection.agents, &selection.filter, shard)?;
    let cases = &selected.cases;
    // A resume samples as the eval it continues (flags given now agree, or it was refused).
    let args = &EvalRunArgs {
        model: EvalModelArgs {
            tuning: args.model.tuning.clone().with_sampling(selection.sampling),
            ..args.model.clone()
        },
        ..args.clone()
    };
    let (settings, live, models) = resolve_models(project, args, mode, cases, columns)?;
    folder.settle_models(&models)?;
    let done = folder.index(cases, columns, selection.repeat)?.into_done();
    let progress = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} runs {msg}",
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
    let html = args
        .reports
        .iter()
        .any(|p| ReportFormat::of(p).ok() == Some(ReportFormat::Html));
    let options = EvalOptions {
        mode,
        concurrency: args.concurrency,
        repeat: selection.repeat,
        artifacts: selection.artifacts.then(|| folder.path().join("runs")),
        judge_model: args.judge_model.clone(),
        response_format: args.response_format,
        whole_recordings: selected.whole_recordings(&done),
        recordings_staged_in: folder.path().join("recordings"),
        // A resume samples as the eval it continues did (a flag that disagrees is refused).
        sampling: selection.sampling,
        keep_replies: html || columns.len() > 1,
        prices: crate::settings::load_config(&project.root)?
            .map(|config| config.prices)
            .unwrap_or_default(),
        max_cost: args.max_cost,
        also_recordings: args.recordings.clone(),
    };
    // The bar's message carries the live token counts of streamed replies.
    let live_counts = if quiet {
        crate::progress::Progress::off()
    } else {
        crate::progress::Progress::bar(progress.clone())
    };
    let tally = live_counts
        .scope(run_eval(&context, cases, columns, &options, &folder, &done))
        .await?;
    progress.finish_and_clear();
    if tally.out_of_budget && !quiet {
        eprintln!(
            "stopped at --max-cost: the runs not made are left for `--resume {}`",
            folder.path().display()
        );
    }
    // Every report, the terminal table among them, is written from the results stream.
    let table = folder.path().join("table.txt");
    let mut paths = vec![folder.path().join("report.json"), table.clone()];
    paths.extend(args.reports.iter().cloned());
    let written = write_reports(
        &folder.index(cases, columns, selection.repeat)?,
        cases,
        columns,
        ReportPlan {
            mode: mode.name(),
            shard: selection.shard.clone(),
            min_pass_rate: selection.min_pass_rate,
            repeat: selection.repeat,
            elapsed_ms: started.elapsed().as_millis() as u64,
            baseline,
            paths,
        },
    )?;
    super::output::print_file(&table, Some(folder.path()))?;
    if !quiet {
        eprintln!("eval folder: {}", folder.path().display());
    }
    // Stopped by --max-cost is a failed eval (exit 1), not an interrupted one.
    Ok(if tally.out_of_budget {
        Status::Violated
    } else if cancel.is_cancelled() || written.partial {
        Status::Interrupted
    } else if written.passed {
        Status::Ok
    } else {
        Status::Violated
    })
}

/// Settings and live clients per column and agent (live and record evals), and the model
/// setup `selection.json` records.
#[expect(clippy::type_complexity, reason = "three results of one resolution")]
fn resolve_models(
    project: &Project,
    args: &EvalRunArgs,
    mode: Mode,
    cases: &crate::eval::Cases,
    columns: &[Column],
) -> Result<
    (
        HashMap<(usize, String), crate::settings::Settings>,
        Vec<Arc<dyn ModelClient>>,
        BTreeMap<String, ModelSetup>,
    ),
    Error,
> {
    let mut settings = HashMap::new();
    let mut live = Vec::new();
    let mut models = BTreeMap::new();
    if mode == Mode::Replay {
        return Ok((settings, live, models));
    }
    // A pipeline case may run any agent.
    let all = project.agent_names()?;
    let agents: BTreeSet<&str> = if cases.files().any(|c| c.pipeline.is_some()) {
        all.iter().map(String::as_str).collect()
    } else {
        cases.files().map(|c| c.agent.as_str()).collect()
    };
    // One client per endpoint, shared by every case on it, so a 429 holds the whole pool.
    let mut clients: HashMap<String, Arc<dyn ModelClient>> = HashMap::new();
    for (index, column) in columns.iter().enumerate() {
        let flags = args.model.column(column);
        let mut first = None;
        for name in &agents {
            let agent = project.load(name)?;
            let resolved = flags.settings(project, &agent.prompt.defaults, None)?;
            let key = if column.label.is_empty() {
                (*name).to_owned()
            } else {
                format!("{name} [{}]", column.label)
            };
            models.insert(key, ModelSetup::of(&resolved)?);
            first.get_or_insert_with(|| resolved.clone());
            settings.insert((index, (*name).to_owned()), resolved);
        }
        let first = first.ok_or(EvalError::NoCases {
            what: "any agent".into(),
        })?;
        let endpoint = first.endpoint();
        let key = format!("{endpoint:?}");
        let client = match clients.get(&key) {
            Some(client) => client.clone(),
            None => {
                let client: Arc<dyn ModelClient> =
                    Arc::new(OpenAiClient::new(endpoint, Arc::new(Pacer::new()))?);
                clients.insert(key, client.clone());
                client
            }
        };
        live.push(client);
    }
    if mode == Mode::Record && clients.len() > 1 {
        return Err(Error::Usage {
            message: "--record with columns on different endpoints: a recording is refreshed through one endpoint".into(),
            hint: Some("record each profile in its own eval".into()),
        });
    }
    Ok((settings, live, models))
}
