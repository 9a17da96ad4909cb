//! `agent eval`: run agents over fixture cases, check assertions, report for people and CI.
//!
//! Built on [`crate::runner`]: a case is a run with expectations. Cases live in
//! `fixtures/<agent>/<case>/case.yaml` (or expand from a dataset of variables), run
//! concurrently under the transport limits of `agent run`, and stream their results to
//! `results.jsonl` as they finish, so a killed eval resumes where it stopped.

mod assertion;
mod case;
mod engine;
mod error;
mod folder;
mod judge;
mod report;

pub use assertion::{Assertion, Check};
pub use case::{Case, Expect, ExpectedOutcome, Selected, discover, select};
pub use engine::{EvalContext, EvalOptions, Mode, SamplingFlags, Shard, run_eval};
pub use error::EvalError;
pub use folder::{EvalFolder, ModelSetup, Selection};
pub use report::{CaseReport, EvalReport, ReportFormat, RunResult, Summary, merge};
