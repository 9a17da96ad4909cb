//! Flags that choose and tune the model, shared by `run`, `config` and later commands.

use std::path::PathBuf;

use clap::Args;

use crate::error::Error;
use crate::project::Project;
use crate::prompt::ModelDefaults;
use crate::settings::{self, Layer, Settings};

/// Model flags. Unset flags fall back to the environment, `agent.toml`, the agent's defaults.
#[derive(Debug, Args, Default, Clone)]
pub struct ModelArgs {
    /// The model name.
    #[arg(long, value_name = "NAME", help_heading = "Model")]
    pub model: Option<String>,
    /// A profile of `agent.toml`.
    #[arg(long, value_name = "NAME", help_heading = "Model")]
    pub profile: Option<String>,
    /// Where the server is, and how to sample and talk to it.
    #[command(flatten)]
    pub tuning: ModelTuning,
}

/// The model flags besides the choice of model: shared by `run`, `pipeline run`, `mcp`,
/// `config` and `eval` (whose `--model` and `--profile` repeat to make a matrix).
#[derive(Debug, Args, Default, Clone)]
pub struct ModelTuning {
    /// An OpenAI-compatible base URL (OpenAI, vLLM, Ollama, llama.cpp, LiteLLM), e.g. `http://127.0.0.1:11434/v1`.
    #[arg(long, value_name = "URL", help_heading = "Model")]
    pub base_url: Option<String>,
    /// Sampling temperature.
    #[arg(long, help_heading = "Model")]
    pub temperature: Option<f32>,
    /// Reply token limit per attempt.
    #[arg(long, value_name = "N", help_heading = "Model")]
    pub max_tokens: Option<u32>,
    /// Sampling seed, for servers that honour it.
    #[arg(long, help_heading = "Model")]
    pub seed: Option<i64>,
    /// Nucleus sampling.
    #[arg(long, help_heading = "Model")]
    pub top_p: Option<f32>,
    /// The model's context window in tokens: each attempt is fitted into it (a re-ask re-sends
    /// less of the last reply, `max_tokens` is lowered). Unset, it is learned from a server
    /// that refuses a request as too long.
    #[arg(long, value_name = "TOKENS", value_parser = clap::value_parser!(u64).range(1..), help_heading = "Model")]
    pub context_window: Option<u64>,
    /// Per-request timeout in seconds [default: 600].
    #[arg(long, value_name = "SECS", help_heading = "Model")]
    pub timeout: Option<f64>,
    /// Transport retries after the first try, for 408/409/429/5xx, connection errors and timeouts [default: 2].
    #[arg(long, value_name = "N", help_heading = "Model")]
    pub max_retries: Option<u32>,
    /// The longest wait a server's Retry-After is honoured for, in seconds; a longer one fails at once [default: 60].
    #[arg(long, value_name = "SECS", help_heading = "Model")]
    pub max_retry_wait: Option<f64>,
    /// The largest response body read, in bytes; a larger reply is refused unread (exit 3) [default: 16777216].
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..), help_heading = "Model")]
    pub max_reply_bytes: Option<u64>,
    /// Ask for one whole reply (`stream: false`) instead of streaming it (SSE) with live progress.
    #[arg(long, help_heading = "Model")]
    pub no_stream: bool,
    /// The longest pause between two chunks of a streamed reply, in seconds; separate from --timeout [default: 180].
    #[arg(long, value_name = "SECS", help_heading = "Model")]
    pub idle_timeout: Option<f64>,
    /// The kind of server, so `response_format` is sent in the form it accepts; by default it is learned from a refusal.
    #[arg(long, value_enum, value_name = "KIND", help_heading = "Model")]
    pub server: Option<crate::model::Server>,
}

impl ModelArgs {
    fn layer(&self) -> Layer {
        let tuning = &self.tuning;
        Layer {
            base_url: tuning.base_url.clone(),
            model: self.model.clone(),
            temperature: tuning.temperature,
            max_tokens: tuning.max_tokens,
            seed: tuning.seed,
            top_p: tuning.top_p,
            timeout_secs: tuning.timeout,
            max_retries: tuning.max_retries,
            max_retry_wait_secs: tuning.max_retry_wait,
            api_key_env: None,
            max_reply_bytes: tuning.max_reply_bytes,
            stream: tuning.no_stream.then_some(false),
            idle_timeout_secs: tuning.idle_timeout,
            server: tuning.server,
        }
    }

    /// The sampling flags alone, which an eval replay sends over the agent's defaults.
    pub fn sampling(&self) -> crate::eval::SamplingFlags {
        self.tuning.sampling()
    }

    /// Resolve the settings for an agent with `defaults`, in `project`.
    pub fn settings(
        &self,
        project: &Project,
        defaults: &ModelDefaults,
        recording_model: Option<&str>,
    ) -> Result<Settings, Error> {
        let config = settings::load_config(&project.root)?;
        let env = |name: &str| std::env::var(name).ok();
        Ok(settings::resolve(&settings::Inputs {
            flags: &self.layer(),
            profile_flag: self.profile.as_deref(),
            env: &env,
            config: config.as_ref(),
            agent: defaults,
            recording_model,
        })?)
    }
}

impl ModelTuning {
    /// These flags with the sampling flags `sampling`.
    pub fn with_sampling(self, sampling: crate::eval::SamplingFlags) -> ModelTuning {
        ModelTuning {
            temperature: sampling.temperature,
            max_tokens: sampling.max_tokens,
            seed: sampling.seed,
            top_p: sampling.top_p,
            context_window: sampling.context_window,
            ..self
        }
    }

    /// The sampling flags alone, which an eval replay sends over the agent's defaults.
    pub fn sampling(&self) -> crate::eval::SamplingFlags {
        crate::eval::SamplingFlags {
            temperature: self.temperature,
            max_tokens: self.max_tokens,
            seed: self.seed,
            top_p: self.top_p,
            context_window: self.context_window,
        }
    }
}

/// `--record` and `--replay`.
#[derive(Debug, Args, Default, Clone)]
pub struct RecordArgs {
    /// Save each exchange to FILE, keyed by its request (never the key).
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "replay",
        help_heading = "Recording"
    )]
    pub record: Option<PathBuf>,
    /// Answer every request from FILE only; a request it does not hold is an error.
    #[arg(long, value_name = "FILE", help_heading = "Recording")]
    pub replay: Option<PathBuf>,
}

/// How a run may proceed, for `agent run` and each `agent mcp` call.
#[derive(Debug, Args, Clone)]
pub struct RunOptionArgs {
    /// Attempts in all: a reply that breaks the contract is re-asked with its violations.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub attempts: u32,
    /// Stop before an attempt that would take the run over this many tokens.
    #[arg(long, value_name = "N")]
    pub max_total_tokens: Option<u64>,
    /// For JSON agents: ask the server to constrain the reply (`json-schema` sends the agent's schema).
    #[arg(long, value_enum, default_value = "none")]
    pub response_format: crate::runner::ResponseFormat,
}

impl RunOptionArgs {
    /// The runner's options.
    pub fn options(&self) -> crate::runner::RunOptions {
        crate::runner::RunOptions {
            attempts: self.attempts,
            max_total_tokens: self.max_total_tokens,
            response_format: self.response_format,
            // A model flag: the caller sets it from `ModelArgs`.
            context_window: None,
        }
    }
}
