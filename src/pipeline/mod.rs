//! Pipelines: agents chained through their validated deliverables.
//!
//! A pipeline file (`pipelines/*.yaml`) names steps, each an agent whose inputs come from
//! files, literals, the pipeline's own inputs, or an earlier step's deliverable (whole, or a
//! JSON pointer into a JSON deliverable). The file is checked whole before anything runs; the
//! steps form a DAG and independent steps run at once. A step only ever receives another
//! step's deliverable, never its reasoning, and it enters the prompt as data, under the same
//! injection guard as any input. Built on [`crate::runner`].

mod check;
mod file;
mod inputs;
mod report;
mod run;

pub use check::{Binding, Part, Plan, PlannedStep, check};
pub use file::PipelineFile;
pub use inputs::read_pipeline_inputs;
pub use report::{PipelineReport, StepRecord, StepStatus};
pub use run::{PipelineError, PipelineOptions, PipelineResult, StepParameters, run_pipeline};
