//! Secrets, driven through the real binary: the API key and the base URL's credentials reach
//! the server and nothing else (artifacts, recordings, logs, stdout, `agent config`); a weak
//! key (`ollama`, `x`, `EMPTY`) is never taken for a secret, so it never alters a reply; a
//! secret key that comes back inside a reply fails the run visibly instead of being rewritten;
//! `api_key_env` in `agent.toml` names only LLM provider key variables.

mod common;
#[path = "support/faults.rs"]
mod faults;
#[path = "support/project.rs"]
mod project;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use faults::{Fault, FaultServer};
use serde_json::{Value, json};

const SENTINEL: &str = "sk-SENTINEL-3f1c9a7e-never-print-me";

/// `agent ARGS` in `dir` with `env`, the model `m` at `base_url`.
async fn agent(dir: &Path, base_url: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = common::agent_in(dir);
    command
        .args(args)
        .args(["--base-url", base_url, "--model", "m"])
        .env("AGENT_TEST_NO_RETRY_DELAY", "1")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("AGENT_MODEL")
        .env_remove("AGENT_PROFILE");
    for (name, value) in env {
        command.env(name, value);
    }
    tokio::task::spawn_blocking(move || command.output().expect("agent runs"))
        .await
        .expect("joins")
}

/// `agent run answer` asking `question`, its run folder at `dir/out`.
async fn run(
    dir: &Path,
    base_url: &str,
    question: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let out = dir.join("out");
    let var = format!("QUESTION={question}");
    let mut args = vec![
        "run",
        "answer",
        "--var",
        &var,
        "--out",
        out.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(extra);
    agent(dir, base_url, &args, env).await
}

/// A server answering every request with a completion saying `content`.
async fn replying(content: &str) -> FaultServer {
    FaultServer::start(Fault::Body(Arc::new(faults::completion_body(content)))).await
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// `secret` appears in no file under `dir` and not in `output`.
fn assert_nowhere(secret: &str, dir: &Path, output: &Output) {
    assert!(!text(&output.stdout).contains(secret), "on stdout");
    assert!(!text(&output.stderr).contains(secret), "on stderr");
    for file in walk(dir) {
        let content = std::fs::read(&file).expect("reads");
        assert!(
            !text(&content).contains(secret),
            "in {}: {}",
            file.display(),
            text(&content)
        );
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_weak_key_such_as_ollama_never_alters_a_reply() {
    for (key, answer) in [
        ("ollama", "Served by the ollama sidecar."),
        ("x", "The next box ships in six weeks; max 4 boxes."),
        ("EMPTY", "EMPTY queue: nothing left to release."),
    ] {
        let reply = json!({ "answer": answer }).to_string();
        let server = replying(&reply).await;
        let dir = project::answer_project();
        let output = run(
            dir.path(),
            &server.base_url,
            "what is the release status",
            &[],
            &[("OPENAI_API_KEY", key)],
        )
        .await;
        assert_eq!(
            output.status.code(),
            Some(0),
            "{key}: {}",
            text(&output.stderr)
        );
        assert_eq!(
            text(&output.stdout),
            format!("{reply}\n"),
            "{key}: the deliverable as sent"
        );
        let deliverable: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("out/deliverable.json")).expect("written"),
        )
        .expect("json");
        assert_eq!(deliverable["answer"], answer, "{key}");
        let head = &server.seen()[0].head;
        assert!(
            head.to_ascii_lowercase().contains(&format!(
                "authorization: bearer {}",
                key.to_ascii_lowercase()
            )),
            "{key}: the key is still sent: {head}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_key_inside_the_reply_fails_the_run_visibly_and_is_written_nowhere() {
    let server = replying(&json!({ "answer": format!("the key is {SENTINEL}") }).to_string()).await;
    let dir = project::answer_project();
    let recording = dir.path().join("recording.json");
    let output = run(
        dir.path(),
        &server.base_url,
        "what is the release status",
        &["--json", "--record", recording.to_str().expect("utf-8")],
        &[("OPENAI_API_KEY", SENTINEL), ("RUST_LOG", "trace")],
    )
    .await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("sent the API key back"), "{stderr}");
    let envelope: Value = serde_json::from_slice(&output.stdout).expect("one envelope");
    assert_eq!(envelope["outcome"], "model-error");
    assert_eq!(envelope["deliverable"], Value::Null);
    assert!(!dir.path().join("out/deliverable.json").exists());
    assert_nowhere(SENTINEL, dir.path(), &output);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_in_the_reasoning_or_metadata_is_redacted_and_the_deliverable_kept() {
    let reply = json!({ "answer": "released" }).to_string();
    let mut body: Value =
        serde_json::from_slice(&faults::completion_body(&reply)).expect("a completion");
    body["choices"][0]["message"]["reasoning_content"] = json!(format!("I saw {SENTINEL}"));
    body["system_fingerprint"] = json!(SENTINEL);
    let server = FaultServer::start(Fault::Body(Arc::new(
        serde_json::to_vec(&body).expect("serializes"),
    )))
    .await;
    let dir = project::answer_project();
    let recording = dir.path().join("recording.json");
    let output = run(
        dir.path(),
        &server.base_url,
        "what is the release status",
        &["--record", recording.to_str().expect("utf-8")],
        &[("OPENAI_API_KEY", SENTINEL)],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), format!("{reply}\n"));
    let reasoning =
        std::fs::read_to_string(dir.path().join("out/reasoning.md")).expect("reasoning.md");
    assert!(reasoning.contains("[redacted]"), "{reasoning}");
    assert_nowhere(SENTINEL, dir.path(), &output);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_in_the_inputs_is_kept_out_of_artifacts_and_recordings_and_replays() {
    let reply = json!({ "answer": "yes" }).to_string();
    let server = replying(&reply).await;
    let dir = project::answer_project();
    let recording = dir.path().join("recording.json");
    let question = format!("is {SENTINEL} still valid");
    let env = [("OPENAI_API_KEY", SENTINEL)];
    let output = run(
        dir.path(),
        &server.base_url,
        &question,
        &["--record", recording.to_str().expect("utf-8")],
        &env,
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        text(&server.seen()[0].body).contains(SENTINEL),
        "the input itself is sent: it is the question"
    );
    assert!(recording.is_file());
    assert_nowhere(SENTINEL, dir.path(), &output);

    // The recording still answers the same request offline.
    std::fs::remove_dir_all(dir.path().join("out")).expect("clears");
    let replay = run(
        dir.path(),
        &server.base_url,
        &question,
        &["--replay", recording.to_str().expect("utf-8")],
        &env,
    )
    .await;
    assert_eq!(replay.status.code(), Some(0), "{}", text(&replay.stderr));
    assert_eq!(text(&replay.stdout), format!("{reply}\n"));
    assert_eq!(server.requests(), 1, "the replay made no request");
}

#[tokio::test(flavor = "multi_thread")]
async fn base_url_credentials_reach_the_request_and_nothing_else() {
    const PASSWORD: &str = "Pw7-zQ4k-PASS-91c2";
    let server = replying(&json!({ "answer": "released" }).to_string()).await;
    let with_credentials =
        server
            .base_url
            .replacen("http://", &format!("http://release-bot:{PASSWORD}@"), 1);
    let masked = server
        .base_url
        .replacen("http://", "http://release-bot:***@", 1);
    let dir = project::answer_project();
    let output = run(
        dir.path(),
        &with_credentials,
        "what is the release status",
        &["--json"],
        &[],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let head = server.seen()[0].head.to_ascii_lowercase();
    let basic = base64(format!("release-bot:{PASSWORD}").as_bytes()).to_ascii_lowercase();
    assert!(
        head.contains(&format!("authorization: basic {basic}")),
        "the credentials are used for the request: {head}"
    );
    let run_json: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out/run.json")).expect("run.json"),
    )
    .expect("json");
    assert_eq!(run_json["endpoint"], masked.as_str());
    assert_nowhere(PASSWORD, dir.path(), &output);

    // agent config shows the URL without them.
    let config = agent(dir.path(), &with_credentials, &["config"], &[]).await;
    assert_eq!(config.status.code(), Some(0), "{}", text(&config.stderr));
    assert!(
        text(&config.stdout).contains(&masked),
        "{}",
        text(&config.stdout)
    );
    assert_nowhere(PASSWORD, dir.path(), &config);

    // An endpoint that cannot be reached is named without them too.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    let port = closed.local_addr().expect("address").port();
    drop(closed);
    let unreachable = format!("http://release-bot:{PASSWORD}@127.0.0.1:{port}/v1");
    std::fs::remove_dir_all(dir.path().join("out")).expect("clears");
    let failed = run(
        dir.path(),
        &unreachable,
        "what is the release status",
        &["--json", "--max-retries", "0"],
        &[],
    )
    .await;
    assert_eq!(failed.status.code(), Some(3), "{}", text(&failed.stderr));
    assert!(
        text(&failed.stderr).contains(&format!("http://release-bot:***@127.0.0.1:{port}/v1")),
        "{}",
        text(&failed.stderr)
    );
    assert_nowhere(PASSWORD, dir.path(), &failed);
}

#[tokio::test(flavor = "multi_thread")]
async fn api_key_env_may_name_only_llm_provider_key_variables() {
    const GITHUB_TOKEN: &str = "ghp_SENTINEL0d4c9b1e7f2a6c3d8e5f0a1b2c";
    let server = replying(&json!({ "answer": "released" }).to_string()).await;
    let dir = project::answer_project();
    project::write(
        dir.path(),
        "agent.toml",
        "profile = \"hosted\"\n[profiles.hosted]\napi_key_env = \"GITHUB_TOKEN\"\n",
    );
    let output = run(
        dir.path(),
        &server.base_url,
        "what is the release status",
        &[],
        &[("GITHUB_TOKEN", GITHUB_TOKEN)],
    )
    .await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("GITHUB_TOKEN") && stderr.contains("_API_KEY"),
        "names the variable and the rule: {stderr}"
    );
    assert_eq!(server.requests(), 0, "nothing is sent");
    assert_nowhere(GITHUB_TOKEN, dir.path(), &output);

    // A variable named for agent, ending in _API_KEY, is the user's own choice.
    project::write(
        dir.path(),
        "agent.toml",
        "profile = \"hosted\"\n[profiles.hosted]\napi_key_env = \"AGENT_GATEWAY_API_KEY\"\n",
    );
    let output = run(
        dir.path(),
        &server.base_url,
        "what is the release status",
        &[],
        &[("AGENT_GATEWAY_API_KEY", SENTINEL)],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        server.seen()[0]
            .head
            .to_ascii_lowercase()
            .contains(&format!(
                "authorization: bearer {}",
                SENTINEL.to_ascii_lowercase()
            )),
        "the key is sent"
    );
}
