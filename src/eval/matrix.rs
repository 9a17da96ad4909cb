//! [`Column`]: one column of an eval matrix, a model, a prompt variant, or both.
//!
//! `agent eval --model A --model B --variant prompts/release-plan.v2.md` runs every case
//! against each model, and the cases of `release-plan` also against the variant's prompt:
//! columns `A`, `A · release-plan.v2`, `B`, `B · release-plan.v2`. A variant is an edited copy of
//! one agent's prompt file; it runs only that agent's cases.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::case::Case;
use super::error::EvalError;
use crate::project::{Agent, Project};

/// An edited copy of an agent's prompt file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    /// The agent it is a variant of.
    pub agent: String,
    /// Its file.
    pub path: PathBuf,
    /// Its name in reports: the file name without `.md`.
    pub name: String,
}

impl Variant {
    /// `FILE` or `AGENT=FILE`. Without the agent, the file name says it: the longest agent
    /// name the file's name starts with (`release-plan.v2.md` → `release-plan`).
    pub fn parse(spec: &str, project: &Project) -> Result<Variant, EvalError> {
        let (agent, file) = match spec.split_once('=') {
            Some((agent, file)) if !agent.contains(['/', '\\']) => {
                (Some(agent.to_owned()), PathBuf::from(file))
            }
            _ => (None, PathBuf::from(spec)),
        };
        let usage = |message: String| EvalError::Usage { message };
        if !file.is_file() {
            return Err(usage(format!(
                "--variant `{}` is not a file",
                file.display()
            )));
        }
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().trim_end_matches(".md").to_owned())
            .unwrap_or_default();
        let agent = match agent {
            Some(agent) => agent,
            None => project
                .agent_names()
                .unwrap_or_default()
                .into_iter()
                .filter(|agent| name.starts_with(agent.as_str()))
                .max_by_key(String::len)
                .ok_or_else(|| {
                    usage(format!(
                        "--variant `{}`: its name starts with no agent's name; write it `AGENT={}`",
                        file.display(),
                        file.display()
                    ))
                })?,
        };
        Ok(Variant {
            agent,
            path: file,
            name,
        })
    }

    /// The agent with the variant's prompt: the same contract, the edited prompt.
    pub fn load(&self, project: &Project) -> Result<Agent, EvalError> {
        let problem = |e: String| EvalError::Cases {
            problems: vec![format!("--variant `{}`: {e}", self.path.display())],
        };
        let mut agent = project
            .load(&self.agent)
            .map_err(|e| problem(e.to_string()))?;
        let prompt = crate::prompt::Prompt::load(&self.path).map_err(|e| problem(e.to_string()))?;
        // The variant keeps the agent's name (its cases, inputs and contract are the agent's);
        // only its prompt differs.
        let name = agent.prompt.name.clone();
        agent.prompt = prompt;
        agent.prompt.name = name;
        Ok(agent)
    }
}

/// One column of the matrix.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Column {
    /// Its name in reports; empty when the eval has a single column.
    pub label: String,
    /// The model asked, when the eval names models (otherwise the settings' or the
    /// recording's).
    pub model: Option<String>,
    /// The `agent.toml` profile, for `--profile` columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The prompt variant, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<Variant>,
}

impl Column {
    /// The columns of `models` (or `profiles`) × (the original prompts and each variant). One
    /// unnamed column when there is neither.
    pub fn matrix(models: &[String], profiles: &[String], variants: &[Variant]) -> Vec<Column> {
        let mut sides: Vec<(Option<String>, Option<String>)> = models
            .iter()
            .map(|m| (Some(m.clone()), None))
            .chain(profiles.iter().map(|p| (None, Some(p.clone()))))
            .collect();
        if sides.is_empty() {
            sides.push((None, None));
        }
        let named = sides.len() > 1 || !variants.is_empty();
        let mut columns = Vec::new();
        for (model, profile) in sides {
            let base = model.clone().or_else(|| profile.clone());
            let label = |variant: Option<&Variant>| -> String {
                match (&base, variant) {
                    (Some(base), Some(v)) => format!("{base} · {}", v.name),
                    (None, Some(v)) => v.name.clone(),
                    (Some(base), None) => base.clone(),
                    (None, None) => "original".into(),
                }
            };
            columns.push(Column {
                label: if named { label(None) } else { String::new() },
                model: model.clone(),
                profile: profile.clone(),
                variant: None,
            });
            for variant in variants {
                columns.push(Column {
                    label: label(Some(variant)),
                    model: model.clone(),
                    profile: profile.clone(),
                    variant: Some(variant.clone()),
                });
            }
        }
        columns
    }

    /// Does this column run `case`? A variant runs only its agent's cases.
    pub fn runs(&self, case: &Case) -> bool {
        self.variant
            .as_ref()
            .is_none_or(|v| v.agent == case.agent && case.pipeline.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variant(name: &str) -> Variant {
        Variant {
            agent: "release-plan".into(),
            path: PathBuf::from(format!("{name}.md")),
            name: name.into(),
        }
    }

    #[test]
    fn models_times_variants_make_the_columns() {
        let columns = Column::matrix(
            &["a".into(), "b".into()],
            &[],
            &[variant("release-plan.v2")],
        );
        let labels: Vec<&str> = columns.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(
            labels,
            ["a", "a · release-plan.v2", "b", "b · release-plan.v2"]
        );
        assert_eq!(Column::matrix(&[], &[], &[]), [Column::default()]);
        let labels: Vec<String> = Column::matrix(&[], &[], &[variant("v2")])
            .into_iter()
            .map(|c| c.label)
            .collect();
        assert_eq!(labels, ["original", "v2"]);
    }
}
