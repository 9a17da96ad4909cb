//! Variables files (`vars.yaml`, `vars.json`, `vars.toml`) and stdin JSON: flat maps of
//! input names to scalar values. A name given twice is refused, never settled silently.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, Visitor};
use serde_json::Value;

/// Is `file_name` a variables file by its name?
pub(crate) fn is_vars_file(file_name: &str) -> bool {
    let lower = file_name.to_ascii_lowercase();
    let Some((stem, extension)) = lower.rsplit_once('.') else {
        return false;
    };
    matches!(stem, "vars" | "variables") && matches!(extension, "yaml" | "yml" | "json" | "toml")
}

/// Parse a variables file's text, choosing the format by its extension.
pub(crate) fn parse_file(path: &Path, text: &str) -> Result<Vec<(String, String)>, String> {
    let extension = path
        .extension()
        .map(|ext| ext.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let Entries(entries) = match extension.as_str() {
        "json" => serde_json::from_str(text).map_err(|e| e.to_string())?,
        // TOML refuses a key given twice itself.
        "toml" => toml::from_str::<toml::Table>(text)
            .map_err(|e| e.to_string())
            .and_then(|table| {
                serde_json::to_value(table)
                    .and_then(serde_json::from_value)
                    .map_err(|e| e.to_string())
            })?,
        _ => serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?,
    };
    flatten(entries)
}

/// Parse one JSON object, as read from stdin.
pub(crate) fn parse_json(text: &str) -> Result<Vec<(String, String)>, String> {
    let Entries(entries) = serde_json::from_str(text).map_err(|e| e.to_string())?;
    flatten(entries)
}

/// The entries of a map, in order. Parsed entry by entry so that a key given twice is an
/// error: JSON parsers (serde_json among them) keep the last value without a word, and
/// `{"NOTES": "a", "NOTES": "b"}` would lose a value nobody chose to drop.
struct Entries(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Entries, D::Error> {
        deserializer.deserialize_map(EntriesVisitor)
    }
}

struct EntriesVisitor;

impl<'de> Visitor<'de> for EntriesVisitor {
    type Value = Entries;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a map of input names to values")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
        let mut seen = HashSet::new();
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(A::Error::custom(format_args!(
                    "`{key}` is given twice; give each input once"
                )));
            }
            let value = map.next_value::<Value>()?;
            entries.push((key, value));
        }
        Ok(Entries(entries))
    }
}

/// Scalars (or lists of scalars, joined with `, `) to name/value pairs.
fn flatten(entries: Vec<(String, Value)>) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        let text = match value {
            Value::Array(items) => items
                .into_iter()
                .map(|item| scalar(&key, item))
                .collect::<Result<Vec<_>, _>>()?
                .join(", "),
            other => scalar(&key, other)?,
        };
        pairs.push((key, text));
    }
    Ok(pairs)
}

fn scalar(key: &str, value: Value) -> Result<String, String> {
    match value {
        Value::String(text) => Ok(text),
        Value::Number(number) => Ok(number.to_string()),
        Value::Bool(flag) => Ok(flag.to_string()),
        Value::Null => Ok(String::new()),
        Value::Array(_) | Value::Object(_) => Err(format!(
            "`{key}` must be text, a number, a boolean or a list of those"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_formats_read_alike() {
        let sorted = |mut pairs: Vec<(String, String)>| {
            pairs.sort();
            pairs
        };
        let yaml = sorted(
            parse_file(Path::new("vars.yaml"), "VERSION: 2.4.0\nFLAGS: [a, b]\n").expect("yaml"),
        );
        let json = sorted(
            parse_file(
                Path::new("vars.json"),
                r#"{"VERSION": "2.4.0", "FLAGS": ["a", "b"]}"#,
            )
            .expect("json"),
        );
        let toml = sorted(
            parse_file(
                Path::new("vars.toml"),
                "VERSION = \"2.4.0\"\nFLAGS = [\"a\", \"b\"]\n",
            )
            .expect("toml"),
        );
        assert_eq!(yaml, json);
        assert_eq!(json, toml);
        assert_eq!(yaml[0], ("FLAGS".to_owned(), "a, b".to_owned()));
    }

    #[test]
    fn nested_maps_and_non_maps_are_refused() {
        assert!(parse_json(r#"{"A": {"b": 1}}"#).is_err());
        assert!(parse_json("[1, 2]").is_err());
        assert!(parse_json("not json").is_err());
    }

    #[test]
    fn duplicate_keys_are_refused_naming_the_key() {
        let error = parse_json(r#"{"NOTES": "a", "ENVIRONMENT": "staging", "NOTES": "b"}"#)
            .expect_err("a key given twice");
        assert!(error.starts_with("`NOTES` is given twice"), "{error}");
        let error = parse_file(Path::new("vars.json"), r#"{"A": 1, "A": 1}"#)
            .expect_err("a key given twice");
        assert!(error.starts_with("`A` is given twice"), "{error}");
        let error = parse_file(Path::new("vars.yaml"), "A: 1\nA: 2\n").expect_err("twice");
        assert!(error.contains('A'), "{error}");
        assert!(parse_file(Path::new("vars.toml"), "A = 1\nA = 2\n").is_err());
    }

    #[test]
    fn variables_files_are_known_by_name() {
        assert!(is_vars_file("vars.yaml") && is_vars_file("Variables.TOML"));
        assert!(!is_vars_file("vars.md") && !is_vars_file("my-vars.yaml"));
    }
}
