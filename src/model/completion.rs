//! [`Completion`]: a chat completion read leniently, so that servers which are not OpenAI
//! (vLLM, Ollama, llama.cpp, LiteLLM) are understood: `usage`, `created` and `object` may be
//! missing, `finish_reason` may be `eos`, empty or null, content may be null or a list of parts,
//! and reasoning may come in `reasoning_content` or `reasoning`.
//!
//! Token counts are the server's numbers and are checked: a count that is negative,
//! fractional, not a number or over 2^53 (no real count comes near) makes the whole `usage`
//! unreported, with a warning, so the token budget counts the reply by its size instead (four
//! bytes a token) and a bad count can neither wrap, panic nor slip past `--max-total-tokens`.
//! A `total_tokens` below the sum of its parts counts as the sum.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::ModelError;

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FinishReason {
    /// It finished (`stop`, or `eos` from llama.cpp and vLLM).
    Stop,
    /// It hit the token limit: the reply is truncated.
    Length,
    /// A content filter stopped it.
    ContentFilter,
    /// Something else the server named.
    Other(String),
    /// The server did not say (null or empty).
    Unknown,
}

impl std::fmt::Display for FinishReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FinishReason::Stop => f.write_str("stop"),
            FinishReason::Length => f.write_str("length"),
            FinishReason::ContentFilter => f.write_str("content_filter"),
            FinishReason::Other(name) => f.write_str(name),
            FinishReason::Unknown => f.write_str("none given"),
        }
    }
}

impl FinishReason {
    fn parse(value: Option<&Value>) -> FinishReason {
        match value.and_then(Value::as_str).map(str::trim) {
            None | Some("") => FinishReason::Unknown,
            Some("stop" | "eos" | "end_turn" | "stop_sequence") => FinishReason::Stop,
            Some("length" | "max_tokens") => FinishReason::Length,
            Some("content_filter") => FinishReason::ContentFilter,
            Some(other) => FinishReason::Other(other.to_owned()),
        }
    }
}

/// Token counts, when the server reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Reply tokens.
    pub completion_tokens: u64,
    /// Their sum, as the server counts it.
    pub total_tokens: u64,
}

/// The largest token count believed: 2^53, where JSON numbers stop being exact.
const MAX_TOKEN_COUNT: u64 = 1 << 53;

impl Usage {
    /// Add another attempt's usage (saturating: a sum never wraps).
    pub fn add(&mut self, other: Usage) {
        self.prompt_tokens = self.prompt_tokens.saturating_add(other.prompt_tokens);
        self.completion_tokens = self
            .completion_tokens
            .saturating_add(other.completion_tokens);
        self.total_tokens = self.total_tokens.saturating_add(other.total_tokens);
    }

    /// Read a `usage` object; an error names the first field that is not a count.
    fn read(usage: &Value) -> Result<Usage, String> {
        let count = |key: &str| -> Result<Option<u64>, String> {
            let Some(value) = usage.get(key).filter(|v| !v.is_null()) else {
                return Ok(None);
            };
            let count = value.as_u64().or_else(|| {
                value
                    .as_f64()
                    .filter(|n| n.fract() == 0.0 && *n >= 0.0 && *n <= MAX_TOKEN_COUNT as f64)
                    // Exact: a whole number within 2^53.
                    .map(|n| n as u64)
            });
            match count {
                Some(count) if count <= MAX_TOKEN_COUNT => Ok(Some(count)),
                _ => Err(format!(
                    "`{key}` is {}",
                    crate::text::quote(&value.to_string(), 40)
                )),
            }
        };
        let prompt = count("prompt_tokens")?.unwrap_or(0);
        let completion = count("completion_tokens")?.unwrap_or(0);
        let parts = prompt + completion;
        Ok(Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: count("total_tokens")?.unwrap_or(parts).max(parts),
        })
    }
}

/// One completion.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Completion {
    /// The reply text; empty when the server sent null.
    pub content: String,
    /// Reasoning the server returned in its own field.
    pub reasoning: Option<String>,
    /// A refusal the server returned instead of content.
    pub refusal: Option<String>,
    /// Why the model stopped.
    pub finish_reason: FinishReason,
    /// Token counts, if reported.
    pub usage: Option<Usage>,
    /// The model that answered, if reported.
    pub model: Option<String>,
    /// The response body as received.
    pub raw: Value,
    /// Transport retries before this answer.
    pub retries: u32,
    /// The body sent on the wire for this answer, when it differs from the request's own
    /// (a live endpoint: `stream`, the server's `response_format` form).
    #[serde(skip)]
    pub sent: Option<Value>,
}

impl Completion {
    /// Read a response body; the body is kept as `raw`, not copied.
    pub fn from_response(raw: Value) -> Result<Completion, ModelError> {
        let choice = raw
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|choices| choices.first())
            .ok_or_else(|| ModelError::EmptyChoices {
                body: crate::text::quote(&raw.to_string(), 300),
            })?;
        let message = choice.get("message").unwrap_or(&Value::Null);
        let content = content_of(&raw);
        let reasoning = ["reasoning_content", "reasoning"]
            .iter()
            .find_map(|key| message.get(*key).and_then(Value::as_str))
            .filter(|text| !text.trim().is_empty())
            .map(str::to_owned);
        let refusal = message
            .get("refusal")
            .and_then(Value::as_str)
            .filter(|text| !text.trim().is_empty())
            .map(str::to_owned);
        let usage = raw
            .get("usage")
            .filter(|u| u.is_object())
            .and_then(|u| match Usage::read(u) {
                Ok(usage) => Some(usage),
                Err(problem) => {
                    tracing::warn!(
                        "the server's token usage is not a count ({problem}); it is ignored, and the reply's tokens are estimated from its size"
                    );
                    None
                }
            });
        let finish_reason = FinishReason::parse(choice.get("finish_reason"));
        let model = raw.get("model").and_then(Value::as_str).map(str::to_owned);
        Ok(Completion {
            content,
            reasoning,
            refusal,
            finish_reason,
            usage,
            model,
            raw,
            retries: 0,
            sent: None,
        })
    }
}

/// The first choice's content as text: what the deliverable is made from.
pub(crate) fn content_of(raw: &Value) -> String {
    text_of(raw.pointer("/choices/0/message/content"))
}

/// Content as a string, a list of text parts, or null.
fn text_of(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| {
                part.get("text")
                    .and_then(Value::as_str)
                    .or_else(|| part.as_str())
            })
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_minimal_server_reply_is_understood() {
        let completion = Completion::from_response(json!({
            "choices": [{"message": {"content": "hi"}, "finish_reason": "eos"}]
        }))
        .expect("reads");
        assert_eq!(completion.content, "hi");
        assert_eq!(completion.finish_reason, FinishReason::Stop);
        assert_eq!(completion.usage, None);
    }

    #[test]
    fn null_content_empty_finish_reason_and_reasoning_fields() {
        for key in ["reasoning_content", "reasoning"] {
            let completion = Completion::from_response(json!({
                "choices": [{"message": {"content": null, key: "thinking"}, "finish_reason": ""}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 4}
            }))
            .expect("reads");
            assert_eq!(completion.content, "");
            assert_eq!(completion.reasoning.as_deref(), Some("thinking"));
            assert_eq!(completion.finish_reason, FinishReason::Unknown);
            assert_eq!(completion.usage.map(|u| u.total_tokens), Some(7));
        }
    }

    #[test]
    fn content_parts_are_joined_and_length_is_truncation() {
        let completion = Completion::from_response(json!({
            "choices": [{"message": {"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}, "finish_reason": "length"}]
        }))
        .expect("reads");
        assert_eq!(completion.content, "ab");
        assert_eq!(completion.finish_reason, FinishReason::Length);
    }

    #[test]
    fn counts_that_are_not_counts_make_the_usage_unreported() {
        for usage in [
            json!({"prompt_tokens": -1000, "completion_tokens": 5}),
            json!({"prompt_tokens": 10, "completion_tokens": 0.5}),
            json!({"prompt_tokens": 10, "total_tokens": -1}),
            json!({"prompt_tokens": u64::MAX, "completion_tokens": 1}),
            json!({"prompt_tokens": 1e300}),
            json!({"prompt_tokens": "12"}),
        ] {
            let completion = Completion::from_response(json!({
                "choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
                "usage": usage,
            }))
            .expect("the reply itself reads");
            assert_eq!(completion.usage, None, "{usage}");
        }
    }

    #[test]
    fn good_counts_are_kept_and_a_short_total_is_the_sum() {
        let read = |usage: Value| {
            Completion::from_response(json!({
                "choices": [{"message": {"content": "hi"}}],
                "usage": usage,
            }))
            .expect("reads")
            .usage
            .expect("counted")
        };
        assert_eq!(
            read(json!({"prompt_tokens": 3.0, "completion_tokens": 4, "total_tokens": 7})),
            Usage {
                prompt_tokens: 3,
                completion_tokens: 4,
                total_tokens: 7
            }
        );
        assert_eq!(
            read(json!({"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 0}))
                .total_tokens,
            1500
        );
        assert_eq!(read(json!({"total_tokens": 42})).total_tokens, 42);
        let mut sum = read(json!({"prompt_tokens": MAX_TOKEN_COUNT}));
        for _ in 0..5_000 {
            sum.add(read(json!({"prompt_tokens": MAX_TOKEN_COUNT})));
        }
        assert_eq!(sum.prompt_tokens, u64::MAX, "saturates, never wraps");
    }

    #[test]
    fn empty_choices_are_an_error() {
        assert!(matches!(
            Completion::from_response(json!({"choices": []})),
            Err(ModelError::EmptyChoices { .. })
        ));
        assert!(matches!(
            Completion::from_response(json!({"object": "chat.completion"})),
            Err(ModelError::EmptyChoices { .. })
        ));
    }
}
