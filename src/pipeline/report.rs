//! `pipeline.json`: the run's summary, written after every step so that a crash or Ctrl-C
//! loses no completed step, and read back by `--resume`.

use serde::{Deserialize, Serialize};

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    /// Not started.
    Pending,
    /// A valid deliverable.
    Valid,
    /// A valid refusal; its dependents do not run.
    Declined,
    /// The contract still broken after the last attempt.
    Violated,
    /// The model endpoint failed.
    ModelError,
    /// Its inputs could not be gathered.
    InputError,
    /// A step it needs did not end valid.
    Skipped,
    /// Stopped by Ctrl-C.
    Interrupted,
}

impl StepStatus {
    /// Ended in a deliverable that later steps may use (or may reuse on `--resume`).
    pub fn completed(self) -> bool {
        matches!(self, StepStatus::Valid | StepStatus::Declined)
    }

    /// Ended with nothing to pass on, so the steps that need it are skipped.
    pub fn stops_dependents(self) -> bool {
        matches!(
            self,
            StepStatus::Declined
                | StepStatus::Violated
                | StepStatus::ModelError
                | StepStatus::InputError
                | StepStatus::Skipped
        )
    }

    /// How bad an ending is for the whole run: the worst step decides its outcome.
    fn severity(self) -> u8 {
        match self {
            StepStatus::Valid => 0,
            StepStatus::Skipped | StepStatus::Declined => 1,
            StepStatus::Violated => 2,
            StepStatus::ModelError => 3,
            StepStatus::InputError => 4,
            StepStatus::Pending | StepStatus::Interrupted => 5,
        }
    }
}

impl std::fmt::Display for StepStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StepStatus::Pending => "pending",
            StepStatus::Valid => "valid",
            StepStatus::Declined => "declined",
            StepStatus::Violated => "violated",
            StepStatus::ModelError => "model error",
            StepStatus::InputError => "input error",
            StepStatus::Skipped => "skipped",
            StepStatus::Interrupted => "interrupted",
        })
    }
}

/// One step of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepRecord {
    /// The step.
    pub name: String,
    /// Its agent.
    pub agent: String,
    /// How it ended.
    pub status: StepStatus,
    /// Reused from the run being resumed.
    #[serde(default)]
    pub reused: bool,
    /// Attempts made.
    pub attempts: u32,
    /// Tokens used.
    pub tokens: u64,
    /// Of them, prompt tokens (cached ones included), as the server counted them.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Prompt tokens the server served from its cache.
    #[serde(default)]
    pub cached_tokens: u64,
    /// Reply tokens.
    #[serde(default)]
    pub completion_tokens: u64,
    /// Wall time.
    pub elapsed_ms: u64,
    /// The steps it needs.
    pub needs: Vec<String>,
    /// The hash of its agent, prompt, contract, model parameters and input values: the same
    /// hash on `--resume` means the step can be reused.
    pub fingerprint: Option<String>,
    /// Why it ended so (the violation, the error, the step it waited for).
    pub reason: Option<String>,
}

/// A pipeline run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PipelineReport {
    /// The pipeline.
    pub pipeline: String,
    /// The pipeline file.
    pub file: String,
    /// The model.
    pub model: String,
    /// Every step, in the order written.
    pub steps: Vec<StepRecord>,
    /// The step whose deliverable is the output.
    pub output: String,
    /// Not every step has ended.
    pub partial: bool,
    /// Wall time so far.
    pub elapsed_ms: u64,
}

impl PipelineReport {
    /// The run's outcome, in the words of a step's: the worst ending of any step. A step
    /// still pending (never reached, as after Ctrl-C) makes the run interrupted.
    pub fn outcome(&self) -> StepStatus {
        match self
            .steps
            .iter()
            .map(|s| s.status)
            .max_by_key(|status| status.severity())
        {
            Some(StepStatus::Pending) => StepStatus::Interrupted,
            // A skipped step only follows a declined one: the other endings rank higher.
            Some(StepStatus::Skipped) => StepStatus::Declined,
            Some(status) => status,
            None => StepStatus::Valid,
        }
    }

    /// The exit status of the outcome.
    pub fn status(&self) -> crate::Status {
        match self.outcome() {
            StepStatus::Valid => crate::Status::Ok,
            StepStatus::Declined | StepStatus::Skipped => crate::Status::Declined,
            StepStatus::Violated => crate::Status::Violated,
            StepStatus::ModelError => crate::Status::Model,
            StepStatus::InputError => crate::Status::Usage,
            StepStatus::Pending | StepStatus::Interrupted => crate::Status::Interrupted,
        }
    }

    /// The summary table, for people.
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let width = self
            .steps
            .iter()
            .map(|s| s.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let mut text = format!("{}: {} steps\n", self.pipeline, self.steps.len());
        for step in &self.steps {
            let status = step.status.to_string();
            let _ = write!(
                text,
                "  {:width$}  {:16}  {:12}  {} attempt(s)  {:>7} tokens  {:>6.1} s",
                step.name,
                step.agent,
                status,
                step.attempts,
                step.tokens,
                step.elapsed_ms as f64 / 1000.0
            );
            if step.reused {
                text.push_str("  (reused)");
            }
            text.push('\n');
            if let Some(reason) = &step.reason {
                // Under the step's row, every line of it (a stale recording's diff has several).
                for line in crate::text::clip(reason, 400).lines() {
                    let _ = writeln!(text, "  {:width$}  {line}", "");
                }
            }
        }
        text
    }
}
