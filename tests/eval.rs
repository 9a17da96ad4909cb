//! `agent eval` end to end: the shipped fixtures offline, stale recordings, a broken prompt,
//! shards, resume after a kill, baselines, Ctrl-C.

mod common;

use common::{copy_dir, json_file};

use std::path::Path;
use std::process::Output;
use std::time::Duration;

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

fn eval_in(dir: &Path, args: &[&str]) -> Output {
    common::agent_in(dir)
        .arg("eval")
        .args(args)
        .env_remove("AGENT_MODEL")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("OPENAI_API_KEY")
        .output()
        .expect("agent runs")
}

/// `agent eval` in `dir` against the fake model at `server` (model `m`), from a blocking task
/// so that the server keeps serving.
async fn eval_against(dir: &Path, server: &MockServer, args: &[&str]) -> Output {
    let dir = dir.to_owned();
    let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    args.extend([
        "--model".into(),
        "m".into(),
        "--base-url".into(),
        format!("{}/v1", server.uri()),
    ]);
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        eval_in(&dir, &args)
    })
    .await
    .expect("joins")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn every_shipped_case_passes_offline() {
    let out = tempfile::tempdir().expect("temp dir");
    let json = out.path().join("report.json");
    let junit = out.path().join("report.xml");
    let markdown = out.path().join("report.md");
    let output = common::agent()
        .arg("eval")
        .arg("--out")
        .arg(out.path().join("eval"))
        .args([
            "--report",
            json.to_str().expect("utf-8"),
            "--report",
            junit.to_str().expect("utf-8"),
            "--report",
            markdown.to_str().expect("utf-8"),
        ])
        .output()
        .expect("agent runs");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&output),
        String::from_utf8_lossy(&output.stderr)
    );
    let report = json_file(&json);
    let cases = report["cases"].as_array().expect("cases");
    for agent in common::AGENTS {
        let count = cases.iter().filter(|c| c["agent"] == agent).count();
        assert!(count >= 8, "{agent} has {count} cases");
    }
    assert_eq!(report["summary"]["failed"], 0);
    assert!(
        !output.stderr.contains(&b'\r'),
        "no progress bar off a terminal"
    );
    let xml = std::fs::read_to_string(&junit).expect("junit");
    assert!(xml.contains("<testsuite name=\"release-plan\"") && !xml.contains("<failure"));
    assert!(
        std::fs::read_to_string(&markdown)
            .expect("markdown")
            .contains("## release-manager")
    );
}

#[test]
fn a_stale_recording_fails_and_says_so() {
    let dir = project(&["deployment-plan/parcelpoint"]);
    let notes = dir
        .path()
        .join("fixtures/deployment-plan/parcelpoint/inputs/notes.md");
    let text = std::fs::read_to_string(&notes).expect("notes");
    std::fs::write(&notes, text.replace("2.4.0", "2.4.1")).expect("edit");
    let output = eval_in(dir.path(), &["--out", "eval"]);
    assert_eq!(output.status.code(), Some(1));
    let table = stdout(&output);
    assert!(
        table.contains("deployment-plan/parcelpoint") && table.contains("FAIL"),
        "{table}"
    );
    assert!(table.contains("stale"), "{table}");
    assert!(table.contains("2.4.1"), "says what differs: {table}");
}

/// A fake model that does what the release-plan prompt says: returns the scaffold it was given.
struct FollowsTheScaffold;

impl Respond for FollowsTheScaffold {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).expect("json");
        let prompt = body["messages"][0]["content"].as_str().unwrap_or_default();
        let end = prompt.find("\n```\n\n### Output").unwrap_or(prompt.len());
        // The scaffold's fence is the last one to open before the output instructions.
        let start = prompt[..end]
            .rfind("```markdown\n")
            .map_or(0, |i| i + "```markdown\n".len());
        let plan = prompt[start..end].replace("{DATE}", "2026-11-24");
        ResponseTemplate::new(200).set_body_json(json!({
            "choices": [{"message": {"content": plan}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}
        }))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_prompt_fails_the_matching_cases_and_junit_names_them() {
    let dir = project(&["release-plan/parcelpoint", "deployment-plan/parcelpoint"]);
    let case = dir.path().join("fixtures/release-plan/scaffold-echo");
    std::fs::create_dir_all(&case).expect("mkdir");
    std::fs::write(
        case.join("case.yaml"),
        "description: a model that follows the prompt's scaffold\ninputs: ../parcelpoint/inputs\nexpect: { outcome: valid }\nassert:\n  - { type: heading, value: \"5. Rollback & DR\" }\n",
    )
    .expect("case");
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(FollowsTheScaffold)
        .mount(&server)
        .await;
    let (root, model) = (dir.path(), &server);
    let live = |out: &'static str, report: &'static str| async move {
        eval_against(
            root,
            model,
            &[
                "release-plan",
                "--filter",
                "scaffold-echo",
                "--live",
                "--out",
                out,
                "--report",
                report,
            ],
        )
        .await
    };

    // The prompt as shipped: the model follows it and the case passes.
    let before = live("live-before", "before.xml").await;
    assert_eq!(before.status.code(), Some(0), "{}", stdout(&before));

    // Remove a section heading from the prompt's scaffold.
    let prompt_path = dir.path().join("prompts/release-plan.md");
    let prompt = std::fs::read_to_string(&prompt_path).expect("prompt");
    assert!(prompt.contains("## 5. Rollback & DR\n"));
    std::fs::write(&prompt_path, prompt.replace("## 5. Rollback & DR\n", "")).expect("break it");

    let after = live("live-after", "after.xml").await;
    assert_eq!(after.status.code(), Some(1));
    let xml = std::fs::read_to_string(dir.path().join("after.xml")).expect("junit");
    assert!(
        xml.contains("<testcase classname=\"release-plan\" name=\"scaffold-echo\""),
        "{xml}"
    );
    assert!(
        xml.contains("<failure") && xml.contains("5. Rollback &amp; DR"),
        "{xml}"
    );

    // Offline, the same break makes every recorded release-plan case stale, and only those.
    let replay = eval_in(
        dir.path(),
        &[
            "--out",
            "replay",
            "--report",
            "replay.xml",
            "--filter",
            "parcelpoint",
        ],
    );
    assert_eq!(replay.status.code(), Some(1));
    let xml = std::fs::read_to_string(dir.path().join("replay.xml")).expect("junit");
    assert!(
        xml.contains("<testsuite name=\"release-plan\" tests=\"1\" failures=\"1\""),
        "{xml}"
    );
    assert!(
        xml.contains("<testsuite name=\"deployment-plan\" tests=\"1\" failures=\"0\""),
        "{xml}"
    );
    assert!(xml.contains("stale"), "{xml}");
}

/// A fake model for `llm-rubric` cases: the release-manager agent gets its valid reply, the
/// judge gets `judge_replies` in turn (the last one repeated), and its requests are kept.
#[derive(Clone)]
struct AgentAndJudge {
    agent_reply: String,
    judge_replies: Vec<&'static str>,
    judge_requests: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
}

impl AgentAndJudge {
    fn new(judge_replies: Vec<&'static str>) -> Self {
        let agent_reply = std::fs::read_to_string(
            common::root().join("fixtures/release-manager/replies/valid.txt"),
        )
        .expect("reply");
        Self {
            agent_reply,
            judge_replies,
            judge_requests: std::sync::Arc::default(),
        }
    }

    fn judge_requests(&self) -> Vec<Value> {
        self.judge_requests.lock().expect("lock").clone()
    }
}

impl Respond for AgentAndJudge {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).expect("json");
        let prompt = body["messages"][0]["content"].as_str().unwrap_or_default();
        let content = if prompt.starts_with("You are grading the output") {
            let mut requests = self.judge_requests.lock().expect("lock");
            let turn = requests.len().min(self.judge_replies.len() - 1);
            requests.push(body);
            self.judge_replies[turn].to_owned()
        } else {
            self.agent_reply.clone()
        };
        ResponseTemplate::new(200).set_body_json(
            json!({"choices": [{"message": {"content": content}, "finish_reason": "stop"}]}),
        )
    }
}

/// Run one `llm-rubric` case live against `model` and return the report and the table.
async fn judged_case(model: AgentAndJudge) -> (Value, String) {
    let dir = project(&["release-manager/parcelpoint"]);
    let case = dir.path().join("fixtures/release-manager/judged");
    std::fs::create_dir_all(&case).expect("mkdir");
    std::fs::write(
        case.join("case.yaml"),
        "description: graded by the judge\ninputs: ../parcelpoint/inputs\nexpect: { outcome: valid }\nassert:\n  - { type: llm-rubric, value: The record names who rolls back. }\n",
    )
    .expect("case");
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(model)
        .mount(&server)
        .await;
    let output = eval_against(
        dir.path(),
        &server,
        &[
            "release-manager",
            "--filter",
            "judged",
            "--live",
            "--out",
            "live",
            "--report",
            "report.json",
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    (json_file(&dir.path().join("report.json")), stdout(&output))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_judge_is_re_asked_when_its_reply_breaks_its_contract_and_its_grade_decides() {
    // Prose first: the judge is re-asked with what was wrong, then its failing grade fails the case.
    let model = AgentAndJudge::new(vec![
        "Looks fine to me, I would pass it.",
        r#"{"reason": "no rollback owner is named", "score": 0.3, "pass": false}"#,
    ]);
    let (report, table) = judged_case(model.clone()).await;
    let requests = model.judge_requests();
    assert_eq!(requests.len(), 2, "one re-ask of the judge");
    let messages = requests[1]["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 3, "prompt, the judge's reply, the re-ask");
    assert_eq!(messages[2]["role"], "user");
    assert!(
        messages[2]["content"]
            .as_str()
            .is_some_and(|text| text.contains("JSON")),
        "{}",
        messages[2]
    );
    let run = &report["cases"][0]["runs"][0];
    assert_eq!(run["outcome"], "valid", "the agent's own run was valid");
    assert_eq!(run["passed"], false);
    assert!(
        run["failures"]
            .to_string()
            .contains("the judge failed it (0.30): no rollback owner is named"),
        "{run}"
    );
    assert!(table.contains("no rollback owner is named"), "{table}");

    // A judge that never keeps its contract fails the case and says why; it is not a pass.
    let model = AgentAndJudge::new(vec!["Looks fine to me, I would pass it."]);
    let (report, _) = judged_case(model.clone()).await;
    assert_eq!(model.judge_requests().len(), 2, "the judge's attempt bound");
    let run = &report["cases"][0]["runs"][0];
    assert_eq!(run["passed"], false);
    assert!(
        run["failures"]
            .to_string()
            .contains("the judge's reply broke its contract after 2 attempt(s): json.parse"),
        "{run}"
    );
}

/// The per-case facts that must not depend on how the eval was split.
fn outcomes(report: &Value) -> Vec<Value> {
    report["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|case| {
            let runs: Vec<Value> = case["runs"]
                .as_array()
                .expect("runs")
                .iter()
                .map(|r| {
                    json!([
                        r["outcome"],
                        r["passed"],
                        r["attempts"],
                        r["tokens"],
                        r["failures"],
                        r["error"]
                    ])
                })
                .collect();
            json!([case["id"], case["passed"], runs])
        })
        .collect()
}

#[test]
fn three_shards_merged_give_the_unsharded_results() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let whole = common::agent()
        .args(["eval", "--out", &path("all"), "--report", &path("all.json")])
        .output()
        .expect("runs");
    assert_eq!(whole.status.code(), Some(0));
    let mut shard_reports = Vec::new();
    for index in 1..=3 {
        let report = path(&format!("shard-{index}.json"));
        let output = common::agent()
            .args([
                "eval",
                "--shard",
                &format!("{index}/3"),
                "--out",
                &path(&format!("s{index}")),
                "--report",
                &report,
            ])
            .output()
            .expect("runs");
        assert_eq!(output.status.code(), Some(0));
        let cases = json_file(Path::new(&report))["cases"]
            .as_array()
            .expect("cases")
            .len();
        assert!(cases > 0, "shard {index} has cases");
        shard_reports.push(report);
    }
    let merged = common::agent()
        .args(["eval", "merge"])
        .args(&shard_reports)
        .args(["--report", &path("merged.json")])
        .output()
        .expect("runs");
    assert_eq!(
        merged.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&merged.stderr)
    );
    let all = json_file(&dir.path().join("all.json"));
    let joined = json_file(&dir.path().join("merged.json"));
    assert_eq!(outcomes(&joined), outcomes(&all));
    assert_eq!(joined["summary"], all["summary"]);

    let overlap = common::agent()
        .args(["eval", "merge"])
        .arg(&shard_reports[0])
        .arg(&shard_reports[0])
        .output()
        .expect("runs");
    assert_eq!(
        overlap.status.code(),
        Some(2),
        "overlapping shards are refused"
    );
}

#[test]
fn a_baseline_shows_what_regressed_and_fails_the_eval() {
    let dir = project(&[
        "deployment-plan/parcelpoint",
        "release-strategy/parcelpoint",
    ]);
    let first = eval_in(dir.path(), &["--out", "first", "--report", "baseline.json"]);
    assert_eq!(first.status.code(), Some(0));
    let notes = dir
        .path()
        .join("fixtures/deployment-plan/parcelpoint/inputs/notes.md");
    std::fs::write(&notes, "- something else entirely\n").expect("edit");
    let second = eval_in(
        dir.path(),
        &["--out", "second", "--baseline", "baseline.json"],
    );
    assert_eq!(second.status.code(), Some(1));
    let table = stdout(&second);
    assert!(table.contains("1 regressed, 0 improved"), "{table}");
    assert!(
        table.contains("regressed: deployment-plan/parcelpoint"),
        "{table}"
    );
}

/// Six cases (dataset rows) against a slow fake model, for kill and interrupt tests.
fn slow_project() -> tempfile::TempDir {
    let dir = project(&["release-manager/parcelpoint"]);
    let case = dir.path().join("fixtures/release-manager/rows");
    std::fs::create_dir_all(&case).expect("mkdir");
    std::fs::write(
        case.join("case.yaml"),
        "description: six releases\ninputs: ../parcelpoint/inputs\ndataset: rows.jsonl\nexpect: { outcome: valid }\nassert:\n  - { type: is-json }\n",
    )
    .expect("case");
    let rows: String = (1..=6)
        .map(|i| format!("{{\"id\": \"r{i}\", \"VERSION\": \"2.4.{i}\"}}\n"))
        .collect();
    std::fs::write(case.join("rows.jsonl"), rows).expect("rows");
    dir
}

async fn slow_server() -> MockServer {
    let reply =
        std::fs::read_to_string(common::root().join("fixtures/release-manager/replies/valid.txt"))
            .expect("reply");
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(
                    json!({"choices": [{"message": {"content": reply}, "finish_reason": "stop"}]}),
                )
                .set_delay(Duration::from_millis(400)),
        )
        .mount(&server)
        .await;
    server
}

fn spawn_eval(dir: &Path, server: &MockServer, extra: &[&str]) -> std::process::Child {
    common::agent_in(dir)
        .args([
            "eval",
            "release-manager",
            "--filter",
            "rows",
            "--live",
            "--concurrency",
            "1",
            "--model",
            "m",
            "--base-url",
        ])
        .arg(format!("{}/v1", server.uri()))
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starts")
}

async fn wait_for_results(path: &Path, lines: usize) {
    for _ in 0..200 {
        let count = std::fs::read_to_string(path).map_or(0, |t| t.lines().count());
        if count >= lines {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{} never reached {lines} results", path.display());
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_eval_resumes_without_repeating_finished_cases() {
    let dir = slow_project();
    let server = slow_server().await;
    let mut child = spawn_eval(dir.path(), &server, &["--out", "killed"]);
    let results = dir.path().join("killed/results.jsonl");
    wait_for_results(&results, 2).await;
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let finished = std::fs::read_to_string(&results)
        .expect("results")
        .lines()
        .count();
    assert!(
        (2..6).contains(&finished),
        "{finished} finished before the kill"
    );
    // A kill in the middle of a write leaves a torn last line; it is no result.
    let mut torn = std::fs::OpenOptions::new()
        .append(true)
        .open(&results)
        .expect("results");
    std::io::Write::write_all(&mut torn, br#"{"case": "release-manager/rows#r"#).expect("write");
    drop(torn);
    let before = server.received_requests().await.unwrap_or_default().len();

    let resumed = spawn_eval(
        dir.path(),
        &server,
        &[
            "--resume",
            dir.path().join("killed").to_str().expect("utf-8"),
        ],
    );
    let output = tokio::task::spawn_blocking(move || resumed.wait_with_output().expect("exits"))
        .await
        .expect("joins");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let requests = server.received_requests().await.unwrap_or_default().len() - before;
    // The case in flight when the kill came had not finished: it runs again, the others not.
    assert_eq!(
        requests,
        6 - finished,
        "only the unfinished cases ran again"
    );
    let lines: Vec<String> = std::fs::read_to_string(&results)
        .expect("results")
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 6);
    assert!(
        lines
            .iter()
            .all(|line| serde_json::from_str::<Value>(line).is_ok()),
        "every line is one whole result: {lines:#?}"
    );
    let report = json_file(&dir.path().join("killed/report.json"));
    assert_eq!(report["summary"]["passed"], 6);
    assert_eq!(report["partial"], false);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_reports_the_finished_cases_and_marks_the_report_partial() {
    let dir = slow_project();
    let server = slow_server().await;
    let child = spawn_eval(dir.path(), &server, &["--out", "interrupted"]);
    wait_for_results(&dir.path().join("interrupted/results.jsonl"), 2).await;
    common::interrupt(&child);
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().expect("exits"))
        .await
        .expect("joins");
    assert_eq!(output.status.code(), Some(130));
    let report = json_file(&dir.path().join("interrupted/report.json"));
    assert_eq!(report["partial"], true);
    let cases = report["cases"].as_array().expect("cases").len();
    assert!((2..6).contains(&cases), "{cases} finished cases reported");
    assert!(stdout(&output).contains("PARTIAL"));
}

#[tokio::test(flavor = "multi_thread")]
async fn recording_part_of_a_dataset_keeps_the_other_rows_recordings() {
    let dir = slow_project();
    let reply =
        std::fs::read_to_string(common::root().join("fixtures/release-manager/replies/valid.txt"))
            .expect("reply");
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"choices": [{"message": {"content": reply}, "finish_reason": "stop"}]}),
        ))
        .mount(&server)
        .await;
    let (root, model) = (dir.path(), &server);
    let record = |filter: &'static str, out: &'static str| async move {
        eval_against(
            root,
            model,
            &[
                "release-manager",
                "--filter",
                filter,
                "--record",
                "--out",
                out,
            ],
        )
        .await
    };
    let exchanges = || {
        json_file(
            &dir.path()
                .join("fixtures/release-manager/rows/recording.json"),
        )["exchanges"]
            .as_array()
            .expect("exchanges")
            .len()
    };

    let all = record("rows", "all").await;
    assert_eq!(all.status.code(), Some(0), "{}", stdout(&all));
    assert_eq!(exchanges(), 6);
    let one = record("rows#r3", "one").await;
    assert_eq!(one.status.code(), Some(0), "{}", stdout(&one));
    assert_eq!(exchanges(), 6, "the five rows not run keep their exchanges");

    let replay = eval_in(
        dir.path(),
        &["release-manager", "--filter", "rows", "--out", "replay"],
    );
    assert_eq!(replay.status.code(), Some(0), "{}", stdout(&replay));
}

#[test]
fn a_resume_finishes_the_eval_as_it_was_started() {
    let dir = project(&[
        "deployment-plan/parcelpoint",
        "release-strategy/parcelpoint",
    ]);
    let first = eval_in(
        dir.path(),
        &[
            "--filter",
            "deployment-plan/parcelpoint",
            "--repeat",
            "2",
            "--out",
            "e",
        ],
    );
    assert_eq!(first.status.code(), Some(0), "{}", stdout(&first));
    // As if the eval had been killed after its first run.
    let results = dir.path().join("e/results.jsonl");
    let text = std::fs::read_to_string(&results).expect("results");
    let first_line = text.lines().next().expect("a result");
    std::fs::write(&results, format!("{first_line}\n")).expect("cut");

    let changed = eval_in(dir.path(), &["--resume", "e", "--repeat", "3"]);
    assert_eq!(changed.status.code(), Some(2));
    let message = String::from_utf8_lossy(&changed.stderr);
    assert!(
        message.contains("--repeat: started with 2, now 3"),
        "{message}"
    );

    // No flags: the filter and the repeat count are the ones it started with.
    let resumed = eval_in(dir.path(), &["--resume", "e", "--report", "r.json"]);
    assert_eq!(resumed.status.code(), Some(0), "{}", stdout(&resumed));
    let report = json_file(&dir.path().join("r.json"));
    let cases = report["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 1, "only the filtered case: {report}");
    assert_eq!(cases[0]["runs"].as_array().expect("runs").len(), 2);
    assert_eq!(report["partial"], false);
}
