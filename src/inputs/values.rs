//! [`Inputs`]: the value of each input, with where it came from.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Origin {
    /// A file in the inputs directory, or named by `--var NAME=@path`.
    File {
        /// The file.
        path: PathBuf,
    },
    /// A source tree.
    Tree {
        /// The directory.
        path: PathBuf,
        /// Files included.
        files: usize,
        /// Files left out.
        omitted: usize,
    },
    /// A key of a variables file.
    VarsFile {
        /// The variables file.
        path: PathBuf,
    },
    /// A key of the JSON object read from stdin.
    Stdin,
    /// A `--var NAME=VALUE` flag.
    Flag,
    /// The input's declared default.
    Default,
}

/// One input's value.
#[derive(Debug, Clone, Serialize)]
pub struct InputValue {
    /// The text that enters the prompt (before the injection guard).
    pub text: String,
    /// Where it came from.
    pub origin: Origin,
}

impl InputValue {
    /// The SHA-256 of the text, hex encoded, for run records and cache keys.
    pub fn sha256(&self) -> String {
        hex(&Sha256::digest(self.text.as_bytes()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The value of each input, keyed by the input's declared name.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Inputs {
    values: BTreeMap<String, InputValue>,
}

impl Inputs {
    /// No values.
    pub fn new() -> Inputs {
        Inputs::default()
    }

    /// Set `name` (the declared name) to `value`.
    pub fn insert(&mut self, name: impl Into<String>, value: InputValue) {
        self.values.insert(name.into(), value);
    }

    /// Set `name` to literal text, as a flag would.
    pub fn set(&mut self, name: impl Into<String>, text: impl Into<String>) {
        self.insert(
            name,
            InputValue {
                text: text.into(),
                origin: Origin::Flag,
            },
        );
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&InputValue> {
        self.values.get(name)
    }

    /// The text of `name`.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(|value| value.text.as_str())
    }

    /// Every value, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &InputValue)> {
        self.values.iter()
    }
}
