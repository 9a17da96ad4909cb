//! Stdout, where data goes: written whole or reported as failed, never silently cut.
//!
//! A full disk or a reader that closed the pipe (`| head -1`) must not pass for a complete
//! deliverable, so every command that prints data goes through [`print`], and a failure ends
//! the process with its own exit code (5) instead of success.

use std::io::Write as _;
use std::path::Path;

use crate::error::Error;

/// Write `text` to stdout and flush it. `folder` is where the same result is kept, if
/// anywhere, for the hint.
pub(crate) fn print(text: &[u8], folder: Option<&Path>) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    out.write_all(text)
        .and_then(|()| out.flush())
        .map_err(|error| failed(text.len(), &error, folder))
}

/// Copy the file at `path` to stdout: a report too large to hold in memory goes out as it
/// was written.
pub(crate) fn print_file(path: &Path, folder: Option<&Path>) -> Result<(), Error> {
    let mut file = std::fs::File::open(path).map_err(|source| Error::Io {
        action: "read",
        path: path.to_owned(),
        source,
    })?;
    let mut out = std::io::stdout().lock();
    std::io::copy(&mut file, &mut out)
        .and_then(|_| out.flush())
        .map(drop)
        .map_err(|error| failed(0, &error, folder))
}

/// `text` and a final line break if it lacks one.
pub(crate) fn print_line(text: &str, folder: Option<&Path>) -> Result<(), Error> {
    if text.ends_with('\n') {
        print(text.as_bytes(), folder)
    } else {
        let mut line = String::with_capacity(text.len() + 1);
        line.push_str(text);
        line.push('\n');
        print(line.as_bytes(), folder)
    }
}

/// An envelope as pretty JSON, with the value at `key` replaced by `raw`, written as the model
/// wrote it: parsed into a [`serde_json::Value`], `-0` would print as `-0.0` and `1.10` as
/// `1.1`, and a deliverable passes on as it was judged, not as a float reads it.
pub(crate) fn envelope_text(
    envelope: &serde_json::Value,
    key: &str,
    raw: Option<&serde_json::value::RawValue>,
) -> String {
    #[derive(serde::Serialize)]
    #[serde(untagged)]
    enum Field<'a> {
        Value(&'a serde_json::Value),
        Raw(&'a serde_json::value::RawValue),
    }
    let (serde_json::Value::Object(map), Some(raw)) = (envelope, raw) else {
        return serde_json::to_string_pretty(envelope).unwrap_or_default();
    };
    // Sorted, as the envelope's own map is.
    let fields: std::collections::BTreeMap<&str, Field<'_>> = map
        .iter()
        .map(|(name, value)| {
            let field = if name == key {
                Field::Raw(raw)
            } else {
                Field::Value(value)
            };
            (name.as_str(), field)
        })
        .collect();
    serde_json::to_string_pretty(&fields).unwrap_or_default()
}

/// A JSON deliverable's text as raw JSON; none for text that is not JSON (a tagged answer,
/// whose fields are an object built from its tags).
pub(crate) fn as_written(text: Option<&str>) -> Option<Box<serde_json::value::RawValue>> {
    text.and_then(|text| serde_json::value::RawValue::from_string(text.trim().to_owned()).ok())
}

fn failed(bytes: usize, error: &std::io::Error, folder: Option<&Path>) -> Error {
    let reason = match error.kind() {
        std::io::ErrorKind::BrokenPipe => "the reader closed the pipe".to_owned(),
        std::io::ErrorKind::StorageFull => "no space left on the device".to_owned(),
        _ => error.to_string(),
    };
    let kept = match folder {
        Some(folder) => format!("the result is kept in `{}`", folder.display()),
        None => "run it again with stdout going somewhere that takes it all".to_owned(),
    };
    Error::Stdout {
        bytes,
        reason,
        hint: format!("what reached stdout is not a complete result; {kept}"),
    }
}
