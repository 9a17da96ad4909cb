//! The three kinds of contract on example replies: every reply of every suite under
//! `tests/contracts/` gets exactly the verdict its `verdicts.yaml` records (tagged answers,
//! scaffold front matter, line rules, `match: regex`, headings written as text, prose around
//! JSON); and a tagged agent works end to end: `agent show`, `agent check`, and a case recorded
//! with `agent record` whose re-ask and `json-path` assertions run on the tagged fields.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use agent::contract::{Contract, judge};
use agent::extract::extract;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Suite {
    contract: String,
    #[serde(default)]
    reasoning_tags: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    #[expect(dead_code, reason = "documentation for people reading the suites")]
    why: String,
    outcome: String,
    #[serde(default)]
    violations: Vec<String>,
    #[serde(default)]
    warnings: Vec<String>,
    /// Words the findings must say, each found in one of their messages.
    #[serde(default)]
    says: Vec<String>,
    /// The parsed value the verdict carries.
    value: Option<serde_json::Value>,
}

fn suites() -> Vec<PathBuf> {
    let root = common::root().join("tests").join("contracts");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/contracts lists")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.join("suite.yaml").is_file())
        .collect();
    dirs.sort();
    dirs
}

fn read_yaml<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_example_reply_gets_exactly_its_recorded_verdict() {
    let mut mismatches = Vec::new();
    let mut judged = 0;
    for dir in suites() {
        let name = dir
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let suite: Suite = read_yaml(&dir.join("suite.yaml"));
        let contract =
            Contract::load(&dir.join(&suite.contract)).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let replies = dir.join("replies");
        let expected: BTreeMap<String, Expected> = read_yaml(&replies.join("verdicts.yaml"));
        let mut files: Vec<String> = std::fs::read_dir(&replies)
            .expect("replies list")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|f| f != "verdicts.yaml")
            .collect();
        files.sort();
        for file in &files {
            if !expected.contains_key(file) {
                mismatches.push(format!("{name}/{file}: no entry in verdicts.yaml"));
            }
        }
        let valid = expected.values().filter(|e| e.outcome == "valid").count();
        let invalid = expected.values().filter(|e| e.outcome == "invalid").count();
        if valid < 1 || invalid < 2 {
            mismatches.push(format!(
                "{name}: {valid} valid and {invalid} invalid replies; a suite needs one valid and two invalid at least"
            ));
        }
        for (file, want) in &expected {
            let Ok(reply) = std::fs::read_to_string(replies.join(file)) else {
                mismatches.push(format!("{name}/{file}: listed but missing"));
                continue;
            };
            judged += 1;
            let extracted = extract(&reply, None, &suite.reasoning_tags);
            let verdict = judge(&contract, &reply, &extracted, &suite.reasoning_tags);
            let found = |list: &[agent::contract::Violation]| -> Vec<String> {
                list.iter()
                    .map(|v| format!("{} at {}", v.rule, v.location))
                    .collect()
            };
            let (violations, warnings) = (found(&verdict.violations), found(&verdict.warnings));
            let messages: Vec<&str> = verdict
                .violations
                .iter()
                .chain(&verdict.warnings)
                .map(|v| v.message.as_str())
                .collect();
            let unsaid: Vec<&String> = want
                .says
                .iter()
                .filter(|words| !messages.iter().any(|m| m.contains(words.as_str())))
                .collect();
            let value_differs = want
                .value
                .as_ref()
                .is_some_and(|v| verdict.json.as_ref() != Some(v));
            if verdict.outcome.to_string() != want.outcome
                || violations != want.violations
                || warnings != want.warnings
                || !unsaid.is_empty()
                || value_differs
            {
                mismatches.push(format!(
                    "{name}/{file}:\n  expected {} {:#?} {:#?} saying {:#?} value {:?}\n  got      {} {:#?} {:#?} saying {:#?} value {:?}",
                    want.outcome,
                    want.violations,
                    want.warnings,
                    unsaid,
                    want.value,
                    verdict.outcome,
                    violations,
                    warnings,
                    messages,
                    verdict.json,
                ));
            }
        }
    }
    assert!(judged >= 40, "only {judged} replies judged");
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// A project with one tagged agent, `coherence`, and one eval case whose first reply is re-asked.
fn tagged_project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    let write = |path: &str, text: &str| {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
        std::fs::write(path, text).expect("write");
    };
    write(
        "prompts/coherence.md",
        "---\nagent:\n  description: Grades the coherence of an answer\n  dialect: double-brace\n  inputs:\n    - name: ANSWER\n  reasoning:\n    tags: [S0]\n  contract: coherence.tagged.yaml\n---\nGrade the coherence of this answer from 1 to 5:\n<answer>{{ANSWER}}</answer>\nReply with your chain of thought in <S0>…</S0>, a short explanation in <S1>…</S1> and the score in <S2>…</S2>.\n",
    );
    std::fs::create_dir_all(root.join("schemas")).expect("schemas/");
    std::fs::copy(
        common::root().join("tests/contracts/coherence/coherence.tagged.yaml"),
        root.join("schemas/coherence.tagged.yaml"),
    )
    .expect("contract copied");
    write(
        "fixtures/coherence/key-rotation/inputs/answer.md",
        "Publish the new key, switch signing, wait out the token lifetime, retire the old key.\n",
    );
    write(
        "fixtures/coherence/key-rotation/case.yaml",
        "description: The first grade is a word and is re-asked; the second is a number\nattempts: 2\nexpect: { outcome: valid, attempts: 2 }\nassert:\n  - { type: json-path, path: /S2, equals: 5 }\n  - { type: json-path, path: $.S1, matches: '^The steps' }\n  - { type: no-reasoning-leak }\nscripted_replies: [replies/01-word.md, replies/02-number.md]\n",
    );
    write(
        "fixtures/coherence/key-rotation/replies/01-word.md",
        "<S0>Let's think step by step: ordered and direct.</S0>\n<S1>The steps are ordered and answer the question.</S1>\n<S2>five</S2>\n",
    );
    write(
        "fixtures/coherence/key-rotation/replies/02-number.md",
        "<S0>Let's think step by step: ordered and direct.</S0>\n<S1>The steps are ordered and answer the question.</S1>\n<S2>5</S2>\n",
    );
    dir
}

#[test]
fn show_summarises_a_tagged_contract() {
    let project = tagged_project();
    let output = common::agent_in(project.path())
        .args(["show", "coherence"])
        .output()
        .expect("agent runs");
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8(output.stdout).expect("utf-8");
    assert!(
        text.contains("contract:   schemas/coherence.tagged.yaml (tagged answer, 2 field(s) in order: <S1> <S2>; text outside them warns)\n              - <S1> text, 3 to 60 words\n              - <S2> integer, 1 to 5\n"),
        "{text}"
    );
}

#[test]
fn check_judges_a_tagged_reply_and_gives_its_fields() {
    let project = tagged_project();
    let reply = project
        .path()
        .join("fixtures/coherence/key-rotation/replies/01-word.md");
    let output = common::agent_in(project.path())
        .args(["check", "coherence"])
        .arg(&reply)
        .output()
        .expect("agent runs");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "coherence: invalid (1 violation, 0 warnings)\n  reasoning: 45 chars, `<s0>` at line 1\n  violation: tagged.type at line 3 (in `<S2>`): found \"five\"; expected an integer\n"
    );
    let output = common::agent_in(project.path())
        .args(["check", "coherence", "--json"])
        .arg(
            project
                .path()
                .join("fixtures/coherence/key-rotation/replies/02-number.md"),
        )
        .output()
        .expect("agent runs");
    assert_eq!(output.status.code(), Some(0));
    let envelope: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(
        envelope["value"],
        serde_json::json!({"S1": "The steps are ordered and answer the question.", "S2": 5})
    );
}

#[test]
fn a_tagged_case_is_recorded_reasked_and_asserted_on_its_fields() {
    let project = tagged_project();
    let output = common::agent_in(project.path())
        .args(["record", "coherence/key-rotation"])
        .output()
        .expect("agent runs");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let recording: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            project
                .path()
                .join("fixtures/coherence/key-rotation/recording.json"),
        )
        .expect("recorded"),
    )
    .expect("json");
    let reask = recording["exchanges"][1]["request"]["messages"][2]["content"]
        .as_str()
        .expect("the re-ask");
    assert!(
        reask.contains("[tagged.type] at line 3 (in `<S2>`): found \"five\"; expected an integer"),
        "{reask}"
    );
    assert!(
        reask.contains("every field in its tags in this order: <S1>…</S1> <S2>…</S2>."),
        "{reask}"
    );
    // Replayed, the case passes: its json-path assertions read the tagged fields.
    let output = common::agent_in(project.path())
        .args(["eval", "--out"])
        .arg(project.path().join("eval"))
        .output()
        .expect("agent runs");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    // The run's deliverable is the reply text, in a .txt file.
    let out = project.path().join("run");
    let output = common::agent_in(project.path())
        .args(["run", "coherence", "--inputs"])
        .arg(
            project
                .path()
                .join("fixtures/coherence/key-rotation/inputs"),
        )
        .arg("--replay")
        .arg(
            project
                .path()
                .join("fixtures/coherence/key-rotation/recording.json"),
        )
        .arg("--attempts")
        .arg("2")
        .arg("--json")
        .arg("--out")
        .arg(&out)
        .output()
        .expect("agent runs");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let envelope: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(envelope["deliverable"]["S2"], 5);
    let deliverable =
        std::fs::read_to_string(out.join("deliverable.txt")).expect("deliverable.txt");
    assert!(deliverable.contains("<S2>5</S2>") && !deliverable.contains("<S0>"));
}

fn reference() -> String {
    std::fs::read_to_string(common::root().join("docs/contracts.md")).expect("docs/contracts.md")
}

/// The fenced blocks of a markdown text: (info string, body).
fn fenced_blocks(text: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        match &mut open {
            None if trimmed.starts_with("```") => {
                open = Some((
                    trimmed.trim_start_matches('`').trim().to_owned(),
                    String::new(),
                ));
            }
            Some(_) if trimmed == "```" => blocks.extend(open.take()),
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
            None => {}
        }
    }
    blocks
}

#[test]
fn the_reference_examples_are_contracts_that_load() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut loaded = Vec::new();
    for (info, body) in fenced_blocks(&reference()) {
        if let Some(name) = body.lines().next().and_then(|l| l.strip_prefix("# file: ")) {
            let path = dir.path().join(name.trim());
            std::fs::write(&path, &body).expect("write");
            let contract = Contract::load(&path).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            loaded.push(contract.summary());
        } else if info == "json" && body.contains("\"$schema\"") {
            let contract = Contract::json_from_str(Path::new("example.schema.json"), &body)
                .unwrap_or_else(|e| panic!("the JSON example: {e:?}"));
            loaded.push(contract.summary());
        }
    }
    assert_eq!(loaded.len(), 3, "{loaded:?}");
    assert!(
        loaded[0].starts_with("tagged answer, 4 field(s) in order"),
        "{loaded:?}"
    );
    assert!(
        loaded[1].contains("front matter with title, date, severity"),
        "{loaded:?}"
    );
}

#[test]
fn the_reference_names_every_rule_the_verdicts_record() {
    let reference = reference();
    let mut files: Vec<PathBuf> = suites()
        .into_iter()
        .map(|dir| dir.join("replies/verdicts.yaml"))
        .collect();
    files.extend(common::AGENTS.iter().map(|agent| {
        common::root()
            .join("fixtures")
            .join(agent)
            .join("replies/verdicts.yaml")
    }));
    let mut missing = std::collections::BTreeSet::new();
    for file in files {
        let verdicts: BTreeMap<String, Expected> = read_yaml(&file);
        for expected in verdicts.values() {
            for finding in expected.violations.iter().chain(&expected.warnings) {
                let rule = finding.split(" at ").next().unwrap_or_default();
                if !reference.contains(&format!("`{rule}`")) {
                    missing.insert(rule.to_owned());
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/contracts.md does not name {missing:?}"
    );
}
