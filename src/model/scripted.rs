//! [`ScriptedClient`]: hand-written replies served in order, as an OpenAI-compatible server
//! would send them, for recording fixtures without a model (`agent record`).
//!
//! Each response body carries what a recording needs to replay as the real thing: an id
//! numbered in the order the replies are served (`chatcmpl-fixture-1`, …), the request's model,
//! a fixed `created` time, `finish_reason: stop`, and a usage estimate of four characters a
//! token, so that recordings made again from the same replies are byte for byte the same.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::client::{ModelClient, ModelFuture};
use super::completion::Completion;
use super::error::ModelError;
use super::request::ChatRequest;

/// The model name fixture recordings are made with; a replay takes its model from the recording.
pub const FIXTURE_MODEL: &str = "fixture-model";

/// The `created` time of every scripted response (fixed, so recordings do not change).
const CREATED: u64 = 1_764_000_000;

/// One hand-written reply, and the prompt text that routes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptedReply {
    /// When set, the reply goes to the first request whose first message holds this text, so
    /// that steps which run at once each get their own reply.
    pub route: Option<String>,
    /// The reply text.
    pub text: String,
}

impl ScriptedReply {
    /// A reply served in turn.
    pub fn in_turn(text: impl Into<String>) -> ScriptedReply {
        ScriptedReply {
            route: None,
            text: text.into(),
        }
    }
}

#[derive(Debug, Default)]
struct Script {
    left: VecDeque<ScriptedReply>,
    served: usize,
    /// Requests that found no reply left.
    unanswered: usize,
}

/// Serves [`ScriptedReply`]s, one per request, in the order requests are made.
#[derive(Debug)]
pub struct ScriptedClient {
    script: Mutex<Script>,
    /// Cancelled when a request finds no reply left: whatever is running stops, and nothing
    /// half-recorded is kept.
    dry: CancellationToken,
}

impl ScriptedClient {
    /// Serve `replies`; `dry` is cancelled when a request finds none left.
    pub fn new(replies: Vec<ScriptedReply>, dry: CancellationToken) -> ScriptedClient {
        ScriptedClient {
            script: Mutex::new(Script {
                left: replies.into(),
                served: 0,
                unanswered: 0,
            }),
            dry,
        }
    }

    /// Replies not asked for.
    pub fn left(&self) -> usize {
        self.lock().left.len()
    }

    /// Replies served.
    pub fn served(&self) -> usize {
        self.lock().served
    }

    /// Requests that came after the last reply was served.
    pub fn unanswered(&self) -> usize {
        self.lock().unanswered
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The reply for `request`: the first whose route its prompt holds, else the first
    /// served in turn, else the first left.
    fn next(&self, request: &ChatRequest) -> Option<(usize, String)> {
        let mut script = self.lock();
        let prompt = request
            .messages
            .first()
            .map_or("", |message| message.content.as_str());
        let routed = script
            .left
            .iter()
            .position(|reply| reply.route.as_deref().is_some_and(|r| prompt.contains(r)));
        let chosen = routed
            .or_else(|| script.left.iter().position(|reply| reply.route.is_none()))
            .or_else(|| (!script.left.is_empty()).then_some(0));
        let Some(index) = chosen else {
            script.unanswered += 1;
            return None;
        };
        let reply = script.left.remove(index)?;
        script.served += 1;
        Some((script.served, reply.text))
    }
}

/// The response body an OpenAI-compatible server sends for `content`, the `number`th reply.
/// Usage is estimated at four characters a token, since no tokenizer ran.
pub fn scripted_body(request: &ChatRequest, content: &str, number: usize) -> Value {
    let prompt_chars: usize = request
        .messages
        .iter()
        .map(|message| message.content.chars().count())
        .sum();
    let prompt_tokens = prompt_chars / 4;
    let completion_tokens = content.chars().count() / 4;
    json!({
        "id": format!("chatcmpl-fixture-{number}"),
        "object": "chat.completion",
        "created": CREATED,
        "model": request.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens
        }
    })
}

impl ModelClient for ScriptedClient {
    fn complete<'a>(&'a self, request: &'a ChatRequest) -> ModelFuture<'a> {
        let next = self.next(request);
        Box::pin(async move {
            match next {
                Some((number, content)) => {
                    Completion::from_response(scripted_body(request, &content, number))
                }
                None => {
                    self.dry.cancel();
                    Err(ModelError::BadResponse {
                        message: format!(
                            "no scripted reply left: {} were given and all were served",
                            self.served()
                        ),
                    })
                }
            }
        })
    }

    fn describe(&self) -> String {
        "scripted replies".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Message;

    fn request(prompt: &str) -> ChatRequest {
        ChatRequest {
            model: FIXTURE_MODEL.into(),
            messages: vec![Message::user(prompt)],
            temperature: None,
            top_p: None,
            max_tokens: None,
            seed: None,
            response_format: None,
            stream: false,
        }
    }

    #[tokio::test]
    async fn replies_are_served_in_order_and_numbered() {
        let client = ScriptedClient::new(
            vec![ScriptedReply::in_turn("one"), ScriptedReply::in_turn("two")],
            CancellationToken::new(),
        );
        let first = client.complete(&request("p")).await.expect("first");
        let second = client.complete(&request("p")).await.expect("second");
        assert_eq!(
            (first.content.as_str(), second.content.as_str()),
            ("one", "two")
        );
        assert_eq!(second.raw["id"], "chatcmpl-fixture-2");
        assert_eq!(client.left(), 0);
    }

    #[tokio::test]
    async fn a_routed_reply_goes_to_the_prompt_that_holds_its_text() {
        let client = ScriptedClient::new(
            vec![
                ScriptedReply {
                    route: Some("Release Manager".into()),
                    text: "record".into(),
                },
                ScriptedReply::in_turn("plan"),
            ],
            CancellationToken::new(),
        );
        let plan = client
            .complete(&request("You are Codex"))
            .await
            .expect("plan");
        let record = client
            .complete(&request("You are a Release Manager"))
            .await
            .expect("record");
        assert_eq!(plan.content, "plan");
        assert_eq!(record.content, "record");
    }

    #[tokio::test]
    async fn running_dry_is_an_error_that_cancels() {
        let dry = CancellationToken::new();
        let client = ScriptedClient::new(vec![ScriptedReply::in_turn("only")], dry.clone());
        client.complete(&request("p")).await.expect("first");
        assert!(client.complete(&request("p")).await.is_err());
        assert!(dry.is_cancelled());
        assert_eq!(client.unanswered(), 1);
    }

    #[test]
    fn usage_is_four_characters_a_token_counted_in_characters() {
        // "é" is two bytes but one character, as the estimate has always counted it.
        let body = scripted_body(&request("ééééééééé"), "abcdefgh", 1);
        assert_eq!(
            body["usage"],
            json!({"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4})
        );
        assert_eq!(body["model"], FIXTURE_MODEL);
        assert_eq!(body["created"], 1_764_000_000);
    }
}
