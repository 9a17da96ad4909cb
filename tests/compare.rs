//! Comparing models and prompt variants (issue 11): a matrix eval against a fake server
//! with two models and a variant, its baseline, its cost and `--max-cost`; the reports that
//! show what the model answered; the HTML report opened in headless Chromium; a matrix of
//! the shipped cases over two recorded models, offline.

mod common;

use common::{copy_dir, json_file};

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// A project holding the agents, contracts and deployment-plan/parcelpoint, and a variant
/// of the deployment-plan prompt that the fake model answers badly.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for part in ["prompts", "schemas", "fixtures/deployment-plan/parcelpoint"] {
        copy_dir(&common::root().join(part), &dir.path().join(part));
    }
    let prompt =
        std::fs::read_to_string(common::root().join("prompts/deployment-plan.md")).expect("prompt");
    std::fs::write(
        dir.path().join("deployment-plan.v2.md"),
        format!("{prompt}\nVARIANT: keep it short.\n"),
    )
    .expect("variant");
    std::fs::write(
        dir.path().join("agent.toml"),
        "[prices.alpha]\ninput = 2.0\ncached_input = 0.5\noutput = 8.0\n\n[prices.beta]\ninput = 1.0\noutput = 4.0\n",
    )
    .expect("agent.toml");
    dir
}

fn reply(name: &str) -> String {
    std::fs::read_to_string(
        common::root()
            .join("fixtures/deployment-plan/replies")
            .join(name),
    )
    .expect("reply")
}

/// Model `alpha` answers the plan at once; `beta` misses a section first and fixes it when
/// re-asked; the variant's prompt gets the missing section from both, every time.
struct TwoModels;

impl Respond for TwoModels {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).expect("json");
        let model = body["model"].as_str().unwrap_or_default();
        let messages = body["messages"].as_array().map_or(0, Vec::len);
        let prompt = body["messages"][0]["content"].as_str().unwrap_or_default();
        let variant = prompt.contains("VARIANT: keep it short.");
        let content = if variant || (model == "beta" && messages == 1) {
            reply("missing-section.md")
        } else {
            reply("valid.md")
        };
        ResponseTemplate::new(200).set_body_json(json!({
            "model": model,
            "choices": [{"message": {"content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500,
                      "prompt_tokens_details": {"cached_tokens": 400}}
        }))
    }
}

async fn server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(TwoModels)
        .mount(&server)
        .await;
    server
}

fn eval_in(dir: &Path, args: &[String]) -> Output {
    common::agent_in(dir)
        .arg("eval")
        .args(args)
        .env_remove("AGENT_MODEL")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("OPENAI_API_KEY")
        .output()
        .expect("agent runs")
}

/// `agent eval --live` in `dir` against `server`, from a blocking task so that the server
/// keeps serving.
async fn eval_live(dir: &Path, server: &MockServer, args: &[&str]) -> Output {
    let dir = dir.to_owned();
    let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    args.extend([
        "--live".into(),
        "--base-url".into(),
        format!("{}/v1", server.uri()),
    ]);
    tokio::task::spawn_blocking(move || eval_in(&dir, &args))
        .await
        .expect("joins")
}

fn text(output: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The matrix of the issue: models alpha and beta, each with the original prompt and the
/// variant, against a baseline of alpha alone. Returns the project folder.
async fn matrix_eval(server: &MockServer) -> (tempfile::TempDir, Output) {
    let dir = project();
    let baseline = eval_live(
        dir.path(),
        server,
        &["--model", "alpha", "--report", "baseline.json"],
    )
    .await;
    assert_eq!(baseline.status.code(), Some(0), "{}", text(&baseline));
    let output = eval_live(
        dir.path(),
        server,
        &[
            "--model",
            "alpha",
            "--model",
            "beta",
            "--variant",
            "deployment-plan.v2.md",
            "--baseline",
            "baseline.json",
            "--report",
            "report.json",
            "--report",
            "report.md",
            "--report",
            "report.xml",
            "--report",
            "report.html",
            "--out",
            "matrix",
        ],
    )
    .await;
    (dir, output)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_matrix_of_two_models_and_a_variant_reports_each_column_and_its_regressions() {
    let server = server().await;
    let (dir, output) = matrix_eval(&server).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let report = json_file(&dir.path().join("report.json"));
    let columns: Vec<&str> = report["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c["column"].as_str().expect("label"))
        .collect();
    assert_eq!(
        columns,
        [
            "alpha",
            "alpha · deployment-plan.v2",
            "beta",
            "beta · deployment-plan.v2"
        ]
    );
    let column = |label: &str| {
        report["columns"]
            .as_array()
            .expect("columns")
            .iter()
            .find(|c| c["column"] == label)
            .cloned()
            .expect("column")
    };
    assert_eq!(column("alpha")["pass_rate"], 1.0);
    assert_eq!(column("alpha")["first_attempt_valid"], 1.0);
    assert_eq!(column("beta")["pass_rate"], 0.0, "beta needed a re-ask");
    assert_eq!(column("beta")["mean_attempts"], 2.0);
    assert_eq!(column("beta")["first_attempt_valid"], 0.0);
    assert_eq!(column("alpha · deployment-plan.v2")["mean_attempts"], 3.0);
    // 600 fresh prompt tokens at $2, 400 cached at $0.50 and 500 reply tokens at $8 per million.
    let alpha_cost = column("alpha")["cost"].as_f64().expect("alpha has a price");
    assert!((alpha_cost - 0.0054).abs() < 1e-9, "{alpha_cost}");
    // beta has no cached price: its cached tokens cost the input price.
    let beta_cost = column("beta")["cost"].as_f64().expect("beta has a price");
    assert!((beta_cost - 2.0 * 0.003).abs() < 1e-9, "{beta_cost}");
    let regressed = report["baseline"]["regressed"].as_array().expect("diff");
    assert!(
        regressed.contains(&json!("deployment-plan/parcelpoint [beta]")),
        "{regressed:?}"
    );
    assert!(
        !regressed.contains(&json!("deployment-plan/parcelpoint [alpha]")),
        "{regressed:?}"
    );
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        table.contains("deployment-plan/parcelpoint [beta]"),
        "{table}"
    );
    assert!(table.contains("regressed: deployment-plan/parcelpoint [beta]"));
    assert!(table.contains("pass rate"), "per-column lines: {table}");
}

#[tokio::test(flavor = "multi_thread")]
async fn markdown_and_junit_show_what_the_model_answered_in_a_failed_case() {
    let server = server().await;
    let (dir, _) = matrix_eval(&server).await;
    let markdown = std::fs::read_to_string(dir.path().join("report.md")).expect("markdown");
    let details = markdown
        .split("<details>")
        .find(|d| d.contains("[beta]</summary>") || d.contains("[beta]:"))
        .expect("a collapsed section for beta's failed case");
    assert!(details.contains("attempt 1: invalid"), "{details}");
    assert!(
        details.contains("violation: markdown.missing-section at line"),
        "{details}"
    );
    assert!(details.contains("last reply (attempt 2)"), "{details}");
    assert!(
        details.contains("# Deployment Plan"),
        "the reply itself: {details}"
    );
    let junit = std::fs::read_to_string(dir.path().join("report.xml")).expect("junit");
    let beta = junit
        .split("<testcase ")
        .find(|t| t.contains("name=\"parcelpoint [beta]\""))
        .expect("beta's testcase");
    assert!(beta.contains("<system-out>"), "{beta}");
    assert!(beta.contains("markdown.missing-section at line"), "{beta}");
    assert!(beta.contains("last reply (attempt 2)"), "{beta}");
}

#[tokio::test(flavor = "multi_thread")]
async fn max_cost_stops_the_eval_before_a_request_would_pass_it() {
    let server = server().await;
    let dir = project();
    // alpha's first run costs $0.0054; the second request (a prompt of ~1,500 tokens and a reply
    // as long as the first, ~$0.007) is refused before it is sent.
    let output = eval_live(
        dir.path(),
        &server,
        &[
            "--model",
            "alpha",
            "--variant",
            "deployment-plan.v2.md",
            "--concurrency",
            "1",
            "--max-cost",
            "0.008",
            "--out",
            "budget",
        ],
    )
    .await;
    assert_ne!(output.status.code(), Some(0), "{}", text(&output));
    assert!(text(&output).contains("--max-cost"), "{}", text(&output));
    let requests = server.received_requests().await.expect("recorded").len();
    assert_eq!(requests, 1, "one request fits in the budget");
    let report = json_file(&dir.path().join("budget/report.json"));
    assert_eq!(report["partial"], true);
    assert!(report["summary"]["cost"].as_f64().expect("cost") <= 0.008);
}

/// Chromium from Debian's `chromium` package (`.ci/run` installs it).
fn chromium() -> PathBuf {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|p| p.join(name))
                    .find(|p| p.is_file())
            })
        })
        .expect("chromium is installed (apt-get install -y chromium)")
}

fn headless(page: &Path, extra: &[String]) -> Output {
    let profile = tempfile::tempdir().expect("profile");
    std::process::Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(page.to_string_lossy().into_owned())
        .output()
        .expect("chromium runs")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_html_report_opens_from_a_file_in_chromium_and_shows_the_matrix_and_the_answers() {
    let server = server().await;
    let (dir, _) = matrix_eval(&server).await;
    let html = dir.path().join("report.html");
    let page = std::fs::read_to_string(&html).expect("html");
    for fetch in ["src=\"http", "href=\"http", "@import", "url(http"] {
        assert!(!page.contains(fetch), "nothing is fetched: {fetch}");
    }
    // Where beta's first reply broke the contract.
    let report = json_file(&dir.path().join("report.json"));
    let beta = report["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .find(|c| c["column"] == "beta")
        .expect("beta's case");
    let line = beta["runs"][0]["attempt_log"][0]["violations"][0]["line"]
        .as_u64()
        .expect("the violation has a line");
    let url = format!("file://{}#case=deployment-plan/parcelpoint", html.display());
    let dumped = headless(Path::new(&url), &["--dump-dom".into()]);
    let dom = String::from_utf8_lossy(&dumped.stdout);
    assert!(
        dom.contains("<tbody>"),
        "the page rendered: {}",
        String::from_utf8_lossy(&dumped.stderr)
    );
    // The matrix: one row, four cells, passes and failures told apart in words too.
    assert_eq!(dom.matches("<td class=\"cell pass\">").count(), 1, "{dom}");
    assert_eq!(dom.matches("<td class=\"cell fail\">").count(), 3, "{dom}");
    assert!(
        dom.contains("✗ FAIL (regressed)"),
        "beta's regression is marked"
    );
    // The case opened: the deliverables of all four columns side by side.
    assert!(dom.contains("class=\"deliverables\""), "{dom}");
    assert_eq!(
        dom.matches("<div class=\"deliverable\"").count(),
        4,
        "{dom}"
    );
    // beta's first reply, its violation marked at its line.
    assert!(
        dom.contains(&format!("class=\"line violated\" data-line=\"{line}\"")),
        "line {line} marked: {dom}"
    );
    assert!(
        dom.contains(&format!(
            "violation at line {line}: markdown.missing-section"
        )),
        "{dom}"
    );
    // The re-ask diff: what the second attempt changed.
    assert!(dom.contains("changes from attempt 1:"), "{dom}");
    assert!(
        dom.contains("<ins>## Assumptions &amp; Change Scope</ins>"),
        "the section the re-ask added: {dom}"
    );
    // The reasoning in its own collapsed pane, and the inputs.
    assert!(dom.contains("<details class=\"reasoning\">"), "{dom}");
    assert!(dom.contains("<details class=\"inputs\">"), "{dom}");

    if let Some(shots) = std::env::var_os("AGENT_SCREENSHOTS") {
        let shots = PathBuf::from(shots);
        std::fs::create_dir_all(&shots).expect("shots folder");
        for (name, size) in [("desktop", "1440,1100"), ("narrow", "420,1100")] {
            let shot = shots.join(format!("report-{name}.png"));
            let output = headless(
                Path::new(&url),
                &[
                    format!("--screenshot={}", shot.display()),
                    format!("--window-size={size}"),
                    "--hide-scrollbars".into(),
                ],
            );
            assert!(
                shot.is_file(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

#[test]
fn a_matrix_of_the_shipped_cases_over_two_recorded_models_runs_offline() {
    let dir = tempfile::tempdir().expect("temp dir");
    for part in ["prompts", "schemas", "fixtures", "pipelines"] {
        copy_dir(&common::root().join(part), &dir.path().join(part));
    }
    let args: Vec<String> = [
        "--model",
        "fixture-model",
        "--model",
        "fixture-model-b",
        "--recording",
        "fixtures/matrix/fixture-model-b.json",
        "--report",
        "report.json",
        "--report",
        "report.md",
        "--report",
        "report.xml",
        "--report",
        "report.html",
    ]
    .iter()
    .map(|a| (*a).to_owned())
    .collect();
    let output = eval_in(dir.path(), &args);
    // The one case fixture-model-b fails: it needed a re-ask where one attempt is expected.
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let report = json_file(&dir.path().join("report.json"));
    let failed: Vec<String> = report["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| {
            format!(
                "{} [{}]",
                c["id"].as_str().unwrap_or(""),
                c["column"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(failed, ["deployment-plan/parcelpoint [fixture-model-b]"]);
    let cases = report["summary"]["cases"].as_u64().expect("cases");
    assert_eq!(cases % 2, 0, "every case in both columns");
    let markdown = std::fs::read_to_string(dir.path().join("report.md")).expect("md");
    assert!(markdown.contains("| fixture-model-b | 98%"), "{markdown}");
    let failed_section = &markdown[markdown.find("## Failed cases").expect("details")..];
    assert!(failed_section.contains("model: fixture-model-b"));
    assert!(failed_section.contains("markdown.missing-section"));
    assert!(
        failed_section.contains("# Deployment Plan"),
        "the answer itself"
    );
    let junit = std::fs::read_to_string(dir.path().join("report.xml")).expect("xml");
    assert!(
        junit.contains("<system-out>model: fixture-model-b"),
        "{junit}"
    );
    let html = std::fs::read_to_string(dir.path().join("report.html")).expect("html");
    assert!(html.contains("\"model\":\"fixture-model-b\""));
    assert!(html.contains("markdown.missing-section"));
}

#[test]
fn on_a_terminal_agent_run_prints_its_summary_after_the_deliverable() {
    // `script` gives the run a terminal for stdout and stderr, as a person at one has.
    let dir = tempfile::tempdir().expect("temp dir");
    let command = format!(
        "{} run deployment-plan --inputs fixtures/deployment-plan/parcelpoint/inputs --replay fixtures/deployment-plan/parcelpoint/recording.json --out {}",
        env!("CARGO_BIN_EXE_agent"),
        dir.path().join("run").display()
    );
    let output = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(common::root())
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .output()
        .expect("script runs");
    let screen = String::from_utf8_lossy(&output.stdout);
    let summary = screen
        .find("deployment-plan: valid after 1 attempt")
        .expect("the summary is shown");
    let deliverable = screen
        .find("# Deployment Plan")
        .expect("the deliverable is shown");
    assert!(
        deliverable < summary,
        "the summary comes last, where the deliverable cannot scroll it away: {screen}"
    );
    // Piped, the summary comes first, and stdout carries the deliverable only.
    let piped = common::agent()
        .args([
            "run",
            "deployment-plan",
            "--inputs",
            "fixtures/deployment-plan/parcelpoint/inputs",
            "--replay",
            "fixtures/deployment-plan/parcelpoint/recording.json",
            "--out",
        ])
        .arg(dir.path().join("piped"))
        .output()
        .expect("agent runs");
    assert!(!String::from_utf8_lossy(&piped.stdout).contains("valid after"));
    assert!(String::from_utf8_lossy(&piped.stderr).contains("valid after 1 attempt"));
}

/// A pipeline case costs what each of its steps' tokens cost, and says how many of each kind.
#[test]
fn a_pipeline_case_is_priced_step_by_step() {
    let dir = tempfile::tempdir().expect("temp dir");
    for part in ["prompts", "schemas", "pipelines", "fixtures"] {
        copy_dir(&common::root().join(part), &dir.path().join(part));
    }
    std::fs::write(
        dir.path().join("agent.toml"),
        "[prices.\"fixture-model\"]\ninput = 2.0\noutput = 8.0\n",
    )
    .expect("agent.toml");
    let out = eval_in(
        dir.path(),
        &["pipelines".into(), "--report".into(), "report.json".into()],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json_file(&dir.path().join("report.json"));
    let run = &report["cases"][0]["runs"][0];
    let (prompt, completion) = (
        run["usage"]["prompt"].as_u64().expect("prompt tokens"),
        run["usage"]["completion"].as_u64().expect("reply tokens"),
    );
    assert!(prompt > 0 && completion > 0, "{run}");
    let cost = run["cost"].as_f64().expect("a cost");
    let expected = (prompt as f64 * 2.0 + completion as f64 * 8.0) / 1e6;
    assert!((cost - expected).abs() < 1e-9, "{cost} against {expected}");
    let all: f64 = report["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .flat_map(|case| case["runs"].as_array().expect("runs"))
        .map(|run| run["cost"].as_f64().expect("every pipeline run priced"))
        .sum();
    let summary = report["summary"]["cost"].as_f64().expect("a total");
    assert!((summary - all).abs() < 1e-9, "{summary} against {all}");
}
