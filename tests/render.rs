//! Rendering: the byte-for-byte round trip, strictness, and the injection guard.

mod common;

use agent::inputs::Inputs;
use agent::prompt::{InputKind, Prompt};
use agent::render::{RenderError, render};

/// Each input set to the text of its own placeholder (a blank for a form line).
fn placeholders_as_values(prompt: &Prompt) -> Inputs {
    let mut inputs = Inputs::new();
    for (index, spec) in prompt.inputs.iter().enumerate() {
        if spec.kind == InputKind::Context {
            continue;
        }
        let slot = prompt
            .slots
            .iter()
            .find(|slot| slot.input == index)
            .expect("every input has a slot");
        inputs.set(&spec.name, &prompt.body()[slot.range.clone()]);
    }
    inputs
}

#[test]
fn the_five_agents_load() {
    let names = common::project().agent_names().expect("prompts/ lists");
    assert_eq!(names, common::AGENTS);
    for name in common::AGENTS {
        common::project()
            .load(name)
            .expect("agent loads with its contract");
    }
}

#[test]
fn rendering_each_input_as_its_own_placeholder_gives_back_the_body() {
    for name in common::AGENTS {
        let agent = common::project().load(name).expect("loads");
        let prompt = &agent.prompt;
        assert!(!prompt.slots.is_empty(), "{name} has placeholders");
        let rendered = render(prompt, &placeholders_as_values(prompt)).expect("renders");
        assert!(
            rendered.text == prompt.body(),
            "{name}: the round trip changed the body (first difference at byte {:?})",
            rendered
                .text
                .bytes()
                .zip(prompt.body().bytes())
                .position(|(a, b)| a != b)
        );
    }
}

#[test]
fn a_missing_value_names_the_input_the_file_and_the_line() {
    let agent = common::project().load("release-plan").expect("loads");
    let mut inputs = placeholders_as_values(&agent.prompt);
    let mut partial = Inputs::new();
    for (name, value) in inputs.iter() {
        if name != "PROJECT_RULES" {
            partial.insert(name.clone(), value.clone());
        }
    }
    inputs = partial;
    let error = render(&agent.prompt, &inputs).expect_err("a missing value is an error");
    let RenderError::Missing { missing, .. } = &error else {
        panic!("unexpected error {error:?}");
    };
    let line = agent
        .prompt
        .source
        .lines()
        .position(|l| l.contains("{{PROJECT_RULES}}"))
        .expect("placeholder")
        + 1;
    assert_eq!(missing, &[("PROJECT_RULES".to_owned(), line)]);
    let message = error.to_string();
    assert!(
        message.contains("`PROJECT_RULES`") && message.contains(&format!("line {line}")),
        "{message}"
    );
}

#[test]
fn literal_braces_dollars_and_tags_that_are_not_inputs_stay() {
    let rendered = |name: &str| {
        let agent = common::project().load(name).expect("loads");
        let mut inputs = Inputs::new();
        for spec in &agent.prompt.inputs {
            inputs.set(&spec.name, format!("<<{}>>", spec.name));
        }
        render(&agent.prompt, &inputs).expect("renders").text
    };
    let deploy = rendered("deploy");
    assert!(deploy.contains("Variables={...}"));
    assert!(deploy.contains("docker pull <<REPO_NAME>>:v{VERSION}"));
    assert!(deploy.contains("Deployment Date: {TIMESTAMP}"));
    let plan = rendered("release-plan");
    assert!(plan.contains("v{DATE} – initial draft"));
    assert!(plan.contains("`infra/envs/{stage}/`"));
    let strategy = rendered("release-strategy");
    assert!(strategy.contains("- **Software Type**: <<software_type>>"));
    assert!(strategy.contains("RELEASE OBJECTIVES:\n<<release_objectives>>\n"));
    let manager = rendered("release-manager");
    assert!(manager.contains(
        "<release_package>\n- Version: <<VERSION>>\n- Build artifacts: <<BUILD_ARTIFACTS>>\n"
    ));
    let deployment = rendered("deployment-plan");
    assert!(deployment.contains("feature flags `<<FLAG>>` prepared"));
    assert!(deployment.contains("Prefer 4â€“6 bullets per section"));
}

// The injection guard against hostile inputs is tested in `tests/guard.rs`, from one table.

#[test]
fn the_guard_covers_the_tags_each_agent_relies_on() {
    let tags = |name: &str| {
        common::project()
            .load(name)
            .expect("loads")
            .prompt
            .structural_tags
    };
    for tag in [
        "project_request",
        "existing_code",
        "release_planning",
        "think",
    ] {
        assert!(
            tags("release-plan").contains(tag),
            "release-plan guards {tag}"
        );
    }
    for tag in [
        "inputs",
        "release_package",
        "guardrails",
        "output_contract",
        "role",
    ] {
        assert!(
            tags("release-manager").contains(tag),
            "release-manager guards {tag}"
        );
    }
    assert!(tags("deploy").contains("context"));
}
