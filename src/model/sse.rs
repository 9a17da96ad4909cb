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
//!
//! A reply is thousands of one-token events, so both read in place: an event that lies whole
//! in the bytes fed is handed on borrowed from them (only what spans two reads is copied), and
//! a chunk is read into borrowed fields, with nothing allocated for the usual one-token delta.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::ops::Range;

use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

/// Splits a byte stream into events (their data: `data:` lines joined by `\n`; other fields
/// are not needed), wherever the chunk boundaries fall (inside a line, a `\r\n` pair or a
/// UTF-8 sequence).
#[derive(Debug, Default)]
pub(crate) struct EventParser {
    /// A line begun in an earlier chunk.
    line: Vec<u8>,
    /// The data of the event in progress, once it is not a slice of the chunk being fed.
    data: Vec<u8>,
    /// The event in progress has a `data:` line.
    has_data: bool,
    /// The last byte fed was a `\r`: a `\n` right after it ends no second line.
    after_cr: bool,
}

/// Where a line being read lies.
#[derive(Clone, Copy)]
enum Whence {
    /// In the chunk being fed, from this offset.
    Chunk(usize),
    /// Not in it: begun in an earlier chunk, or the last line of the stream.
    Carried,
}

impl EventParser {
    /// Feed bytes; `on_event` gets the data of every event they complete, in order, and its
    /// first error ends the feed.
    pub(crate) fn feed<E>(
        &mut self,
        bytes: &[u8],
        mut on_event: impl FnMut(&str) -> Result<(), E>,
    ) -> Result<(), E> {
        // The data of the event in progress while it is one `data:` line of `bytes`.
        let mut pending = None;
        let mut at = 0;
        while at < bytes.len() {
            if self.after_cr {
                self.after_cr = false;
                if bytes[at] == b'\n' {
                    at += 1;
                    continue;
                }
            }
            let Some(length) = memchr::memchr2(b'\n', b'\r', &bytes[at..]) else {
                self.line.extend_from_slice(&bytes[at..]);
                break;
            };
            let end = at + length;
            self.after_cr = bytes[end] == b'\r';
            if self.line.is_empty() {
                let line = &bytes[at..end];
                self.line_done(bytes, line, Whence::Chunk(at), &mut pending, &mut on_event)?;
            } else {
                self.line.extend_from_slice(&bytes[at..end]);
                let line = std::mem::take(&mut self.line);
                let done =
                    self.line_done(bytes, &line, Whence::Carried, &mut pending, &mut on_event);
                // Keep the allocation for the next line.
                self.line = line;
                self.line.clear();
                done?;
            }
            at = end + 1;
        }
        if let Some(range) = pending {
            self.data.extend_from_slice(&bytes[range]);
        }
        Ok(())
    }

    /// The end of the stream: a last line without its newline, and a last event without its
    /// blank line, still count (some servers end so).
    pub(crate) fn finish<E>(
        &mut self,
        mut on_event: impl FnMut(&str) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut pending = None;
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.line_done(&[], &line, Whence::Carried, &mut pending, &mut on_event)?;
        }
        self.line_done(&[], &[], Whence::Carried, &mut pending, &mut on_event)
    }

    /// One line: a blank line hands on the event in progress; a `data:` line adds to it,
    /// noted in `pending` as a range of `chunk` (the bytes being fed) while it is one line of
    /// them, copied to [`EventParser::data`] once it is not.
    fn line_done<E>(
        &mut self,
        chunk: &[u8],
        line: &[u8],
        whence: Whence,
        pending: &mut Option<Range<usize>>,
        on_event: &mut impl FnMut(&str) -> Result<(), E>,
    ) -> Result<(), E> {
        if line.is_empty() {
            if !std::mem::take(&mut self.has_data) {
                return Ok(());
            }
            let done = match pending.take() {
                Some(range) => emit(&chunk[range], on_event),
                None => emit(&self.data, on_event),
            };
            self.data.clear();
            return done;
        }
        let start = match memchr::memchr(b':', line) {
            // A comment (`: keep-alive`).
            Some(0) => return Ok(()),
            Some(colon) if &line[..colon] == b"data" => {
                colon + 1 + usize::from(line.get(colon + 1) == Some(&b' '))
            }
            None if line == b"data" => line.len(),
            // Other fields (`event:`, `id:`, `retry:`) are not needed.
            _ => return Ok(()),
        };
        let value = &line[start..];
        if !self.has_data {
            self.has_data = true;
            match whence {
                Whence::Chunk(offset) => *pending = Some(offset + start..offset + line.len()),
                Whence::Carried => self.data.extend_from_slice(value),
            }
            return Ok(());
        }
        if let Some(range) = pending.take() {
            self.data.extend_from_slice(&chunk[range]);
        }
        self.data.push(b'\n');
        self.data.extend_from_slice(value);
        Ok(())
    }
}

/// Hand on one event's data, as text: UTF-8 as sent, any invalid sequence replaced.
fn emit<E>(data: &[u8], on_event: &mut impl FnMut(&str) -> Result<(), E>) -> Result<(), E> {
    match std::str::from_utf8(data) {
        Ok(text) => on_event(text),
        Err(_) => on_event(&String::from_utf8_lossy(data)),
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

type Raw<'a> = Option<&'a RawValue>;

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
    choices: Option<FirstChoice<'a>>,
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
    role: Option<Cow<'a, str>>,
    #[serde(borrow)]
    content: Raw<'a>,
    #[serde(borrow)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(borrow)]
    reasoning: Option<Cow<'a, str>>,
    #[serde(borrow)]
    refusal: Option<Cow<'a, str>>,
}

/// The choice with index 0 (a missing index is 0) of a chunk's `choices`, read without
/// collecting the list: every choice must still read as one.
struct FirstChoice<'a>(Option<Choice<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for FirstChoice<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<FirstChoice<'a>, D::Error> {
        struct Choices<'a>(PhantomData<Choice<'a>>);
        impl<'de: 'a, 'a> Visitor<'de> for Choices<'a> {
            type Value = FirstChoice<'a>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of choices")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FirstChoice<'a>, A::Error> {
                let mut first = None;
                while let Some(choice) = seq.next_element::<Choice<'a>>()? {
                    if first.is_none() && choice.index.unwrap_or(0) == 0 {
                        first = Some(choice);
                    }
                }
                Ok(FirstChoice(first))
            }
        }
        deserializer.deserialize_seq(Choices(PhantomData))
    }
}

/// A raw value parsed (it is valid JSON: it was read as part of one).
fn parse(raw: &RawValue) -> Option<Value> {
    serde_json::from_str(raw.get()).ok()
}

/// The text of a delta's `content`: a string, or the `text` of each part of a list of parts;
/// else none.
fn content_text(raw: Raw<'_>) -> Cow<'_, str> {
    let Some(raw) = raw.map(RawValue::get) else {
        return Cow::Borrowed("");
    };
    if let Some(inner) = raw.strip_prefix('"') {
        // A string without escapes is its own text (a raw value is valid JSON, so it has no
        // control characters either): the usual one-token delta is used where it lies.
        let inner = inner.strip_suffix('"').unwrap_or(inner);
        if memchr::memchr(b'\\', inner.as_bytes()).is_none() {
            return Cow::Borrowed(inner);
        }
        return serde_json::from_str(raw).unwrap_or_default();
    }
    match serde_json::from_str(raw) {
        Ok(Value::Array(parts)) => Cow::Owned(
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<String>(),
        ),
        _ => Cow::Borrowed(""),
    }
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

/// The chunk fields copied to the body from the first chunk that has them.
const HEAD: [&str; 4] = ["id", "created", "model", "system_fingerprint"];

impl Assembler {
    /// Take one event's data: what it added to the reply.
    pub(crate) fn event(&mut self, data: &str) -> Result<Step, StreamProblem> {
        let data = data.trim();
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
        if self.head.len() < HEAD.len() {
            for (key, raw) in HEAD.into_iter().zip([
                chunk.id,
                chunk.created,
                chunk.model,
                chunk.system_fingerprint,
            ]) {
                if !self.head.contains_key(key)
                    && let Some(value) = raw.and_then(parse).filter(|v| !v.is_null())
                {
                    self.head.insert(key.to_owned(), value);
                }
            }
        }
        if let Some(usage) = chunk.usage.and_then(parse).filter(Value::is_object) {
            step.completion_tokens = usage.get("completion_tokens").and_then(Value::as_u64);
            self.usage = Some(usage);
        }
        if let Some(timings) = chunk.timings.and_then(parse).filter(|t| !t.is_null()) {
            self.timings = Some(timings);
        }
        let Some(FirstChoice(Some(choice))) = chunk.choices else {
            return Ok(step);
        };
        self.saw_choice = true;
        if let Some(reason) = choice
            .finish_reason
            .filter(|r| r.get() != "null")
            .and_then(parse)
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
        let text = content_text(delta.content);
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
        // Most deltas hold no tag at all.
        if memchr::memchr(b'<', text.as_bytes()).is_none() {
            return was;
        }
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
        let mut push = |data: &str| -> Result<(), ()> {
            out.push(data.to_owned());
            Ok(())
        };
        for part in parts {
            parser.feed(part, &mut push).expect("no error");
        }
        parser.finish(&mut push).expect("no error");
        out
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

    #[test]
    fn invalid_utf8_is_replaced_and_an_error_ends_the_feed() {
        assert_eq!(
            events(&[b"data: a\xff\n", b"data: \xe2\x82\n\n"]),
            vec!["a\u{fffd}\n\u{fffd}"]
        );
        let mut parser = EventParser::default();
        let mut seen = Vec::new();
        let fed = parser.feed(b"data: 1\n\ndata: 2\n\ndata: 3\n\n", |data: &str| {
            seen.push(data.to_owned());
            if data == "2" { Err("stop") } else { Ok(()) }
        });
        assert_eq!(
            (fed, seen),
            (Err("stop"), vec!["1".to_owned(), "2".to_owned()])
        );
    }

    fn assemble(lines: &[Value]) -> (Assembler, Vec<Step>) {
        let mut assembler = Assembler::default();
        let steps = lines
            .iter()
            .map(|line| assembler.event(&line.to_string()).expect("a chunk"))
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
        done.event("[DONE]").expect("done");
        assert!(done.ended());
    }

    #[test]
    fn an_error_event_and_junk_are_problems() {
        let mut assembler = Assembler::default();
        assert_eq!(
            assembler.event(r#"{"error": {"message": "overloaded"}}"#),
            Err(StreamProblem::Error {
                message: "overloaded".into()
            })
        );
        assert!(matches!(
            assembler.event("<html>"),
            Err(StreamProblem::NotJson { .. })
        ));
    }
}
