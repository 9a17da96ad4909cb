//! Picoschema, dotprompt's compact schema notation, as JSON Schema.
//!
//! ```yaml
//! summary: string                    # a required string
//! line?: integer, the first line     # optional, with a description
//! score: integer, from 1 to 10       # "from A to B" becomes minimum and maximum
//! issues(array):                     # an array of objects
//!   severity(enum): [low, high]
//! tags(array, labels): string        # an array of strings, described
//! metrics:                           # a nested object
//!   lines: integer
//! (*): string                        # any other key, of that type
//! ```
//!
//! As dotprompt does, every field is required unless marked `?`, an optional field may also
//! be null, and an object takes no keys it does not list (unless it has `(*)`).

use serde_json::{Map, Value, json};
use serde_yaml_ng::Value as Yaml;

const SCALARS: [&str; 6] = ["string", "number", "integer", "boolean", "null", "any"];

/// The JSON Schema of a Picoschema value (the value of `output.schema` or `input.schema`).
pub fn to_json_schema(schema: &Yaml) -> Result<Value, String> {
    match schema {
        Yaml::String(text) => scalar(text),
        Yaml::Mapping(map) => object(map),
        other => Err(format!(
            "a Picoschema is a type name or a map of fields, not `{}`",
            serde_yaml_ng::to_string(other).unwrap_or_default().trim()
        )),
    }
}

/// One declared field of an input schema: its name, whether it is required, its description
/// and its JSON type.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The name.
    pub name: String,
    /// Not marked `?`.
    pub required: bool,
    /// The text after the type.
    pub description: Option<String>,
    /// `string`, `integer`, `object`…
    pub kind: String,
}

/// The top-level fields of a Picoschema map, in order.
pub fn fields(schema: &Yaml) -> Result<Vec<Field>, String> {
    let Yaml::Mapping(map) = schema else {
        return Err("an input schema is a map of fields".into());
    };
    let mut fields = Vec::new();
    for (key, value) in map {
        let key = key.as_str().ok_or("a field name is text")?;
        let parsed = parse_key(key)?;
        if parsed.name == "*" {
            continue;
        }
        let (kind, description) = match (&parsed.modifier, value) {
            (Some(modifier), _) => (modifier.clone(), parsed.description.clone()),
            (None, Yaml::String(text)) => {
                let (kind, description) = split_type(text);
                (kind.to_owned(), description.map(str::to_owned))
            }
            (None, Yaml::Mapping(_)) => ("object".to_owned(), None),
            (None, _) => ("any".to_owned(), None),
        };
        fields.push(Field {
            name: parsed.name,
            required: !parsed.optional,
            description,
            kind,
        });
    }
    Ok(fields)
}

struct Key {
    name: String,
    optional: bool,
    modifier: Option<String>,
    description: Option<String>,
}

/// `name?(array, description)` in parts.
fn parse_key(key: &str) -> Result<Key, String> {
    let (head, modifier, description) = match key.split_once('(') {
        Some((head, rest)) => {
            let inner = rest
                .strip_suffix(')')
                .ok_or_else(|| format!("`{key}`: an unclosed `(`"))?;
            let (modifier, description) = match inner.split_once(',') {
                Some((m, d)) => (m.trim(), Some(d.trim().to_owned())),
                None => (inner.trim(), None),
            };
            (head, Some(modifier.to_owned()), description)
        }
        None => (key, None, None),
    };
    let head = head.trim();
    if head.is_empty() && modifier.as_deref() == Some("*") {
        return Ok(Key {
            name: "*".into(),
            optional: true,
            modifier: None,
            description: None,
        });
    }
    let (name, optional) = match head.strip_suffix('?') {
        Some(name) => (name, true),
        None => (head, false),
    };
    Ok(Key {
        name: name.to_owned(),
        optional,
        modifier,
        description,
    })
}

/// `integer, from 1 to 10` → (`integer`, `from 1 to 10`).
fn split_type(text: &str) -> (&str, Option<&str>) {
    match text.split_once(',') {
        Some((kind, description)) => (kind.trim(), Some(description.trim())),
        None => (text.trim(), None),
    }
}

fn scalar(text: &str) -> Result<Value, String> {
    let (kind, description) = split_type(text);
    if !SCALARS.contains(&kind) {
        return Err(format!(
            "`{kind}` is not a Picoschema type (string, number, integer, boolean, null, any)"
        ));
    }
    let mut schema = if kind == "any" {
        Map::new()
    } else {
        let mut map = Map::new();
        map.insert("type".into(), json!(kind));
        map
    };
    if let Some(description) = description {
        schema.insert("description".into(), json!(description));
        if matches!(kind, "integer" | "number")
            && let Some((min, max)) = range_in(description)
        {
            schema.insert("minimum".into(), json!(min));
            schema.insert("maximum".into(), json!(max));
        }
    }
    Ok(Value::Object(schema))
}

/// `from 1 to 10`, `1-5`, `between 0 and 100` in a description: the bounds it states.
fn range_in(description: &str) -> Option<(i64, i64)> {
    let words: Vec<&str> = description
        .split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')')
        .filter(|w| !w.is_empty())
        .collect();
    for window in words.windows(4) {
        if let [from, a, to, b] = window
            && matches!(from.to_ascii_lowercase().as_str(), "from" | "between")
            && matches!(to.to_ascii_lowercase().as_str(), "to" | "and")
            && let (Ok(a), Ok(b)) = (a.parse(), b.parse())
        {
            return Some((a, b));
        }
    }
    words.iter().find_map(|word| {
        let (a, b) = word.split_once('-')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    })
}

fn object(map: &serde_yaml_ng::Mapping) -> Result<Value, String> {
    let mut properties = Map::new();
    let mut required = Vec::new();
    let mut additional = json!(false);
    for (key, value) in map {
        let key = key.as_str().ok_or("a field name is text")?;
        let parsed = parse_key(key)?;
        if parsed.name == "*" {
            additional = to_json_schema(value)?;
            continue;
        }
        let mut field = match parsed.modifier.as_deref() {
            Some("array") => json!({ "type": "array", "items": to_json_schema(value)? }),
            Some("object") => to_json_schema(value)?,
            Some("enum") => {
                let Yaml::Sequence(values) = value else {
                    return Err(format!("`{key}`: an enum lists its values"));
                };
                let values: Vec<Value> = values
                    .iter()
                    .map(|v| serde_json::to_value(v).unwrap_or(Value::Null))
                    .collect();
                json!({ "enum": values })
            }
            Some(other) => {
                return Err(format!(
                    "`{key}`: `{other}` is not a Picoschema modifier (array, object, enum)"
                ));
            }
            None => to_json_schema(value)?,
        };
        if let (Some(description), Value::Object(field)) = (&parsed.description, &mut field) {
            field.insert("description".into(), json!(description));
        }
        if parsed.optional {
            field = optional(field);
        } else {
            required.push(json!(parsed.name));
        }
        properties.insert(parsed.name, field);
    }
    Ok(json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": additional,
    }))
}

/// An optional field may also be null, as dotprompt has it.
fn optional(field: Value) -> Value {
    match field {
        Value::Object(mut map) => match map.get("type").cloned() {
            Some(Value::String(kind)) => {
                map.insert("type".into(), json!([kind, "null"]));
                Value::Object(map)
            }
            _ => json!({ "anyOf": [Value::Object(map), { "type": "null" }] }),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Yaml {
        serde_yaml_ng::from_str(text).expect("yaml")
    }

    #[test]
    fn picoschema_becomes_a_closed_json_schema() {
        let schema = to_json_schema(&yaml(
            "summary: string\nline?: integer, the first line\nscore: integer, from 1 to 10\nissues(array):\n  severity(enum): [low, high]\nmetrics:\n  lines: integer\n",
        ))
        .expect("converts");
        assert_eq!(
            schema["required"],
            json!(["summary", "score", "issues", "metrics"])
        );
        assert_eq!(schema["additionalProperties"], json!(false));
        assert_eq!(
            schema["properties"]["line"]["type"],
            json!(["integer", "null"])
        );
        assert_eq!(schema["properties"]["score"]["minimum"], json!(1));
        assert_eq!(schema["properties"]["score"]["maximum"], json!(10));
        assert_eq!(
            schema["properties"]["issues"]["items"]["properties"]["severity"]["enum"],
            json!(["low", "high"])
        );
        assert_eq!(schema["properties"]["metrics"]["type"], json!("object"));
        assert!(to_json_schema(&yaml("x: text")).is_err(), "unknown type");
    }

    #[test]
    fn input_fields_say_what_is_required() {
        let found = fields(&yaml(
            "code: string\nlanguage: string, the language\nanalysisType?: string\n",
        ))
        .expect("fields");
        let names: Vec<(&str, bool)> = found
            .iter()
            .map(|f| (f.name.as_str(), f.required))
            .collect();
        assert_eq!(
            names,
            [("code", true), ("language", true), ("analysisType", false)]
        );
        assert_eq!(found[1].description.as_deref(), Some("the language"));
    }
}
