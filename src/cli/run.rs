//! `agent run`: gather, render, call the model, judge, re-ask; deliverable to stdout.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use serde_json::json;

use super::Interrupt;
use super::args::InputArgs;
use super::model_args::{ModelArgs, RecordArgs, RunOptionArgs};
use super::output;
use crate::artifacts::RunFolder;
use crate::error::Error;
use crate::exit::Status;
use crate::model::{ModelClient, OpenAiClient, Pacer, Recorder, Replayer};
use crate::project::{Agent, Project};
use crate::runner::{Run, RunError, RunOutcome, RunReport};

/// `agent run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The agent.
    pub agent: String,
    /// Input sources.
    #[command(flatten)]
    pub inputs: InputArgs,
    /// Refuse an agent whose template holds placeholder-looking text no input binds (by
    /// default a warning: the text is sent as written).
    #[arg(long)]
    pub strict: bool,
    /// Model choice and parameters.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Recording.
    #[command(flatten)]
    pub recording: RecordArgs,
    /// Attempts, token budget, response format.
    #[command(flatten)]
    pub run: RunOptionArgs,
    /// One JSON envelope on stdout (outcome, deliverable, attempts, violations, usage, run folder).
    #[arg(long)]
    pub json: bool,
    /// The run folder; by default `.agent/runs/<time>-<agent>-<id>` in the project.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

pub(crate) async fn run(project: &Project, args: &RunArgs, quiet: bool) -> Result<Status, Error> {
    let agent = project.load(&args.agent)?;
    crate::lint::check_unbound(&agent.prompt, args.strict)?;
    let sources = args.inputs.sources()?;
    let gathered = crate::inputs::gather(&agent.prompt, &sources, &args.inputs.limits())?;
    for warning in &gathered.warnings {
        tracing::warn!("{warning}");
    }
    let replayer = match &args.recording.replay {
        Some(path) => Some(Replayer::load(path)?),
        None => None,
    };
    let recording_model = replayer.as_ref().and_then(|r| r.recording().model());
    let settings = args
        .model
        .settings(project, &agent.prompt.defaults, recording_model)?;
    let model = settings.model()?.to_owned();
    let client: Box<dyn ModelClient> = match (replayer, &args.recording.record) {
        (Some(replayer), _) => Box::new(replayer),
        (None, record) => {
            let live = OpenAiClient::new(settings.endpoint(), Arc::new(Pacer::new()))?;
            match record {
                Some(path) => Box::new(Recorder::new(live, path)?),
                None => Box::new(live),
            }
        }
    };
    let folder_is_new = args.out.as_ref().is_none_or(|dir| !dir.exists());
    let folder = match &args.out {
        Some(dir) => RunFolder::claim(dir)?,
        None => RunFolder::create_in(
            &project.root.join(".agent").join("runs"),
            &agent.prompt.name,
        )?,
    };
    let folder_path = folder.path().to_owned();
    let interrupt = Interrupt::watch();
    let cancel = interrupt.token();
    let progress = crate::progress::Progress::line(quiet);
    let outcome = progress
        .scope(crate::runner::run(
            client.as_ref(),
            Run {
                agent: &agent,
                inputs: &gathered.inputs,
                model,
                temperature: settings.temperature.as_ref().map(|t| t.value),
                max_tokens: settings.max_tokens.as_ref().map(|t| t.value),
                seed: settings.seed.as_ref().map(|t| t.value),
                top_p: settings.top_p.as_ref().map(|t| t.value),
                options: crate::runner::RunOptions {
                    context_window: args.model.tuning.context_window,
                    ..args.run.options()
                },
                folder: Some(folder),
                cancel,
            },
        ))
        .await;
    match outcome {
        Ok(report) => {
            for guarded in &report.guarded {
                tracing::warn!("{guarded}");
            }
            // On a terminal the deliverable and the summary share the screen: the summary comes
            // last, where a long deliverable cannot scroll it away. Piped, it comes first, as
            // the run's progress does.
            let summary_last = std::io::IsTerminal::is_terminal(&std::io::stdout());
            if !quiet && !summary_last {
                eprint!("{}", summary(&agent, &report));
            }
            print_stdout(&report, args.json)?;
            if !quiet && summary_last {
                eprint!("{}", summary(&agent, &report));
            }
            Ok(report.outcome.status())
        }
        Err(RunError::Model { error, report }) => {
            if !quiet {
                eprint!("{}", summary(&agent, &report));
            }
            if args.json {
                print_stdout(&report, true)?;
            }
            Err(Error::Run(RunError::Model { error, report }))
        }
        Err(other) => {
            // Refused before anything was written (options that do not fit the agent, a
            // template that does not render): leave no empty run folder behind.
            let _ = std::fs::remove_file(folder_path.join(crate::artifacts::LOCK_FILE));
            if folder_is_new {
                let _ = std::fs::remove_dir(&folder_path);
            }
            Err(other.into())
        }
    }
}

/// The deliverable alone, or the envelope. Nothing at all for a violated or stopped run
/// without `--json`, so no partial output is ever mistaken for a result; and stdout that cannot
/// take it all is an error, not success.
fn print_stdout(report: &RunReport, as_json: bool) -> Result<(), Error> {
    let folder = report.folder.as_deref();
    if as_json {
        // The runner parsed a JSON deliverable when it judged it.
        let deliverable = report
            .deliverable_json
            .clone()
            .or_else(|| report.deliverable.clone().map(serde_json::Value::String));
        let envelope = json!({
            "outcome": report.outcome,
            "agent": report.agent,
            "model": report.model,
            "deliverable": deliverable,
            "reasoning_path": report.folder.as_ref().filter(|_| !report.reasoning.is_empty()).map(|f| f.join("reasoning.md")),
            "attempts": report.attempts.len(),
            "violations": report.last_violations(),
            "usage": report.usage,
            "elapsed_ms": report.elapsed_ms,
            "stop_reason": report.stop_reason,
            "error": report.error,
            "run_folder": report.folder,
        });
        let raw = output::as_written(
            report
                .deliverable
                .as_deref()
                .filter(|_| report.deliverable_json.is_some()),
        );
        output::print_line(
            &output::envelope_text(&envelope, "deliverable", raw.as_deref()),
            folder,
        )
    } else if let Some(deliverable) = &report.deliverable {
        output::print_line(deliverable, folder)
    } else {
        Ok(())
    }
}

/// The report for people, on stderr: outcome, each attempt, the run folder.
fn summary(agent: &Agent, report: &RunReport) -> String {
    let mut text = String::new();
    let outcome = match report.outcome {
        RunOutcome::Valid => "valid",
        RunOutcome::Declined => "declined (insufficient context)",
        RunOutcome::Violated => "contract still violated",
        RunOutcome::ModelError => "model error",
        RunOutcome::InputError => "input error",
        RunOutcome::Interrupted => "interrupted",
    };
    let attempts = report.attempts.len();
    let when = match &report.failed_attempt {
        Some(failed) => format!("on attempt {}", failed.number),
        None => format!(
            "after {attempts} attempt{}",
            if attempts == 1 { "" } else { "s" }
        ),
    };
    let _ = writeln!(
        text,
        "{}: {outcome} {when} · {} tokens · {:.1} s",
        agent.prompt.name,
        report.usage.total_tokens,
        report.elapsed_ms as f64 / 1000.0
    );
    let last = report.attempts.len();
    for attempt in &report.attempts {
        let state = match attempt.outcome {
            crate::contract::Outcome::Valid => "valid".to_owned(),
            crate::contract::Outcome::Declined => "declined".to_owned(),
            crate::contract::Outcome::Invalid if (attempt.number as usize) < last => {
                format!("{} violation(s), re-asked", attempt.violations.len())
            }
            crate::contract::Outcome::Invalid => {
                format!("{} violation(s)", attempt.violations.len())
            }
        };
        let retries = if attempt.retries > 0 {
            format!(
                ", {} transport retr{}",
                attempt.retries,
                if attempt.retries == 1 { "y" } else { "ies" }
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            text,
            "  attempt {}: {state} ({} ms{retries})",
            attempt.number, attempt.model_ms
        );
        for violation in &attempt.violations {
            let _ = writeln!(text, "    {violation}");
        }
    }
    if let Some(reason) = &report.stop_reason {
        let _ = writeln!(text, "  {reason}");
    }
    if let Some(folder) = &report.folder {
        let _ = writeln!(text, "  run folder: {}", shorten(folder).display());
    }
    text
}

/// `folder` relative to the current directory when it is below it.
fn shorten(folder: &Path) -> PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| folder.strip_prefix(&cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| folder.to_owned())
}
