//! Regressions, each named after the defect it pins down (issue 12: what a real llama.cpp
//! server showed that no mock had).

mod common;

use common::{copy_dir, json_file};

use std::path::Path;
use std::process::Output;

use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// A project in a temp dir holding the agents, contracts and the named fixture folders.
fn project(fixtures: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for part in ["prompts", "schemas"] {
        copy_dir(&common::root().join(part), &dir.path().join(part));
    }
    for fixture in fixtures {
        copy_dir(
            &common::root().join("fixtures").join(fixture),
            &dir.path().join("fixtures").join(fixture),
        );
    }
    dir
}

/// `agent ARGS` in `dir`, with no model configured by the environment, from a blocking task
/// so that a fake server keeps serving.
async fn agent_in(dir: &Path, args: Vec<String>, stdin: Option<String>) -> Output {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut command = common::agent_in(&dir);
        command
            .args(&args)
            .env_remove("AGENT_MODEL")
            .env_remove("OPENAI_BASE_URL")
            .env_remove("OPENAI_API_KEY");
        match stdin {
            None => command.output().expect("agent runs"),
            Some(text) => {
                use std::io::Write as _;
                let mut child = command
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("agent starts");
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(text.as_bytes())
                    .expect("stdin written");
                child.wait_with_output().expect("agent runs")
            }
        }
    })
    .await
    .expect("joins")
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|a| (*a).to_owned()).collect()
}

fn text(output: &Output) -> String {
    format!(
        "exit {}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn reply(name: &str) -> String {
    std::fs::read_to_string(common::root().join("fixtures").join(name)).expect("reply")
}

/// A fake server answering every request with `content`.
async fn answering(content: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "choices": [{"message": {"content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}
        })))
        .mount(&server)
        .await;
    server
}

fn model_flags(server: &MockServer) -> Vec<String> {
    args(&[
        "--model",
        "m",
        "--base-url",
        &format!("{}/v1", server.uri()),
    ])
}

/// Every request the server received, as JSON.
async fn requests(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).expect("a JSON request"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_12_eval_replay_ignores_the_sampling_flags_that_record_used() {
    let dir = project(&["release-manager/parcelpoint"]);
    let case = dir.path().join("fixtures/release-manager/capped");
    std::fs::create_dir_all(&case).expect("mkdir");
    std::fs::write(
        case.join("case.yaml"),
        "description: recorded with sampling flags\ninputs: ../parcelpoint/inputs\nexpect: { outcome: valid }\n",
    )
    .expect("case");
    let server = answering(&reply("release-manager/replies/valid.txt")).await;
    let sampling = [
        "--max-tokens",
        "64",
        "--temperature",
        "0.5",
        "--seed",
        "7",
        "--top-p",
        "0.9",
    ];
    let eval = |mode: &[&str], out: &str, with_flags: bool| {
        let mut list = args(&[
            "eval",
            "release-manager",
            "--filter",
            "capped",
            "--out",
            out,
        ]);
        list.extend(args(mode));
        if with_flags {
            list.extend(args(&sampling));
        }
        list
    };

    let mut record = eval(&["--record"], "record", true);
    record.extend(model_flags(&server));
    let recorded = agent_in(dir.path(), record, None).await;
    assert_eq!(recorded.status.code(), Some(0), "{}", text(&recorded));
    let sent = &requests(&server).await[0];
    assert_eq!(sent["max_tokens"], 64, "{sent}");
    assert_eq!(sent["seed"], 7, "{sent}");

    let replayed = agent_in(dir.path(), eval(&["--replay"], "replay", true), None).await;
    assert_eq!(
        replayed.status.code(),
        Some(0),
        "the flags it was recorded with replay it: {}",
        text(&replayed)
    );

    // Without them the recording is stale: said in plain numbers, and an input error as
    // `agent run` and `agent pipeline run` call it, not a model error.
    let stale = agent_in(dir.path(), eval(&["--replay"], "stale", false), None).await;
    assert_eq!(stale.status.code(), Some(1), "{}", text(&stale));
    let table = text(&stale);
    assert!(table.contains("max_tokens: recorded 64, now "), "{table}");
    assert!(table.contains("seed: recorded 7, now none"), "{table}");
    assert!(!table.contains("Some("), "{table}");
    let report = json_file(&dir.path().join("stale/report.json"));
    assert_eq!(
        report["cases"][0]["runs"][0]["outcome"], "input-error",
        "{report}"
    );

    // A resume samples as the eval it continues: with its run cut from the stream, the
    // replay resumed without the flags makes it again with them; other flags are refused.
    std::fs::write(dir.path().join("replay/results.jsonl"), "").expect("cut");
    let resumed = agent_in(dir.path(), args(&["eval", "--resume", "replay"]), None).await;
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed));
    let refused = agent_in(
        dir.path(),
        args(&["eval", "--resume", "replay", "--max-tokens", "32"]),
        None,
    )
    .await;
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(
        text(&refused).contains(
            "started with --temperature 0.5 --max-tokens 64 --seed 7 --top-p 0.9, now --max-tokens 32"
        ),
        "{}",
        text(&refused)
    );
}

/// A server that refuses every request with a 400 saying `message`, as OpenAI words errors.
async fn refusing_with(message: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"error": {"message": message, "type": "invalid_request_error", "code": 400}}),
        ))
        .mount(&server)
        .await;
    server
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_12_a_failed_attempt_keeps_only_300_characters_of_the_server_error_double_escaped() {
    // A long message with a line break and quotes, as servers write them.
    let message = format!(
        "invalid request: \"response_format\" is not supported\ndetails: {}END",
        "x".repeat(2000)
    );
    let server = refusing_with(&message).await;
    let dir = project(&["release-manager/parcelpoint"]);
    let mut list = args(&[
        "run",
        "release-manager",
        "--inputs",
        "fixtures/release-manager/parcelpoint/inputs",
        "--out",
        "run",
        "--json",
    ]);
    list.extend(model_flags(&server));
    let output = agent_in(dir.path(), list, None).await;
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    let run = json_file(&dir.path().join("run/run.json"));
    // Kept whole (up to 4 KB) and escaped once: by the JSON, not before it as well.
    let error = run["error"].as_str().expect("an error");
    assert!(error.ends_with(&message), "{error}");
    let envelope: Value = serde_json::from_slice(&output.stdout).expect("envelope");
    assert_eq!(envelope["error"], run["error"]);
    // The terminal shows it on one line, each line break escaped once.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("\"response_format\" is not supported\\ndetails: xxx"),
        "{stderr}"
    );
    assert!(!stderr.contains("\\\\n"), "{stderr}");
}

/// The eval report's `error` holds the server's message as it wrote it (the JSON escapes it
/// once), and the table shows its first line with control characters escaped.
#[tokio::test(flavor = "multi_thread")]
async fn an_eval_keeps_the_server_error_escaped_once() {
    let message = "invalid request: \"response_format\" is not supported\n\u{1b}[2Jdetails: END";
    let server = refusing_with(message).await;
    let dir = project(&["release-manager/parcelpoint"]);
    let mut list = args(&["eval", "release-manager", "--live", "--out", "eval"]);
    list.extend(model_flags(&server));
    let output = agent_in(dir.path(), list, None).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let report = json_file(&dir.path().join("eval/report.json"));
    let error = report["cases"][0]["runs"][0]["error"]
        .as_str()
        .expect("an error");
    assert!(error.ends_with(message), "{error}");
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        table.contains("\"response_format\" is not supported"),
        "{table}"
    );
    assert!(
        !table.contains('\u{1b}'),
        "no raw escape reaches the terminal: {table}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_12_minus_zero_becomes_minus_zero_point_zero_in_the_json_envelope() {
    let valid = reply("release-manager/replies/valid.txt");
    let written = valid.replace(
        "\"validation_duration_minutes\": 120",
        "\"validation_duration_minutes\": -0",
    );
    assert_ne!(written, valid);
    let server = answering(&written).await;
    let dir = project(&["release-manager/parcelpoint"]);
    let mut list = args(&[
        "run",
        "release-manager",
        "--inputs",
        "fixtures/release-manager/parcelpoint/inputs",
        "--out",
        "run",
        "--json",
    ]);
    list.extend(model_flags(&server));
    let output = agent_in(dir.path(), list, None).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("\"validation_duration_minutes\": -0,")
            || stdout.contains("\"validation_duration_minutes\": -0\n"),
        "the deliverable's numbers as written: {stdout}"
    );
    assert!(
        !stdout.contains("-0.0\n") && !stdout.contains("-0.0,"),
        "{stdout}"
    );
    let envelope: Value = serde_json::from_str(&stdout).expect("one JSON envelope");
    assert_eq!(envelope["outcome"], "valid");
    assert_eq!(
        envelope["deliverable"]["version"], "2.4.0",
        "still the parsed object"
    );
    // Every other field is where it was.
    let keys: Vec<&str> = envelope
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert!(
        keys.contains(&"run_folder") && keys.contains(&"usage"),
        "{keys:?}"
    );
}

/// A server with a context window of `window` tokens (four bytes a token), strict as vLLM
/// is: a request whose prompt and `max_tokens` together exceed it is refused with llama.cpp's
/// 400. Every other request gets `reply`.
struct SmallWindow {
    window: u64,
    reply: String,
}

impl SmallWindow {
    fn prompt_tokens(body: &Value) -> u64 {
        let bytes: usize = body["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["content"].as_str().unwrap_or_default().len())
            .sum();
        (bytes as u64).div_ceil(4)
    }

    fn fits(&self, body: &Value) -> bool {
        Self::prompt_tokens(body) + body["max_tokens"].as_u64().unwrap_or(0) <= self.window
    }
}

impl Respond for SmallWindow {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).expect("json");
        let prompt = Self::prompt_tokens(&body);
        if !self.fits(&body) {
            return ResponseTemplate::new(400).set_body_json(json!({"error": {
                "code": 400,
                "message": "the request exceeds the available context size, try increasing it",
                "type": "exceed_context_size_error",
                "n_prompt_tokens": prompt,
                "n_ctx": self.window,
            }}));
        }
        let completion = (self.reply.len() as u64).div_ceil(4);
        ResponseTemplate::new(200).set_body_json(json!({
            "choices": [{"message": {"content": self.reply}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        }))
    }
}

async fn small_window(window: u64, reply: String) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(SmallWindow { window, reply })
        .mount(&server)
        .await;
    server
}

/// `agent run release-manager` on the Parcelpoint inputs against `server`, into `run/`.
async fn run_release_manager(dir: &Path, server: &MockServer, extra: &[&str]) -> Output {
    let mut list = args(&[
        "run",
        "release-manager",
        "--inputs",
        "fixtures/release-manager/parcelpoint/inputs",
        "--out",
        "run",
        "--json",
    ]);
    list.extend(args(extra));
    list.extend(model_flags(server));
    agent_in(dir, list, None).await
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_12_re_asks_overflow_a_real_context_window_and_end_model_error() {
    // About 4,900 tokens of JSON with one enum off: each re-ask re-sent it whole, so the
    // third attempt (two replies and the prompt, plus 8,000 tokens of max_tokens) overflowed
    // a 16,384-token window.
    let invalid = reply("release-manager/replies/enum-off-by-case.txt");
    let server = small_window(16_384, invalid).await;
    let dir = project(&["release-manager/parcelpoint"]);
    let output = run_release_manager(dir.path(), &server, &[]).await;
    assert_eq!(
        output.status.code(),
        Some(1),
        "the contract failure stands: {}",
        text(&output)
    );
    let envelope: Value = serde_json::from_slice(&output.stdout).expect("envelope");
    assert_eq!(envelope["outcome"], "violated");
    assert_eq!(envelope["attempts"], 3, "{envelope}");
    assert_eq!(
        envelope["violations"][0]["rule"], "schema.enum",
        "{envelope}"
    );
    let run = json_file(&dir.path().join("run/run.json"));
    assert_eq!(
        run["parameters"]["context_window"], 16_384,
        "learned: {run}"
    );
    // The refused attempt was planned again to fit: the last reply alone, a lower limit.
    let third = &run["attempts"][2];
    assert!(
        third["fitted"]
            .as_str()
            .is_some_and(|f| f.contains("only the last reply")),
        "{third}"
    );
    let sent = json_file(&dir.path().join("run/attempt-3/request.json"));
    assert_eq!(sent["messages"].as_array().map(Vec::len), Some(3), "{sent}");
    let requests = requests(&server).await;
    assert_eq!(requests.len(), 4, "three attempts and the one refusal");
    let window = SmallWindow {
        window: 16_384,
        reply: String::new(),
    };
    assert!(!window.fits(&requests[2]) && window.fits(&requests[3]));
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_12_a_context_window_given_up_front_is_never_overflowed() {
    let invalid = reply("release-manager/replies/enum-off-by-case.txt");
    let server = small_window(16_384, invalid).await;
    let dir = project(&["release-manager/parcelpoint"]);
    let output = run_release_manager(dir.path(), &server, &["--context-window", "16384"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let requests = requests(&server).await;
    assert_eq!(requests.len(), 3, "no request refused");
    let window = SmallWindow {
        window: 16_384,
        reply: String::new(),
    };
    assert!(requests.iter().all(|r| window.fits(r)));
    // max_tokens came down to fit the second attempt rather than the reply being cut.
    assert!(requests[1]["max_tokens"].as_u64().is_some_and(|m| m < 8000));
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_12_a_re_ask_that_cannot_fit_ends_violated_not_model_error() {
    // A reply as long as the limit allows, on a window with room for the prompt and one such
    // reply only: no re-ask can fit with room for a corrected one.
    let invalid = reply("release-manager/replies/enum-off-by-case.txt");
    let padded = format!("{invalid}{}", " ".repeat(30_400 - invalid.len()));
    let server = small_window(11_300, padded).await;
    let dir = project(&["release-manager/parcelpoint"]);
    let output = run_release_manager(dir.path(), &server, &[]).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let envelope: Value = serde_json::from_slice(&output.stdout).expect("envelope");
    assert_eq!(envelope["outcome"], "violated");
    assert_eq!(
        envelope["violations"][0]["rule"], "schema.enum",
        "{envelope}"
    );
    let reason = envelope["stop_reason"].as_str().expect("a stop reason");
    assert!(reason.contains("context window"), "{reason}");
    assert!(envelope["error"].is_null(), "{envelope}");
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_12_a_one_of_re_ask_lists_only_the_refusal_branch_fields() {
    // `{}` is no nearer the refusal than the release record: a re-ask naming only the
    // refusal's four fields nudged the model to decline.
    let server = answering("{}").await;
    let dir = project(&["release-manager/parcelpoint"]);
    let output = run_release_manager(dir.path(), &server, &["--attempts", "2"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let sent = requests(&server).await;
    let reask = sent[1]["messages"][2]["content"]
        .as_str()
        .expect("a re-ask");
    for expected in [
        "release_record",
        "`release_id`",
        "insufficient_context",
        "`error`",
    ] {
        assert!(reask.contains(expected), "{expected} in {reask}");
    }
    // The release record comes first, as the schema lists it, with its count.
    assert!(reask.contains("(18 in all)"), "{reask}");
    // A reply that names a field of one branch is judged against that branch alone.
    let dir = project(&["release-manager/parcelpoint"]);
    let check = agent_in(
        dir.path(),
        args(&["check", "release-manager", "-"]),
        Some("{\"version\": \"2.4.0\"}".into()),
    )
    .await;
    let report = text(&check);
    assert!(
        report.contains("missing required property `release_id`"),
        "{report}"
    );
    assert!(!report.contains("`next_best_step`"), "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_12_a_run_that_learned_its_context_window_replays_offline() {
    let invalid = reply("release-manager/replies/enum-off-by-case.txt");
    let server = small_window(16_384, invalid).await;
    let dir = project(&["release-manager/parcelpoint"]);
    let recorded = run_release_manager(dir.path(), &server, &["--record", "small.json"]).await;
    assert_eq!(recorded.status.code(), Some(1), "{}", text(&recorded));
    // The refusal is recorded with the replies: the replay meets it and plans as the live
    // run did, with no server.
    let recording = json_file(&dir.path().join("small.json"));
    let statuses: Vec<&Value> = recording["exchanges"]
        .as_array()
        .expect("exchanges")
        .iter()
        .map(|e| &e["status"])
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 400).count(),
        1,
        "{statuses:?}"
    );
    let mut list = args(&[
        "run",
        "release-manager",
        "--inputs",
        "fixtures/release-manager/parcelpoint/inputs",
        "--out",
        "replayed",
        "--json",
        "--replay",
        "small.json",
    ]);
    list.extend(args(&["--base-url", "http://127.0.0.1:9/v1"]));
    let replayed = agent_in(dir.path(), list, None).await;
    assert_eq!(replayed.status.code(), Some(1), "{}", text(&replayed));
    let live: Value = serde_json::from_slice(&recorded.stdout).expect("envelope");
    let offline: Value = serde_json::from_slice(&replayed.stdout).expect("envelope");
    assert_eq!(offline["attempts"], live["attempts"]);
    assert_eq!(offline["violations"], live["violations"]);
    assert_eq!(
        requests(&server).await.len(),
        4,
        "nothing more reached the server"
    );
}
