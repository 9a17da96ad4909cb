//! Streamed replies (SSE), driven through the real binary against `support/sse.rs`: the
//! assembled reply gives the same artifacts a whole reply does; a cut stream, a stall and an
//! endless stream end in documented exit codes; `--no-stream` asks for one whole body; the
//! server profiles send `response_format` in each server's form.

mod common;
#[path = "support/project.rs"]
mod project;
#[path = "support/sse.rs"]
mod sse;

use std::path::Path;
use std::process::Output;
use std::sync::Arc;

use serde_json::{Value, json};
use sse::{End, Reply, SseServer, chunks};

/// `agent ARGS` in `dir` against `server`, from a blocking task so the server keeps serving.
async fn agent(dir: &Path, server: &SseServer, args: &[&str]) -> Output {
    let mut command = common::agent_in(dir);
    command
        .args(args)
        .args(["--base-url", &server.base_url, "--model", "m"])
        .env("AGENT_TEST_NO_RETRY_DELAY", "1")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("AGENT_MODEL")
        .env_remove("AGENT_PROFILE");
    tokio::task::spawn_blocking(move || command.output().expect("agent runs"))
        .await
        .expect("joins")
}

/// `agent run answer` with its run folder at `dir/out`.
async fn run(dir: &Path, server: &SseServer, extra: &[&str]) -> Output {
    let out = dir.join("out");
    let mut args = vec![
        "run",
        "answer",
        "--var",
        "QUESTION=what is the release status",
        "--out",
        out.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(extra);
    agent(dir, server, &args).await
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn json_file(path: &Path) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("{} is written: {e}", path.display())),
    )
    .expect("json")
}

const ANSWER: [&str; 5] = ["{\"answer\"", ": \"", "all green", "\"", "}"];

#[tokio::test(flavor = "multi_thread")]
async fn a_streamed_reply_is_assembled_into_the_same_artifacts_as_a_whole_one() {
    let usage = json!({"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25});
    let server = SseServer::always(Reply::events(chunks(&ANSWER, "stop", Some(usage)))).await;
    let dir = project::answer_project();
    let output = run(dir.path(), &server, &["--json"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let envelope: Value = serde_json::from_slice(&output.stdout).expect("one envelope");
    assert_eq!(envelope["deliverable"], json!({"answer": "all green"}));
    assert_eq!(
        envelope["usage"]["total_tokens"], 25,
        "usage from the final chunk"
    );

    let sent = &server.bodies()[0];
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["stream_options"], json!({"include_usage": true}));
    let out = dir.path().join("out");
    assert_eq!(
        &json_file(&out.join("attempt-1/request.json")),
        sent,
        "request.json is the body sent"
    );
    let response = json_file(&out.join("attempt-1/response.json"));
    assert_eq!(response["object"], "chat.completion");
    assert_eq!(
        response["choices"][0]["message"]["content"],
        ANSWER.concat()
    );
    assert_eq!(response["choices"][0]["finish_reason"], "stop");
    assert_eq!(response["usage"]["total_tokens"], 25);
    assert_eq!(
        std::fs::read_to_string(out.join("attempt-1/reply.md")).expect("reply"),
        ANSWER.concat()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_stream_asks_for_one_whole_body() {
    let body = json!({"choices": [{"message": {"content": "{\"answer\": \"ok\"}"}, "finish_reason": "stop"}]});
    let server = SseServer::always(Reply::json(200, body.to_string().as_bytes())).await;
    let dir = project::answer_project();
    let output = run(dir.path(), &server, &["--no-stream"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let sent = &server.bodies()[0];
    assert_eq!(sent["stream"], false);
    assert!(sent.get("stream_options").is_none(), "{sent}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_whole_json_body_answering_a_streaming_request_is_read_as_a_reply() {
    let body = json!({"choices": [{"message": {"content": "{\"answer\": \"ok\"}"}, "finish_reason": "stop"}]});
    let server = SseServer::always(Reply::json(200, body.to_string().as_bytes())).await;
    let dir = project::answer_project();
    let output = run(dir.path(), &server, &[]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(server.bodies()[0]["stream"], true);
    assert_eq!(output.stdout, b"{\"answer\": \"ok\"}\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_cut_before_its_finish_reason_or_done_is_never_a_result() {
    // Valid JSON so far, then the connection closes: no finish_reason, no [DONE].
    let mut events = chunks(&ANSWER, "stop", None);
    events.truncate(1 + ANSWER.len());
    let server = SseServer::always(Reply::events(events)).await;
    let dir = project::answer_project();
    let output = run(dir.path(), &server, &["--max-retries", "1"]).await;
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(3), "{text}");
    assert!(text.contains("stopped before it ended"), "{text}");
    assert!(
        text.contains("after 1 retry"),
        "a cut stream is retried: {text}"
    );
    assert_eq!(server.bodies().len(), 2);
    assert!(output.stdout.is_empty());
    let out = dir.path().join("out");
    assert!(!out.join("deliverable.json").exists());
    assert_eq!(json_file(&out.join("run.json"))["outcome"], "model-error");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_finish_reason_without_done_ends_the_reply() {
    let mut events = chunks(&ANSWER, "stop", None);
    events.pop();
    let server = SseServer::always(Reply::events(events)).await;
    let dir = project::answer_project();
    let output = run(dir.path(), &server, &[]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_that_stalls_ends_at_the_idle_timeout_not_the_total_one() {
    let mut reply = Reply::events(chunks(&ANSWER[..2], "stop", None));
    reply.parts.truncate(3);
    reply.end = End::Stall;
    let server = SseServer::always(reply).await;
    let dir = project::answer_project();
    let output = run(
        dir.path(),
        &server,
        &[
            "--idle-timeout",
            "1",
            "--timeout",
            "3600",
            "--max-retries",
            "0",
        ],
    )
    .await;
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(3), "{text}");
    assert!(
        text.contains("sent nothing for 1 s in the middle of a streamed reply"),
        "{text}"
    );
    assert!(text.contains("--idle-timeout"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_stream_stops_at_the_reply_byte_limit() {
    let filler = "x".repeat(1000);
    let events: Vec<String> = (0..2_000).map(|_| sse::content_chunk(&filler)).collect();
    let server = SseServer::always(Reply::events(events)).await;
    let dir = project::answer_project();
    let output = run(dir.path(), &server, &["--max-reply-bytes", "100000"]).await;
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(3), "{text}");
    assert!(text.contains("100000-byte limit"), "{text}");
    assert!(text.len() < 64 * 1024, "stderr stays bounded");
    assert_eq!(server.bodies().len(), 1, "not retried");
}

#[tokio::test(flavor = "multi_thread")]
async fn reasoning_deltas_are_kept_apart_from_the_deliverable() {
    let mut events = vec![
        json!({"choices": [{"index": 0, "delta": {"role": "assistant", "reasoning_content": "Weighing "}}]}).to_string(),
        json!({"choices": [{"index": 0, "delta": {"reasoning_content": "the checks."}}]}).to_string(),
    ];
    events.extend(chunks(&ANSWER, "stop", None));
    let server = SseServer::always(Reply::events(events)).await;
    let dir = project::answer_project();
    let output = run(dir.path(), &server, &[]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("{}\n", ANSWER.concat())
    );
    let out = dir.path().join("out");
    assert_eq!(
        std::fs::read_to_string(out.join("reasoning.md")).expect("reasoning"),
        "Weighing the checks."
    );
    assert_eq!(
        json_file(&out.join("attempt-1/response.json"))["choices"][0]["message"]["reasoning_content"],
        "Weighing the checks."
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streamed_recording_replays_offline() {
    let server = SseServer::always(Reply::events(chunks(&ANSWER, "stop", None))).await;
    let dir = project::answer_project();
    let recording = dir.path().join("rec.json");
    let recording = recording.to_str().expect("utf-8");
    let output = run(dir.path(), &server, &["--record", recording]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    drop(server);
    let mut command = common::agent_in(dir.path());
    command.args([
        "run",
        "answer",
        "--var",
        "QUESTION=what is the release status",
        "--replay",
        recording,
    ]);
    let replay = tokio::task::spawn_blocking(move || command.output().expect("runs"))
        .await
        .expect("joins");
    assert_eq!(replay.status.code(), Some(0), "{}", stderr(&replay));
    assert_eq!(replay.stdout, output.stdout);
}

/// A llama-cpp-python answer: a 500 to OpenAI's `json_schema` form, JSON to its own form.
fn llama_cpp_python(_: usize, body: &Value) -> Reply {
    if body["response_format"]["type"] == "json_schema" {
        return Reply::json(
            500,
            include_bytes!("transcripts/llama-cpp-python/json-schema.response.json"),
        );
    }
    if body["stream"] == true {
        return Reply::events(chunks(&ANSWER, "stop", None));
    }
    let whole =
        json!({"choices": [{"message": {"content": ANSWER.concat()}, "finish_reason": "stop"}]});
    Reply::json(200, whole.to_string().as_bytes())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_refusing_json_schema_is_sent_its_own_form_and_the_run_succeeds() {
    let server = SseServer::start(Arc::new(llama_cpp_python)).await;
    let dir = project::answer_project();
    let output = run(dir.path(), &server, &["--response-format", "json-schema"]).await;
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("llama-cpp-python's form"), "{text}");
    let bodies = server.bodies();
    assert_eq!(bodies.len(), 2, "one refusal, one answer");
    assert_eq!(bodies[1]["response_format"]["type"], "json_object");
    assert_eq!(
        bodies[1]["response_format"]["schema"]["required"],
        json!(["answer"])
    );
    assert_eq!(
        &json_file(&dir.path().join("out/attempt-1/request.json")),
        &bodies[1],
        "request.json is the body that got the answer"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_named_server_gets_its_form_from_the_first_request() {
    let server = SseServer::start(Arc::new(llama_cpp_python)).await;
    let dir = project::answer_project();
    let output = run(
        dir.path(),
        &server,
        &[
            "--response-format",
            "json-schema",
            "--server",
            "llama-cpp-python",
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(server.bodies().len(), 1);
    assert_eq!(server.bodies()[0]["response_format"]["type"], "json_object");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_kind_can_be_set_in_an_agent_toml_profile() {
    let server = SseServer::start(Arc::new(llama_cpp_python)).await;
    let dir = project::answer_project();
    project::write(
        dir.path(),
        "agent.toml",
        "profile = \"local\"\n[profiles.local]\nserver = \"llama-cpp-python\"\nstream = false\n",
    );
    let output = run(dir.path(), &server, &["--response-format", "json-schema"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let sent = &server.bodies()[0];
    assert_eq!(sent["response_format"]["type"], "json_object");
    assert_eq!(sent["stream"], false, "the profile's stream = false");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_refuses_every_form_gets_a_hint_naming_the_profiles() {
    let refusal = include_bytes!("transcripts/llama-cpp-python/json-schema.response.json");
    let server = SseServer::always(Reply::json(500, refusal)).await;
    let dir = project::answer_project();
    let output = run(
        dir.path(),
        &server,
        &["--response-format", "json-schema", "--max-retries", "0"],
    )
    .await;
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(3), "{text}");
    assert!(text.contains("--server"), "{text}");
    assert!(text.contains("--response-format json-object"), "{text}");
    assert_eq!(
        server.bodies().len(),
        2,
        "the original form, then the learned one"
    );
}

/// Every server answer here is the valid reply, streamed or whole as asked.
fn answer(_: usize, body: &Value) -> Reply {
    llama_cpp_python(0, &json!({"stream": body["stream"]}))
}

fn formats_sent(server: &SseServer) -> Vec<Value> {
    server
        .bodies()
        .iter()
        .map(|b| b["response_format"]["type"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn eval_takes_response_format_from_the_flag_and_a_case_from_its_own_file() {
    let server = SseServer::start(Arc::new(answer)).await;
    let dir = project::answer_project();
    let out = dir.path().join("eval-flag");
    let output = agent(
        dir.path(),
        &server,
        &[
            "eval",
            "answer",
            "--live",
            "--response-format",
            "json-object",
            "--out",
            out.to_str().expect("utf-8"),
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(formats_sent(&server), vec![json!("json_object")]);

    project::write(
        dir.path(),
        "fixtures/answer/one/case.yaml",
        "description: One question\nresponse_format: json-schema\nexpect: { outcome: valid }\n",
    );
    let out = dir.path().join("eval-case");
    let output = agent(
        dir.path(),
        &server,
        &[
            "eval",
            "answer",
            "--live",
            "--response-format",
            "json-object",
            "--out",
            out.to_str().expect("utf-8"),
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        formats_sent(&server)[1],
        json!("json_schema"),
        "the case's own wins"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pipeline_run_takes_response_format_from_the_flag_and_a_step_from_its_own() {
    let server = SseServer::start(Arc::new(answer)).await;
    let dir = project::answer_project();
    let output = agent(
        dir.path(),
        &server,
        &[
            "pipeline",
            "run",
            "pipelines/answer.yaml",
            "--response-format",
            "json-object",
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(formats_sent(&server), vec![json!("json_object")]);

    project::write(
        dir.path(),
        "pipelines/answer.yaml",
        "name: answer\ndescription: One question answered\noutput: ask\nsteps:\n  ask:\n    agent: answer\n    response_format: json-schema\n    inputs:\n      QUESTION: what is the release status\n",
    );
    let output = agent(
        dir.path(),
        &server,
        &[
            "pipeline",
            "run",
            "pipelines/answer.yaml",
            "--response-format",
            "json-object",
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        formats_sent(&server)[1],
        json!("json_schema"),
        "the step's own wins"
    );
}
