//! `agent import` on prompts someone else wrote: the five seeds the shipped agents came from,
//! and the corpus of real prompts under `tests/corpus/` (see its README). Each import runs into
//! a project of its own; the drafted agent and contract are then judged by `agent show`,
//! `agent render` and `agent check`, as a user would.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::{agent_in, root};
use serde_json::Value;

/// The seed each shipped agent was written from.
const SEEDS: [(&str, &str); 5] = [
    ("000_fb3d1bca936705cb.txt", "release-plan"),
    ("001_a8bdd6c3138b1f9c.txt", "release-manager"),
    ("002_1b5bc01539cef6d7.txt", "deploy"),
    ("003_3361e6eaa26405a3.txt", "release-strategy"),
    ("004_5bafa81150b8f49b.txt", "deployment-plan"),
];

/// Replies a drafted contract judges otherwise than a careful person would, and why. A gap
/// that closes fails the test, so this list stays the truth.
const CORPUS_GAPS: [(&str, &str, &str); 4] = [
    (
        "citation-agent",
        "broken-text-changed.md",
        "the answer must repeat an input unchanged except for citations: a contract cannot bind content to an input",
    ),
    (
        "lats-lite",
        "valid.md",
        "the answer repeats its sections once per iteration: a scaffold lists each section once",
    ),
    (
        "prompty-context",
        "broken-no-product-id.md",
        "a chat answer with no format; what it must mention comes from the inputs",
    ),
    (
        "prompty-context",
        "broken-wrong-customer.md",
        "a chat answer with no format; what it must mention comes from the inputs",
    ),
];

/// Inputs a prompt names only in prose, which import does not find.
const INPUT_GAPS: [(&str, &str); 1] = [("citation-agent", "sources")];

fn seeds_dir() -> PathBuf {
    root().join("tests/seeds")
}

fn corpus_dir() -> PathBuf {
    root().join("tests/corpus")
}

/// A project of its own for one import.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary project");
    std::fs::create_dir_all(dir.path().join("prompts")).expect("prompts/");
    std::fs::create_dir_all(dir.path().join("schemas")).expect("schemas/");
    dir
}

/// `agent import FILE --name NAME --json` into `project`: what import reports.
fn import(project: &Path, file: &Path, name: &str) -> Value {
    let output = agent_in(project)
        .arg("--project")
        .arg(project)
        .arg("import")
        .arg(file)
        .args(["--name", name, "--json"])
        .output()
        .expect("agent runs");
    assert!(
        output.status.success(),
        "import of {} failed: {}",
        file.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the import report is JSON")
}

/// `agent show NAME --json` in `project`: the agent as the loader sees it.
fn show(project: &Path, name: &str) -> Value {
    let output = agent_in(project)
        .arg("--project")
        .arg(project)
        .args(["show", name, "--json"])
        .output()
        .expect("agent runs");
    assert!(
        output.status.success(),
        "show {name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("show prints JSON")
}

/// `agent check NAME REPLY` in `project`: the verdict as a word.
fn verdict(project: &Path, name: &str, reply: &Path) -> String {
    let status = agent_in(project)
        .arg("--project")
        .arg(project)
        .args(["check", name])
        .arg(reply)
        .output()
        .expect("agent runs")
        .status;
    match status.code() {
        Some(0) => "valid".into(),
        Some(1) => "invalid".into(),
        Some(4) => "declined".into(),
        other => format!("exit {other:?}"),
    }
}

/// The text after a file's front matter, if it has one.
fn body_of(text: &str) -> &str {
    let Some(rest) = text.strip_prefix("---\n") else {
        return text;
    };
    match rest.find("\n---\n") {
        Some(end) => &rest[end + 5..],
        None => text,
    }
}

fn input_names(shown: &Value) -> BTreeMap<String, bool> {
    shown["inputs"]
        .as_array()
        .expect("inputs")
        .iter()
        .map(|input| {
            (
                input["name"].as_str().expect("a name").to_owned(),
                input["required"].as_bool().expect("required"),
            )
        })
        .collect()
}

fn yaml(path: &Path) -> serde_yaml_ng::Value {
    let text = std::fs::read_to_string(path).expect("readable YAML");
    serde_yaml_ng::from_str(&text).expect("valid YAML")
}

#[test]
fn each_seed_imports_as_its_shipped_agent_and_its_contract_agrees_with_the_verdicts() {
    let mut figures = Vec::new();
    for (seed, agent) in SEEDS {
        let dir = project();
        import(dir.path(), &seeds_dir().join(seed), agent);
        let drafted = show(dir.path(), agent);
        let shipped = show(&root(), agent);
        // The names; which of them the shipped agent treats as optional is its author's
        // choice (release-manager declines when context is missing).
        assert_eq!(
            input_names(&drafted).into_keys().collect::<Vec<_>>(),
            input_names(&shipped).into_keys().collect::<Vec<_>>(),
            "{agent}: inputs"
        );
        assert_eq!(drafted["dialect"], shipped["dialect"], "{agent}: dialect");
        let tags = |shown: &Value| -> BTreeSet<String> {
            shown["reasoning_tags"]
                .as_array()
                .expect("tags")
                .iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect()
        };
        assert_eq!(tags(&drafted), tags(&shipped), "{agent}: reasoning tags");

        let seed_text = std::fs::read_to_string(seeds_dir().join(seed)).expect("the seed");
        let imported = std::fs::read_to_string(dir.path().join(format!("prompts/{agent}.md")))
            .expect("the imported agent");
        assert_eq!(
            body_of(&imported),
            body_of(&seed_text),
            "{agent}: the body is kept byte for byte"
        );

        let replies = root().join(format!("fixtures/{agent}/replies"));
        let verdicts = yaml(&replies.join("verdicts.yaml"));
        let mut agreed = 0;
        let mut total = 0;
        for (file, expected) in verdicts.as_mapping().expect("a mapping of replies") {
            let file = file.as_str().expect("a file name");
            let outcome = expected["outcome"].as_str().expect("an outcome");
            total += 1;
            if verdict(dir.path(), agent, &replies.join(file)) == outcome {
                agreed += 1;
            }
        }
        figures.push(format!("{agent}: {agreed}/{total}"));
        assert!(
            agreed * 10 >= total * 9,
            "{agent}: the drafted contract agrees with {agreed} of {total} verdicts, under 90%"
        );
    }
    eprintln!("seed agreement: {}", figures.join(", "));
}

fn corpus() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("tests/corpus")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.join("expected.yaml").is_file())
        .collect();
    dirs.sort();
    dirs
}

fn slug(dir: &Path) -> String {
    dir.file_name()
        .expect("a folder name")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn the_corpus_holds_fifteen_prompts_or_more() {
    assert!(corpus().len() >= 15, "{} prompts", corpus().len());
}

#[test]
fn corpus_imports_keep_the_body_and_find_exactly_the_expected_inputs() {
    let mut wrong = Vec::new();
    for dir in corpus() {
        let slug = slug(&dir);
        let expected = yaml(&dir.join("expected.yaml"));
        let file = dir.join(expected["prompt_file"].as_str().expect("prompt_file"));
        let project = project();
        import(project.path(), &file, &slug);

        let original = std::fs::read_to_string(&file).expect("the prompt");
        let imported = std::fs::read_to_string(project.path().join(format!("prompts/{slug}.md")))
            .expect("the imported agent");
        if body_of(&imported) != body_of(&original) {
            wrong.push(format!("{slug}: the body is not kept byte for byte"));
        }

        let found: BTreeSet<String> = input_names(&show(project.path(), &slug))
            .into_keys()
            .collect();
        let wanted: BTreeSet<String> = expected["inputs"]
            .as_sequence()
            .map(|inputs| {
                inputs
                    .iter()
                    .filter_map(|input| input["name"].as_str().map(str::to_owned))
                    .filter(|name| !INPUT_GAPS.contains(&(slug.as_str(), name.as_str())))
                    .collect()
            })
            .unwrap_or_default();
        if found != wanted {
            wrong.push(format!("{slug}: inputs {found:?}, expected {wanted:?}"));
        }

        // The shipped inputs render the prompt with no slot left behind.
        let rendered = agent_in(project.path())
            .arg("--project")
            .arg(project.path())
            .args(["render", &slug, "--inputs"])
            .arg(dir.join("inputs"))
            .output()
            .expect("agent runs");
        if !rendered.status.success() {
            wrong.push(format!(
                "{slug}: render failed: {}",
                String::from_utf8_lossy(&rendered.stderr)
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn corpus_contracts_pass_the_valid_reply_and_fail_the_broken_ones_but_for_the_known_gaps() {
    let mut mismatches = BTreeSet::new();
    let mut table = Vec::new();
    for dir in corpus() {
        let slug = slug(&dir);
        let expected = yaml(&dir.join("expected.yaml"));
        let file = dir.join(expected["prompt_file"].as_str().expect("prompt_file"));
        let project = project();
        import(project.path(), &file, &slug);
        let verdicts = yaml(&dir.join("replies/verdicts.yaml"));
        let mut agreed = 0;
        let mut total = 0;
        for (reply, wanted) in verdicts.as_mapping().expect("a mapping of replies") {
            let reply = reply.as_str().expect("a file name");
            let wanted = wanted["expected"].as_str().expect("expected");
            let got = verdict(project.path(), &slug, &dir.join("replies").join(reply));
            total += 1;
            if got == wanted {
                agreed += 1;
            } else {
                mismatches.insert((slug.clone(), reply.to_owned()));
            }
        }
        table.push(format!("{slug}: {agreed}/{total}"));
    }
    eprintln!("{}", table.join("\n"));
    let known: BTreeSet<(String, String)> = CORPUS_GAPS
        .iter()
        .map(|(slug, reply, _)| ((*slug).to_owned(), (*reply).to_owned()))
        .collect();
    assert_eq!(
        mismatches, known,
        "the replies judged otherwise than their verdicts must be exactly the documented gaps"
    );
}

#[test]
fn import_never_overwrites_an_agent_without_force() {
    let dir = project();
    let seed = seeds_dir().join(SEEDS[0].0);
    import(dir.path(), &seed, "plan");
    let agent_file = dir.path().join("prompts/plan.md");
    std::fs::write(&agent_file, "hand edited\n").expect("edit");
    let again = agent_in(dir.path())
        .arg("--project")
        .arg(dir.path())
        .arg("import")
        .arg(&seed)
        .args(["--name", "plan"])
        .output()
        .expect("agent runs");
    assert_eq!(again.status.code(), Some(2), "refused as bad input");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("--force"),
        "the refusal names --force: {}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&agent_file).expect("kept"),
        "hand edited\n"
    );
    let forced = agent_in(dir.path())
        .arg("--project")
        .arg(dir.path())
        .arg("import")
        .arg(&seed)
        .args(["--name", "plan", "--force", "-q"])
        .output()
        .expect("agent runs");
    assert!(forced.status.success());
    assert_ne!(
        std::fs::read_to_string(&agent_file).expect("rewritten"),
        "hand edited\n"
    );
}

#[test]
fn import_is_deterministic() {
    let file = corpus_dir().join("graphrag-community-report/community_report_text.txt");
    let first = project();
    let second = project();
    let a = import(first.path(), &file, "report");
    let b = import(second.path(), &file, "report");
    let strip = |mut report: Value| {
        report.as_object_mut().expect("an object").remove("source");
        report.to_string().replace(
            &first.path().display().to_string(),
            &second.path().display().to_string(),
        )
    };
    assert_eq!(strip(a), strip(b));
    for path in ["prompts/report.md", "schemas/report.schema.json"] {
        assert_eq!(
            std::fs::read(first.path().join(path)).expect("written"),
            std::fs::read(second.path().join(path)).expect("written"),
            "{path}"
        );
    }
}

#[test]
fn lint_reports_for_people_for_github_and_as_json_and_fails_on_errors() {
    let dir = project();
    std::fs::write(
        dir.path().join("prompts/notes.md"),
        "---\nagent:\n  dialect: double-brace\n  contract: any.scaffold.yaml\n  inputs:\n    - name: NOTES\n      description: notes\n---\nNotes: {{NOTES}} and {{MISSING}}\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("schemas/any.scaffold.yaml"),
        "description: any\nsections: []\nextra_sections: allowed\npreamble: allowed\ntrailing_text: allowed\n",
    )
    .expect("write");
    let lint = |args: &[&str]| {
        agent_in(dir.path())
            .arg("--project")
            .arg(dir.path())
            .arg("lint")
            .args(args)
            .output()
            .expect("agent runs")
    };
    let run = |format: &str| lint(&["--format", format]);
    let github = run("github");
    let text = String::from_utf8_lossy(&github.stdout);
    assert!(
        text.lines()
            .any(|line| line.starts_with("::") && line.contains("MISSING")),
        "a GitHub annotation names the unbound slot: {text}"
    );
    let json = run("json");
    let parsed: Value = serde_json::from_slice(&json.stdout).expect("lint --format json is JSON");
    assert!(
        parsed.to_string().contains("MISSING"),
        "the JSON report names the unbound slot: {parsed}"
    );
    let people = run("text");
    let said = String::from_utf8_lossy(&people.stdout);
    assert!(
        said.contains("notes.md:9") && said.contains("MISSING"),
        "file:line and the slot: {said}"
    );
    assert_eq!(people.status.code(), Some(0), "a warning alone passes");
    assert_eq!(json.status.code(), Some(0), "whatever the format");
    assert_eq!(
        lint(&["--strict"]).status.code(),
        Some(1),
        "--strict fails on a warning"
    );

    // A load error fails lint without --strict, and names its line.
    std::fs::write(
        dir.path().join("prompts/broken.md"),
        "---\nagent:\n  inputs:\n    NOTES: { description: notes }\n---\nNotes: {{NOTES}}\n",
    )
    .expect("write");
    let broken = run("github");
    assert_eq!(broken.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&broken.stdout)
            .lines()
            .any(|line| line.starts_with("::error file=prompts/broken.md,line=")),
        "{}",
        String::from_utf8_lossy(&broken.stdout)
    );
}

/// Import, give the case its inputs, record a hand-written reply, eval: the three commands of
/// the README, on the four prompts that did not fit before `agent import` (a postmortem with a
/// system instruction and a user template, a code review in a fence of a documentation page, a
/// fabric pattern whose input is the user message, a VS Code prompt file). Returns the messages
/// the model was sent.
fn import_record_eval(slug: &str) -> Vec<(String, String)> {
    let dir = project();
    let corpus = corpus_dir().join(slug);
    let expected = yaml(&corpus.join("expected.yaml"));
    let file = corpus.join(expected["prompt_file"].as_str().expect("prompt_file"));
    import(dir.path(), &file, slug);
    let case = dir.path().join(format!("fixtures/{slug}/sample"));
    let inputs = case.join("inputs");
    std::fs::remove_dir_all(&inputs).expect("the drafted inputs");
    std::fs::create_dir_all(&inputs).expect("inputs/");
    for entry in std::fs::read_dir(corpus.join("inputs")).expect("the corpus inputs") {
        let path = entry.expect("an entry").path();
        let name = path
            .file_name()
            .expect("a name")
            .to_string_lossy()
            .into_owned();
        std::fs::copy(&path, inputs.join(format!("{name}.md"))).expect("copy");
    }
    let recorded = agent_in(dir.path())
        .args(["record", &format!("{slug}/sample")])
        .arg(corpus.join("replies/valid.md"))
        .output()
        .expect("agent runs");
    assert!(
        recorded.status.success(),
        "{slug}: record: {}{}",
        String::from_utf8_lossy(&recorded.stdout),
        String::from_utf8_lossy(&recorded.stderr)
    );
    let eval = agent_in(dir.path())
        .args(["eval", slug])
        .output()
        .expect("agent runs");
    assert!(
        eval.status.success(),
        "{slug}: eval: {}{}",
        String::from_utf8_lossy(&eval.stdout),
        String::from_utf8_lossy(&eval.stderr)
    );
    let recording: Value = serde_json::from_str(
        &std::fs::read_to_string(case.join("recording.json")).expect("the recording"),
    )
    .expect("JSON");
    recording["exchanges"][0]["request"]["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap_or_default().to_owned(),
                m["content"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_fabric_pattern_is_the_system_message_and_its_input_the_user_message() {
    let messages = import_record_eval("fabric-create-summary");
    let roles: Vec<&str> = messages.iter().map(|(role, _)| role.as_str()).collect();
    assert_eq!(roles, ["system", "user"]);
    let pattern =
        std::fs::read_to_string(corpus_dir().join("fabric-create-summary/system.md")).expect("");
    assert_eq!(messages[0].1, pattern, "the pattern is sent as written");
    let input = std::fs::read_to_string(corpus_dir().join("fabric-create-summary/inputs/input"))
        .expect("the input");
    assert_eq!(messages[1].1.trim(), input.trim());
}

#[test]
fn a_prompt_in_a_fence_of_a_documentation_page_sends_only_the_fence() {
    let messages = import_record_eval("code-review-structured");
    let sent: String = messages.iter().map(|(_, text)| text.as_str()).collect();
    assert!(
        !sent.contains("## Use Cases"),
        "the page around the fence is not sent"
    );
    assert!(
        !sent.contains("[DIFF_OR_FILE_CONTENTS]"),
        "every slot is filled"
    );
    let diff = std::fs::read_to_string(
        corpus_dir().join("code-review-structured/inputs/DIFF_OR_FILE_CONTENTS"),
    )
    .expect("the diff");
    assert!(sent.contains(diff.trim()), "the diff is sent");
}

#[test]
fn a_vscode_prompt_file_fills_its_input_variables() {
    let messages = import_record_eval("vscode-oo-component-docs");
    let sent: String = messages.iter().map(|(_, text)| text.as_str()).collect();
    assert!(!sent.contains("${input:"), "no VS Code variable is left");
    assert!(
        !sent.starts_with("---"),
        "the prompt file's own front matter is not sent"
    );
}

#[test]
fn a_postmortem_sends_its_system_instruction_and_its_user_template() {
    let messages = import_record_eval("incident-postmortem-pro");
    let roles: Vec<&str> = messages.iter().map(|(role, _)| role.as_str()).collect();
    assert_eq!(roles, ["system", "user"]);
    let title =
        std::fs::read_to_string(corpus_dir().join("incident-postmortem-pro/inputs/incidentTitle"))
            .expect("the title");
    assert!(
        messages[1].1.contains(title.trim()),
        "the user template is filled"
    );
    assert!(
        !messages
            .iter()
            .any(|(_, text)| text.contains("{incidentTitle}")),
        "no slot left"
    );
    assert!(
        !messages[0].1.contains("## Metadata"),
        "the page's metadata is not part of the system instruction"
    );
}

/// A drafted agent is consistent with its own prompt: every seed and corpus prompt, imported
/// into one project, lints without an error (no example output the drafted contract refuses, no
/// template taken for an example).
#[test]
fn imported_agents_lint_without_errors() {
    let dir = project();
    for (seed, agent) in SEEDS {
        import(dir.path(), &seeds_dir().join(seed), agent);
    }
    for corpus_dir in corpus() {
        let expected = yaml(&corpus_dir.join("expected.yaml"));
        let file = corpus_dir.join(expected["prompt_file"].as_str().expect("prompt_file"));
        import(dir.path(), &file, &slug(&corpus_dir));
    }
    let output = agent_in(dir.path())
        .arg("--project")
        .arg(dir.path())
        .args(["lint", "--format", "json"])
        .output()
        .expect("agent runs");
    let report: Value = serde_json::from_slice(&output.stdout).expect("lint prints JSON");
    let errors: Vec<String> = report["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .flat_map(|agent| {
            let name = agent["agent"].as_str().unwrap_or_default().to_owned();
            agent["findings"]
                .as_array()
                .expect("findings")
                .iter()
                .filter(|f| f["severity"] == "error")
                .map(move |f| format!("{name}: {} {}", f["rule"], f["message"]))
        })
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(report["errors"], 0);
    assert_eq!(output.status.code(), Some(0));
}

/// `[DIFF_OR_FILE_CONTENTS]` that no input binds would reach the model verbatim: `render`,
/// `run` and `eval` warn about it, and `--strict` refuses the agent before any model call.
#[test]
fn unbound_slot_like_text_warns_and_strict_refuses_it() {
    let dir = project();
    let root = dir.path();
    std::fs::write(
        root.join("prompts/review.md"),
        "---\nagent:\n  description: Reviews a change\n  dialect: bracket\n  inputs:\n    - name: REPOSITORY_NAME\n  contract: review.schema.json\n---\nReview the change to [REPOSITORY_NAME].\n\n[DIFF_OR_FILE_CONTENTS]\n\nAnswer with {\"verdict\": \"approve\"}.\n",
    )
    .expect("agent");
    std::fs::write(
        root.join("schemas/review.schema.json"),
        r#"{"type": "object", "properties": {"verdict": {"type": "string"}}, "required": ["verdict"]}"#,
    )
    .expect("contract");
    let case = root.join("fixtures/review/one");
    std::fs::create_dir_all(case.join("inputs")).expect("case");
    std::fs::write(case.join("inputs/repository_name.md"), "acme\n").expect("input");
    std::fs::write(case.join("case.yaml"), "expect: { outcome: valid }\n").expect("case.yaml");
    let agent = |args: &[&str]| {
        agent_in(root)
            .arg("--project")
            .arg(root)
            .args(args)
            .output()
            .expect("agent runs")
    };

    let rendered = agent(&["render", "review", "--var", "REPOSITORY_NAME=acme"]);
    assert_eq!(rendered.status.code(), Some(0));
    let warned = String::from_utf8_lossy(&rendered.stderr);
    assert_eq!(
        warned
            .matches("`[DIFF_OR_FILE_CONTENTS]` (line 11)")
            .count(),
        1,
        "{warned}"
    );
    assert!(String::from_utf8_lossy(&rendered.stdout).contains("\n[DIFF_OR_FILE_CONTENTS]\n"));

    for args in [
        vec![
            "render",
            "review",
            "--var",
            "REPOSITORY_NAME=acme",
            "--strict",
        ],
        // Refused before the endpoint (a closed port) is tried.
        vec![
            "run",
            "review",
            "--var",
            "REPOSITORY_NAME=acme",
            "--strict",
            "--model",
            "m",
            "--base-url",
            "http://127.0.0.1:9/v1",
        ],
        vec!["eval", "review", "--strict"],
    ] {
        let refused = agent(&args);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("`[DIFF_OR_FILE_CONTENTS]` (line 11)"),
            "{args:?}: {stderr}"
        );
        assert!(refused.stdout.is_empty(), "{args:?}");
    }
    assert!(
        !root.join(".agent").exists(),
        "a refused run or eval leaves no folder behind"
    );
}
