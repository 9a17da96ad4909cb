//! [`RunReport`]: what a run did, as `run.json` records it and `--json` prints it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::contract::Violation;
use crate::model::{FinishReason, Usage};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunOutcome {
    /// A valid deliverable.
    Valid,
    /// A valid refusal (`insufficient_context`).
    Declined,
    /// The contract was still broken after the last attempt (or the token budget ran out).
    Violated,
    /// The model endpoint failed.
    ModelError,
    /// The run could not be answered as asked: a stale or unreadable recording.
    InputError,
    /// Ctrl-C.
    Interrupted,
}

impl RunOutcome {
    /// The exit status of this outcome.
    pub fn status(self) -> crate::Status {
        match self {
            RunOutcome::Valid => crate::Status::Ok,
            RunOutcome::Declined => crate::Status::Declined,
            RunOutcome::Violated => crate::Status::Violated,
            RunOutcome::ModelError => crate::Status::Model,
            RunOutcome::InputError => crate::Status::Usage,
            RunOutcome::Interrupted => crate::Status::Interrupted,
        }
    }
}

/// The model parameters a run used.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Parameters {
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Reply token limit.
    pub max_tokens: Option<u32>,
    /// Sampling seed.
    pub seed: Option<i64>,
    /// Nucleus sampling.
    pub top_p: Option<f32>,
    /// The `response_format` mode.
    pub response_format: String,
    /// Attempts allowed.
    pub attempts: u32,
    /// The token budget.
    pub max_total_tokens: Option<u64>,
    /// The context window attempts were fitted into: `--context-window`, or what a server
    /// that refused a request as too long taught.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u64>,
}

/// One input as recorded: its hash, size and source, never its text.
#[derive(Debug, Clone, Serialize)]
pub struct InputRecord {
    /// SHA-256 of the value.
    pub sha256: String,
    /// Bytes.
    pub bytes: usize,
    /// Where it came from.
    pub origin: crate::inputs::Origin,
}

/// One attempt.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptRecord {
    /// 1-based.
    pub number: u32,
    /// The verdict's outcome.
    pub outcome: crate::contract::Outcome,
    /// Hard violations.
    pub violations: Vec<Violation>,
    /// Soft violations.
    pub warnings: Vec<Violation>,
    /// Lenient repairs.
    pub repairs: Vec<String>,
    /// Why the model stopped.
    pub finish_reason: FinishReason,
    /// Tokens, if reported.
    pub usage: Option<Usage>,
    /// Transport retries.
    pub retries: u32,
    /// Wall time of the model call.
    pub model_ms: u64,
    /// Wall time of the attempt, including extraction, judging and artifacts.
    pub elapsed_ms: u64,
    /// Reasoning blocks found.
    pub reasoning_blocks: usize,
    /// The reply limit sent, when it was lowered to fit the context window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// What was left out or lowered to fit the context window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fitted: Option<String>,
    /// Prompt tokens the server served from its cache (`usage.prompt_tokens_details`), if it
    /// said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
    /// The reply text, for eval reports; the run folder keeps it as `reply.md`.
    #[serde(skip)]
    pub reply: String,
}

/// An attempt whose request never got a reply.
#[derive(Debug, Clone, Serialize)]
pub struct FailedAttempt {
    /// 1-based.
    pub number: u32,
    /// Wall time spent on the request, retries included.
    pub model_ms: u64,
}

/// A finished (or stopped) run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The agent.
    pub agent: String,
    /// The model.
    pub model: String,
    /// Where requests went (`https://…`, `replay of …`).
    pub endpoint: String,
    /// Parameters.
    pub parameters: Parameters,
    /// Each input's hash and source (recorded when the run has a folder).
    pub inputs: BTreeMap<String, InputRecord>,
    /// The SHA-256 of the rendered prompt (recorded when the run has a folder).
    pub prompt_sha256: String,
    /// What the injection guard changed in the inputs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub guarded: Vec<crate::render::GuardReport>,
    /// How it ended.
    pub outcome: RunOutcome,
    /// Every attempt.
    pub attempts: Vec<AttemptRecord>,
    /// Tokens over all attempts.
    pub usage: Usage,
    /// Why the run stopped early, if it did.
    pub stop_reason: Option<String>,
    /// The model error, if one ended the run.
    pub error: Option<String>,
    /// The attempt whose request failed, if one did: it has no reply, so it is not among
    /// `attempts`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_attempt: Option<FailedAttempt>,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it ended (RFC 3339).
    pub finished_at: String,
    /// Wall time.
    pub elapsed_ms: u64,
    /// The run folder.
    pub folder: Option<PathBuf>,
    /// The deliverable, for valid and declined runs only.
    #[serde(skip)]
    pub deliverable: Option<String>,
    /// A JSON deliverable, parsed.
    #[serde(skip)]
    pub deliverable_json: Option<serde_json::Value>,
    /// The final attempt's reasoning.
    #[serde(skip)]
    pub reasoning: String,
}

impl RunReport {
    /// The violations of the last attempt.
    pub fn last_violations(&self) -> &[Violation] {
        self.attempts
            .last()
            .map_or(&[], |a| a.violations.as_slice())
    }
}
