//! `agent eval`: run agents over fixture cases, check assertions, report for people and CI.
//!
//! Built on [`crate::runner`]: a case is a run with expectations. Cases live in
//! `fixtures/<agent>/<case>/case.yaml` (or expand from a dataset of variables), run
//! concurrently under the transport limits of `agent run`, and stream their results to
//! `results.jsonl` as they finish, so a killed eval resumes where it stopped, and every report
//! is written from that stream. A matrix runs the cases against several models and prompt
//! variants, side by side.

mod assertion;
mod budget;
mod case;
mod engine;
mod error;
mod folder;
mod html;
mod judge;
mod matrix;
mod outputs;
mod report;
mod stream;

pub use assertion::{Assertion, Check};
pub use case::{Case, CaseIter, Cases, Expect, ExpectedOutcome, Selected, select};
pub use engine::{EvalContext, EvalOptions, Mode, SamplingFlags, Shard, Tally, run_eval};
pub use error::EvalError;
pub use folder::{EvalFolder, ModelSetup, Selection};
pub use matrix::{Column, Variant};
pub use report::{
    AttemptLog, Baseline, CaseReport, ColumnSummary, EvalReport, Noted, ReportFormat, RunResult,
    Summary, TokenCounts, merge,
};
pub use stream::{ReportPlan, ResultsIndex, RunKey, RunSet, Written, write_reports};
