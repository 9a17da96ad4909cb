//! Stage 1, load: an agent file (`prompts/<name>.md`) becomes a [`Prompt`].
//!
//! The file is YAML front matter, then the prompt body exactly as its author wrote it.
//! Our settings live under the front matter's `agent:` key; keys the prompt brings itself
//! (`variables`, `required-context`, `argument_hint`, `min-context-window`) are kept and honoured.

mod argument_hint;
mod definition;
mod dialect;
mod error;
mod foreign;
pub(crate) mod front_matter;
mod input_spec;
pub(crate) mod layout;
pub mod picoschema;

pub use definition::{ModelDefaults, Prompt, PromptDeclared};
pub use dialect::{Dialect, Slot, SlotStyle};
pub use error::PromptError;
pub use foreign::{Origin, meaning_of_ignored};
pub use input_spec::{InputKind, InputSpec};
pub use layout::{MessagePart, PartSource};
