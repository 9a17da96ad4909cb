//! The pipeline file as written, and where each key sits in it (for error lines).

use std::collections::BTreeMap;

use serde::Deserialize;

/// A pipeline file.
#[derive(Debug, Clone, Deserialize)]
pub struct PipelineFile {
    /// The pipeline's name (the file stem when absent).
    pub name: Option<String>,
    /// What it does.
    pub description: Option<String>,
    /// Its own inputs, given with `--inputs DIR`, `--vars FILE`, `--var` or stdin JSON.
    #[serde(default)]
    pub inputs: BTreeMap<String, PipelineInput>,
    /// The step whose deliverable goes to stdout [default: the last step].
    pub output: Option<String>,
    /// The steps, by name, in the order written.
    pub steps: serde_yaml_ng::Mapping,
    /// Keys it does not know, kept so that the check names them with every other problem
    /// instead of stopping at the first.
    #[serde(flatten)]
    pub unknown: BTreeMap<String, serde_yaml_ng::Value>,
}

/// A pipeline input.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineInput {
    /// What it is.
    pub description: Option<String>,
    /// Its value when not given; an input without one is required.
    pub default: Option<String>,
}

/// One step as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StepFile {
    pub(crate) agent: String,
    /// An inputs directory, bound as `--inputs DIR` binds it.
    pub(crate) inputs_dir: Option<String>,
    /// Input bindings, by the agent's input names.
    #[serde(default)]
    pub(crate) inputs: serde_yaml_ng::Mapping,
    /// Attempts for this step [default: the run's].
    pub(crate) attempts: Option<u32>,
    /// `response_format` for this step [default: the run's `--response-format`].
    pub(crate) response_format: Option<crate::runner::ResponseFormat>,
}

/// The 1-based line of the key at `path` (`["steps", "plan", "inputs", "NOTES"]`) in a YAML
/// text written in block style: keys are matched by indentation, as a reader would.
pub(crate) fn line_of(text: &str, path: &[&str]) -> Option<usize> {
    let mut stack: Vec<(usize, String)> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let content = line.trim_start();
        if content.is_empty() || content.starts_with('#') || content.starts_with('-') {
            continue;
        }
        let Some((key, _)) = content.split_once(':') else {
            continue;
        };
        let indent = line.len() - content.len();
        while stack.last().is_some_and(|(depth, _)| *depth >= indent) {
            stack.pop();
        }
        stack.push((indent, key.trim().trim_matches(['"', '\'']).to_owned()));
        if stack.len() == path.len() && stack.iter().zip(path).all(|((_, key), want)| key == want) {
            return Some(number + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_by_indentation() {
        let text = "name: x\nsteps:\n  plan:\n    agent: a\n    inputs:\n      NOTES:\n        - file: n.md\n  deploy:\n    agent: b\n";
        assert_eq!(
            line_of(text, &["steps", "plan", "inputs", "NOTES"]),
            Some(6)
        );
        assert_eq!(line_of(text, &["steps", "deploy", "agent"]), Some(9));
        assert_eq!(line_of(text, &["steps", "missing"]), None);
    }
}
