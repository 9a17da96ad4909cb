//! The shipped fixtures: every agent's example project renders cleanly, and every shipped
//! reply gets exactly the verdict its `verdicts.yaml` records.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use agent::contract::judge;
use agent::extract::extract;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    #[expect(dead_code, reason = "documentation for people reading the fixtures")]
    why: String,
    outcome: String,
    #[serde(default)]
    violations: Vec<String>,
    #[serde(default)]
    warnings: Vec<String>,
}

fn replies_dir(agent: &str) -> PathBuf {
    common::root().join("fixtures").join(agent).join("replies")
}

fn verdicts(agent: &str) -> BTreeMap<String, Expected> {
    let path = replies_dir(agent).join("verdicts.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn reply_files(agent: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(replies_dir(agent))
        .expect("replies/ lists")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name != "verdicts.yaml")
        .collect();
    files.sort();
    files
}

#[test]
fn every_reply_gets_exactly_its_recorded_verdict() {
    let mut mismatches = Vec::new();
    for name in common::AGENTS {
        let agent = common::project().load(name).expect("loads");
        let expected = verdicts(name);
        let files = reply_files(name);
        for file in &files {
            if !expected.contains_key(file) {
                mismatches.push(format!("{name}/{file}: no entry in verdicts.yaml"));
            }
        }
        for (file, want) in &expected {
            let Ok(reply) = std::fs::read_to_string(replies_dir(name).join(file)) else {
                mismatches.push(format!(
                    "{name}/{file}: listed in verdicts.yaml but missing"
                ));
                continue;
            };
            let extracted = extract(&reply, None, &agent.prompt.reasoning_tags);
            let verdict = judge(
                &agent.contract,
                &reply,
                &extracted,
                &agent.prompt.reasoning_tags,
            );
            let found = |list: &[agent::contract::Violation]| -> Vec<String> {
                list.iter()
                    .map(|v| format!("{} at {}", v.rule, v.location))
                    .collect()
            };
            let (violations, warnings) = (found(&verdict.violations), found(&verdict.warnings));
            if verdict.outcome.to_string() != want.outcome
                || violations != want.violations
                || warnings != want.warnings
            {
                mismatches.push(format!(
                    "{name}/{file}:\n  expected {} {:#?} {:#?}\n  got      {} {:#?} {:#?}",
                    want.outcome,
                    want.violations,
                    want.warnings,
                    verdict.outcome,
                    violations,
                    warnings
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn every_agent_ships_a_valid_reply_and_at_least_eight_invalid_ones() {
    for name in common::AGENTS {
        let expected = verdicts(name);
        let valid = expected.values().filter(|e| e.outcome == "valid").count();
        let invalid = expected.values().filter(|e| e.outcome == "invalid").count();
        assert!(valid >= 1, "{name}: {valid} valid replies");
        assert!(invalid >= 8, "{name}: {invalid} invalid replies");
        assert!(
            expected
                .values()
                .all(|e| (e.outcome == "invalid") != e.violations.is_empty()),
            "{name}: an invalid verdict lists its violations, a valid one none"
        );
    }
}

#[test]
fn check_exits_with_the_code_of_each_verdict() {
    for name in common::AGENTS {
        for (file, want) in verdicts(name) {
            let output = common::agent()
                .args(["check", name])
                .arg(replies_dir(name).join(&file))
                .output()
                .expect("agent runs");
            let code = match want.outcome.as_str() {
                "valid" => 0,
                "invalid" => 1,
                "declined" => 4,
                other => panic!("{name}/{file}: unknown outcome {other}"),
            };
            assert_eq!(output.status.code(), Some(code), "{name}/{file}");
            let report = String::from_utf8(output.stdout).expect("utf-8");
            assert!(
                report.starts_with(&format!("{name}: {}", want.outcome)),
                "{report}"
            );
        }
    }
}

/// The example projects render cleanly; other cases may be about a warning (hostile inputs,
/// a tree over budget), and `agent eval` reports theirs.
#[test]
fn every_example_project_renders_without_a_warning() {
    for name in common::AGENTS {
        let cases = [common::root()
            .join("fixtures")
            .join(name)
            .join("parcelpoint")
            .join("inputs")];
        for inputs in cases {
            let output = common::agent()
                .args(["render", name, "--inputs"])
                .arg(&inputs)
                .output()
                .expect("agent runs");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(
                output.status.code(),
                Some(0),
                "{}: {stderr}",
                inputs.display()
            );
            assert!(
                stderr.trim().is_empty(),
                "{}: warnings: {stderr}",
                inputs.display()
            );
            let prompt = String::from_utf8(output.stdout).expect("utf-8");
            assert!(
                prompt.len() > 1_000,
                "{}: rendered prompt is too short",
                inputs.display()
            );
        }
    }
}

#[test]
fn check_reports_read_well() {
    insta::glob!(
        "../fixtures",
        "*/replies/*.{md,txt}",
        |path: &std::path::Path| {
            let agent = path
                .parent()
                .and_then(std::path::Path::parent)
                .and_then(std::path::Path::file_name)
                .expect("fixtures/<agent>/replies/<file>")
                .to_string_lossy()
                .into_owned();
            let output = common::agent()
                .args(["check", &agent])
                .arg(path)
                .output()
                .expect("agent runs");
            insta::assert_snapshot!(String::from_utf8_lossy(&output.stdout));
        }
    );
}

#[test]
fn every_shipped_recording_replays_offline_to_a_valid_run() {
    for name in common::AGENTS {
        let case = common::root()
            .join("fixtures")
            .join(name)
            .join("parcelpoint");
        let out = tempfile::tempdir().expect("temp dir");
        let output = common::agent()
            .args(["run", name, "--inputs"])
            .arg(case.join("inputs"))
            .arg("--replay")
            .arg(case.join("recording.json"))
            .arg("--out")
            .arg(out.path())
            .env_remove("AGENT_MODEL")
            .env_remove("OPENAI_BASE_URL")
            .output()
            .expect("agent runs");
        assert_eq!(
            output.status.code(),
            Some(0),
            "{name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            !output.stdout.is_empty(),
            "{name}: the deliverable is printed"
        );
    }
}
