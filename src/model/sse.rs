//! Streamed replies: an incremental server-sent events parser ([`EventParser`]) and the
//! [`Assembler`] that folds chat completion chunks into one response body, the same shape a
//! whole reply has, so artifacts, recordings and replays never tell the two apart.
//!
//! What a stream may do is read leniently, as whole replies are: the first delta may carry
//! only the role, or content `null`; every delta may repeat the role (Ollama); reasoning comes
//! as `reasoning_content` (llama-server, older vLLM) or `reasoning` (vLLM, Ollama) deltas and is
//! kept apart from the content as it arrives; usage may come on a last chunk whose `choices` is
//! empty (OpenAI, vLLM, Ollama, llama-server), on the finishing chunk, or never
//! (llama-cpp-python). What it may not do is end early: a stream that stops with neither a
//! `finish_reason` nor `data: [DONE]` is cut, and never passes for a reply.
//!
//! The parser holds at most one unfinished line and one event's data; the transport's byte
//! cap bounds both, since every byte held was counted against `--max-reply-bytes`.

use serde_json::{Map, Value, json};

/// One event's data (`data:` lines joined by `\n`); other fields are not needed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Event {
    /// The data.
    pub(crate) data: String,
}

/// Splits a byte stream into events, wherever the chunk boundaries fall (inside a line, a
/// `\r\n` pair or a UTF-8 sequence).
#[derive(Debug, Default)]
pub(crate) struct EventParser {
    line: Vec<u8>,
    data: Option<String>,
    /// The last byte fed was a `\r`: a `\n` right after it ends no second line.
    after_cr: bool,
}

impl EventParser {
    /// Feed bytes; every event they complete is pushed to `events`.
    pub(crate) fn feed(&mut self, bytes: &[u8], events: &mut Vec<Event>) {
        let mut rest = bytes;
        while !rest.is_empty() {
            if self.after_cr && rest[0] == b'\n' {
                rest = &rest[1..];
                self.after_cr = false;
                continue;
            }
            self.after_cr = false;
            match memchr::memchr2(b'\n', b'\r', rest) {
                Some(at) => {
                    self.line.extend_from_slice(&rest[..at]);
                    self.after_cr = rest[at] == b'\r';
                    rest = &rest[at + 1..];
                    let line = std::mem::take(&mut self.line);
                    self.line_done(&line, events);
                    // Keep the allocation for the next line.
                    self.line = line;
                    self.line.clear();
                }
                None => {
                    self.line.extend_from_slice(rest);
                    rest = &[];
                }
            }
        }
    }

    /// The end of the stream: a last line without its newline, and a last event without its
    /// blank line, still count (some servers end so).
    pub(crate) fn finish(&mut self, events: &mut Vec<Event>) {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, events);
        }
        self.line_done(b"", events);
    }

    fn line_done(&mut self, line: &[u8], events: &mut Vec<Event>) {
        if line.is_empty() {
            if let Some(data) = self.data.take() {
                events.push(Event { data });
            }
            return;
        }
        let (field, value) = match memchr::memchr(b':', line) {
            // A comment (`: keep-alive`).
            Some(0) => return,
            Some(at) => {
                let value = &line[at + 1..];
                (&line[..at], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        if field == b"data" {
            let value = String::from_utf8_lossy(value);
            match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(&value);
                }
                None => self.data = Some(value.into_owned()),
            }
        }
    }
}

/// What one event did to the reply.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Step {
    /// Content deltas in it (each about one token).
    pub(crate) content: u64,
    /// Reasoning deltas in it, in their own field or inside an inline `<think>` block.
    pub(crate) reasoning: u64,
    /// The server's count of reply tokens so far, when this event carried usage.
    pub(crate) completion_tokens: Option<u64>,
}

/// A stream that cannot become a reply.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum StreamProblem {
    /// An event's data is not JSON.
    NotJson {
        /// The start of the data.
        start: String,
    },
    /// The server sent an error inside the stream.
    Error {
        /// Its message.
        message: String,
    },
}

type Raw<'a> = Option<&'a serde_json::value::RawValue>;

/// A chunk as read: its text borrowed where it has no escapes, the rest left raw until needed.
#[derive(serde::Deserialize)]
struct Chunk<'a> {
    #[serde(borrow)]
    id: Raw<'a>,
    #[serde(borrow)]
    created: Raw<'a>,
    #[serde(borrow)]
    model: Raw<'a>,
    #[serde(borrow)]
    system_fingerprint: Raw<'a>,
    #[serde(borrow)]
    usage: Raw<'a>,
    #[serde(borrow)]
    timings: Raw<'a>,
    #[serde(borrow)]
    error: Raw<'a>,
    #[serde(borrow)]
    choices: Option<Vec<Choice<'a>>>,
}

#[derive(serde::Deserialize)]
struct Choice<'a> {
    index: Option<u64>,
    #[serde(borrow)]
    finish_reason: Raw<'a>,
    #[serde(borrow)]
    delta: Option<Delta<'a>>,
    #[serde(borrow)]
    message: Option<Delta<'a>>,
}

#[derive(serde::Deserialize)]
struct Delta<'a> {
    #[serde(borrow)]
    role: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    content: Raw<'a>,
    #[serde(borrow)]
    reasoning_content: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    reasoning: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    refusal: Option<std::borrow::Cow<'a, str>>,
}

/// A raw value parsed (it is valid JSON: it was read as part of one).
fn parse(raw: &serde_json::value::RawValue) -> Option<Value> {
    serde_json::from_str(raw.get()).ok()
}

/// Folds chunks into one chat completion body.
#[derive(Debug, Default)]
pub(crate) struct Assembler {
    head: Map<String, Value>,
    content: String,
    reasoning: String,
    reasoning_key: Option<&'static str>,
    refusal: Option<String>,
    role: Option<String>,
    finish_reason: Option<Value>,
    usage: Option<Value>,
    timings: Option<Value>,
    saw_choice: bool,
    done: bool,
    /// Inside an inline `<think>` block of the content (for the counts only; the content is
    /// kept whole and split later, as a whole reply's is).
    thinking: bool,
}

impl Assembler {
    /// Take one event: what it added to the reply.
    pub(crate) fn event(&mut self, event: &Event) -> Result<Step, StreamProblem> {
        let data = event.data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(Step::default());
        }
        if data.is_empty() {
            return Ok(Step::default());
        }
        // Read in place: a reply is thousands of chunks, and only their deltas matter.
        let chunk: Chunk<'_> = serde_json::from_str(data).map_err(|_| StreamProblem::NotJson {
            start: data.chars().take(200).collect(),
        })?;
        self.chunk(chunk)
    }

    fn chunk(&mut self, chunk: Chunk<'_>) -> Result<Step, StreamProblem> {
        if let Some(error) = chunk.error.and_then(parse).filter(|e| !e.is_null()) {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| error.to_string(), str::to_owned);
            return Err(StreamProblem::Error { message });
        }
        let mut step = Step::default();
        for (key, raw) in [
            ("id", chunk.id),
            ("created", chunk.created),
            ("model", chunk.model),
            ("system_fingerprint", chunk.system_fingerprint),
        ] {
            if !self.head.contains_key(key)
                && let Some(value) = raw.and_then(parse).filter(|v| !v.is_null())
            {
                self.head.insert(key.to_owned(), value);
            }
        }
        if let Some(usage) = chunk.usage.and_then(parse).filter(Value::is_object) {
            step.completion_tokens = usage.get("completion_tokens").and_then(Value::as_u64);
            self.usage = Some(usage);
        }
        if let Some(timings) = chunk.timings.and_then(parse).filter(|t| !t.is_null()) {
            self.timings = Some(timings);
        }
        let Some(choice) = chunk
            .choices
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.index.unwrap_or(0) == 0)
        else {
            return Ok(step);
        };
        self.saw_choice = true;
        if let Some(reason) = choice
            .finish_reason
            .and_then(parse)
            .filter(|r| !r.is_null())
        {
            self.finish_reason = Some(reason);
        }
        let Some(delta) = choice.delta.or(choice.message) else {
            return Ok(step);
        };
        if let Some(role) = delta.role
            && self.role.is_none()
        {
            self.role = Some(role.into_owned());
        }
        for (key, text) in [
            ("reasoning_content", delta.reasoning_content),
            ("reasoning", delta.reasoning),
        ] {
            if let Some(text) = text.filter(|t| !t.is_empty()) {
                self.reasoning_key.get_or_insert(key);
                self.reasoning.push_str(&text);
                step.reasoning += 1;
            }
        }
        if let Some(text) = delta.refusal {
            self.refusal.get_or_insert_with(String::new).push_str(&text);
        }
        let text: std::borrow::Cow<'_, str> = match delta.content {
            Some(raw) if raw.get().starts_with('"') => {
                serde_json::from_str(raw.get()).unwrap_or_default()
            }
            Some(raw) => match parse(raw) {
                Some(Value::Array(parts)) => std::borrow::Cow::Owned(
                    parts
                        .iter()
                        .filter_map(|p| p.get("text").and_then(Value::as_str))
                        .collect::<String>(),
                ),
                _ => std::borrow::Cow::Borrowed(""),
            },
            None => std::borrow::Cow::Borrowed(""),
        };
        if !text.is_empty() {
            self.content.push_str(&text);
            if self.note_thinking(&text) {
                step.reasoning += 1;
            } else {
                step.content += 1;
            }
        }
        Ok(step)
    }

    /// Whether this content delta is inside an inline `<think>` block, tracking the block
    /// as it opens and closes.
    fn note_thinking(&mut self, text: &str) -> bool {
        let was = self.thinking;
        if let Some(close) = text.rfind("</think>") {
            self.thinking = text[close..].contains("<think>");
            return true;
        }
        if text.contains("<think>") {
            self.thinking = true;
            return true;
        }
        was
    }

    /// Whether the stream said `[DONE]`.
    pub(crate) fn done(&self) -> bool {
        self.done
    }

    /// Whether the reply is known to have ended: a finish reason or `[DONE]`.
    pub(crate) fn ended(&self) -> bool {
        self.done || self.finish_reason.is_some()
    }

    /// Whether any choice arrived.
    pub(crate) fn saw_choice(&self) -> bool {
        self.saw_choice
    }

    /// Content deltas and reasoning so far, in bytes (for an estimate when the server counts
    /// nothing).
    pub(crate) fn bytes(&self) -> usize {
        self.content.len() + self.reasoning.len()
    }

    /// The assembled body: `chat.completion` with one choice, as a whole reply has it.
    pub(crate) fn body(self) -> Value {
        let mut body = self.head;
        body.insert("object".into(), json!("chat.completion"));
        let choices = if self.saw_choice {
            let mut message = Map::new();
            message.insert(
                "role".into(),
                json!(self.role.unwrap_or_else(|| "assistant".into())),
            );
            message.insert("content".into(), json!(self.content));
            if let Some(key) = self.reasoning_key {
                message.insert(key.into(), json!(self.reasoning));
            }
            if let Some(refusal) = self.refusal {
                message.insert("refusal".into(), json!(refusal));
            }
            vec![json!({
                "index": 0,
                "message": message,
                "finish_reason": self.finish_reason.unwrap_or(Value::Null),
            })]
        } else {
            Vec::new()
        };
        body.insert("choices".into(), Value::Array(choices));
        if let Some(usage) = self.usage {
            body.insert("usage".into(), usage);
        }
        if let Some(timings) = self.timings {
            body.insert("timings".into(), timings);
        }
        Value::Object(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(parts: &[&[u8]]) -> Vec<String> {
        let mut parser = EventParser::default();
        let mut out = Vec::new();
        for part in parts {
            parser.feed(part, &mut out);
        }
        parser.finish(&mut out);
        out.into_iter().map(|e| e.data).collect()
    }

    #[test]
    fn events_are_found_wherever_the_chunks_break() {
        let whole: &[u8] = b": keep-alive\r\n\r\ndata: {\"a\":1}\r\n\r\nevent: x\ndata:b\ndata: c\n\ndata: [DONE]\n\n";
        let expected = vec!["{\"a\":1}", "b\nc", "[DONE]"];
        assert_eq!(events(&[whole]), expected);
        for cut in 1..whole.len() {
            assert_eq!(
                events(&[&whole[..cut], &whole[cut..]]),
                expected,
                "cut at {cut}"
            );
        }
        let bytes: Vec<&[u8]> = whole.chunks(1).collect();
        assert_eq!(events(&bytes), expected);
    }

    #[test]
    fn a_last_event_without_its_blank_line_counts() {
        assert_eq!(events(&[b"data: x\n\ndata: [DONE]"]), vec!["x", "[DONE]"]);
    }

    fn assemble(lines: &[Value]) -> (Assembler, Vec<Step>) {
        let mut assembler = Assembler::default();
        let steps = lines
            .iter()
            .map(|line| {
                assembler
                    .event(&Event {
                        data: line.to_string(),
                    })
                    .expect("a chunk")
            })
            .collect();
        (assembler, steps)
    }

    #[test]
    fn reasoning_deltas_are_kept_apart_and_usage_comes_from_the_empty_choices_chunk() {
        let (assembler, steps) = assemble(&[
            json!({"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": null}}]}),
            json!({"id": "c1", "choices": [{"index": 0, "delta": {"reasoning_content": "think"}}]}),
            json!({"id": "c1", "choices": [{"index": 0, "delta": {"reasoning_content": "ing"}}]}),
            json!({"id": "c1", "choices": [{"index": 0, "delta": {"content": "{}"}}]}),
            json!({"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
            json!({"id": "c1", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}),
        ]);
        assert_eq!(steps[1].reasoning, 1);
        assert_eq!(steps[3].content, 1);
        assert_eq!(steps[5].completion_tokens, Some(3));
        assert!(assembler.ended() && !assembler.done());
        let body = assembler.body();
        assert_eq!(
            body,
            json!({
                "id": "c1", "model": "m", "object": "chat.completion",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "{}", "reasoning_content": "thinking"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
            })
        );
        let completion = crate::model::Completion::from_response(body).expect("reads");
        assert_eq!(completion.reasoning.as_deref(), Some("thinking"));
        assert_eq!(completion.usage.map(|u| u.total_tokens), Some(8));
    }

    #[test]
    fn inline_think_deltas_count_as_reasoning_and_stay_in_the_content() {
        let (assembler, steps) = assemble(&[
            json!({"choices": [{"delta": {"content": "<think>"}}]}),
            json!({"choices": [{"delta": {"content": "hm"}}]}),
            json!({"choices": [{"delta": {"content": "</think>"}}]}),
            json!({"choices": [{"delta": {"content": "ok"}, "finish_reason": "stop"}]}),
        ]);
        let reasoning: u64 = steps.iter().map(|s| s.reasoning).sum();
        let content: u64 = steps.iter().map(|s| s.content).sum();
        assert_eq!((reasoning, content), (3, 1));
        assert_eq!(
            assembler.body()["choices"][0]["message"]["content"],
            "<think>hm</think>ok"
        );
    }

    #[test]
    fn a_stream_without_finish_reason_or_done_has_not_ended() {
        let (assembler, _) = assemble(&[json!({"choices": [{"delta": {"content": "par"}}]})]);
        assert!(!assembler.ended());
        let mut done = Assembler::default();
        done.event(&Event {
            data: "[DONE]".into(),
        })
        .expect("done");
        assert!(done.ended());
    }

    #[test]
    fn an_error_event_and_junk_are_problems() {
        let mut assembler = Assembler::default();
        assert_eq!(
            assembler.event(&Event {
                data: r#"{"error": {"message": "overloaded"}}"#.into()
            }),
            Err(StreamProblem::Error {
                message: "overloaded".into()
            })
        );
        assert!(matches!(
            assembler.event(&Event {
                data: "<html>".into()
            }),
            Err(StreamProblem::NotJson { .. })
        ));
    }
}
