//! `agent pipeline run` and `agent pipeline check`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::Interrupt;
use super::args::InputArgs;
use super::model_args::{ModelArgs, RecordArgs};
use crate::artifacts::RunFolder;
use crate::error::Error;
use crate::exit::Status;
use crate::model::{ModelClient, OpenAiClient, Pacer, Recorder, Replayer};
use crate::pipeline::{
    PipelineError, PipelineOptions, PipelineReport, StepParameters, check, read_pipeline_inputs,
    run_pipeline,
};
use crate::project::Project;

/// `agent pipeline`.
#[derive(Debug, Args)]
pub struct PipelineArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: PipelineAction,
}

/// Subcommands of `agent pipeline`.
#[derive(Debug, Subcommand)]
#[expect(clippy::large_enum_variant, reason = "parsed once per process")]
pub enum PipelineAction {
    /// Run a pipeline: its steps in dependency order, independent ones at once.
    Run(PipelineRunArgs),
    /// Check a pipeline file without running it: every problem, with file and line.
    Check(PipelineCheckArgs),
}

/// `agent pipeline check`.
#[derive(Debug, Args)]
pub struct PipelineCheckArgs {
    /// The pipeline file.
    pub file: PathBuf,
}

/// `agent pipeline run`.
#[derive(Debug, Args)]
pub struct PipelineRunArgs {
    /// The pipeline file.
    pub file: PathBuf,
    /// The pipeline's own inputs.
    #[command(flatten)]
    pub inputs: InputArgs,
    /// Model choice and parameters.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Recording (one file for every step).
    #[command(flatten)]
    pub recording: RecordArgs,
    /// Attempts per step, unless a step sets its own.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub attempts: u32,
    /// For JSON agents: ask the server to constrain each step's reply, unless a step sets its own `response_format`.
    #[arg(long, value_enum, default_value = "none")]
    pub response_format: crate::runner::ResponseFormat,
    /// One JSON envelope on stdout: outcome, steps, the output deliverable, the run folder.
    #[arg(long)]
    pub json: bool,
    /// The run folder; by default `.agent/pipelines/<time>-<pipeline>-<id>`.
    #[arg(long, value_name = "DIR", conflicts_with = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the run in DIR: completed steps whose agent, prompt and inputs are unchanged are reused.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
}

pub(crate) fn check_only(project: &Project, args: &PipelineCheckArgs) -> Result<Status, Error> {
    let plan = check(project, &args.file)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} steps, output `{}`",
        plan.name,
        plan.steps.len(),
        plan.steps[plan.output].name
    );
    let name_width = plan.steps.iter().map(|s| s.name.len()).max().unwrap_or(0);
    let agent_width = plan
        .steps
        .iter()
        .map(|s| s.agent.prompt.name.len())
        .max()
        .unwrap_or(0);
    for step in &plan.steps {
        let needs: Vec<&str> = step
            .needs
            .iter()
            .map(|&i| plan.steps[i].name.as_str())
            .collect();
        let after = if needs.is_empty() {
            String::new()
        } else {
            format!("after {}", needs.join(", "))
        };
        let line = format!(
            "  {:name_width$}  {:agent_width$}  {after}",
            step.name, step.agent.prompt.name
        );
        let _ = writeln!(out, "{}", line.trim_end());
    }
    super::output::print(out.as_bytes(), None)?;
    Ok(Status::Ok)
}

pub(crate) async fn run(
    project: &Project,
    args: &PipelineRunArgs,
    quiet: bool,
) -> Result<Status, Error> {
    let plan = check(project, &args.file)?;
    let sources = args.inputs.sources()?;
    let inputs = read_pipeline_inputs(&plan, &sources, &args.inputs.limits())?;
    let replayer = match &args.recording.replay {
        Some(path) => Some(Replayer::load(path)?),
        None => None,
    };
    let recording_model = replayer
        .as_ref()
        .and_then(|r| r.recording().model().map(str::to_owned));
    // Each agent's own settings: its defaults may name a model and parameters. The endpoint
    // is the project's, one for every step.
    let mut parameters = BTreeMap::new();
    let mut endpoint = None;
    for step in &plan.steps {
        let agent = &step.agent;
        let settings =
            args.model
                .settings(project, &agent.prompt.defaults, recording_model.as_deref())?;
        endpoint.get_or_insert_with(|| settings.endpoint());
        parameters.insert(
            agent.prompt.name.clone(),
            StepParameters {
                context_window: args.model.tuning.context_window,
                ..StepParameters::from_settings(&settings)?
            },
        );
    }
    let client: Box<dyn ModelClient> = match (replayer, &args.recording.record, endpoint) {
        (Some(replayer), _, _) => Box::new(replayer),
        (None, record, Some(endpoint)) => {
            let live = OpenAiClient::new(endpoint, Arc::new(Pacer::new()))?;
            match record {
                Some(path) => Box::new(Recorder::new(live, path)?),
                None => Box::new(live),
            }
        }
        (None, _, None) => {
            return Err(PipelineError::Invalid {
                path: args.file.clone(),
                problems: vec!["the pipeline has no steps".into()],
            }
            .into());
        }
    };
    let (folder, resume) = match &args.resume {
        Some(dir) => {
            // Locked before it is read: two resumes of one run must not both run its steps.
            let lock = crate::artifacts::FolderLock::acquire(dir)?;
            let record = dir.join("pipeline.json");
            let text = std::fs::read_to_string(&record).map_err(|e| PipelineError::Folder {
                path: record.clone(),
                message: e.to_string(),
            })?;
            let previous: PipelineReport =
                serde_json::from_str(&text).map_err(|e| PipelineError::Folder {
                    path: record.clone(),
                    message: format!("not a pipeline run record: {e}"),
                })?;
            (RunFolder::locked(dir, lock), Some(previous))
        }
        None => (
            match &args.out {
                Some(dir) => RunFolder::claim(dir)?,
                None => RunFolder::create_in(
                    &project.root.join(".agent").join("pipelines"),
                    &plan.name,
                )?,
            },
            None,
        ),
    };
    let folder_path = folder.path().to_owned();
    let interrupt = Interrupt::watch();
    let cancel = interrupt.token();
    let options = PipelineOptions {
        parameters,
        limits: args.inputs.limits(),
        attempts: args.attempts,
        response_format: args.response_format,
        folder: Some(folder),
        resume,
        cancel,
    };
    let result = crate::progress::Progress::line(quiet)
        .scope(run_pipeline(&plan, &inputs, client.as_ref(), &options))
        .await?;
    let report = result.report;
    if !quiet {
        eprint!("{}", report.table());
        eprintln!("  run folder: {}", folder_path.display());
    }
    let output_step = &report.steps[plan.output];
    if args.json {
        let completed = output_step.status.completed();
        let raw = super::output::as_written(
            result
                .output
                .as_deref()
                .filter(|_| completed && result.output_json.is_some()),
        );
        let output = result
            .output_json
            .or_else(|| result.output.map(Value::String))
            .filter(|_| completed);
        let envelope = json!({
            "outcome": report.outcome(),
            "pipeline": report.pipeline,
            "steps": report.steps,
            "output_step": report.output,
            "output": output,
            "partial": report.partial,
            "run_folder": folder_path,
        });
        super::output::print_line(
            &super::output::envelope_text(&envelope, "output", raw.as_deref()),
            Some(&folder_path),
        )?;
    } else if let Some(output) = result.output.filter(|_| output_step.status.completed()) {
        super::output::print_line(&output, Some(&folder_path))?;
    }
    Ok(report.status())
}
