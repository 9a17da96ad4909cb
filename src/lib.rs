//! `agent` turns a prompt written for people into a dependable program step.
//!
//! The stages, each a module with a typed input and output:
//! [`prompt`] loads an agent file, [`inputs`] gathers and checks its inputs,
//! [`render`] fills the prompt strictly, [`extract`] splits a reply into its
//! private reasoning and its deliverable, and [`contract`] judges the
//! deliverable. [`project`] finds the agents and their contracts on disk. [`runner`] makes a
//! run of those stages; [`eval`] and [`mcp`] are built on it.

pub mod artifacts;
pub mod cli;
pub mod contract;
pub mod error;
pub mod eval;
pub mod exit;
pub mod extract;
pub mod guard;
pub mod import;
pub mod inputs;
pub mod lint;
pub mod logging;
pub mod mcp;
pub mod model;
pub mod pipeline;
pub mod progress;
pub mod project;
pub mod prompt;
pub mod render;
pub mod runner;
pub mod settings;
pub mod text;

pub use error::Error;
pub use exit::Status;
