//! Stage 6, validate: judge a deliverable against the agent's contract in `schemas/`.
//!
//! A contract is a JSON Schema (draft 2020-12, format checks on, no remote or file `$ref`)
//! with named checks a schema cannot say, a markdown scaffold (title, sections in order,
//! tables and their columns, code blocks, front matter, line rules) with hard and soft rules,
//! or a tagged answer (named tagged fields in order, each typed and bounded). The judgement is
//! a [`Verdict`]; each [`Violation`] names where, which rule, and what was found. Every key of
//! the three formats is described in `docs/contracts.md`.

mod checks;
mod definition;
mod error;
mod json;
mod markdown;
mod outline;
mod repair;
pub mod scaffold;
pub mod tagged;
mod verdict;

pub use definition::{Contract, judge};
pub use error::ContractError;
pub use scaffold::Scaffold;
pub use tagged::TaggedContract;
pub use verdict::{Location, Outcome, Severity, Verdict, Violation};
