//! `agent mcp` end to end: a real MCP client (rmcp, over the child process's stdin and stdout)
//! initializes, lists the agents as tools and calls them, against a local fake
//! OpenAI-compatible server (wiremock on 127.0.0.1).

mod common;

use std::path::PathBuf;
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult, JsonObject};
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// In the notes of the call whose replies all break the contract, so the fake model knows it.
const STAYS_BROKEN: &str = "mcp test: this release stays broken";

fn reply(agent: &str, file: &str) -> String {
    std::fs::read_to_string(
        common::root()
            .join("fixtures")
            .join(agent)
            .join("replies")
            .join(file),
    )
    .expect("fixture reply")
}

fn ok(content: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-test", "object": "chat.completion", "created": 1, "model": "test-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}
    }))
}

/// The fake model: a broken plan for the call that says so (all three attempts), the release
/// record for the release manager, and a valid plan for anything else; each as often as the
/// test expects to ask.
async fn fake_model() -> MockServer {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds 127.0.0.1");
    let server = MockServer::builder().listener(listener).start().await;
    Mock::given(method("POST"))
        .and(body_string_contains(STAYS_BROKEN))
        .respond_with(ok(&reply("deployment-plan", "prose-only.md")))
        .with_priority(1)
        .expect(3)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(body_string_contains("Release Manager Agent"))
        .respond_with(ok(&reply("release-manager", "valid.txt")))
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ok(&reply("deployment-plan", "valid.md")))
        .with_priority(2)
        .expect(1)
        .mount(&server)
        .await;
    server
}

fn arguments(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        other => panic!("arguments must be an object, not {other}"),
    }
}

fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|block| block.as_text().map(|t| t.text.clone()))
        .collect()
}

/// The run folder the server reports in the result's `_meta`.
fn run_folder(result: &CallToolResult) -> PathBuf {
    let meta = result.meta.as_ref().expect("the result has _meta");
    PathBuf::from(
        meta.0["runFolder"]
            .as_str()
            .expect("_meta names the run folder"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_lists_the_agents_as_tools_and_calls_them() {
    let model = fake_model().await;
    let mut command = common::agent();
    command
        .args([
            "mcp",
            "--base-url",
            &format!("{}/v1", model.uri()),
            "--model",
            "test-model",
        ])
        .env("AGENT_TEST_NO_RETRY_DELAY", "1")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("AGENT_MODEL")
        .env_remove("AGENT_PROFILE");
    let transport =
        TokioChildProcess::new(tokio::process::Command::from(command)).expect("agent mcp starts");
    let exchange = async {
        // initialize
        let client = ().serve(transport).await.expect("the handshake succeeds");
        let server = client.peer_info().expect("the server introduced itself");
        assert_eq!(
            server.server_info.as_ref().map(|i| i.name.as_str()),
            Some("agent")
        );
        assert!(server.capabilities.tools.is_some(), "it serves tools");

        // tools/list
        let tools = client.list_all_tools().await.expect("tools/list");
        let mut names: Vec<&str> = tools.iter().map(|tool| tool.name.as_ref()).collect();
        names.sort_unstable();
        assert_eq!(names, common::AGENTS);
        let tool = |name: &str| {
            tools
                .iter()
                .find(|tool| tool.name == name)
                .expect("listed")
                .clone()
        };
        let manager = tool("release-manager");
        let output = manager
            .output_schema
            .as_ref()
            .expect("a JSON agent has an output schema");
        assert!(output.contains_key("oneOf") && !output.contains_key("x-agent"));
        let required = manager.input_schema["required"]
            .as_array()
            .expect("required inputs");
        assert!(required.contains(&json!("VERSION")), "{required:?}");
        assert_eq!(manager.input_schema["additionalProperties"], json!(false));
        let plan = tool("deployment-plan");
        assert!(plan.output_schema.is_none(), "a markdown agent has none");
        assert_eq!(
            plan.input_schema["properties"]["ENVIRONMENT"]["enum"],
            json!(["staging", "production"])
        );

        // tools/call: a valid plan on the first attempt
        let result = client
            .call_tool(
                CallToolRequestParams::new("deployment-plan").with_arguments(arguments(json!({
                    "NOTES": "Parcelpoint 2.4.0: reservation holds, courier QR handoff, both dark",
                    "ENVIRONMENT": "production",
                }))),
            )
            .await
            .expect("tools/call");
        assert_eq!(result.is_error, Some(false), "{}", text(&result));
        let plan = text(&result);
        assert!(
            plan.starts_with("# Deployment Plan — parcelpoint-api 2.4.0 → production\n"),
            "the text is the plan: {plan}"
        );
        assert!(!plan.contains("<think>"), "the reasoning stays out");
        assert!(result.structured_content.is_none());
        let folder = run_folder(&result);
        assert_eq!(
            std::fs::read_to_string(folder.join("deliverable.md")).expect("deliverable.md"),
            format!("{plan}\n"),
            "the run folder holds what `agent run` writes"
        );
        assert!(folder.join("run.json").is_file());
        let mut folders = vec![folder];

        // tools/call: every reply breaks the contract
        let result = client
            .call_tool(
                CallToolRequestParams::new("deployment-plan").with_arguments(arguments(json!({
                    "NOTES": STAYS_BROKEN,
                    "ENVIRONMENT": "staging",
                }))),
            )
            .await
            .expect("tools/call");
        let failure = text(&result);
        assert_eq!(result.is_error, Some(true), "{failure}");
        assert!(
            failure.starts_with("deployment-plan: violated after 3 attempts"),
            "{failure}"
        );
        assert!(
            failure.contains("markdown.no-sections at document: "),
            "{failure}"
        );
        folders.push(run_folder(&result));

        // tools/call: inputs that break the agent's rules never reach the model
        let result = client
            .call_tool(
                CallToolRequestParams::new("deployment-plan").with_arguments(arguments(json!({
                    "ENVIRONMENT": "qa",
                }))),
            )
            .await
            .expect("tools/call");
        let failure = text(&result);
        assert_eq!(result.is_error, Some(true), "{failure}");
        assert!(
            failure.contains("missing required input `NOTES`")
                && failure.contains("`ENVIRONMENT` is `qa`; allowed: `staging`, `production`"),
            "{failure}"
        );

        // tools/call: a JSON agent answers with structured content
        let result = client
            .call_tool(
                CallToolRequestParams::new("release-manager").with_arguments(arguments(json!({
                    "VERSION": "2.4.0",
                    "CHANGES_INCLUDED": "Reservation holds (dark), courier QR handoff (dark), PP-2211, PP-2240",
                    "TARGET_ENVIRONMENTS": "production (eu-central-1)",
                }))),
            )
            .await
            .expect("tools/call");
        assert_eq!(result.is_error, Some(false), "{}", text(&result));
        let record = result
            .structured_content
            .as_ref()
            .expect("structured content");
        assert_eq!(record["version"], json!("2.4.0"));
        let parsed: Value = serde_json::from_str(&text(&result)).expect("the text is the JSON");
        assert_eq!(&parsed, record);
        folders.push(run_folder(&result));

        // An unknown tool is a protocol error, not a tool result.
        let unknown = client
            .call_tool(CallToolRequestParams::new("no-such-agent"))
            .await;
        assert!(unknown.is_err(), "{unknown:?}");

        client.cancel().await.expect("the client closes");
        folders
    };
    let folders = tokio::time::timeout(Duration::from_secs(120), exchange)
        .await
        .expect("the exchange finishes");
    model.verify().await;
    for folder in folders {
        assert!(folder.starts_with(common::root().join(".agent").join("runs")));
        let _ = std::fs::remove_dir_all(folder);
    }
}

/// Start `agent mcp` with `extra` flags against `model`, and run `exchange` with a client.
async fn with_server<F, T>(model: &MockServer, extra: &[&str], exchange: F) -> T
where
    F: AsyncFnOnce(&rmcp::service::RunningService<rmcp::RoleClient, ()>) -> T,
{
    let mut command = common::agent();
    command
        .args([
            "mcp",
            "--base-url",
            &format!("{}/v1", model.uri()),
            "--model",
            "test-model",
        ])
        .args(extra)
        .env("AGENT_TEST_NO_RETRY_DELAY", "1")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("AGENT_MODEL")
        .env_remove("AGENT_PROFILE");
    let transport =
        TokioChildProcess::new(tokio::process::Command::from(command)).expect("agent mcp starts");
    let run = async {
        let client = ().serve(transport).await.expect("the handshake succeeds");
        let value = exchange(&client).await;
        client.cancel().await.expect("the client closes");
        value
    };
    tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the exchange finishes")
}

/// Call release-plan with `arguments`; the failure text (every such call fails before the
/// model, as the other inputs are missing or the arguments refused).
async fn release_plan_failure(
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
    arguments: Value,
) -> String {
    let result = client
        .call_tool(
            CallToolRequestParams::new("release-plan").with_arguments(self::arguments(arguments)),
        )
        .await
        .expect("tools/call");
    assert_eq!(result.is_error, Some(true), "{}", text(&result));
    text(&result)
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_tree_inputs_read_any_path() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds 127.0.0.1");
    let model = MockServer::builder().listener(listener).start().await;
    Mock::given(method("POST"))
        .respond_with(ok("never asked"))
        .expect(0)
        .mount(&model)
        .await;
    let outside = tempfile::tempdir().expect("temp dir");
    std::fs::write(outside.path().join("main.ts"), "export const secret = 1;\n").expect("write");
    let outside_path = outside.path().display().to_string();
    let failures = with_server(&model, &[], async |client| {
        let mut failures = Vec::new();
        for code in [outside_path.as_str(), "../outside"] {
            failures.push(
                release_plan_failure(
                    client,
                    json!({"EXISTING_CODE": code, "PROJECT_REQUEST": "x"}),
                )
                .await,
            );
        }
        failures.push(
            release_plan_failure(
                client,
                json!({"EXISTING_CODE": "src", "PROJECT_REQUEST": "x".repeat(2_000_000)}),
            )
            .await,
        );
        failures
    })
    .await;
    for outside in &failures[..2] {
        assert!(
            outside.contains("argument `EXISTING_CODE`")
                && outside.contains("outside the project directory and the allowed roots"),
            "{outside}"
        );
    }
    assert!(
        failures[2].contains("`PROJECT_REQUEST`") && failures[2].contains("over the 1.0 MB limit"),
        "{}",
        failures[2]
    );

    // `--allow-root` lets a tree argument name a directory outside the project.
    let allow = outside.path().display().to_string();
    let failure = with_server(&model, &["--allow-root", &allow], async |client| {
        release_plan_failure(
            client,
            json!({"EXISTING_CODE": outside_path, "PROJECT_REQUEST": "x"}),
        )
        .await
    })
    .await;
    assert!(
        failure.contains("missing required input `PROJECT_RULES`")
            && !failure.contains("EXISTING_CODE"),
        "only the missing inputs are named: {failure}"
    );
    model.verify().await;
}
