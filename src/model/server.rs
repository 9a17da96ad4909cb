//! [`Server`]: what kind of OpenAI-compatible server answers, and the request body each one
//! accepts. The request `agent` builds (and records) is always OpenAI's; what goes on the wire
//! is adapted here, so recordings and replays do not depend on the server.
//!
//! | server | `response_format: json_schema` is sent as |
//! |---|---|
//! | `openai` | OpenAI's form `{type: json_schema, json_schema: {name, schema, strict}}` |
//! | `vllm` | the same (vLLM requires `json_schema.name`, which is always set) |
//! | `llama-server` | the same, without string `format` keywords in the schema: its grammar fails open on some (`format: uri` lets a string run to `max_tokens`); the contract still checks them |
//! | `llama-cpp-python` | `{type: json_object, schema}`, its only schema form (it answers OpenAI's with a 500) |
//! | `ollama` | OpenAI's form without `strict`, which Ollama drops |
//!
//! With no server named, OpenAI's form is sent, and a server that refuses it (a 400, 422 or
//! 500 whose message is about `response_format`) is sent llama-cpp-python's form instead,
//! which the client then keeps for the rest of the process. Streams ask for usage
//! (`stream_options.include_usage`) unless the server refused that once; `stream_options` is
//! never sent without `stream: true` (vLLM refuses it).

use serde_json::{Value, json};

/// A kind of OpenAI-compatible server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Server {
    /// OpenAI, or any server that takes its request shape as is.
    Openai,
    /// llama-cpp-python's server (`python -m llama_cpp.server`).
    LlamaCppPython,
    /// llama.cpp's own `llama-server`.
    LlamaServer,
    /// vLLM's OpenAI-compatible server.
    Vllm,
    /// Ollama's `/v1` endpoint.
    Ollama,
}

impl Server {
    /// The name used in flags and `agent.toml`.
    pub fn name(self) -> &'static str {
        match self {
            Server::Openai => "openai",
            Server::LlamaCppPython => "llama-cpp-python",
            Server::LlamaServer => "llama-server",
            Server::Vllm => "vllm",
            Server::Ollama => "ollama",
        }
    }
}

impl std::fmt::Display for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How a `response_format` with a schema is written for one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SchemaForm {
    /// `{type: json_schema, json_schema: {name, schema, strict}}`.
    OpenAi,
    /// The OpenAI form without string `format` keywords.
    OpenAiWithoutFormats,
    /// The OpenAI form without `strict`.
    OpenAiWithoutStrict,
    /// `{type: json_object, schema}`.
    JsonObjectSchema,
}

impl SchemaForm {
    /// The form `server` accepts; none named is OpenAI's.
    pub(crate) fn of(server: Option<Server>) -> SchemaForm {
        match server {
            None | Some(Server::Openai | Server::Vllm) => SchemaForm::OpenAi,
            Some(Server::LlamaServer) => SchemaForm::OpenAiWithoutFormats,
            Some(Server::LlamaCppPython) => SchemaForm::JsonObjectSchema,
            Some(Server::Ollama) => SchemaForm::OpenAiWithoutStrict,
        }
    }
}

/// What the wire body adds to the request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Wire {
    /// Stream the reply.
    pub(crate) stream: bool,
    /// Ask for usage in the stream.
    pub(crate) include_usage: bool,
    /// The schema form.
    pub(crate) form: SchemaForm,
}

impl Wire {
    /// The body to send for the request `body` (OpenAI's shape, `stream: false`).
    pub(crate) fn body(&self, mut body: Value) -> Value {
        let Some(object) = body.as_object_mut() else {
            return body;
        };
        if let Some(format) = object.get_mut("response_format") {
            adapt(format, self.form);
        }
        if self.stream {
            object.insert("stream".into(), json!(true));
            if self.include_usage {
                object.insert("stream_options".into(), json!({"include_usage": true}));
            }
        }
        body
    }
}

/// Rewrite an OpenAI `response_format` into `form`.
fn adapt(format: &mut Value, form: SchemaForm) {
    if format.get("type").and_then(Value::as_str) != Some("json_schema") {
        return;
    }
    match form {
        SchemaForm::OpenAi => {}
        SchemaForm::OpenAiWithoutStrict => {
            if let Some(spec) = format.get_mut("json_schema").and_then(Value::as_object_mut) {
                spec.remove("strict");
            }
        }
        SchemaForm::OpenAiWithoutFormats => {
            if let Some(schema) = format.pointer_mut("/json_schema/schema") {
                drop_string_formats(schema);
            }
        }
        SchemaForm::JsonObjectSchema => {
            let schema = format
                .pointer("/json_schema/schema")
                .cloned()
                .unwrap_or_else(|| json!({}));
            *format = json!({"type": "json_object", "schema": schema});
        }
    }
}

/// Remove every `format` keyword whose value is a string, at any depth of a schema (a
/// property named `format` is a key of `properties`, whose value is an object, and stays).
fn drop_string_formats(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.get("format").is_some_and(Value::is_string) {
                map.remove("format");
            }
            map.values_mut().for_each(drop_string_formats);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_string_formats),
        _ => {}
    }
}

/// Whether an error answer refuses the `response_format` sent: a 400, 422 or 500 whose
/// message speaks of it (llama-cpp-python: "Input should be 'text' or 'json_object'" on
/// `('body', 'response_format', 'type')`; llama-server: "response_format type must be one
/// of …"; vLLM: `response_format.json_schema.name` "Field required").
pub(crate) fn refuses_response_format(status: u16, body: &str) -> bool {
    matches!(status, 400 | 422 | 500)
        && (body.contains("response_format")
            || body.contains("json_schema")
            || body.contains("'text' or 'json_object'"))
}

/// Whether an error answer refuses `stream_options`.
pub(crate) fn refuses_stream_options(status: u16, body: &str) -> bool {
    matches!(status, 400 | 422) && body.contains("stream_options")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Value {
        json!({
            "model": "m",
            "messages": [],
            "stream": false,
            "response_format": {"type": "json_schema", "json_schema": {"name": "verdict", "strict": false, "schema": {
                "type": "object",
                "properties": {"url": {"type": "string", "format": "uri"}, "format": {"type": "string"}}
            }}}
        })
    }

    fn sent(server: Option<Server>, stream: bool) -> Value {
        Wire {
            stream,
            include_usage: true,
            form: SchemaForm::of(server),
        }
        .body(request())
    }

    #[test]
    fn each_server_gets_the_response_format_it_accepts() {
        let openai = sent(Some(Server::Openai), false);
        assert_eq!(openai, request());
        assert_eq!(sent(Some(Server::Vllm), false), request());
        assert_eq!(sent(None, false), request());

        let python = sent(Some(Server::LlamaCppPython), false);
        assert_eq!(python["response_format"]["type"], "json_object");
        assert_eq!(
            python["response_format"]["schema"],
            request()["response_format"]["json_schema"]["schema"]
        );

        let ollama = sent(Some(Server::Ollama), false);
        assert!(
            ollama
                .pointer("/response_format/json_schema/strict")
                .is_none()
        );
        assert_eq!(ollama["response_format"]["json_schema"]["name"], "verdict");

        let llama = sent(Some(Server::LlamaServer), false);
        let properties = &llama["response_format"]["json_schema"]["schema"]["properties"];
        assert!(properties["url"].get("format").is_none(), "{properties}");
        assert_eq!(
            properties["format"],
            json!({"type": "string"}),
            "a property named format stays"
        );
    }

    #[test]
    fn stream_options_go_only_with_stream_true() {
        let whole = sent(Some(Server::Vllm), false);
        assert_eq!(whole["stream"], false);
        assert!(whole.get("stream_options").is_none());
        let streamed = sent(Some(Server::Vllm), true);
        assert_eq!(streamed["stream"], true);
        assert_eq!(streamed["stream_options"], json!({"include_usage": true}));
    }

    #[test]
    fn json_object_is_sent_as_is_everywhere() {
        for server in [Server::LlamaCppPython, Server::Ollama, Server::LlamaServer] {
            let body = Wire {
                stream: false,
                include_usage: false,
                form: SchemaForm::of(Some(server)),
            }
            .body(json!({"response_format": {"type": "json_object"}}));
            assert_eq!(body["response_format"], json!({"type": "json_object"}));
        }
    }

    #[test]
    fn refusals_are_known_from_the_transcripts() {
        let python =
            include_str!("../../tests/transcripts/llama-cpp-python/json-schema.response.json");
        assert!(refuses_response_format(500, python));
        let vllm = include_str!("../../tests/transcripts/vllm/json-schema-no-name.response.json");
        assert!(refuses_response_format(400, vllm));
        let options = include_str!(
            "../../tests/transcripts/vllm/stream-options-without-stream.response.json"
        );
        assert!(refuses_stream_options(400, options));
        assert!(!refuses_response_format(503, python));
        assert!(!refuses_response_format(500, "out of memory"));
    }
}
