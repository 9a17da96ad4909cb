//! Model settings, resolved once from their layers, highest first: flags (and the profile a
//! flag names), environment, the project's `agent.toml` (its default profile), the agent's own
//! defaults. Every value remembers where it came from, for `agent config`.
//!
//! ```toml
//! # agent.toml
//! profile = "local"            # the default profile
//!
//! [profiles.local]
//! base_url = "http://127.0.0.1:11434/v1"
//! model = "qwen2.5:14b"
//! timeout_secs = 900
//!
//! [profiles.openai]
//! base_url = "https://api.openai.com/v1"
//! model = "gpt-4.1-mini"
//! api_key_env = "OPENAI_API_KEY"
//! ```
//!
//! The key never lives in a file: a profile names the environment variable that holds it
//! (`api_key_env`), and without one `OPENAI_API_KEY` is used. A profile's own variable wins,
//! so a key meant for one endpoint is never sent to another.
//!
//! `agent.toml` belongs to the project, which may not be trusted (a cloned repository): its
//! `api_key_env` may name only a variable that holds an LLM key ([`is_llm_key_variable`]),
//! so a project cannot have `GITHUB_TOKEN` or a cloud secret sent to a `base_url` of its
//! choosing.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use miette::Diagnostic;
use secrecy::SecretString;
use serde::Deserialize;

use crate::model::{DEFAULT_MAX_REPLY_BYTES, RetryPolicy, display_url};
use crate::prompt::ModelDefaults;

/// The API key.
pub const ENV_API_KEY: &str = "OPENAI_API_KEY";
/// The base URL.
pub const ENV_BASE_URL: &str = "OPENAI_BASE_URL";
/// The model.
pub const ENV_MODEL: &str = "AGENT_MODEL";
/// The profile of `agent.toml`.
pub const ENV_PROFILE: &str = "AGENT_PROFILE";
/// Tests set it to skip computed backoff (a server's own `Retry-After` is still honoured).
pub const ENV_TEST_NO_RETRY_DELAY: &str = "AGENT_TEST_NO_RETRY_DELAY";
/// The project configuration file.
pub const CONFIG_FILE: &str = "agent.toml";
/// Where requests go when nothing says otherwise.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// The longest timeout or retry wait accepted: a year.
const MAX_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// The documented key variables of LLM providers and gateways that `api_key_env` may name,
/// besides the `AGENT_…_API_KEY` names of the user's own choosing.
const LLM_KEY_VARIABLES: [&str; 24] = [
    "OPENAI_API_KEY",
    "AZURE_OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "MISTRAL_API_KEY",
    "GROQ_API_KEY",
    "TOGETHER_API_KEY",
    "FIREWORKS_API_KEY",
    "DEEPSEEK_API_KEY",
    "OPENROUTER_API_KEY",
    "XAI_API_KEY",
    "PERPLEXITY_API_KEY",
    "CEREBRAS_API_KEY",
    "DEEPINFRA_API_KEY",
    "COHERE_API_KEY",
    "NVIDIA_API_KEY",
    "SAMBANOVA_API_KEY",
    "DASHSCOPE_API_KEY",
    "MOONSHOT_API_KEY",
    "HYPERBOLIC_API_KEY",
    "LITELLM_API_KEY",
    "VLLM_API_KEY",
    "OLLAMA_API_KEY",
    "LLAMA_API_KEY",
];

/// May a project's `agent.toml` name `name` as its `api_key_env`? Only an LLM provider's
/// documented key variable (`LLM_KEY_VARIABLES`) or a name of the user's own choosing in
/// agent's namespace, `AGENT_<NAME>_API_KEY`. Not any `*_API_KEY` (`STRIPE_API_KEY`,
/// `SENDGRID_API_KEY` and `DATADOG_API_KEY` end so too) and not `*_TOKEN` (`GITHUB_TOKEN`,
/// `NPM_TOKEN`, `CI_JOB_TOKEN`): an untrusted project could send those to its own `base_url`.
pub fn is_llm_key_variable(name: &str) -> bool {
    LLM_KEY_VARIABLES.contains(&name)
        || name
            .strip_prefix("AGENT_")
            .and_then(|rest| rest.strip_suffix("_API_KEY"))
            .is_some_and(|middle| {
                !middle.is_empty()
                    && middle
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            })
}

/// One layer of settings; every field optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// Base URL.
    pub base_url: Option<String>,
    /// Model name.
    pub model: Option<String>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Reply token limit.
    pub max_tokens: Option<u32>,
    /// Sampling seed.
    pub seed: Option<i64>,
    /// Nucleus sampling.
    pub top_p: Option<f32>,
    /// Per-request timeout, seconds.
    pub timeout_secs: Option<f64>,
    /// Transport retries after the first try.
    pub max_retries: Option<u32>,
    /// The longest server-requested wait honoured, seconds.
    pub max_retry_wait_secs: Option<f64>,
    /// The environment variable holding the key (profiles only).
    pub api_key_env: Option<String>,
    /// The largest response body read, in bytes.
    pub max_reply_bytes: Option<u64>,
    /// Stream replies (SSE); `false` asks for one whole body.
    pub stream: Option<bool>,
    /// The longest pause between two chunks of a stream, seconds.
    pub idle_timeout_secs: Option<f64>,
    /// The kind of server (`openai`, `llama-cpp-python`, `llama-server`, `vllm`, `ollama`).
    pub server: Option<crate::model::Server>,
}

/// `agent.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The default profile.
    pub profile: Option<String>,
    /// Named profiles.
    #[serde(default)]
    pub profiles: BTreeMap<String, Layer>,
    /// Prices per model, for the cost `agent eval` reports and `--max-cost` holds to.
    #[serde(default)]
    pub prices: BTreeMap<String, Price>,
}

/// What a model costs, in US dollars per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Prompt tokens.
    pub input: f64,
    /// Prompt tokens served from the server's cache [default: the input price].
    pub cached_input: Option<f64>,
    /// Reply tokens.
    pub output: f64,
}

impl Price {
    /// The cost of `prompt` tokens (`cached` of them from the cache) and `completion` tokens.
    pub fn cost(&self, prompt: u64, cached: u64, completion: u64) -> f64 {
        let cached = cached.min(prompt);
        let fresh = (prompt - cached) as f64 * self.input;
        let cached = cached as f64 * self.cached_input.unwrap_or(self.input);
        (fresh + cached + completion as f64 * self.output) / 1_000_000.0
    }
}

/// Where a setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A command-line flag.
    Flag,
    /// An environment variable.
    Env(String),
    /// A profile of `agent.toml`.
    Profile(String),
    /// The agent's front matter.
    Agent,
    /// The recording being replayed.
    Recording,
    /// Built in.
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag => f.write_str("flag"),
            Source::Env(name) => write!(f, "env {name}"),
            Source::Profile(name) => write!(f, "agent.toml profile `{name}`"),
            Source::Agent => f.write_str("agent defaults"),
            Source::Recording => f.write_str("recording"),
            Source::Default => f.write_str("built-in default"),
        }
    }
}

/// A value and where it came from.
#[derive(Debug, Clone)]
pub struct Sourced<T> {
    /// The value.
    pub value: T,
    /// Its source.
    pub source: Source,
}

/// The resolved model settings.
#[derive(Clone)]
pub struct Settings {
    /// The profile in use, if any.
    pub profile: Option<String>,
    /// Base URL.
    pub base_url: Sourced<String>,
    /// Model name.
    pub model: Option<Sourced<String>>,
    /// The key and where it came from.
    pub api_key: Option<Sourced<SecretString>>,
    /// Sampling temperature.
    pub temperature: Option<Sourced<f32>>,
    /// Reply token limit.
    pub max_tokens: Option<Sourced<u32>>,
    /// Sampling seed.
    pub seed: Option<Sourced<i64>>,
    /// Nucleus sampling.
    pub top_p: Option<Sourced<f32>>,
    /// Per-request timeout.
    pub timeout: Sourced<Duration>,
    /// Transport retry policy.
    pub retry: RetryPolicy,
    /// The largest response body read, in bytes.
    pub max_reply_bytes: Sourced<u64>,
    /// Stream replies.
    pub stream: Sourced<bool>,
    /// The longest pause between two chunks of a stream.
    pub idle_timeout: Sourced<Duration>,
    /// The kind of server, when named.
    pub server: Option<Sourced<crate::model::Server>>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("profile", &self.profile)
            .field("base_url", &display_url(&self.base_url.value))
            .field("model", &self.model.as_ref().map(|m| &m.value))
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("temperature", &self.temperature.as_ref().map(|t| t.value))
            .field("max_tokens", &self.max_tokens.as_ref().map(|t| t.value))
            .field("timeout", &self.timeout.value)
            .finish_non_exhaustive()
    }
}

/// Settings that cannot be resolved.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum SettingsError {
    /// `agent.toml` does not parse.
    #[error("invalid `{}`: {message}", path.display())]
    #[diagnostic(code(agent::settings::config))]
    Config {
        /// The file.
        path: std::path::PathBuf,
        /// What the parser said.
        message: String,
    },
    /// The named profile does not exist.
    #[error("no profile `{name}` in `agent.toml`")]
    #[diagnostic(code(agent::settings::profile))]
    UnknownProfile {
        /// The name given.
        name: String,
        /// The profiles there are.
        #[help]
        known: String,
    },
    /// A profile names a variable that may hold something other than an LLM key.
    #[error(
        "profile `{profile}` of `agent.toml` names `{name}` as its api_key_env, which is not an LLM key variable"
    )]
    #[diagnostic(
        code(agent::settings::api_key_env),
        help(
            "api_key_env may name a provider's key variable (OPENAI_API_KEY, ANTHROPIC_API_KEY, GROQ_API_KEY, OPENROUTER_API_KEY, …) or one of your own named AGENT_<NAME>_API_KEY; not any *_API_KEY or *_TOKEN, since a project's agent.toml could otherwise send an unrelated secret (GITHUB_TOKEN, STRIPE_API_KEY) to a base_url of its choosing"
        )
    )]
    KeyVariable {
        /// The profile.
        profile: String,
        /// The variable it names.
        name: String,
    },
    /// No model is configured.
    #[error("no model configured")]
    #[diagnostic(
        code(agent::settings::no_model),
        help(
            "name one with --model NAME, the AGENT_MODEL environment variable, a `model` in a profile of agent.toml, or `defaults.model` in the agent's front matter; `--replay FILE` uses the recording's model"
        )
    )]
    NoModel,
    /// A value is out of range.
    #[error("{message}")]
    #[diagnostic(code(agent::settings::value))]
    Value {
        /// What is wrong.
        message: String,
    },
}

/// Read `agent.toml` in `root`, if there is one.
pub fn load_config(root: &Path) -> Result<Option<ConfigFile>, SettingsError> {
    let path = root.join(CONFIG_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let config: ConfigFile = toml::from_str(&text).map_err(|error| SettingsError::Config {
        path,
        message: error.to_string(),
    })?;
    for (profile, layer) in &config.profiles {
        if let Some(name) = layer
            .api_key_env
            .as_ref()
            .filter(|name| !is_llm_key_variable(name))
        {
            return Err(SettingsError::KeyVariable {
                profile: profile.clone(),
                name: name.clone(),
            });
        }
    }
    Ok(Some(config))
}

/// The environment layer, read through `get` (so tests can pass their own).
pub fn env_layer(get: &dyn Fn(&str) -> Option<String>) -> Layer {
    let get = |name: &str| get(name).filter(|value| !value.trim().is_empty());
    Layer {
        base_url: get(ENV_BASE_URL),
        model: get(ENV_MODEL),
        ..Layer::default()
    }
}

/// Everything `resolve` needs.
pub struct Inputs<'a> {
    /// The flags.
    pub flags: &'a Layer,
    /// `--profile`, if given.
    pub profile_flag: Option<&'a str>,
    /// The environment.
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// `agent.toml`, if any.
    pub config: Option<&'a ConfigFile>,
    /// The agent's defaults.
    pub agent: &'a ModelDefaults,
    /// The model of a recording being replayed.
    pub recording_model: Option<&'a str>,
}

/// Resolve the layers. A missing model is not an error here (`agent config` shows it); the
/// runner asks [`Settings::model`].
pub fn resolve(inputs: &Inputs<'_>) -> Result<Settings, SettingsError> {
    // A replay must send exactly the recorded requests: the environment and agent.toml
    // describe a live endpoint and stay out of it; only flags and the agent's defaults apply.
    let replaying = inputs.recording_model.is_some();
    let no_env = |_: &str| None;
    let env = env_layer(if replaying { &no_env } else { inputs.env });
    let env_profile = (inputs.env)(ENV_PROFILE).filter(|p| !p.is_empty());
    let config = inputs
        .config
        .filter(|_| !replaying)
        .cloned()
        .unwrap_or_default();
    let chosen = inputs
        .profile_flag
        .map(|name| (name.to_owned(), true))
        .or_else(|| env_profile.filter(|_| !replaying).map(|name| (name, true)))
        .or_else(|| config.profile.clone().map(|name| (name, false)));
    let profile =
        match &chosen {
            Some((name, _)) => Some((
                name.clone(),
                config.profiles.get(name).cloned().ok_or_else(|| {
                    SettingsError::UnknownProfile {
                        name: name.clone(),
                        known: if config.profiles.is_empty() {
                            "agent.toml defines no profiles".into()
                        } else {
                            format!(
                                "the profiles are: {}",
                                config
                                    .profiles
                                    .keys()
                                    .cloned()
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        },
                    }
                })?,
            )),
            None => None,
        };
    let explicit_profile = chosen.as_ref().is_some_and(|(_, explicit)| *explicit);
    let profile_source = profile
        .as_ref()
        .map(|(name, _)| Source::Profile(name.clone()));
    let empty = Layer::default();
    let profile_layer = profile.as_ref().map_or(&empty, |(_, layer)| layer);

    // A profile named by a flag or AGENT_PROFILE ranks with the flags; the default profile
    // of agent.toml ranks below the environment.
    macro_rules! pick {
        ($field:ident, $env_name:expr, $agent:expr) => {{
            let flag = inputs.flags.$field.clone().map(|v| (v, Source::Flag));
            let env_value = env
                .$field
                .clone()
                .map(|v| (v, Source::Env($env_name.to_owned())));
            let from_profile = profile_layer.$field.clone().zip(profile_source.clone());
            let agent = $agent.map(|v| (v, Source::Agent));
            let ordered = if explicit_profile {
                flag.or(from_profile).or(env_value)
            } else {
                flag.or(env_value).or(from_profile)
            };
            ordered
                .or(agent)
                .map(|(value, source)| Sourced { value, source })
        }};
    }
    let base_url = pick!(base_url, ENV_BASE_URL, None::<String>).unwrap_or(Sourced {
        value: DEFAULT_BASE_URL.to_owned(),
        source: Source::Default,
    });
    let mut model = pick!(model, ENV_MODEL, inputs.agent.model.clone());
    if let Some(recorded) = inputs.recording_model
        && model.as_ref().is_none_or(|m| m.source != Source::Flag)
    {
        model = Some(Sourced {
            value: recorded.to_owned(),
            source: Source::Recording,
        });
    }
    let temperature = pick!(temperature, "", inputs.agent.temperature);
    let max_tokens = pick!(max_tokens, "", inputs.agent.max_tokens);
    let seed = pick!(seed, "", inputs.agent.seed);
    let top_p = pick!(top_p, "", inputs.agent.top_p);
    let timeout_secs = pick!(timeout_secs, "", None::<f64>);
    let max_retries = pick!(max_retries, "", None::<u32>);
    let max_retry_wait = pick!(max_retry_wait_secs, "", None::<f64>);
    let max_reply_bytes = pick!(max_reply_bytes, "", None::<u64>).unwrap_or(Sourced {
        value: DEFAULT_MAX_REPLY_BYTES,
        source: Source::Default,
    });
    if max_reply_bytes.value == 0 {
        return Err(SettingsError::Value {
            message: "the reply limit (--max-reply-bytes) must be at least 1 byte".into(),
        });
    }
    // Credentials in the base URL are sent, never shown: the log scrubber knows them too.
    for secret in crate::model::url_secrets(&base_url.value) {
        crate::logging::redact(&secret);
    }

    let key_env = profile_layer
        .api_key_env
        .clone()
        .unwrap_or_else(|| ENV_API_KEY.to_owned());
    let api_key = (inputs.env)(&key_env).filter(|k| !k.is_empty()).map(|key| {
        crate::logging::redact(&key);
        Sourced {
            value: SecretString::from(key),
            source: Source::Env(key_env.clone()),
        }
    });

    let seconds = |value: Option<Sourced<f64>>,
                   default: f64,
                   what: &str|
     -> Result<Sourced<Duration>, SettingsError> {
        let sourced = value.unwrap_or(Sourced {
            value: default,
            source: Source::Default,
        });
        let value = Some(sourced.value)
            .filter(|secs| *secs > 0.0 && *secs <= MAX_SECONDS)
            .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
            .ok_or_else(|| SettingsError::Value {
                message: format!(
                    "{what} must be a positive number of seconds, at most a year ({MAX_SECONDS}), not {}",
                    sourced.value
                ),
            })?;
        Ok(Sourced {
            value,
            source: sourced.source,
        })
    };
    let timeout = seconds(timeout_secs, 600.0, "the timeout")?;
    let stream = pick!(stream, "", None::<bool>).unwrap_or(Sourced {
        value: true,
        source: Source::Default,
    });
    let idle_timeout = seconds(
        pick!(idle_timeout_secs, "", None::<f64>),
        crate::model::DEFAULT_IDLE_TIMEOUT.as_secs_f64(),
        "the idle timeout",
    )?;
    let server = pick!(server, "", None::<crate::model::Server>);
    let mut retry = RetryPolicy::default();
    if let Some(retries) = max_retries {
        retry.max_retries = retries.value;
    }
    retry.max_retry_wait = seconds(max_retry_wait, 60.0, "the longest retry wait")?.value;
    if (inputs.env)(ENV_TEST_NO_RETRY_DELAY).is_some_and(|v| v == "1") {
        retry.initial_backoff = Duration::ZERO;
    }
    Ok(Settings {
        profile: profile.map(|(name, _)| name),
        base_url,
        model,
        api_key,
        temperature,
        max_tokens,
        seed,
        top_p,
        timeout,
        retry,
        max_reply_bytes,
        stream,
        idle_timeout,
        server,
    })
}

impl Settings {
    /// The model, or the error that names the ways to configure one.
    pub fn model(&self) -> Result<&str, SettingsError> {
        self.model
            .as_ref()
            .map(|m| m.value.as_str())
            .ok_or(SettingsError::NoModel)
    }

    /// The endpoint these settings describe.
    pub fn endpoint(&self) -> crate::model::Endpoint {
        crate::model::Endpoint {
            base_url: self.base_url.value.clone(),
            api_key: self.api_key.as_ref().map(|k| k.value.clone()),
            timeout: self.timeout.value,
            retry: self.retry,
            max_reply_bytes: self.max_reply_bytes.value,
            stream: self.stream.value,
            idle_timeout: self.idle_timeout.value,
            server: self.server.as_ref().map(|s| s.value),
        }
    }

    /// The settings as `name: value (source)` lines, the key redacted.
    pub fn describe(&self) -> Vec<(String, String)> {
        fn row<T: fmt::Display>(name: &str, value: &Option<Sourced<T>>) -> (String, String) {
            (
                name.to_owned(),
                value
                    .as_ref()
                    .map_or("not set".into(), |v| format!("{} ({})", v.value, v.source)),
            )
        }
        vec![
            (
                "profile".into(),
                self.profile.clone().unwrap_or_else(|| "none".into()),
            ),
            (
                "base_url".into(),
                format!(
                    "{} ({})",
                    display_url(&self.base_url.value),
                    self.base_url.source
                ),
            ),
            row("model", &self.model),
            (
                "api_key".into(),
                self.api_key.as_ref().map_or("not set".into(), |k| {
                    format!("set, redacted ({})", k.source)
                }),
            ),
            row("temperature", &self.temperature),
            row("max_tokens", &self.max_tokens),
            row("seed", &self.seed),
            row("top_p", &self.top_p),
            (
                "timeout".into(),
                format!(
                    "{} s ({})",
                    self.timeout.value.as_secs_f64(),
                    self.timeout.source
                ),
            ),
            ("max_retries".into(), self.retry.max_retries.to_string()),
            (
                "max_retry_wait".into(),
                format!("{} s", self.retry.max_retry_wait.as_secs_f64()),
            ),
            (
                "max_reply_bytes".into(),
                format!(
                    "{} ({})",
                    self.max_reply_bytes.value, self.max_reply_bytes.source
                ),
            ),
            (
                "stream".into(),
                format!("{} ({})", self.stream.value, self.stream.source),
            ),
            (
                "idle_timeout".into(),
                format!(
                    "{} s ({})",
                    self.idle_timeout.value.as_secs_f64(),
                    self.idle_timeout.source
                ),
            ),
            (
                "server".into(),
                self.server.as_ref().map_or_else(
                    || "not named; detected from its answers".into(),
                    |s| format!("{} ({})", s.value, s.source),
                ),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn config() -> ConfigFile {
        toml::from_str(
            r#"
            profile = "local"
            [profiles.local]
            base_url = "http://127.0.0.1:11434/v1"
            model = "qwen"
            temperature = 0.5
            [profiles.hosted]
            base_url = "https://llm.example/v1"
            model = "big"
            api_key_env = "HOSTED_KEY"
            "#,
        )
        .expect("parses")
    }

    #[test]
    fn flags_beat_env_beat_the_default_profile_beat_agent_defaults() {
        let config = config();
        let agent = ModelDefaults {
            model: Some("agent-model".into()),
            temperature: Some(0.2),
            max_tokens: Some(100),
            ..ModelDefaults::default()
        };
        let flags = Layer {
            temperature: Some(0.9),
            ..Layer::default()
        };
        let env = env(&[(ENV_MODEL, "env-model"), (ENV_API_KEY, "sk-test")]);
        let settings = resolve(&Inputs {
            flags: &flags,
            profile_flag: None,
            env: &env,
            config: Some(&config),
            agent: &agent,
            recording_model: None,
        })
        .expect("resolves");
        assert_eq!(
            settings
                .model
                .as_ref()
                .map(|m| (m.value.as_str(), m.source.clone())),
            Some(("env-model", Source::Env(ENV_MODEL.into())))
        );
        assert_eq!(settings.temperature.as_ref().map(|t| t.value), Some(0.9));
        assert_eq!(settings.base_url.value, "http://127.0.0.1:11434/v1");
        assert_eq!(
            settings
                .max_tokens
                .as_ref()
                .map(|t| (t.value, t.source.clone())),
            Some((100, Source::Agent))
        );
        assert!(settings.api_key.is_some());
        assert!(!format!("{settings:?}").contains("sk-test"));
    }

    #[test]
    fn an_explicit_profile_ranks_with_the_flags_and_brings_its_own_key() {
        let config = config();
        let env = env(&[
            (ENV_BASE_URL, "http://env/v1"),
            (ENV_API_KEY, "sk-openai"),
            ("HOSTED_KEY", "hk"),
        ]);
        let settings = resolve(&Inputs {
            flags: &Layer::default(),
            profile_flag: Some("hosted"),
            env: &env,
            config: Some(&config),
            agent: &ModelDefaults::default(),
            recording_model: None,
        })
        .expect("resolves");
        assert_eq!(settings.base_url.value, "https://llm.example/v1");
        assert_eq!(
            settings.api_key.as_ref().map(|k| k.source.clone()),
            Some(Source::Env("HOSTED_KEY".into()))
        );
    }

    #[test]
    fn api_key_env_names_only_llm_key_variables() {
        for allowed in [
            "OPENAI_API_KEY",
            "ANTHROPIC_API_KEY",
            "OPENROUTER_API_KEY",
            "AGENT_GATEWAY_API_KEY",
            "AGENT_TEAM_2_API_KEY",
        ] {
            assert!(is_llm_key_variable(allowed), "{allowed}");
        }
        for refused in [
            "GITHUB_TOKEN",
            "CI_JOB_TOKEN",
            "HF_TOKEN",
            "STRIPE_API_KEY",
            "AWS_SECRET_ACCESS_KEY",
            "AGENT_API_KEY",
            "AGENT_x_API_KEY",
            "openai_api_key",
            "PATH",
        ] {
            assert!(!is_llm_key_variable(refused), "{refused}");
        }
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            "[profiles.ci]\napi_key_env = \"GITHUB_TOKEN\"\n",
        )
        .expect("writes");
        let error = load_config(dir.path()).expect_err("refused");
        assert!(
            matches!(&error, SettingsError::KeyVariable { profile, name } if profile == "ci" && name == "GITHUB_TOKEN"),
            "{error:?}"
        );
    }

    #[test]
    fn the_reply_limit_comes_from_its_layers_and_url_credentials_are_masked() {
        let config: ConfigFile = toml::from_str(
            "profile = \"local\"\n[profiles.local]\nmax_reply_bytes = 1000\nbase_url = \"http://bot:Pw7-zQ4k-PASS-91c2@127.0.0.1:1/v1\"\n",
        )
        .expect("parses");
        let resolve_with = |flags: &Layer| {
            resolve(&Inputs {
                flags,
                profile_flag: None,
                env: &env(&[]),
                config: Some(&config),
                agent: &ModelDefaults::default(),
                recording_model: None,
            })
        };
        let settings = resolve_with(&Layer::default()).expect("resolves");
        assert_eq!(settings.max_reply_bytes.value, 1000);
        assert_eq!(settings.endpoint().max_reply_bytes, 1000);
        assert_eq!(
            settings.endpoint().base_url,
            "http://bot:Pw7-zQ4k-PASS-91c2@127.0.0.1:1/v1",
            "the request keeps the credentials"
        );
        let shown = format!("{:?} {:?}", settings.describe(), settings);
        assert!(shown.contains("http://bot:***@127.0.0.1:1/v1"), "{shown}");
        assert!(!shown.contains("PASS"), "{shown}");
        assert_eq!(
            crate::logging::scrub("Pw7-zQ4k-PASS-91c2"),
            "[redacted]",
            "the password is a secret for the log scrubber"
        );
        let flags = Layer {
            max_reply_bytes: Some(0),
            ..Layer::default()
        };
        assert!(matches!(
            resolve_with(&flags),
            Err(SettingsError::Value { .. })
        ));
        let default = resolve(&Inputs {
            flags: &Layer::default(),
            profile_flag: None,
            env: &env(&[]),
            config: None,
            agent: &ModelDefaults::default(),
            recording_model: None,
        })
        .expect("resolves");
        assert_eq!(default.max_reply_bytes.value, DEFAULT_MAX_REPLY_BYTES);
    }

    #[test]
    fn a_timeout_no_duration_holds_is_refused_not_a_panic() {
        for secs in [1e30, f64::INFINITY, f64::NAN, -1.0, 0.0, 1e9] {
            let flags = Layer {
                timeout_secs: Some(secs),
                ..Layer::default()
            };
            let result = resolve(&Inputs {
                flags: &flags,
                profile_flag: None,
                env: &env(&[]),
                config: None,
                agent: &ModelDefaults::default(),
                recording_model: None,
            });
            assert!(matches!(result, Err(SettingsError::Value { .. })), "{secs}");
        }
    }

    #[test]
    fn no_model_and_unknown_profiles_are_clear_errors() {
        let settings = resolve(&Inputs {
            flags: &Layer::default(),
            profile_flag: None,
            env: &env(&[]),
            config: None,
            agent: &ModelDefaults::default(),
            recording_model: None,
        })
        .expect("resolves");
        assert!(matches!(settings.model(), Err(SettingsError::NoModel)));
        assert_eq!(settings.base_url.value, DEFAULT_BASE_URL);
        let error = resolve(&Inputs {
            flags: &Layer::default(),
            profile_flag: Some("nope"),
            env: &env(&[]),
            config: Some(&config()),
            agent: &ModelDefaults::default(),
            recording_model: None,
        })
        .expect_err("unknown profile");
        assert!(matches!(error, SettingsError::UnknownProfile { .. }));
    }

    #[test]
    fn a_recording_supplies_the_model_unless_one_is_chosen() {
        let resolve_with = |flags: &Layer| {
            resolve(&Inputs {
                flags,
                profile_flag: None,
                env: &env(&[]),
                config: None,
                agent: &ModelDefaults::default(),
                recording_model: Some("recorded-model"),
            })
            .expect("resolves")
        };
        assert_eq!(
            resolve_with(&Layer::default()).model().expect("model"),
            "recorded-model"
        );
        let flags = Layer {
            model: Some("mine".into()),
            ..Layer::default()
        };
        assert_eq!(resolve_with(&flags).model().expect("model"), "mine");
        let replay = resolve(&Inputs {
            flags: &Layer::default(),
            profile_flag: None,
            env: &env(&[(ENV_MODEL, "env-model"), (ENV_BASE_URL, "http://env/v1")]),
            config: Some(&config()),
            agent: &ModelDefaults::default(),
            recording_model: Some("recorded-model"),
        })
        .expect("resolves");
        assert_eq!(
            replay.model().expect("model"),
            "recorded-model",
            "the environment does not reach a replay"
        );
        assert_eq!(
            replay.temperature.as_ref().map(|t| t.value),
            None,
            "nor does agent.toml"
        );
    }
}
