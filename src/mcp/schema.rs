//! Tool schemas from what an agent declares: its inputs become the input schema, its JSON
//! contract the output schema. Both are plain JSON Schema objects, built once at startup.

use serde_json::{Map, Value, json};

use crate::prompt::{InputKind, InputSpec};

/// The input schema of an agent's tool: one string property per declared input, the required
/// ones listed, nothing else accepted (an unknown argument is a typo, as an unknown `--var` is).
pub(crate) fn input_schema(inputs: &[InputSpec]) -> Map<String, Value> {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for spec in inputs {
        properties.insert(spec.name.clone(), Value::Object(property(spec)));
        if spec.required {
            required.push(Value::String(spec.name.clone()));
        }
    }
    let mut schema = Map::new();
    schema.insert("type".into(), json!("object"));
    schema.insert("properties".into(), Value::Object(properties));
    schema.insert("required".into(), Value::Array(required));
    schema.insert("additionalProperties".into(), json!(false));
    schema
}

/// One input as a string property.
fn property(spec: &InputSpec) -> Map<String, Value> {
    let mut property = Map::new();
    property.insert("type".into(), json!("string"));
    if let Some(description) = describe(spec) {
        property.insert("description".into(), json!(description));
    }
    if !spec.allowed.is_empty() {
        property.insert("enum".into(), json!(spec.allowed));
    }
    // Suggested values steer the caller without limiting it, which is what `examples` says.
    if !spec.suggested.is_empty() {
        property.insert("examples".into(), json!(spec.suggested));
    }
    if let Some(default) = spec.default.as_ref().filter(|_| !spec.required) {
        property.insert("default".into(), json!(default));
    }
    property
}

/// Where a tree path starts, and where it may lead.
const WHERE: &str = "absolute or relative to the project directory, inside the project directory or a root the server allows";

/// What the caller should pass. A form or option-list field often has only its label, and a
/// tree or a context document takes something other than the text its name suggests.
fn describe(spec: &InputSpec) -> Option<String> {
    let declared = spec
        .description
        .as_deref()
        .or(spec.label.as_deref())
        .map(|text| text.trim().trim_end_matches(':').trim())
        .filter(|text| !text.is_empty());
    match spec.kind {
        InputKind::Text => declared.map(str::to_owned),
        InputKind::Tree => Some(match declared {
            Some(declared) => format!("{declared} (a directory path, {WHERE})"),
            None => format!("A directory path, {WHERE}; its files are read honouring .gitignore"),
        }),
        InputKind::Context => Some(match declared {
            Some(declared) => format!("The text of the document `{}` ({declared})", spec.name),
            None => format!("The text of the document `{}`", spec.name),
        }),
    }
}

/// The output schema of an agent whose contract is `schema`: the schema without our `x-agent`
/// block, which is no JSON Schema keyword. MCP wants an object schema at the root, so a schema
/// that leaves the root type to its `oneOf` branches (the release record or the refusal, both
/// objects) says `"type": "object"` there too; a schema whose root is not an object has no
/// output schema.
pub(crate) fn output_schema(schema: &Value) -> Option<Map<String, Value>> {
    let mut schema = schema.as_object()?.clone();
    schema.remove("x-agent");
    match schema.get("type") {
        None => {
            schema.insert("type".into(), json!("object"));
        }
        Some(Value::String(kind)) if kind == "object" => {}
        Some(_) => return None,
    }
    Some(schema)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, edit: impl FnOnce(&mut InputSpec)) -> InputSpec {
        let mut spec = InputSpec::new(name);
        edit(&mut spec);
        spec
    }

    #[test]
    fn every_input_is_a_string_property_and_the_required_ones_are_listed() {
        let inputs = [
            spec("NOTES", |s| s.description = Some("Release notes".into())),
            spec("ENVIRONMENT", |s| {
                s.allowed = vec!["staging".into(), "production".into()];
            }),
            spec("WINDOW", |s| {
                s.required = false;
                s.default = Some("not set; propose one".into());
            }),
            spec("software_type", |s| {
                s.label = Some("Software Type".into());
                s.suggested = vec!["web application".into(), "mobile app".into()];
            }),
        ];
        let schema = Value::Object(input_schema(&inputs));
        assert_eq!(
            schema,
            json!({
                "type": "object",
                "properties": {
                    "NOTES": {"type": "string", "description": "Release notes"},
                    "ENVIRONMENT": {"type": "string", "enum": ["staging", "production"]},
                    "WINDOW": {"type": "string", "default": "not set; propose one"},
                    "software_type": {
                        "type": "string",
                        "description": "Software Type",
                        "examples": ["web application", "mobile app"]
                    }
                },
                "required": ["NOTES", "ENVIRONMENT", "software_type"],
                "additionalProperties": false
            })
        );
    }

    #[test]
    fn a_tree_takes_a_path_and_a_context_document_its_text() {
        let inputs = [
            spec("EXISTING_CODE", |s| {
                s.kind = InputKind::Tree;
                s.description = Some("The source tree".into());
            }),
            spec("spec.md", |s| {
                s.kind = InputKind::Context;
                s.description = Some("required context document".into());
            }),
        ];
        let schema = input_schema(&inputs);
        let description = |name: &str| schema["properties"][name]["description"].clone();
        assert_eq!(
            description("EXISTING_CODE"),
            json!(
                "The source tree (a directory path, absolute or relative to the project directory, inside the project directory or a root the server allows)"
            )
        );
        assert_eq!(
            description("spec.md"),
            json!("The text of the document `spec.md` (required context document)")
        );
    }

    #[test]
    fn the_output_schema_drops_x_agent_and_says_its_root_is_an_object() {
        let contract = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "oneOf": [{"$ref": "#/$defs/record"}, {"$ref": "#/$defs/refusal"}],
            "$defs": {"record": {"type": "object"}, "refusal": {"type": "object"}},
            "x-agent": {"declined": {"pointer": "/error", "equals": "insufficient_context"}}
        });
        let schema = output_schema(&contract).map(Value::Object);
        assert_eq!(
            schema,
            Some(json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "oneOf": [{"$ref": "#/$defs/record"}, {"$ref": "#/$defs/refusal"}],
                "$defs": {"record": {"type": "object"}, "refusal": {"type": "object"}},
                "type": "object"
            }))
        );
        assert_eq!(output_schema(&json!({"type": "array"})), None);
        assert_eq!(output_schema(&json!(true)), None);
    }
}
