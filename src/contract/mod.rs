//! Stage 6, validate: judge a deliverable against the agent's contract in `schemas/`.
//!
//! A contract is a JSON Schema (draft 2020-12, format checks on, no remote or file `$ref`)
//! with named checks a schema cannot say, or a markdown scaffold (title, sections in order,
//! tables and their columns, code blocks) with hard and soft rules. The judgement is a
//! [`Verdict`]; each [`Violation`] names where, which rule, and what was found.

mod checks;
mod definition;
mod error;
mod json;
mod markdown;
mod outline;
mod repair;
pub mod scaffold;
mod verdict;

pub use definition::{Contract, judge};
pub use error::ContractError;
pub use scaffold::Scaffold;
pub use verdict::{Location, Outcome, Severity, Verdict, Violation};
