//! One tool call: the arguments become the agent's inputs, the agent runs through the runner
//! exactly as `agent run` runs it (with its own run folder under `.agent/runs/`), and the run
//! report becomes the tool result.
//!
//! A valid or declined deliverable is a successful result; a contract still broken after the
//! last attempt, a model failure or bad inputs are results with `isError` set, whose text
//! names what happened, so the calling model can read it and try again.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rmcp::model::{CallToolResult, ContentBlock, JsonObject, MetaObject};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::error::CallError;
use crate::artifacts::RunFolder;
use crate::inputs::{Limits, Sources};
use crate::model::ModelClient;
use crate::project::Agent;
use crate::prompt::InputKind;
use crate::runner::{Run, RunError, RunOptions, RunOutcome, RunReport};
use crate::settings::{Settings, SettingsError};

/// An agent as a tool: the agent and the model settings resolved for it.
pub struct ServedAgent {
    agent: Agent,
    settings: Settings,
    model: String,
}

impl ServedAgent {
    /// Serve `agent` with `settings`, which must name a model: a server that cannot run an
    /// agent should say so when it starts, not on the first call.
    pub fn new(agent: Agent, settings: Settings) -> Result<ServedAgent, SettingsError> {
        let model = settings.model()?.to_owned();
        Ok(ServedAgent {
            agent,
            settings,
            model,
        })
    }

    /// The agent.
    pub(crate) fn agent(&self) -> &Agent {
        &self.agent
    }
}

/// What every call shares: where run folders go, the model client, the run options.
pub(crate) struct Runs {
    /// The project directory: run folders go in its `.agent/runs/`, and relative tree paths
    /// start there.
    pub(crate) root: PathBuf,
    /// Where a tree argument may point, each canonical: the project directory and the roots
    /// `--allow-root` adds. A tool driven by a model reads nothing else.
    pub(crate) roots: Vec<PathBuf>,
    /// One client for every call, so a 429 holds them all.
    pub(crate) client: Arc<dyn ModelClient>,
    /// Attempts, token budget, response format.
    pub(crate) options: RunOptions,
    /// Input size limits.
    pub(crate) limits: Limits,
}

impl Runs {
    /// Run `served` with the tool's `arguments`; `cancel` fires when the client cancels the
    /// request or the server stops.
    pub(crate) async fn call(
        &self,
        served: &ServedAgent,
        arguments: Option<&JsonObject>,
        cancel: CancellationToken,
    ) -> CallToolResult {
        let name = &served.agent.prompt.name;
        match self.run(served, arguments, cancel).await {
            Ok(report) => {
                tracing::info!(
                    agent = %name,
                    outcome = outcome_name(report.outcome),
                    attempts = report.attempts.len(),
                    tokens = report.usage.total_tokens,
                    folder = ?report.folder,
                    "tool call finished"
                );
                result(&served.agent, &report)
            }
            Err(error) => {
                tracing::info!(agent = %name, "tool call failed: {}", crate::text::error_chain(&error));
                failure(
                    format!("{name}: {}", crate::text::error_chain(&error)),
                    None,
                )
            }
        }
    }

    async fn run(
        &self,
        served: &ServedAgent,
        arguments: Option<&JsonObject>,
        cancel: CancellationToken,
    ) -> Result<RunReport, CallError> {
        let agent = &served.agent;
        let sources = sources(agent, arguments, &self.root, &self.roots)?;
        let gathered = crate::inputs::gather(&agent.prompt, &sources, &self.limits)
            .map_err(CallError::Inputs)?;
        for warning in &gathered.warnings {
            tracing::warn!("{warning}");
        }
        let runs = self.root.join(".agent").join("runs");
        let folder =
            RunFolder::create_in(&runs, &agent.prompt.name).map_err(|error| CallError::Folder {
                path: runs,
                source: std::io::Error::other(error),
            })?;
        let settings = &served.settings;
        let outcome = crate::runner::run(
            self.client.as_ref(),
            Run {
                agent,
                inputs: &gathered.inputs,
                model: served.model.clone(),
                temperature: settings.temperature.as_ref().map(|t| t.value),
                max_tokens: settings.max_tokens.as_ref().map(|t| t.value),
                seed: settings.seed.as_ref().map(|t| t.value),
                top_p: settings.top_p.as_ref().map(|t| t.value),
                options: self.options.clone(),
                folder: Some(folder),
                cancel,
            },
        )
        .await;
        match outcome {
            Ok(report) => {
                for guarded in &report.guarded {
                    tracing::warn!("{guarded}");
                }
                Ok(report)
            }
            // The report holds the error and how far the run got; the result says both.
            Err(RunError::Model { report, .. }) => Ok(*report),
            Err(other) => Err(CallError::Run(other)),
        }
    }
}

/// The tool's arguments as input sources, the way `agent run --var` takes them. A tree
/// argument must name a path inside one of `roots` once every link in it is resolved.
fn sources(
    agent: &Agent,
    arguments: Option<&JsonObject>,
    root: &Path,
    roots: &[PathBuf],
) -> Result<Sources, CallError> {
    let mut sources = Sources::default();
    for (name, value) in arguments.into_iter().flatten() {
        let text = match value {
            Value::String(text) => text.clone(),
            // Callers write `3` for "3"; the input is text either way.
            Value::Number(number) => number.to_string(),
            Value::Bool(flag) => flag.to_string(),
            // As an empty cell: not given, so the default applies or the input is missing.
            Value::Null => continue,
            Value::Array(_) => return Err(argument(name, "an array")),
            Value::Object(_) => return Err(argument(name, "an object")),
        };
        match agent.prompt.input(name).map(|spec| spec.kind) {
            Some(InputKind::Tree) => {
                let path = text.strip_prefix('@').unwrap_or(&text);
                let path = tree_path(name, path, root, roots)?;
                sources.files.push((name.clone(), path));
            }
            // Text is taken as written: a caller's text that begins with `@` is never a path
            // to read. An unknown name goes through too, so that gather names it with the others.
            _ => sources.values.push((name.clone(), text)),
        }
    }
    Ok(sources)
}

/// The real path of the tree argument `name`, given as `given`: relative paths start at
/// `root`; links are resolved before the path is held to `roots`, so neither `..` nor a link
/// leads out of them.
fn tree_path(
    name: &str,
    given: &str,
    root: &Path,
    roots: &[PathBuf],
) -> Result<PathBuf, CallError> {
    let outside = || CallError::OutsideRoots {
        name: name.to_owned(),
        path: given.to_owned(),
    };
    let joined = root.join(given);
    match std::fs::canonicalize(&joined) {
        Ok(real) if roots.iter().any(|allowed| real.starts_with(allowed)) => Ok(real),
        Ok(_) => Err(outside()),
        Err(error) => {
            // A path that does not exist outside the roots is refused as outside, so that a
            // caller learns nothing about what exists there.
            let absolute = std::path::absolute(&joined).unwrap_or(joined);
            if roots
                .iter()
                .any(|allowed| lexically_normal(&absolute).starts_with(allowed))
            {
                Err(CallError::TreePath {
                    name: name.to_owned(),
                    path: given.to_owned(),
                    message: error.to_string(),
                })
            } else {
                Err(outside())
            }
        }
    }
}

/// `path` with `.` and `..` resolved by name alone (for a path that does not exist, which
/// cannot be resolved on disk).
fn lexically_normal(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                normal.pop();
            }
            other => normal.push(other),
        }
    }
    normal
}

fn argument(name: &str, found: &'static str) -> CallError {
    CallError::Argument {
        name: name.to_owned(),
        found,
    }
}

/// The tool result of a finished run.
fn result(agent: &Agent, report: &RunReport) -> CallToolResult {
    let name = &agent.prompt.name;
    let attempts = report.attempts.len();
    let meta = meta(report);
    match report.outcome {
        RunOutcome::Valid | RunOutcome::Declined => {
            let text = report.deliverable.clone().unwrap_or_default();
            let structured = agent.contract.json_schema().and_then(|_| {
                report
                    .deliverable_json
                    .clone()
                    .or_else(|| serde_json::from_str(&text).ok())
            });
            let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
            result.structured_content = structured;
            result.with_meta(Some(meta))
        }
        RunOutcome::Violated => {
            let mut text = format!(
                "{name}: violated after {attempts} attempt{}; the last reply still breaks the contract:",
                plural(attempts)
            );
            for violation in report.last_violations() {
                text.push_str(&format!("\n  - {violation}"));
            }
            if let Some(reason) = &report.stop_reason {
                text.push_str(&format!("\n{reason}"));
            }
            failure(with_folder(text, report), Some(meta))
        }
        RunOutcome::ModelError | RunOutcome::InputError => {
            let error = report.error.as_deref().unwrap_or("the model call failed");
            // The failed attempt is not among the finished ones the report counts.
            let text = format!(
                "{name}: {} on attempt {}: {error}",
                outcome_name(report.outcome),
                attempts + 1
            );
            failure(with_folder(text, report), Some(meta))
        }
        RunOutcome::Interrupted => failure(
            with_folder(
                format!("{name}: interrupted before the run finished"),
                report,
            ),
            Some(meta),
        ),
    }
}

/// Where the run's artifacts are and how it went, for clients that look.
fn meta(report: &RunReport) -> MetaObject {
    let mut meta = Map::new();
    meta.insert("outcome".into(), json!(outcome_name(report.outcome)));
    meta.insert("attempts".into(), json!(report.attempts.len()));
    meta.insert("totalTokens".into(), json!(report.usage.total_tokens));
    if let Some(folder) = &report.folder {
        meta.insert("runFolder".into(), json!(folder));
    }
    MetaObject(meta)
}

/// A failed call. The text may quote a server's error body; never let it carry the key.
fn failure(text: String, meta: Option<MetaObject>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(crate::logging::scrub(&text))]).with_meta(meta)
}

fn with_folder(mut text: String, report: &RunReport) -> String {
    if let Some(folder) = &report.folder {
        text.push_str(&format!("\nrun folder: {}", folder.display()));
    }
    text
}

fn outcome_name(outcome: RunOutcome) -> &'static str {
    match outcome {
        RunOutcome::Valid => "valid",
        RunOutcome::Declined => "declined",
        RunOutcome::Violated => "violated",
        RunOutcome::ModelError => "model-error",
        RunOutcome::InputError => "input-error",
        RunOutcome::Interrupted => "interrupted",
    }
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::contract::Contract;
    use crate::model::FakeClient;
    use crate::prompt::Prompt;

    const PROMPT: &str = "---
agent:
  description: Answers one question, or declines
  dialect: double-brace
  inputs:
    - name: QUESTION
    - { name: CODE, kind: tree, required: false, default: none }
  contract: answer.schema.json
---
Answer {{QUESTION}} about {{CODE}} with one JSON object.
";

    const SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "answer": {"type": "string"},
    "error": {"const": "insufficient_context"},
    "reason": {"type": "string"}
  },
  "oneOf": [{"required": ["answer"]}, {"required": ["error", "reason"]}],
  "additionalProperties": false,
  "x-agent": {"declined": {"pointer": "/error", "equals": "insufficient_context"}}
}"#;

    fn agent() -> Agent {
        let prompt = Prompt::parse("answer", Path::new("prompts/answer.md"), PROMPT.into())
            .expect("the test prompt parses");
        let contract = Contract::json_from_str(Path::new("schemas/answer.schema.json"), SCHEMA)
            .expect("the test schema loads");
        Agent { prompt, contract }
    }

    fn settings() -> Settings {
        let none = |_: &str| None;
        crate::settings::resolve(&crate::settings::Inputs {
            flags: &crate::settings::Layer {
                model: Some("test-model".into()),
                ..crate::settings::Layer::default()
            },
            profile_flag: None,
            env: &none,
            config: None,
            agent: &crate::prompt::ModelDefaults::default(),
            recording_model: None,
        })
        .expect("settings resolve")
    }

    /// Call the test agent with `arguments`, the model answering `replies`; run folders go in
    /// a temporary project directory.
    async fn call(arguments: Value, replies: &[&str]) -> (CallToolResult, tempfile::TempDir) {
        let root = tempfile::tempdir().expect("temp dir");
        let result = call_in(root.path(), &[], arguments, replies).await;
        (result, root)
    }

    /// Call the test agent in the project directory `root`, trees allowed also under
    /// `allowed`.
    async fn call_in(
        root: &Path,
        allowed: &[&Path],
        arguments: Value,
        replies: &[&str],
    ) -> CallToolResult {
        let roots = std::iter::once(root)
            .chain(allowed.iter().copied())
            .map(|dir| std::fs::canonicalize(dir).expect("a directory"))
            .collect();
        let runs = Runs {
            root: root.to_owned(),
            roots,
            client: Arc::new(FakeClient::replying(replies.iter().copied())),
            options: RunOptions {
                attempts: 2,
                ..RunOptions::default()
            },
            limits: Limits::default(),
        };
        let served = ServedAgent::new(agent(), settings()).expect("a model is set");
        let Value::Object(arguments) = arguments else {
            panic!("arguments are an object");
        };
        runs.call(&served, Some(&arguments), CancellationToken::new())
            .await
    }

    fn text(result: &CallToolResult) -> String {
        result
            .content
            .iter()
            .filter_map(|block| block.as_text().map(|t| t.text.clone()))
            .collect()
    }

    #[tokio::test]
    async fn a_valid_json_deliverable_is_the_text_and_the_structured_content() {
        let (result, root) = call(json!({"QUESTION": "why"}), &[r#"{"answer": "because"}"#]).await;
        assert_eq!(result.is_error, Some(false), "{}", text(&result));
        assert_eq!(
            result.structured_content,
            Some(json!({"answer": "because"}))
        );
        assert_eq!(text(&result), r#"{"answer": "because"}"#);
        let meta = result.meta.expect("meta").0;
        assert_eq!(meta["outcome"], json!("valid"));
        let folder = PathBuf::from(meta["runFolder"].as_str().expect("a run folder"));
        assert!(folder.starts_with(root.path().join(".agent").join("runs")));
        assert!(folder.join("deliverable.json").is_file());
    }

    #[tokio::test]
    async fn a_refusal_is_a_successful_answer() {
        let refusal = r#"{"error": "insufficient_context", "reason": "no code given"}"#;
        let (result, _root) = call(json!({"QUESTION": "why"}), &[refusal]).await;
        assert_eq!(result.is_error, Some(false), "{}", text(&result));
        assert_eq!(
            result.structured_content,
            Some(json!({"error": "insufficient_context", "reason": "no code given"}))
        );
        assert_eq!(result.meta.expect("meta").0["outcome"], json!("declined"));
    }

    #[tokio::test]
    async fn a_contract_still_broken_is_an_error_naming_each_violation() {
        let (result, _root) = call(
            json!({"QUESTION": "why"}),
            &[r#"{"answer": 42}"#, r#"{"answer": 42}"#],
        )
        .await;
        let failure = text(&result);
        assert_eq!(result.is_error, Some(true), "{failure}");
        assert!(
            failure.starts_with(
                "answer: violated after 2 attempts; the last reply still breaks the contract:\n  - schema."
            ),
            "{failure}"
        );
        assert!(failure.contains(" at /answer: "), "{failure}");
        assert!(failure.contains("\nrun folder: "), "{failure}");
        assert!(result.structured_content.is_none());
    }

    #[tokio::test]
    async fn bad_arguments_are_an_error_before_any_model_call() {
        let (result, root) = call(json!({"QUESTION": ["a", "b"]}), &[]).await;
        assert_eq!(result.is_error, Some(true));
        assert_eq!(
            text(&result),
            "answer: argument `QUESTION` must be a string, not an array"
        );
        let (result, _root) = call(json!({"TOPIC": "x"}), &[]).await;
        let failure = text(&result);
        assert!(
            failure.starts_with("answer: 2 problems with the inputs of `answer`:\n"),
            "{failure}"
        );
        assert!(failure.contains("  - `TOPIC` is not a declared input"));
        assert!(failure.contains("  - missing required input `QUESTION`"));
        assert!(
            !root.path().join(".agent").exists(),
            "no run folder for a call that never runs"
        );
    }

    #[test]
    fn text_beginning_with_at_stays_text_and_a_tree_path_starts_at_the_project() {
        let project = tempfile::tempdir().expect("temp dir");
        let root = std::fs::canonicalize(project.path()).expect("canonical");
        std::fs::create_dir(root.join("src")).expect("mkdir");
        let roots = [root.clone()];
        let arguments = json!({"QUESTION": "@team why", "CODE": "src", "EXTRA": 3, "NONE": null});
        let Value::Object(arguments) = arguments else {
            panic!("an object");
        };
        let given = sources(&agent(), Some(&arguments), &root, &roots).expect("sources");
        assert_eq!(given.files, [("CODE".to_owned(), root.join("src"))]);
        assert_eq!(
            given.values,
            [
                ("EXTRA".to_owned(), "3".to_owned()),
                ("QUESTION".to_owned(), "@team why".to_owned()),
            ]
        );
        assert!(given.vars.is_empty() && given.json.is_none());
        let absolute = json!({"CODE": format!("@{}", root.join("src").display())});
        let Value::Object(absolute) = absolute else {
            panic!("an object");
        };
        let given = sources(&agent(), Some(&absolute), &root, &roots).expect("sources");
        assert_eq!(given.files, [("CODE".to_owned(), root.join("src"))]);
    }

    /// A project directory with a source tree in `src/`, and a directory beside it.
    fn project_and_outside() -> (tempfile::TempDir, tempfile::TempDir) {
        let project = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(project.path().join("src")).expect("mkdir");
        std::fs::write(project.path().join("src").join("main.rs"), "fn main() {}\n")
            .expect("write");
        let outside = tempfile::tempdir().expect("temp dir");
        std::fs::write(outside.path().join("passwd"), "root:x:0:0\n").expect("write");
        (project, outside)
    }

    #[tokio::test]
    async fn mcp_tree_inputs_read_any_path() {
        let (project, outside) = project_and_outside();
        let mut paths = vec![
            outside.path().display().to_string(),
            format!(
                "../{}",
                outside
                    .path()
                    .file_name()
                    .expect("a name")
                    .to_string_lossy()
            ),
            "../../../../../../../../etc".to_owned(),
            "/no/such/directory".to_owned(),
        ];
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(outside.path(), project.path().join("elsewhere"))
                .expect("symlink");
            paths.push("elsewhere".to_owned());
            paths.push("@elsewhere/passwd".to_owned());
        }
        for path in paths {
            let result = call_in(
                project.path(),
                &[],
                json!({"QUESTION": "why", "CODE": path}),
                &[r#"{"answer": "read it"}"#],
            )
            .await;
            assert_eq!(result.is_error, Some(true), "{path}: {}", text(&result));
            let failure = text(&result);
            assert!(
                failure.starts_with(&format!(
                    "answer: argument `CODE`: `{}` is outside the project directory and the allowed roots",
                    path.strip_prefix('@').unwrap_or(&path)
                )),
                "{path}: {failure}"
            );
            assert!(!failure.contains("root:x"), "{failure}");
        }
        assert!(
            !project.path().join(".agent").exists(),
            "no run for a call that never runs"
        );
    }

    #[tokio::test]
    async fn a_tree_argument_inside_an_allowed_root_is_read() {
        let (project, outside) = project_and_outside();
        let result = call_in(
            project.path(),
            &[outside.path()],
            json!({"QUESTION": "why", "CODE": outside.path().display().to_string()}),
            &[r#"{"answer": "read it"}"#],
        )
        .await;
        assert_eq!(result.is_error, Some(false), "{}", text(&result));
        let folder = PathBuf::from(
            result.meta.expect("meta").0["runFolder"]
                .as_str()
                .expect("a run folder"),
        );
        let prompt = std::fs::read_to_string(folder.join("prompt.md")).expect("prompt.md");
        assert!(prompt.contains("root:x:0:0"), "{prompt}");

        // A missing path inside the roots is named as missing.
        let result = call_in(
            project.path(),
            &[],
            json!({"QUESTION": "why", "CODE": "lib"}),
            &[],
        )
        .await;
        assert!(
            text(&result).starts_with("answer: argument `CODE`: cannot read `lib`: "),
            "{}",
            text(&result)
        );
    }

    #[tokio::test]
    async fn an_argument_over_the_input_limit_or_holding_a_nul_is_refused() {
        let big = "x".repeat(2_000_000);
        for (question, needles) in [
            (
                big.as_str(),
                ["`QUESTION` as given is 2.0 MB", "over the 1.0 MB limit"],
            ),
            (
                "why\0 not",
                ["`QUESTION` as given holds a NUL byte", "at byte 3"],
            ),
        ] {
            let (result, root) =
                call(json!({ "QUESTION": question }), &[r#"{"answer": "ok"}"#]).await;
            let failure = text(&result);
            assert_eq!(result.is_error, Some(true), "{failure}");
            for needle in needles {
                assert!(failure.contains(needle), "{failure}");
            }
            assert!(!root.path().join(".agent").exists());
        }
    }
}
