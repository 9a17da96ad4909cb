//! [`run`]: one agent run, attempt by attempt.

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime};

use miette::Diagnostic;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::budget::{Tokenizer, Turn, plan};
use super::reask::reask_message;
use super::report::{AttemptRecord, FailedAttempt, InputRecord, Parameters, RunOutcome, RunReport};
use crate::artifacts::{RunFolder, timestamp};
use crate::contract::{Location, Outcome, Verdict, Violation, judge};
use crate::extract::extract_with;
use crate::inputs::Inputs;
use crate::model::{
    ChatRequest, Completion, FinishReason, Message, ModelClient, ModelError, Usage,
};
use crate::project::Agent;
use crate::render::{RenderError, render};

/// Whether to ask the server to constrain the reply to JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResponseFormat {
    /// Plain text; the contract alone judges.
    #[default]
    None,
    /// `{"type": "json_object"}`.
    JsonObject,
    /// `{"type": "json_schema"}` with the agent's schema.
    JsonSchema,
}

impl ResponseFormat {
    fn name(self) -> &'static str {
        match self {
            ResponseFormat::None => "none",
            ResponseFormat::JsonObject => "json-object",
            ResponseFormat::JsonSchema => "json-schema",
        }
    }
}

/// How a run may proceed.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// Stop before an attempt that would take the total over this many tokens.
    pub max_total_tokens: Option<u64>,
    /// `response_format` for JSON agents.
    pub response_format: ResponseFormat,
    /// The model's context window in tokens, when known (`--context-window`): each attempt
    /// is fitted into it. Unknown, it is learned from a server that refuses a request as too
    /// long.
    pub context_window: Option<u64>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            attempts: 3,
            max_total_tokens: None,
            response_format: ResponseFormat::None,
            context_window: None,
        }
    }
}

/// One run to make.
pub struct Run<'a> {
    /// The agent.
    pub agent: &'a Agent,
    /// Its gathered inputs.
    pub inputs: &'a Inputs,
    /// The model name.
    pub model: String,
    /// Sampling parameters.
    pub temperature: Option<f32>,
    /// Reply token limit.
    pub max_tokens: Option<u32>,
    /// Sampling seed.
    pub seed: Option<i64>,
    /// Nucleus sampling.
    pub top_p: Option<f32>,
    /// Attempts, budget, response format.
    pub options: RunOptions,
    /// Where artifacts go; none writes nothing.
    pub folder: Option<RunFolder>,
    /// Cancelled by Ctrl-C.
    pub cancel: CancellationToken,
}

/// A run that could not be made or finished.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum RunError {
    /// The prompt did not render.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Render(#[from] RenderError),
    /// The options do not fit the agent.
    #[error("{message}")]
    #[diagnostic(code(agent::run::options))]
    Options {
        /// What is wrong.
        message: String,
        /// How to fix it.
        #[help]
        hint: Option<String>,
    },
    /// The model failed; the report (also in `run.json`) says how far the run got.
    #[error("{error}")]
    #[diagnostic(forward(error))]
    Model {
        /// The failure.
        error: ModelError,
        /// The run so far.
        report: Box<RunReport>,
    },
    /// An artifact could not be written.
    #[error("cannot write `{}`", path.display())]
    #[diagnostic(code(agent::run::artifacts))]
    Artifacts {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Make the run: render, then attempt, judge and re-ask until the contract holds or the
/// attempts, the token budget or the user's patience run out.
#[tracing::instrument(skip_all, fields(agent = %run.agent.prompt.name))]
pub async fn run(client: &dyn ModelClient, run: Run<'_>) -> Result<RunReport, RunError> {
    let started = Instant::now();
    let started_at = SystemTime::now();
    let agent = run.agent;
    let response_format = response_format(agent, run.options.response_format)?;
    let rendered = render(&agent.prompt, run.inputs)?;
    if let Some(budget) = run.options.max_total_tokens {
        let prompt_tokens = estimate_tokens(rendered.text.len());
        if prompt_tokens > budget {
            return Err(RunError::Options {
                message: format!(
                    "the rendered prompt alone is about {prompt_tokens} tokens, over --max-total-tokens {budget}"
                ),
                hint: Some("raise the budget, or trim the inputs".into()),
            });
        }
    }
    let folder = run.folder.as_ref();
    let write = |relative: &str, bytes: &[u8]| -> Result<(), RunError> {
        if let Some(folder) = folder {
            // The key never reaches an artifact, even when the inputs hold it.
            folder
                .write(relative, &crate::logging::scrub_bytes(bytes))
                .map_err(|source| RunError::Artifacts {
                    path: folder.path().join(relative),
                    source,
                })?;
        }
        Ok(())
    };
    // Serialize only when there is a folder to write to: an eval without artifacts runs
    // thousands of attempts and needs none of these bytes.
    let write_json = |relative: &str, value: &dyn erased::Json| -> Result<(), RunError> {
        if folder.is_some() {
            write(relative, &value.pretty())?;
        }
        Ok(())
    };
    write("prompt.md", rendered.text.as_bytes())?;

    let mut report = RunReport {
        agent: agent.prompt.name.clone(),
        model: run.model.clone(),
        endpoint: client.describe(),
        parameters: Parameters {
            temperature: run.temperature,
            max_tokens: run.max_tokens,
            seed: run.seed,
            top_p: run.top_p,
            response_format: run.options.response_format.name().to_owned(),
            attempts: run.options.attempts,
            max_total_tokens: run.options.max_total_tokens,
            context_window: run.options.context_window,
        },
        // Hashes are for run.json; a run without a folder records none.
        inputs: run
            .inputs
            .iter()
            .filter(|_| folder.is_some())
            .map(|(name, value)| {
                (
                    name.clone(),
                    InputRecord {
                        sha256: value.sha256(),
                        bytes: value.text.len(),
                        origin: value.origin.clone(),
                    },
                )
            })
            .collect::<BTreeMap<_, _>>(),
        prompt_sha256: if folder.is_some() {
            hex(&Sha256::digest(rendered.text.as_bytes()))
        } else {
            String::new()
        },
        guarded: rendered.guarded,
        outcome: RunOutcome::Violated,
        attempts: Vec::new(),
        usage: Usage::default(),
        stop_reason: None,
        error: None,
        failed_attempt: None,
        started_at: timestamp(started_at),
        finished_at: String::new(),
        elapsed_ms: 0,
        folder: folder.map(|f| f.path().to_owned()),
        deliverable: None,
        deliverable_json: None,
        reasoning: String::new(),
    };

    let mut messages = rendered.messages;
    // The prompt's messages open the conversation; a planned request starts from them. (The
    // conversation is whole whenever a plan is made: it is lent only to unplanned requests.)
    let prompt_len = messages.len();
    // What the budget counts: the server's usage, or an estimate where it reports none.
    let mut spent: u64 = 0;
    let mut last_attempt_tokens = 0;
    // The context window, once known, and what fitting into it needs: the attempts that broke
    // the contract, how the server counts tokens, the most it has handled in one exchange.
    let mut window = run.options.context_window;
    let mut turns: Vec<Turn> = Vec::new();
    let mut tokenizer = Tokenizer::guess();
    let mut handled: u64 = 0;
    'attempts: for number in 1..=run.options.attempts.max(1) {
        if run.cancel.is_cancelled() {
            report.outcome = RunOutcome::Interrupted;
            break;
        }
        if let Some(budget) = run.options.max_total_tokens
            && number > 1
            && spent.saturating_add(last_attempt_tokens) > budget
        {
            report.stop_reason = Some(format!(
                "stopped before attempt {number}: {spent} tokens used, and another attempt (about {last_attempt_tokens}) would exceed the budget of {budget}"
            ));
            break;
        }
        let attempt_started = Instant::now();
        let dir = format!("attempt-{number}");
        // A request refused as too long for the context window is planned again, once, with
        // the window the refusal taught.
        let mut refused_as_too_long = false;
        let (request, model_ms, completion, fitted, lent) = loop {
            let planned = match window {
                Some(window) => match plan(
                    &messages[..prompt_len],
                    &turns,
                    run.max_tokens,
                    window,
                    tokenizer,
                ) {
                    Ok(planned) => Some(planned),
                    // The prompt alone is the server's to judge: the estimate may be off.
                    Err(_) if number == 1 => None,
                    Err(unfit) => {
                        report.stop_reason = Some(format!(
                            "stopped before attempt {number}: the re-ask leaves about {} tokens of the {window}-token context window, and a corrected reply needs about {}",
                            unfit.room, unfit.need
                        ));
                        break 'attempts;
                    }
                },
                None => None,
            };
            let fitted = planned.as_ref().and_then(|p| p.fitted.clone());
            let lent = planned.is_none();
            // The conversation is lent to the request and taken back after it: a prompt is
            // tens of kilobytes, and an eval sends thousands.
            let (request_messages, max_tokens) = match planned {
                Some(planned) => (planned.messages, planned.max_tokens),
                None => (std::mem::take(&mut messages), run.max_tokens),
            };
            let request = ChatRequest {
                model: run.model.clone(),
                messages: request_messages,
                temperature: run.temperature,
                top_p: run.top_p,
                max_tokens,
                seed: run.seed,
                response_format: response_format.clone(),
                stream: false,
            };
            write_json(&format!("{dir}/request.json"), &client.wire_body(&request))?;
            let model_started = Instant::now();
            let call = crate::progress::call(
                || format!("{} attempt {number}", agent.prompt.name),
                client.complete(&request),
            );
            let completion = tokio::select! {
                result = call => result,
                () = run.cancel.cancelled() => {
                    report.outcome = RunOutcome::Interrupted;
                    break 'attempts;
                }
            };
            let model_ms = model_started.elapsed().as_millis() as u64;
            if let Err(error) = &completion
                && let Some(overflow) = error.context_overflow()
                && !refused_as_too_long
            {
                // The server's number, else the most it has handled (at least what the agent
                // declares it needs); a window already assumed shrinks, so the plan changes.
                let learned = overflow.window.or_else(|| {
                    let floor = handled.max(agent.prompt.declared.min_context_window.unwrap_or(0));
                    (floor > 0).then_some(floor)
                });
                let learned = match (learned, window) {
                    (Some(learned), Some(known)) if overflow.window.is_none() => {
                        Some(learned.min(known.saturating_mul(9) / 10))
                    }
                    (learned, _) => learned,
                };
                if let Some(learned) = learned {
                    tracing::warn!(
                        attempt = number,
                        window = learned,
                        "the server refused the request as too long for its context window; fitting it into {learned} tokens"
                    );
                    window = Some(learned);
                    report.parameters.context_window = Some(learned);
                    refused_as_too_long = true;
                    if lent {
                        messages = request.messages;
                    }
                    continue;
                }
            }
            break (request, model_ms, completion, fitted, lent);
        };
        let request_bytes: usize = request.messages.iter().map(|m| m.content.len()).sum();
        let sent_max_tokens = request.max_tokens;
        if lent {
            messages = request.messages;
        }
        let completion = match completion {
            Ok(completion) => completion,
            Err(error) if number > 1 && error.context_overflow().is_some() => {
                // A re-ask the server still finds too long: the contract failure stands.
                report.stop_reason = Some(format!(
                    "stopped at attempt {number}: the re-ask does not fit the model's context window ({})",
                    error.recorded()
                ));
                break;
            }
            Err(error) => {
                report.outcome = if error.is_usage() {
                    RunOutcome::InputError
                } else {
                    RunOutcome::ModelError
                };
                report.error = Some(error.recorded());
                report.failed_attempt = Some(FailedAttempt { number, model_ms });
                finish(&mut report, started, &write_json)?;
                return Err(RunError::Model {
                    error,
                    report: Box::new(report),
                });
            }
        };
        if number == 1
            && let Some(usage) = completion.usage
        {
            tokenizer = Tokenizer::calibrated(usage.prompt_tokens, request_bytes);
        }
        if let Some(usage) = completion.usage {
            handled = handled.max(usage.total_tokens);
        }
        if let Some(sent) = &completion.sent {
            // What went out for this answer: a form the server refused may have been replaced.
            write_json(&format!("{dir}/request.json"), sent)?;
        }
        write_json(&format!("{dir}/response.json"), &completion.raw)?;
        write(&format!("{dir}/reply.md"), completion.content.as_bytes())?;
        let extracted = extract_with(
            &completion.content,
            completion.reasoning.as_deref(),
            &agent.prompt.reasoning_tags,
            agent.contract.syntax(),
        );
        let verdict = judge_reply(agent, &completion, &extracted);
        let reasoning = extracted.reasoning_text();
        if !reasoning.is_empty() {
            write(&format!("{dir}/reasoning.md"), reasoning.as_bytes())?;
        }
        write_json(&format!("{dir}/verdict.json"), &verdict)?;
        let usage = completion.usage.unwrap_or_default();
        report.usage.add(usage);
        last_attempt_tokens = match completion.usage {
            Some(usage) => usage.total_tokens,
            None => estimate_tokens(
                messages.iter().map(|m| m.content.len()).sum::<usize>()
                    + completion.content.len()
                    + completion.reasoning.as_ref().map_or(0, String::len),
            ),
        };
        spent = spent.saturating_add(last_attempt_tokens);
        report.attempts.push(AttemptRecord {
            number,
            outcome: verdict.outcome,
            violations: verdict.violations.clone(),
            warnings: verdict.warnings.clone(),
            repairs: verdict.repairs.clone(),
            finish_reason: completion.finish_reason.clone(),
            usage: completion.usage,
            retries: completion.retries,
            model_ms,
            elapsed_ms: attempt_started.elapsed().as_millis() as u64,
            reasoning_blocks: extracted.reasoning.len(),
            max_tokens: sent_max_tokens.filter(|_| fitted.is_some()),
            fitted,
            cached_tokens: completion
                .raw
                .pointer("/usage/prompt_tokens_details/cached_tokens")
                .and_then(serde_json::Value::as_u64),
            reply: completion.content.clone(),
        });
        report.reasoning = reasoning;
        match verdict.outcome {
            Outcome::Valid | Outcome::Declined => {
                report.outcome = if verdict.outcome == Outcome::Valid {
                    RunOutcome::Valid
                } else {
                    RunOutcome::Declined
                };
                report.deliverable = Some(verdict.deliverable);
                report.deliverable_json = verdict.json;
                break;
            }
            Outcome::Invalid => {
                tracing::info!(
                    attempt = number,
                    violations = verdict.violations.len(),
                    "reply breaks the contract"
                );
                let reask = reask_message(&verdict, agent);
                turns.push(Turn {
                    reply: completion.content.clone(),
                    reask: reask.clone(),
                    lines: verdict
                        .violations
                        .iter()
                        .filter_map(|v| v.location.line_number())
                        .collect(),
                    reply_tokens: completion.usage.map_or_else(
                        || estimate_tokens(completion.content.len()),
                        |usage| usage.completion_tokens,
                    ),
                });
                messages.push(Message::assistant(completion.content));
                messages.push(Message::user(reask));
            }
        }
    }
    if let Some(deliverable) = report.deliverable.as_ref().filter(|_| folder.is_some()) {
        let extension = agent.contract.deliverable_extension();
        let mut bytes = deliverable.clone().into_bytes();
        if !deliverable.ends_with('\n') {
            bytes.push(b'\n');
        }
        write(&format!("deliverable.{extension}"), &bytes)?;
    }
    if !report.reasoning.is_empty() {
        write("reasoning.md", report.reasoning.as_bytes())?;
    }
    finish(&mut report, started, &write_json)?;
    Ok(report)
}

fn finish(
    report: &mut RunReport,
    started: Instant,
    write_json: &dyn Fn(&str, &dyn erased::Json) -> Result<(), RunError>,
) -> Result<(), RunError> {
    report.finished_at = timestamp(SystemTime::now());
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    write_json("run.json", &*report)
}

/// Judge one completion: what the reply itself says (truncated, refused, empty), then the
/// contract.
fn judge_reply(
    agent: &Agent,
    completion: &Completion,
    extracted: &crate::extract::Extracted,
) -> Verdict {
    if completion.content.trim().is_empty() {
        let violation = match &completion.refusal {
            None if completion.finish_reason == FinishReason::Length => Violation::hard(
                "reply.truncated",
                Location::document(),
                "the reply was cut off at the token limit before any content (finish_reason `length`); reason more briefly and give the whole deliverable",
            ),
            Some(refusal) => Violation::hard(
                "reply.refused",
                Location::document(),
                format!(
                    "the model refused: \"{}\"",
                    crate::text::quote(refusal, 200)
                ),
            ),
            None => Violation::hard(
                "reply.empty",
                Location::document(),
                format!(
                    "the model returned no content (finish_reason `{}`)",
                    completion.finish_reason
                ),
            ),
        };
        return Verdict::rejected(violation);
    }
    let mut verdict = judge(
        &agent.contract,
        &completion.content,
        extracted,
        &agent.prompt.reasoning_tags,
    );
    match &completion.finish_reason {
        FinishReason::Length => verdict.add(Violation::hard(
            "reply.truncated",
            Location::document(),
            "the reply was cut off at the token limit (finish_reason `length`); it is incomplete, so send it again, shorter",
        )),
        FinishReason::ContentFilter => verdict.add(Violation::hard(
            "reply.filtered",
            Location::document(),
            "the server's content filter stopped the reply (finish_reason `content_filter`)",
        )),
        _ => {}
    }
    verdict
}

/// The `response_format` to send, if the agent can take it.
fn response_format(agent: &Agent, choice: ResponseFormat) -> Result<Option<Value>, RunError> {
    if choice == ResponseFormat::None {
        return Ok(None);
    }
    let Some(schema) = agent.contract.json_schema() else {
        return Err(RunError::Options {
            message: format!(
                "`{}` delivers markdown; --response-format is for JSON agents",
                agent.prompt.name
            ),
            hint: None,
        });
    };
    if let Some(tag) = agent.prompt.reasoning_tag_in_body() {
        return Err(RunError::Options {
            message: format!(
                "`{}` asks for its reasoning in a `<{tag}>` block in the reply text, which a JSON response format would forbid",
                agent.prompt.name
            ),
            hint: Some("drop --response-format for this agent".into()),
        });
    }
    Ok(Some(match choice {
        ResponseFormat::JsonObject => json!({"type": "json_object"}),
        _ => {
            let mut schema = schema.clone();
            if let Some(object) = schema.as_object_mut() {
                object.remove("x-agent");
            }
            let name: String = agent
                .prompt
                .name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            json!({"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": false}})
        }
    }))
}

/// Tokens in `bytes` of text, roughly: four bytes a token, the usual rule for English and
/// code. Only for the budget, where a server reports no usage.
fn estimate_tokens(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(4)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Serialize anything to pretty JSON through one trait object, so the writer closure can
/// take requests, responses, verdicts and reports alike.
mod erased {
    pub(crate) trait Json {
        fn pretty(&self) -> Vec<u8>;
    }

    impl<T: serde::Serialize> Json for T {
        fn pretty(&self) -> Vec<u8> {
            let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
            bytes.push(b'\n');
            bytes
        }
    }
}
