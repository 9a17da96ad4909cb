//! Stage 2, gather: bind files, variables files, `--var` flags and stdin JSON to an agent's
//! declared inputs, and refuse bad input before any model call, naming every problem at once.

mod error;
mod gather;
pub(crate) mod read;
mod tree;
mod values;
pub(crate) mod vars_file;

pub use error::{InputProblem, InputsError};
pub use gather::{DirLayer, Gathered, Limits, Sources, gather, gather_over, read_dir_layer};
pub use tree::{Omission, OmitReason, SecretKind, Tree, walk_tree};
pub use values::{InputValue, Inputs, Origin};
