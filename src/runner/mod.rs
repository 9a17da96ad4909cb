//! The runner: the only module that knows the order of the stages. Render, call the model,
//! extract, judge, re-ask with the violations until the contract holds or the attempts run
//! out, and record every artifact on the way.

mod budget;
mod reask;
mod report;
mod run;

pub use reask::reask_message;
pub use report::{AttemptRecord, InputRecord, Parameters, RunOutcome, RunReport};
pub use run::{ResponseFormat, Run, RunError, RunOptions, run};
