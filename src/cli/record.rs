//! `agent record`: make a fixture's recording from hand-written replies, with no model and no
//! server. The replies are served in order by a [`ScriptedClient`] through the same code that
//! `agent eval --record` and `agent pipeline run --record` use, so the recording holds exactly
//! the requests `agent` sends (the rendered prompt, each re-ask, each `llm-rubric` judge
//! request) and the hand-written replies as a server would have sent them.
//!
//! A recording is replaced only when every request got a reply: a case that asks for more
//! replies than it was given leaves its recording as it was.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use serde::Deserialize;

use super::Interrupt;
use super::args::InputArgs;
use crate::error::Error;
use crate::eval::{
    Column, EvalContext, EvalFolder, EvalOptions, Mode, ModelSetup, ReportPlan, Selection,
    run_eval, select, write_reports,
};
use crate::exit::Status;
use crate::model::{FIXTURE_MODEL, ModelClient, Recorder, ScriptedClient, ScriptedReply};
use crate::pipeline::{PipelineOptions, StepParameters, check, read_pipeline_inputs, run_pipeline};
use crate::project::Project;
use crate::prompt::ModelDefaults;
use crate::settings::{self, Settings};

/// `agent record`.
#[derive(Debug, Args)]
pub struct RecordCommandArgs {
    /// Without --pipeline: the case (`agent/case`, or its folder `fixtures/<agent>/<case>`),
    /// then its replies [default: the case's `scripted_replies`]. With --pipeline: the replies.
    /// A reply is a file, or `TEXT=FILE` to send FILE to the request whose prompt holds TEXT
    /// (for steps that run at once).
    #[arg(value_name = "CASE | REPLY")]
    pub items: Vec<String>,
    /// Record a pipeline run instead of a case: the pipeline file.
    #[arg(long, value_name = "FILE", requires = "recording")]
    pub pipeline: Option<PathBuf>,
    /// With --pipeline: the recording to write (replaced whole). With a case: record into
    /// this file instead of the case's recording, keeping the exchanges it holds (a second
    /// model's recordings for `agent eval --recording`).
    #[arg(long, value_name = "FILE")]
    pub recording: Option<PathBuf>,
    /// The model the requests name [default: fixture-model]: record a case as another
    /// model answers it, for a matrix replayed offline.
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// With --pipeline: the pipeline's own inputs.
    #[command(flatten)]
    pub inputs: InputArgs,
    /// With --pipeline: attempts per step, unless a step sets its own.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub attempts: u32,
}

pub(crate) async fn run(
    project: &Project,
    args: &RecordCommandArgs,
    quiet: bool,
) -> Result<Status, Error> {
    match (&args.pipeline, &args.recording) {
        (Some(pipeline), Some(recording)) => {
            record_pipeline(project, args, pipeline, recording, quiet).await
        }
        (Some(_), None) => Err(Error::Usage {
            message: "--pipeline needs --recording FILE".into(),
            hint: None,
        }),
        _ => record_case(project, args, quiet).await,
    }
}

/// The settings a fixture is recorded with: the fixture model and the agent's own defaults,
/// nothing from the environment or `agent.toml`, exactly as a replay resolves them, so the
/// recorded requests are the ones a replay sends.
fn fixture_settings(defaults: &ModelDefaults, model: Option<&str>) -> Result<Settings, Error> {
    Ok(settings::resolve(&settings::Inputs {
        flags: &settings::Layer::default(),
        profile_flag: None,
        env: &|_| None,
        config: None,
        agent: defaults,
        recording_model: Some(model.unwrap_or(FIXTURE_MODEL)),
    })?)
}

/// Read the replies: `FILE`, or `TEXT=FILE` routed to the prompt holding TEXT. Relative
/// files start at `base`.
fn read_replies(specs: &[String], base: &Path) -> Result<Vec<ScriptedReply>, Error> {
    specs
        .iter()
        .map(|spec| {
            let (route, file) = match spec.rsplit_once('=') {
                Some((route, file)) if !route.is_empty() => (Some(route.to_owned()), file),
                _ => (None, spec.as_str()),
            };
            let path = base.join(file);
            let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
                action: "read the reply",
                path: path.clone(),
                source,
            })?;
            Ok(ScriptedReply { route, text })
        })
        .collect()
}

/// The part of a case file `agent record` reads.
#[derive(Debug, Default, Deserialize)]
struct ScriptedCase {
    #[serde(default)]
    scripted_replies: Vec<String>,
}

/// `agent/case`, or a case folder `…/<agent>/<case>` holding `case.yaml`.
fn case_name(item: &str) -> Result<(String, String), Error> {
    let path = Path::new(item);
    if path.join("case.yaml").is_file() {
        let name = |p: Option<&Path>| {
            p.and_then(Path::file_name)
                .map(|n| n.to_string_lossy().into_owned())
        };
        if let (Some(agent), Some(case)) = (name(path.parent()), name(Some(path))) {
            return Ok((agent, case));
        }
    }
    match item.split_once('/') {
        Some((agent, case)) if !agent.is_empty() && !case.is_empty() && !case.contains('/') => {
            Ok((agent.to_owned(), case.to_owned()))
        }
        _ => Err(Error::Usage {
            message: format!("`{item}` names no case"),
            hint: Some(
                "give the case as agent/case (`release-plan/parcelpoint`), or its folder; or record a pipeline with --pipeline FILE --recording FILE".into(),
            ),
        }),
    }
}

async fn record_case(
    project: &Project,
    args: &RecordCommandArgs,
    quiet: bool,
) -> Result<Status, Error> {
    let Some((item, given)) = args.items.split_first() else {
        return Err(Error::Usage {
            message: "no case to record".into(),
            hint: Some("agent record AGENT/CASE [REPLY…]".into()),
        });
    };
    let (agent, case) = case_name(item)?;
    let id = format!("{agent}/{case}");
    let selected = select(
        project,
        std::slice::from_ref(&agent),
        std::slice::from_ref(&id),
        None,
    )?;
    let mut selected = selected;
    if let Some(recording) = &args.recording {
        // Another file: the case's own recording stays as it is, and the file keeps the
        // exchanges of the other cases recorded into it.
        selected
            .cases
            .record_into(&std::path::absolute(recording).unwrap_or_else(|_| recording.clone()));
    }
    let cases = &selected.cases;
    let case_dir = cases
        .files()
        .next()
        .map(|case| case.dir.clone())
        .unwrap_or_default();
    let replies = if given.is_empty() {
        let path = case_dir.join("case.yaml");
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
            action: "read",
            path: path.clone(),
            source,
        })?;
        let file: ScriptedCase = serde_yaml_ng::from_str(&text).unwrap_or_default();
        if file.scripted_replies.is_empty() {
            return Err(Error::Usage {
                message: format!("{}: no replies given and no `scripted_replies`", path.display()),
                hint: Some("list the hand-written replies under `scripted_replies:` in case.yaml, or give them after the case".into()),
            });
        }
        read_replies(&file.scripted_replies, &case_dir)?
    } else {
        read_replies(given, Path::new(""))?
    };

    // Every agent a case may run: a pipeline case runs any of them.
    let names: BTreeSet<String> = if cases.files().any(|c| c.pipeline.is_some()) {
        project.agent_names()?.into_iter().collect()
    } else {
        cases.files().map(|c| c.agent.clone()).collect()
    };
    let mut resolved = HashMap::new();
    let mut models = BTreeMap::new();
    for name in names {
        let loaded = project.load(&name)?;
        let settings = fixture_settings(&loaded.prompt.defaults, args.model.as_deref())?;
        models.insert(name.clone(), ModelSetup::of(&settings)?);
        resolved.insert((0, name), settings);
    }
    let selection = Selection {
        agents: vec![agent.clone()],
        filter: vec![id.clone()],
        mode: Mode::Record.name().into(),
        models,
        ..Selection::default()
    };
    let scratch = Scratch::new()?;
    let folder = EvalFolder::create(&scratch.path.join("eval"), &selection)?;
    let interrupt = Interrupt::watch();
    let cancel = interrupt.token();
    let client = Arc::new(ScriptedClient::new(replies, cancel.clone()));
    let live: Arc<dyn ModelClient> = client.clone();
    let context = EvalContext {
        project,
        settings: &resolved,
        live: vec![live],
        cancel: cancel.clone(),
        progress: indicatif::ProgressBar::hidden(),
    };
    let options = EvalOptions {
        mode: Mode::Record,
        // One case at a time, so replies are served in a stable order: each dataset row in
        // turn, each attempt in turn, then the judge.
        concurrency: 1,
        repeat: 1,
        artifacts: None,
        judge_model: None,
        response_format: crate::runner::ResponseFormat::None,
        whole_recordings: selected.whole_recordings(&Default::default()),
        recordings_staged_in: folder.path().join("recordings"),
        // The agent's own defaults, as a replay sends them.
        sampling: crate::eval::SamplingFlags::default(),
        keep_replies: false,
        prices: Default::default(),
        max_cost: None,
        also_recordings: Vec::new(),
    };
    let columns = [Column::default()];
    run_eval(
        &context,
        cases,
        &columns,
        &options,
        &folder,
        &crate::eval::RunSet::default(),
    )
    .await?;
    let table = scratch.path.join("table.txt");
    let written = write_reports(
        &folder.index(cases, &columns, 1)?,
        cases,
        &columns,
        ReportPlan {
            mode: Mode::Record.name(),
            shard: None,
            min_pass_rate: 1.0,
            repeat: 1,
            elapsed_ms: 0,
            baseline: None,
            paths: vec![table.clone()],
        },
    )?;
    drop(folder);
    if client.unanswered() > 0 {
        return Err(ran_dry(&client, &id));
    }
    if cancel.is_cancelled() {
        return Ok(Status::Interrupted);
    }
    let recordings: BTreeSet<&Path> = cases.files().map(|c| c.recording.as_path()).collect();
    if !quiet {
        for recording in recordings {
            if client.served() == 0 {
                // A case refused before its model call (bad inputs) leaves the file as it was.
                eprintln!(
                    "{}: nothing recorded: {id} did not reach the model (see below)",
                    shown(project, recording).display()
                );
            } else {
                eprintln!(
                    "{}: recorded {} repl(ies) of {id}",
                    shown(project, recording).display(),
                    client.served()
                );
            }
        }
        warn_unused(&client);
    }
    super::output::print_file(&table, None)?;
    Ok(if written.passed {
        Status::Ok
    } else {
        Status::Violated
    })
}

async fn record_pipeline(
    project: &Project,
    args: &RecordCommandArgs,
    file: &Path,
    recording: &Path,
    quiet: bool,
) -> Result<Status, Error> {
    let plan = check(project, file)?;
    let sources = args.inputs.sources()?;
    let inputs = read_pipeline_inputs(&plan, &sources, &args.inputs.limits())?;
    if args.items.is_empty() {
        return Err(Error::Usage {
            message: "no replies to record".into(),
            hint: Some("give one reply file per model request, in the order the steps run".into()),
        });
    }
    let replies = read_replies(&args.items, Path::new(""))?;
    let mut parameters = BTreeMap::new();
    for step in &plan.steps {
        let settings = fixture_settings(&step.agent.prompt.defaults, args.model.as_deref())?;
        parameters.insert(
            step.agent.prompt.name.clone(),
            StepParameters::from_settings(&settings)?,
        );
    }
    let scratch = Scratch::new()?;
    let interrupt = Interrupt::watch();
    let cancel = interrupt.token();
    let client = Arc::new(ScriptedClient::new(replies, cancel.clone()));
    let scripted: Arc<dyn ModelClient> = client.clone();
    // The recording is made beside, and replaces the old one only once every request got its reply.
    let recorder = Recorder::staged(
        scripted,
        recording,
        &scratch.path.join("recording.json"),
        true,
    )?;
    let options = PipelineOptions {
        parameters,
        limits: args.inputs.limits(),
        attempts: args.attempts,
        response_format: crate::runner::ResponseFormat::None,
        folder: None,
        resume: None,
        cancel: cancel.clone(),
    };
    let result = run_pipeline(&plan, &inputs, &recorder, &options).await?;
    if client.unanswered() > 0 {
        return Err(ran_dry(&client, &plan.name));
    }
    let report = result.report;
    let status = report.status();
    if matches!(status, Status::Interrupted | Status::Model | Status::Usage) {
        eprint!("{}", report.table());
        return Ok(status);
    }
    recorder.commit()?;
    if !quiet {
        eprint!("{}", report.table());
        eprintln!(
            "{}: recorded {} repl(ies) of pipeline {}",
            recording.display(),
            client.served(),
            plan.name
        );
        warn_unused(&client);
    }
    Ok(Status::Ok)
}

/// `path` as people read it: from the project directory, with `..` resolved.
fn shown(project: &Project, path: &Path) -> PathBuf {
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::ParentDir if clean.file_name().is_some() => {
                clean.pop();
            }
            std::path::Component::CurDir => {}
            other => clean.push(other),
        }
    }
    clean
        .strip_prefix(&project.root)
        .map_or_else(|_| clean.clone(), Path::to_path_buf)
}

fn ran_dry(client: &ScriptedClient, what: &str) -> Error {
    Error::Usage {
        message: format!(
            "{what} asked for more replies than the {} given; nothing was recorded",
            client.served()
        ),
        hint: Some(
            "add the missing reply (a re-ask after a reply that breaks the contract, or an llm-rubric judge reply)".into(),
        ),
    }
}

fn warn_unused(client: &ScriptedClient) {
    let left = client.left();
    if left > 0 {
        eprintln!("warning: {left} scripted repl(ies) were not used");
    }
}

/// A scratch folder under the system's temporary directory, removed when dropped.
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn new() -> Result<Scratch, Error> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "agent-record-{}-{nanos:08x}-{:04x}",
            std::process::id(),
            fastrand::u16(..)
        ));
        std::fs::create_dir_all(&path).map_err(|source| Error::Io {
            action: "create",
            path: path.clone(),
            source,
        })?;
        Ok(Scratch { path })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_is_named_by_agent_and_case() {
        assert_eq!(
            case_name("release-plan/parcelpoint").expect("named"),
            ("release-plan".into(), "parcelpoint".into())
        );
        assert!(case_name("release-plan").is_err());
        assert!(case_name("a/b/c").is_err());
    }

    #[test]
    fn a_routed_reply_keeps_its_text_and_file() {
        let dir = std::env::temp_dir().join(format!("agent-record-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("r.txt"), "reply").expect("write");
        let replies =
            read_replies(&["Release Manager=r.txt".into(), "r.txt".into()], &dir).expect("read");
        assert_eq!(replies[0].route.as_deref(), Some("Release Manager"));
        assert_eq!(replies[1].route, None);
        assert!(replies.iter().all(|r| r.text == "reply"));
        std::fs::remove_dir_all(&dir).expect("clean");
    }
}
